"""Alerts from another rule engine (Alertmanager's webhook), stored a chunk at a time.

A post can carry thousands of alerts. `IncidentManager.receive_external` stores one
chunk of them in one transaction (one commit per chunk, not several per alert); when
that transaction fails, what the failure means decides what happens next:

- The database refused an alert's own data (`monitor/storage/isolate.py`
  `is_rejection`: a NUL byte on PostgreSQL, a value too long), or our code failed on
  it: the chunk is stored again one alert per transaction, so the bad alert is `failed`
  with its reason and every other one is stored. Retrying it could not do better.
- Any other storage error (connection lost, database locked or full, a missing table)
  is an outage: nothing more is tried and `unavailable` says why. The webhook answers
  503 and Alertmanager retries the whole post; alerts are keyed by fingerprint and
  notifications by incident and step, so what was already stored is updated, not
  opened or notified again.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace

from sqlalchemy.exc import SQLAlchemyError

from alerts.rules import ActiveAlert
from monitor.storage.isolate import describe, is_rejection

EXTERNAL_PREFIX = "external:"
"""Keys of incidents whose rule lives elsewhere (Alertmanager): they open, update and
resolve only through `receive_external`, never by the evaluation tick."""


def external_key(key: str) -> str:
    return key if key.startswith(EXTERNAL_PREFIX) else EXTERNAL_PREFIX + key


@dataclass(frozen=True, slots=True)
class ExternalBatch:
    """Alerts to store together, one entry per key: `firing` by key, and the
    `resolved` keys that do not also fire (in one post, firing wins)."""

    firing: Mapping[str, ActiveAlert]
    resolved: tuple[str, ...]

    @classmethod
    def of(cls, firing: Sequence[ActiveAlert], resolved: Sequence[str]) -> ExternalBatch:
        by_key = {external_key(a.key): replace(a, key=external_key(a.key)) for a in firing}
        keys = dict.fromkeys(external_key(k) for k in resolved if external_key(k) not in by_key)
        return cls(by_key, tuple(keys))

    @property
    def keys(self) -> list[str]:
        return [*self.firing, *self.resolved]

    def singles(self) -> Iterator[ExternalBatch]:
        """Each alert as a batch of its own."""
        for key, alert in self.firing.items():
            yield ExternalBatch({key: alert}, ())
        for key in self.resolved:
            yield ExternalBatch({}, (key,))


@dataclass(slots=True)
class ExternalOutcome:
    """What became of the alerts given to `receive_external`, by key."""

    touched: list[int] = field(default_factory=list)
    """Ids of the incidents opened, updated or resolved."""
    stored: set[str] = field(default_factory=set)
    """Keys handled: their incident opened, updated or resolved, or nothing to do (a
    silenced alert, a resolved one nobody saw firing)."""
    failed: dict[str, str] = field(default_factory=dict)
    """Keys that could not be stored on their own account, and why."""
    unavailable: str | None = None
    """Storage failed as a whole (the kind of error): keys in neither `stored` nor
    `failed` were not tried, and the sender should retry."""


def is_outage(exc: BaseException) -> bool:
    """A storage error that is not about one alert's data: retry later, not without it."""
    return isinstance(exc, SQLAlchemyError) and not is_rejection(exc)


def failure_reason(exc: BaseException) -> str:
    """Why one alert could not be stored, safe to log and to answer: the error's kind,
    never its message (which may quote the alert)."""
    if is_rejection(exc):
        return f"refused by the database ({describe(exc)})"
    return f"internal error ({type(exc).__name__})"
