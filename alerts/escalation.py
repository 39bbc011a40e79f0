"""Incidents from firing rules, escalation steps, acknowledgement and resolution.

Every change is one database transaction that also writes the timeline event and the
outbox rows it causes (`alerts/outbox.py` delivers them). So a crash at any moment
leaves either the old state (the step runs again on restart) or the new state with its
messages queued; and each message's key (incident, round, step, repeat, channel) is
unique, so re-running a step cannot queue a message twice.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import replace
from typing import Any

from sqlalchemy import Connection, Engine, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from alerts.routing import route
from alerts.rules import ActiveAlert, grouped
from alerts.silences import Matcher, Silence, create_silence, list_silences, silenced_by
from alerts.store import Incident, add_event, get_incident, open_incidents
from monitor.config import EscalationPolicy, Settings
from monitor.errors import PrimewatchError
from monitor.storage.models import IncidentRow, NotificationRow

log = logging.getLogger(__name__)
SEVERITY_RANK = {"ticket": 0, "page": 1}
EXTERNAL_PREFIX = "external:"
"""Keys of incidents whose rule lives elsewhere (Alertmanager): they open, update and
resolve only through `receive_external`, never by the evaluation tick."""


class IncidentError(PrimewatchError):
    """An incident action that cannot be done (unknown id, already resolved)."""


class IncidentNotFound(IncidentError):
    pass


class IncidentManager:
    """Reconciles firing rules with open incidents and drives their escalation."""

    def __init__(self, engine: Engine, settings: Settings, *,
                 channels: Collection[str] | None = None,
                 on_resolved: Callable[[int, float], None] | None = None) -> None:
        self._engine = engine
        self._settings = settings
        self._policies = {p.name: p for p in settings.alerting.policies}
        self._usable = set(channels) if channels is not None else {
            c.name for c in settings.alerting.channels if not c.missing_credentials()}
        self._on_resolved = on_resolved
        public = settings.server.public_url
        self._base_url = public.rstrip("/") if public else None

    # -- the evaluation tick ------------------------------------------------------

    def tick(self, alerts: Sequence[ActiveAlert], now: float) -> None:
        """Open, update and clear incidents for this tick's firing rules, then run due
        escalation steps and acknowledgement timeouts."""
        silences = list_silences(self._engine, now)
        with self._engine.connect() as connection:
            current = {i.key: i for i in open_incidents(connection)}
        loud = [a for a in alerts if silenced_by(silences, a.labels, now) is None]
        firing = {a.key: a for a in grouped(alerts)}
        opening = {a.key: a for a in grouped(loud)}  # what opens: silenced members left out
        for key, alert in firing.items():
            try:
                if key in current:
                    self._update(current[key], alert, now)
                elif key in opening:
                    self._open(opening[key], now)
            except Exception:  # boundary: one incident's failure must not stop the rest
                log.exception("incident for %s could not be updated", key)
        for key, incident in current.items():
            if key not in firing and not key.startswith(EXTERNAL_PREFIX):
                self._cleared(incident, now)
        self.escalate_due(now, silences)

    def receive_external(self, firing: Sequence[ActiveAlert], resolved: Sequence[str],
                         now: float) -> list[int]:
        """Alerts from another rule engine (Alertmanager's webhook): firing ones open or
        update their incident (keys get EXTERNAL_PREFIX), resolved keys resolve theirs.
        Returns the ids of the incidents touched."""
        silences = list_silences(self._engine, now)
        touched: list[int] = []
        with self._engine.connect() as connection:
            current = {i.key: i for i in open_incidents(connection)}
        for alert in firing:
            key = alert.key if alert.key.startswith(EXTERNAL_PREFIX) \
                else EXTERNAL_PREFIX + alert.key
            alert = replace(alert, key=key)
            if key in current:
                self._update(current[key], alert, now)
                touched.append(current[key].id)
            elif silenced_by(silences, alert.labels, now) is None:
                new_id = self._open(alert, now)
                opened = get_incident(self._engine, new_id)
                if opened is not None:  # a repeat of the key later in this body updates it
                    current[key] = opened
                touched.append(new_id)
        for raw in resolved:
            key = raw if raw.startswith(EXTERNAL_PREFIX) else EXTERNAL_PREFIX + raw
            incident = current.get(key)
            if incident is not None and not incident.manual_resolve:
                self.resolve(incident.id, "alertmanager", now,
                             reason="Alertmanager reported the alert resolved")
                touched.append(incident.id)
        return touched

    def escalate_due(self, now: float, silences: Sequence[Silence] | None = None) -> None:
        if silences is None:
            silences = list_silences(self._engine, now)
        with self._engine.connect() as connection:
            candidates = open_incidents(connection)
        for incident in candidates:
            try:
                if incident.status == "acknowledged" and incident.ack_deadline is not None \
                        and incident.ack_deadline <= now:
                    self._ack_timed_out(incident, now)
                elif incident.status == "triggered" and incident.next_escalation_at is not None \
                        and incident.next_escalation_at <= now \
                        and silenced_by(silences, incident.labels, now) is None:
                    self._run_due_steps(incident.id, now)
            except Exception:  # boundary
                log.exception("escalation of incident %d failed", incident.id)

    def open_counts(self) -> dict[tuple[str, str], int]:
        """Open incidents by (severity, status), for /metrics."""
        with self._engine.connect() as connection:
            rows = connection.execute(
                select(IncidentRow.severity, IncidentRow.status, func.count())
                .where(IncidentRow.status != "resolved")
                .group_by(IncidentRow.severity, IncidentRow.status)).all()
        return {(severity, status): int(n) for severity, status, n in rows}

    # -- opening, updating, clearing ----------------------------------------------

    def _open(self, alert: ActiveAlert, now: float) -> int:
        policy = route(self._settings.alerting.policies, alert.labels, alert.severity)
        first = policy.steps[0].after if policy is not None else 0.0
        values: dict[str, Any] = dict(
            key=alert.key, open_key=alert.key, kind=alert.kind, title=alert.title[:300],
            summary=alert.summary[:2000], severity=alert.severity, status="triggered",
            slo=alert.slo, target=alert.target, labels=dict(alert.labels),
            policy=policy.name if policy else None,
            manual_resolve=policy is not None and policy.resolve == "manual",
            opened_at=now, impact_started_at=alert.since if alert.since else now,
            peak_burn_rate=alert.burn_rate, budget_remaining=alert.budget_remaining,
            cycle_started_at=now, next_step=0, repeat=0, escalation_round=0,
            next_escalation_at=now + first if policy else None, updated_at=now)
        with self._engine.begin() as connection:
            new_id = int(connection.execute(insert(IncidentRow).values(**values)
                                            .returning(IncidentRow.id)).scalar_one())
            text = f"Incident opened ({alert.severity}): {alert.summary}"
            add_event(connection, new_id, now, "opened", text,
                      {"severity": alert.severity, "burn_rate": alert.burn_rate})
            if policy is None:
                add_event(connection, new_id, now, "unrouted",
                          "No escalation policy is configured: nobody is notified")
        log.warning("incident %d opened: %s", new_id, alert.title,
                    extra={"incident": new_id, "slo": alert.slo, "target": alert.target})
        self._run_due_steps(new_id, now)
        return new_id

    def _update(self, incident: Incident, alert: ActiveAlert, now: float) -> None:
        changes: dict[str, Any] = {}
        events: list[tuple[str, str]] = []
        if alert.burn_rate is not None and (incident.peak_burn_rate is None
                                            or alert.burn_rate > incident.peak_burn_rate):
            changes["peak_burn_rate"] = alert.burn_rate
        if alert.budget_remaining is not None:
            changes["budget_remaining"] = alert.budget_remaining
        if alert.summary[:2000] != incident.summary:
            changes["summary"] = alert.summary[:2000]
            if _shape(alert.summary) != _shape(incident.summary):  # not just new numbers
                events.append(("updated", alert.summary))
        if incident.cleared_at is not None:
            changes["cleared_at"] = None
            events.append(("firing", "The rule fires again"))
        # `severity` is the incident's peak; the label is what fires now.
        current = incident.labels.get("severity", incident.severity)
        upgrade = SEVERITY_RANK[alert.severity] > SEVERITY_RANK.get(current, 0)
        if upgrade:
            changes.update(labels=dict(alert.labels))
            if SEVERITY_RANK[alert.severity] > SEVERITY_RANK.get(incident.severity, 0):
                changes.update(severity=alert.severity)
            events.append(("severity", f"Severity raised to {alert.severity}"))
            if incident.status == "triggered":
                # A ticket was notified once; a page starts escalation from the top.
                changes.update(self._restart(incident, alert.labels, alert.severity, now))
        elif SEVERITY_RANK[alert.severity] < SEVERITY_RANK.get(current, 0):
            # The page tiers cleared, a slower (ticket) tier still fires: stop paging
            # people, keep the incident open until that clears too (Sloth would resolve
            # the page alert and open a ticket alert here).
            changes.update(labels=dict(alert.labels), next_escalation_at=None,
                           ack_deadline=None)
            events.append(("severity", f"Page condition cleared; still firing at "
                                       f"{alert.severity} severity, escalation stopped"))
        if not changes:
            return
        changes["updated_at"] = now
        with self._engine.begin() as connection:
            connection.execute(update(IncidentRow).where(IncidentRow.id == incident.id)
                               .values(**changes))
            for kind, text in events:
                add_event(connection, incident.id, now, kind, text)
            if upgrade:
                fresh = get_incident(connection, incident.id)
                assert fresh is not None
                self._notify_known(connection, fresh, "update", f"severity:{now:.0f}", now)
        if upgrade:
            self._run_due_steps(incident.id, now)

    def _cleared(self, incident: Incident, now: float) -> None:
        if not incident.manual_resolve:
            self.resolve(incident.id, "auto", now, reason="The rule cleared")
            return
        if incident.cleared_at is None:
            with self._engine.begin() as connection:
                connection.execute(update(IncidentRow).where(IncidentRow.id == incident.id)
                                   .values(cleared_at=now, updated_at=now))
                add_event(connection, incident.id, now, "cleared",
                          "The rule cleared; this policy resolves only by hand")

    # -- escalation ---------------------------------------------------------------

    def _policy(self, incident: Incident) -> EscalationPolicy | None:
        return self._policies.get(incident.policy) if incident.policy else None

    def _run_due_steps(self, incident_id: int, now: float) -> None:
        """Run the step whose time has come. After a restart or a silence several may
        be overdue: each channel any of them names is notified once, not once per step."""
        with self._engine.begin() as connection:
            incident = get_incident(connection, incident_id)
            if incident is None or incident.status != "triggered" \
                    or incident.next_escalation_at is None \
                    or incident.next_escalation_at > now:
                return
            policy = self._policy(incident)
            if policy is None:
                connection.execute(update(IncidentRow).where(IncidentRow.id == incident_id)
                                   .values(next_escalation_at=None))
                add_event(connection, incident_id, now, "unrouted",
                          f"Escalation policy {incident.policy!r} no longer exists")
                return
            self._run_steps(connection, incident, policy, now)

    def _run_steps(self, connection: Connection, incident: Incident, policy: EscalationPolicy,
                   now: float) -> None:
        position = (incident.next_step, incident.repeat, incident.cycle_started_at)
        next_at: float | None = incident.next_escalation_at
        due: list[tuple[int, int]] = []
        while next_at is not None and next_at <= now and len(due) < 1000:
            index, repeat, _ = position
            due.append((index, repeat))
            if incident.severity == "ticket":
                next_at = None  # tickets notify once, never escalate
            else:
                position, next_at = advance(policy, *position)
        latest: dict[str, tuple[int, int]] = {}  # channel → the last due step naming it
        for index, repeat in due:
            for channel in policy.steps[index].notify:
                latest.pop(channel, None)
                latest[channel] = (index, repeat)
        first_contact = due[0] == (0, 0) and incident.escalation_round == 0
        sent = []
        for channel, (index, repeat) in latest.items():
            key = (f"incident:{incident.id}:r{incident.escalation_round}:s{index}"
                   f":x{repeat}:{channel}")
            event = "trigger" if first_contact else "escalate"
            if self._enqueue(connection, incident, channel, event, key, now):
                sent.append(channel)
        index, repeat = due[-1]
        text = (f"Escalation step {index + 1} of {len(policy.steps)}"
                + (f" (repeat {repeat})" if repeat else "")
                + (f", with {len(due) - 1} overdue step(s)" if len(due) > 1 else "")
                + f": notified {', '.join(sent) or 'no usable channel'}")
        add_event(connection, incident.id, now, "escalated", text,
                  {"step": index, "repeat": repeat, "channels": sent, "steps_run": len(due)})
        if next_at is None and incident.severity != "ticket":
            add_event(connection, incident.id, now, "exhausted",
                      "Escalation policy exhausted: nobody acknowledged")
        connection.execute(update(IncidentRow).where(IncidentRow.id == incident.id).values(
            next_step=position[0], repeat=position[1], cycle_started_at=position[2],
            next_escalation_at=next_at, updated_at=now))

    def _restart(self, incident: Incident, labels: Mapping[str, str], severity: str,
                 now: float) -> dict[str, Any]:
        policy = route(self._settings.alerting.policies, labels, severity)
        if policy is None:
            return {}
        return {"policy": policy.name, "cycle_started_at": now, "next_step": 0, "repeat": 0,
                "escalation_round": incident.escalation_round + 1,
                "next_escalation_at": now + policy.steps[0].after}

    def _ack_timed_out(self, incident: Incident, now: float) -> None:
        restart = self._restart(incident, incident.labels, incident.severity, now)
        with self._engine.begin() as connection:
            connection.execute(update(IncidentRow).where(
                IncidentRow.id == incident.id, IncidentRow.status == "acknowledged")
                .values(status="triggered", ack_deadline=None, updated_at=now, **restart))
            add_event(connection, incident.id, now, "ack_timeout",
                      "Acknowledged but not resolved in time: escalating again")
        self._run_due_steps(incident.id, now)

    # -- people's actions ---------------------------------------------------------

    def acknowledge(self, incident_id: int, by: str, now: float) -> Incident:
        with self._engine.begin() as connection:
            incident = self._get(connection, incident_id)
            if incident.status == "resolved":
                raise IncidentError(f"incident {incident_id} is already resolved")
            if incident.status == "acknowledged":
                return incident
            policy = self._policy(incident)
            timeout = policy.ack_timeout if policy is not None else None
            connection.execute(update(IncidentRow).where(IncidentRow.id == incident_id).values(
                status="acknowledged", acknowledged_at=incident.acknowledged_at or now,
                acknowledged_by=by[:100], next_escalation_at=None, updated_at=now,
                ack_deadline=None if timeout is None else now + timeout))
            add_event(connection, incident_id, now, "acknowledged", f"Acknowledged by {by}",
                      {"by": by})
            fresh = self._get(connection, incident_id)
            self._notify_known(connection, fresh, "acknowledge", f"ack:{now:.3f}", now,
                               note=f"Acknowledged by {by}")
        return fresh

    def resolve(self, incident_id: int, by: str, now: float, *,
                reason: str | None = None) -> Incident:
        with self._engine.begin() as connection:
            incident = self._get(connection, incident_id)
            if incident.status == "resolved":
                return incident
            connection.execute(update(IncidentRow).where(IncidentRow.id == incident_id).values(
                status="resolved", resolved_at=now, resolved_by=by[:100], open_key=None,
                next_escalation_at=None, ack_deadline=None, updated_at=now))
            text = reason or f"Resolved by {by}"
            add_event(connection, incident_id, now, "resolved", text, {"by": by})
            fresh = self._get(connection, incident_id)
            self._notify_known(connection, fresh, "resolve", "resolve", now, note=text)
        log.warning("incident %d resolved by %s", incident_id, by,
                    extra={"incident": incident_id})
        if self._on_resolved is not None:
            try:
                self._on_resolved(incident_id, now)
            except Exception:  # boundary: a failed draft must not undo the resolution
                log.exception("post-mortem draft for incident %d failed", incident_id)
        return fresh

    def silence(self, incident_id: int, by: str, seconds: float, now: float,
                comment: str = "") -> Silence:
        """Silence what this incident is about (its key's identity labels) for a while."""
        with self._engine.connect() as connection:
            incident = self._get(connection, incident_id)
        identity = [name for name in ("slo", "target", "trigger") if name in incident.labels]
        matchers = [Matcher(name, incident.labels[name]) for name in identity[:1]] or \
            [Matcher("alertname", incident.labels.get("alertname", incident.kind))]
        silence = create_silence(self._engine, matchers, starts_at=now, ends_at=now + seconds,
                                 created_by=by, comment=comment or
                                 f"silenced from incident {incident_id}", now=now)
        with self._engine.begin() as connection:
            add_event(connection, incident_id, now, "silenced",
                      f"Silenced by {by} for {seconds / 60:.0f} min (silence {silence.id})",
                      {"silence": silence.id})
        return silence

    def _get(self, connection: Connection, incident_id: int) -> Incident:
        incident = get_incident(connection, incident_id)
        if incident is None:
            raise IncidentNotFound(f"no incident {incident_id}")
        return incident

    # -- the outbox ----------------------------------------------------------------

    def _notify_known(self, connection: Connection, incident: Incident, event: str,
                      suffix: str, now: float, note: str | None = None) -> None:
        """Tell every channel that heard of the incident about a change."""
        channels = connection.execute(
            select(NotificationRow.channel).distinct()
            .where(NotificationRow.incident_id == incident.id)).scalars().all()
        for channel in sorted(channels):
            self._enqueue(connection, incident, channel, event,
                          f"incident:{incident.id}:{suffix}:{channel}", now, note=note)

    def _enqueue(self, connection: Connection, incident: Incident, channel: str, event: str,
                 key: str, now: float, note: str | None = None) -> bool:
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
                  "event": event, "payload": self.payload(incident, event, note),
                  "status": "pending", "attempts": 0, "next_attempt_at": now,
                  "created_at": now}
        connection.execute(dialect.insert(table).values(**values)
                           .on_conflict_do_nothing(index_elements=["key"]))
        return True

    def payload(self, incident: Incident, event: str, note: str | None = None
                ) -> dict[str, Any]:
        """The Notification fields (minus key and thread), frozen at queue time."""
        summary = incident.summary if note is None else f"{note}. {incident.summary}"
        urls = self.urls(incident.id)
        return {"incident_id": incident.id, "event": event, "title": incident.title,
                "severity": incident.severity, "status": incident.status,
                "summary": summary[:2000],
                "occurred_at": incident.updated_at, "slo": incident.slo,
                "target": incident.target, "burn_rate": incident.peak_burn_rate,
                "budget_remaining": incident.budget_remaining,
                "labels": dict(incident.labels), **urls,
                "postmortem_url": urls["incident_url"] + "/postmortem"
                if event == "resolve" and urls["incident_url"] else None}

    def urls(self, incident_id: int) -> dict[str, str | None]:
        if self._base_url is None:
            return {"dashboard_url": None, "incident_url": None}
        return {"dashboard_url": f"{self._base_url}/",
                "incident_url": f"{self._base_url}/api/v1/incidents/{incident_id}"}


def _shape(summary: str) -> str:
    """A summary without its numbers: "burn 16.9 over 1h" and "burn 25.2 over 1h" are
    the same news, "burn ... over 6h" is not."""
    return re.sub(r"\d+(\.\d+)?", "#", summary)


def advance(policy: EscalationPolicy, index: int, repeat: int, cycle_start: float
            ) -> tuple[tuple[int, int, float], float | None]:
    """The escalation position after step `index` of `repeat` ran, and when it is due
    (None once the policy is exhausted). Step times count from the cycle's start; a
    repeat starts `repeat_after` after the last step."""
    if index + 1 < len(policy.steps):
        return (index + 1, repeat, cycle_start), cycle_start + policy.steps[index + 1].after
    if repeat < policy.repeat:
        cycle = cycle_start + policy.steps[-1].after + policy.repeat_after
        return (0, repeat + 1, cycle), cycle + policy.steps[0].after
    return (index, repeat, cycle_start), None
