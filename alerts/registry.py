"""Channel type → notifier: the one place a notifier kind is registered."""

from __future__ import annotations

from collections.abc import Callable

from alerts.email import EmailNotifier
from alerts.notification import Notifier
from alerts.pagerduty import PagerDutyNotifier
from alerts.slack import SlackNotifier
from alerts.webhook import WebhookNotifier
from monitor.config import ChannelBase

NOTIFIERS: dict[str, Callable[..., Notifier]] = {
    "slack": SlackNotifier,
    "pagerduty": PagerDutyNotifier,
    "webhook": WebhookNotifier,
    "email": EmailNotifier,
}


def build_notifier(channel: ChannelBase) -> Notifier:
    """A notifier for one configured channel (its `type` picks the module)."""
    kind: str = channel.type  # type: ignore[attr-defined]  # every subclass has one
    return NOTIFIERS[kind](channel)
