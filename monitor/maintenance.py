"""Maintenance windows (from config and the API): which results leave SLIs out, and when
alerts stay quiet.

Config windows are fixed; API windows live in the database and are reloaded on change,
so every writer (and, later, every instance) excludes the same results.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import Engine, delete, insert, select

from monitor.config_slo import Maintenance
from monitor.storage.models import MaintenanceRow


@dataclass(frozen=True, slots=True)
class Window:
    """One maintenance window; empty `targets` and `slos` cover everything."""

    name: str
    start: float
    end: float
    targets: frozenset[str] = frozenset()
    slos: frozenset[str] = frozenset()
    comment: str = ""
    author: str = "config"
    id: int | None = None
    created_at: float | None = None

    def covers(self, target: str, slo: str, timestamp: float) -> bool:
        if not self.start <= timestamp < self.end:
            return False
        if not self.targets and not self.slos:
            return True
        return target in self.targets or slo in self.slos


@dataclass
class MaintenanceCalendar:
    """All known windows; thread-safe reads for the writer thread and the evaluator."""

    fixed: list[Window] = field(default_factory=list)
    stored: list[Window] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def from_config(cls, windows: Iterable[Maintenance]) -> MaintenanceCalendar:
        return cls(fixed=[Window(w.name, w.start.timestamp(), w.end.timestamp(),
                                 frozenset(w.targets), frozenset(w.slos), w.comment)
                          for w in windows])

    def windows(self) -> list[Window]:
        with self._lock:
            return [*self.fixed, *self.stored]

    def covers(self, target: str, slo: str, timestamp: float) -> bool:
        return any(w.covers(target, slo, timestamp) for w in self.windows())

    def replace_stored(self, windows: list[Window]) -> None:
        with self._lock:
            self.stored = windows


def load_stored(engine: Engine) -> list[Window]:
    with engine.connect() as connection:
        rows = connection.execute(select(MaintenanceRow).order_by(MaintenanceRow.start))
        return [Window(r.name, r.start, r.end, frozenset(r.targets), frozenset(r.slos),
                       r.comment, r.author, r.id, r.created_at) for r in rows]


def store(engine: Engine, window: Window) -> int:
    with engine.begin() as connection:
        result = connection.execute(insert(MaintenanceRow).values(
            name=window.name, start=window.start, end=window.end,
            targets=sorted(window.targets), slos=sorted(window.slos),
            comment=window.comment, author=window.author,
            created_at=window.created_at or 0.0))
        return int(result.inserted_primary_key[0])  # type: ignore[index]


def remove(engine: Engine, window_id: int) -> bool:
    with engine.begin() as connection:
        result = connection.execute(delete(MaintenanceRow).where(MaintenanceRow.id == window_id))
        return bool(result.rowcount)
