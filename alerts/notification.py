"""What the escalation engine hands a notifier, and what the notifier answers.

Why a plain value in, a plain value out: the outbox (`alerts/outbox.py`) owns retries,
backoff and the "never twice" guarantee, so a notifier makes exactly one attempt and
says whether it was delivered, should be retried (and when), or can never succeed.
Notifiers are synchronous (slack-sdk's WebClient, smtplib, httpx.Client); the outbox
runs them in a worker thread.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol

Event = Literal["trigger", "escalate", "acknowledge", "resolve", "update"]
"""trigger: the incident's first message on this channel; escalate: a later step or
repeat reaching it again while nobody acknowledged; acknowledge / resolve: state
changes; update: anything else worth a thread reply (a faster tier fired, a link)."""

Severity = Literal["page", "ticket"]
Status = Literal["triggered", "acknowledged", "resolved"]


@dataclass(frozen=True, slots=True)
class Notification:
    """One message about one incident for one channel."""

    key: str
    """Unique per incident, step, repeat and channel: the dedup key of the outbox."""
    incident_id: int
    event: Event
    title: str
    severity: Severity
    status: Status
    summary: str
    occurred_at: float  # unix seconds
    slo: str | None = None
    target: str | None = None
    burn_rate: float | None = None
    budget_remaining: float | None = None  # ratio, 1.0 = untouched, may go negative
    labels: Mapping[str, str] = field(default_factory=dict)
    dashboard_url: str | None = None
    incident_url: str | None = None
    postmortem_url: str | None = None
    thread: Mapping[str, str] = field(default_factory=dict)
    """What this channel's earlier delivery for the incident returned (`Delivery.thread`),
    e.g. Slack's {"channel": "C123", "ts": "1700000000.000100"}; empty before the first."""
    in_place: bool = False
    """Only refresh what the channel already shows (the incident's causes or severity
    changed): Slack edits its first message without a thread reply; channels that
    cannot edit a message send it as an ordinary update."""


Outcome = Literal["delivered", "retry", "failed"]


@dataclass(frozen=True, slots=True)
class Delivery:
    """The result of one attempt."""

    outcome: Outcome
    detail: str = ""
    retry_after: float | None = None
    """Seconds the remote asked us to wait (HTTP 429 Retry-After); None = use backoff."""
    thread: Mapping[str, str] = field(default_factory=dict)
    """State to remember for later messages of the same incident on this channel."""

    @classmethod
    def delivered(cls, detail: str = "", thread: Mapping[str, str] | None = None
                  ) -> Delivery:
        return cls("delivered", detail, None, dict(thread or {}))

    @classmethod
    def retry(cls, detail: str, retry_after: float | None = None) -> Delivery:
        return cls("retry", detail, retry_after)

    @classmethod
    def failed(cls, detail: str) -> Delivery:
        return cls("failed", detail)


class Notifier(Protocol):
    """One channel instance built from its config section."""

    name: str

    def send(self, notification: Notification) -> Delivery:
        """Make ONE attempt; never raise (map every error to retry or failed)."""
        ...

    def close(self) -> None:
        """Release connections; called once at shutdown."""
        ...
