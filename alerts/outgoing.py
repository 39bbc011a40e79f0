"""Queueing an incident's messages in the outbox, inside the caller's transaction.

Split from `alerts/escalation.py` so that every part of incident handling (escalation
steps, membership updates, silence reminders, resolution) queues messages the same
way: one row per (incident, reason, channel) key, never twice, with the incident as it
is at queue time frozen into the payload.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.dialects import postgresql, sqlite

from alerts.store import Incident, add_event
from monitor.storage.models import NotificationRow


class Outgoing:
    """Writes notification rows for the channels this process can use."""

    def __init__(self, usable: Collection[str], base_url: str | None) -> None:
        self._usable = set(usable)
        self._base_url = base_url

    def notify_known(self, connection: Connection, incident: Incident, event: str,
                     suffix: str, now: float, note: str | None = None,
                     in_place: bool = False) -> list[str]:
        """Tell every channel that heard of the incident about a change; the channels
        queued. `in_place`: only refresh what the channel shows (Slack edits its first
        message and adds no thread reply)."""
        channels = connection.execute(
            select(NotificationRow.channel).distinct()
            .where(NotificationRow.incident_id == incident.id)).scalars().all()
        queued = []
        for channel in sorted(channels):
            if self.enqueue(connection, incident, channel, event,
                            f"incident:{incident.id}:{suffix}:{channel}", now, note=note,
                            in_place=in_place):
                queued.append(channel)
        return queued

    def enqueue(self, connection: Connection, incident: Incident, channel: str, event: str,
                key: str, now: float, note: str | None = None, in_place: bool = False
                ) -> bool:
        """Queue one message unless its key is already queued; False if the channel is
        unusable (unknown, or its credentials are empty)."""
        if channel not in self._usable:
            add_event(connection, incident.id, now, "channel_disabled",
                      f"Channel {channel} is disabled (missing credentials); skipped")
            return False
        if incident.labels.get("failing_channel") == channel:
            add_event(connection, incident.id, now, "channel_failing",
                      f"Channel {channel} is the one failing; told the others instead")
            return False
        table = NotificationRow.__table__
        dialect = sqlite if connection.dialect.name == "sqlite" else postgresql
        values = {"key": key[:200], "incident_id": incident.id, "channel": channel,
                  "event": event, "payload": self.payload(incident, event, note, in_place),
                  "status": "pending", "attempts": 0, "next_attempt_at": now,
                  "created_at": now}
        connection.execute(dialect.insert(table).values(**values)
                           .on_conflict_do_nothing(index_elements=["key"]))
        return True

    def payload(self, incident: Incident, event: str, note: str | None = None,
                in_place: bool = False) -> dict[str, Any]:
        """The Notification fields (minus key and thread), frozen at queue time."""
        summary = incident.summary if note is None else f"{note}. {incident.summary}"
        urls = self.urls(incident.id)
        payload = {"incident_id": incident.id, "event": event, "title": incident.title,
                   "severity": incident.severity, "status": incident.status,
                   "summary": summary[:2000],
                   "occurred_at": incident.updated_at, "slo": incident.slo,
                   "target": incident.target, "burn_rate": incident.peak_burn_rate,
                   "budget_remaining": incident.budget_remaining,
                   "labels": dict(incident.labels), **urls,
                   "postmortem_url": urls["incident_url"] + "/postmortem"
                   if event == "resolve" and urls["incident_url"] else None}
        if in_place:
            payload["in_place"] = True
        return payload

    def urls(self, incident_id: int) -> dict[str, str | None]:
        if self._base_url is None:
            return {"dashboard_url": None, "incident_url": None}
        return {"dashboard_url": f"{self._base_url}/",
                "incident_url": f"{self._base_url}/api/v1/incidents/{incident_id}"}
