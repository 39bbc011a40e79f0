"""Leadership: of several instances sharing one PostgreSQL database, exactly one (the
holder of a session-level advisory lock) evaluates alert rules and sends notifications.

Why an advisory lock on a dedicated connection: PostgreSQL releases it the moment the
holder's session ends (a killed process's socket closes and the server ends the
session), so there is no lease to tune and no clock to trust. The connection lives
outside the pool, so no pooled query can release or share it. `idle_session_timeout`
on that session bounds how long a hung or partitioned leader keeps the lock: a live
leader touches it every interval, only a stopped one goes quiet. TCP keepalives and
`tcp_user_timeout` make the leader notice a vanished server and step down.

SQLite is one process's file: its single instance always leads.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from monitor.storage.models import InstanceRow

log = logging.getLogger(__name__)
LOCK_KEY = 0x7072696D65  # "prime": one lock per database
_live: set[Leadership] = set()  # holders until released: a lost one would leak its lock


def default_instance_name(port: int) -> str:
    return f"{socket.gethostname()}:{port}"


class Leadership:
    """This instance's membership: heartbeats, and the lock when it can get it."""

    def __init__(self, engine: Engine, instance: str, region: str, *, interval: float,
                 wall: Callable[[], float] = time.time) -> None:
        self.engine = engine
        self.instance = instance
        self.region = region
        self.interval = interval
        self._wall = wall
        self.started_at = wall()
        self._shared = engine.dialect.name == "postgresql"
        self._lock_connection: Any = None
        self.is_leader = False
        self.last_heartbeat: float | None = None
        self.last_error: str | None = None
        self.acquired = 0  # times this instance became leader
        _live.add(self)

    @property
    def role(self) -> str:
        return "leader" if self.is_leader else "follower"

    def step(self) -> bool:
        """Keep or try to take the lock, then heartbeat. Blocking: call in a thread."""
        was_leader = self.is_leader
        self.is_leader = self._hold_or_take() if self._shared else True
        if self.is_leader and not was_leader:
            self.acquired += 1
            log.info("instance %s (%s) is now the leader", self.instance, self.region)
        elif was_leader and not self.is_leader:
            log.warning("instance %s lost leadership", self.instance)
        try:
            self._heartbeat(self.role)
            self.last_error = None
        except Exception as exc:  # boundary: storage down; the sink and readyz say so
            self.last_error = f"{type(exc).__name__}: {exc}"[:300]
        return self.is_leader

    def release(self, *, say_goodbye: bool = True) -> None:
        """Give the lock up (shutdown), so a successor need not wait for anything, and
        mark this instance `stopped` so its silence pages nobody."""
        self.is_leader = False
        self._drop_lock_connection()
        if not say_goodbye:
            _live.discard(self)
            return
        try:
            self._heartbeat("stopped")
        except Exception as exc:  # boundary: storage may be gone at shutdown
            log.debug("final heartbeat failed: %s", type(exc).__name__)
        _live.discard(self)

    def _hold_or_take(self) -> bool:
        if self._lock_connection is not None:
            try:
                self._lock_connection.execute("SELECT 1")  # our session lives: lock is ours
                return True
            except Exception as exc:
                log.warning("leader's lock session failed (%s); stepping down",
                            type(exc).__name__)
                self._drop_lock_connection()
                return False
        try:
            connection = self._connect()
        except Exception as exc:
            self.last_error = f"{type(exc).__name__}: {exc}"[:300]
            return False
        try:
            taken = connection.execute("SELECT pg_try_advisory_lock(%s)",
                                       (LOCK_KEY,)).fetchone()[0]
        except Exception:
            connection.close()
            return False
        if not taken:
            connection.close()
            return False
        self._lock_connection = connection
        return True

    def _connect(self) -> Any:
        """A psycopg connection of its own, with the same parameters as the pool's."""
        import psycopg

        _args, kwargs = self.engine.dialect.create_connect_args(self.engine.url)
        timeout_ms = int(2 * self.interval * 1000)
        connection = psycopg.connect(
            **kwargs, autocommit=True, connect_timeout=max(2, int(self.interval)),
            keepalives=1, keepalives_idle=max(1, int(self.interval)), keepalives_interval=1,
            keepalives_count=3, tcp_user_timeout=timeout_ms,
            application_name=f"primewatch leader lock {self.instance}"[:63])
        connection.execute(f"SET idle_session_timeout = {timeout_ms}")
        return connection

    def _drop_lock_connection(self) -> None:
        connection, self._lock_connection = self._lock_connection, None
        if connection is not None:
            try:
                connection.close()  # ends the session: PostgreSQL frees the lock
            except Exception as exc:  # boundary: already broken
                log.debug("closing the lock connection failed: %s", type(exc).__name__)

    def _heartbeat(self, role: str) -> None:
        now = self._wall()
        values = {"instance": self.instance, "region": self.region, "role": role,
                  "host": socket.gethostname()[:200], "pid": os.getpid(),
                  "started_at": self.started_at, "heartbeat_at": now}
        table = InstanceRow.__table__
        with self.engine.begin() as connection:
            dialect = postgresql if self._shared else sqlite
            insert = dialect.insert(table).values(**values)
            connection.execute(insert.on_conflict_do_update(
                index_elements=["instance"],
                set_={k: v for k, v in values.items() if k != "instance"}))
        self.last_heartbeat = now


def release_all() -> None:
    """Release every lock this process holds (test teardown: a lock left held would
    make every later runtime in the process a follower)."""
    for leadership in list(_live):
        leadership.release(say_goodbye=False)  # its database may already be gone


def members(engine: Engine) -> list[InstanceRow]:
    """Every instance that has heartbeated into this database (and not been forgotten by
    `monitor.retention`), newest first."""
    with Session(engine) as session:
        return list(session.scalars(select(InstanceRow)
                                    .order_by(InstanceRow.heartbeat_at.desc())))
