"""Delivering queued notifications: retried with backoff until delivered, in order.

Why an outbox: the escalation step and the message it wants are committed together
(`alerts/escalation.py`), and this loop only ever moves a row from pending to delivered
or failed. A Slack 429 storm, a PagerDuty outage or a restart therefore delays a
message but neither loses nor doubles it. Messages of one incident on one channel go
out in order (a resolve never overtakes its page: it needs the page's Slack thread).

Delivery is at-least-once across a crash: a process killed after the remote accepted
a message but before the row was marked delivered sends it again on restart. PagerDuty
(dedup_key) and webhook receivers (X-Primewatch-Delivery) can drop such a repeat.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import Engine, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from alerts.notification import Delivery, Notification, Notifier
from alerts.store import add_event, thread_of
from monitor.clock import Clock
from monitor.observability import report_exception
from monitor.storage.models import IncidentThreadRow, NotificationRow

log = logging.getLogger(__name__)
BACKOFF_FIRST = 2.0
BACKOFF_CAP = 300.0
GIVE_UP_AFTER = 86400.0  # a message nobody could take for a day is marked failed
BATCH = 100  # attempts per pass, so one pass stays short
CLAIM_LEASE = 60.0  # seconds a claimed message is left alone by other senders


def backoff(attempts: int, retry_after: float | None) -> float:
    """Seconds before the next attempt: the remote's Retry-After when it gave one
    (bounded to an hour), else doubling from 2 s up to 5 min."""
    if retry_after is not None and retry_after >= 0:
        return float(min(retry_after, 3600.0))
    return min(BACKOFF_CAP, BACKOFF_FIRST * 2.0 ** max(0, attempts - 1))


class Outbox:
    """Sends due notifications through the configured notifiers."""

    def __init__(self, engine: Engine, notifiers: Mapping[str, Notifier], clock: Clock,
                 on_attempt: Callable[[str, str], None] | None = None) -> None:
        self._engine = engine
        self._on_attempt = on_attempt or (lambda _channel, _outcome: None)
        self._notifiers = dict(notifiers)
        self._clock = clock
        self.delivered = 0
        self.retried = 0
        self.failed = 0

    def pending(self) -> int:
        with self._engine.connect() as connection:
            return int(connection.execute(select(func.count()).select_from(NotificationRow)
                                          .where(NotificationRow.status == "pending"))
                       .scalar_one())

    def deliver_due(self) -> int:
        """One pass over due messages, oldest first; the number delivered."""
        now = self._clock.now()
        query = (select(NotificationRow).where(NotificationRow.status == "pending")
                 .order_by(NotificationRow.id))
        with self._engine.connect() as connection:
            rows = connection.execute(query).all()
        blocked: set[tuple[int, str]] = set()  # (incident, channel) with an earlier message waiting
        sent = attempted = 0
        for row in rows:
            if attempted >= BATCH:
                break
            lane = (row.incident_id, row.channel)
            if lane in blocked:
                continue
            if row.next_attempt_at > now:
                blocked.add(lane)
                continue
            attempted += 1
            if self._attempt(row):
                sent += 1
            else:
                blocked.add(lane)
        return sent

    def _attempt(self, row: Any) -> bool:
        notifier = self._notifiers.get(row.channel)
        now = self._clock.now()
        if not self._claim(row, now):
            return False
        if notifier is None:
            self._finish(row, Delivery.failed(f"channel {row.channel} is not configured"), now)
            return False
        with self._engine.connect() as connection:
            thread = thread_of(connection, row.incident_id, row.channel)
        notification = Notification(key=row.key, thread=thread, **row.payload)
        try:
            delivery = notifier.send(notification)
        except Exception as exc:  # boundary: a notifier bug must not stop the outbox
            log.exception("notifier %s raised", row.channel, extra={"incident": row.incident_id})
            report_exception(exc)
            delivery = Delivery.retry(f"{type(exc).__name__}: {exc}"[:300])
        now = self._clock.now()
        if delivery.outcome == "retry" and now - row.created_at >= GIVE_UP_AFTER:
            delivery = Delivery.failed(f"gave up after {row.attempts + 1} attempts: "
                                       f"{delivery.detail}")
        self._finish(row, delivery, now)
        return delivery.outcome == "delivered"

    def _claim(self, row: Any, now: float) -> bool:
        """Take the message for one attempt: only the sender whose conditional update
        matches sends it, so two outboxes (a leader handover's brief overlap) never send
        the same message. A sender that dies mid-request leaves it to be retried after
        CLAIM_LEASE (at-least-once there; PagerDuty's dedup_key absorbs it)."""
        table = NotificationRow
        with self._engine.begin() as connection:
            claimed = connection.execute(update(table).where(
                table.id == row.id, table.status == "pending",
                table.next_attempt_at == row.next_attempt_at).values(
                    next_attempt_at=now + CLAIM_LEASE)).rowcount
        return claimed == 1

    def _finish(self, row: Any, delivery: Delivery, now: float) -> None:
        attempts = row.attempts + 1
        self._on_attempt(row.channel, delivery.outcome)
        with self._engine.begin() as connection:
            table = NotificationRow
            if delivery.outcome == "delivered":
                self.delivered += 1
                connection.execute(update(table).where(table.id == row.id).values(
                    status="delivered", attempts=attempts, delivered_at=now,
                    last_error=None))
                if delivery.thread:
                    dialect = sqlite if connection.dialect.name == "sqlite" else postgresql
                    connection.execute(dialect.insert(IncidentThreadRow.__table__).values(
                        incident_id=row.incident_id, channel=row.channel,
                        thread=dict(delivery.thread)).on_conflict_do_nothing())
                add_event(connection, row.incident_id, now, "notified",
                          f"{row.event} delivered to {row.channel}"
                          + (f" after {attempts} attempts" if attempts > 1 else ""),
                          {"channel": row.channel, "key": row.key, "attempts": attempts})
            elif delivery.outcome == "retry":
                self.retried += 1
                connection.execute(update(table).where(table.id == row.id).values(
                    attempts=attempts, last_error=delivery.detail[:500],
                    next_attempt_at=now + backoff(attempts, delivery.retry_after)))
            else:
                self.failed += 1
                connection.execute(update(table).where(table.id == row.id).values(
                    status="failed", attempts=attempts, last_error=delivery.detail[:500]))
                add_event(connection, row.incident_id, now, "notify_failed",
                          f"{row.event} to {row.channel} failed: {delivery.detail}",
                          {"channel": row.channel, "key": row.key})
                log.error("notification %s failed: %s", row.key, delivery.detail)

    async def run(self, interval: float = 1.0,
                  active: Callable[[], bool] = lambda: True) -> None:
        """Deliver forever (in a worker thread: notifiers block) while `active()` says
        this instance is the one that notifies."""
        while True:
            try:
                if active():
                    await asyncio.to_thread(self.deliver_due)
            except Exception as exc:  # boundary: storage down; try again next round
                log.warning("outbox pass failed: %s", type(exc).__name__)
            await asyncio.sleep(interval)

    def close(self) -> None:
        for notifier in self._notifiers.values():
            try:
                notifier.close()
            except Exception:  # boundary
                log.warning("closing notifier %s failed", notifier.name)
