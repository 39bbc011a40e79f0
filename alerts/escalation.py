"""Incidents from firing rules, escalation steps, acknowledgement and resolution.

Every change is one database transaction that also writes the timeline event and the
outbox rows it causes (`alerts/outbox.py` delivers them). So a crash at any moment
leaves either the old state (the step runs again on restart) or the new state with its
messages queued; and each message's key (incident, round, step, repeat, channel) is
unique, so re-running a step cannot queue a message twice.

What an incident is made of and when it may close are decided beside it: its members
and their names (`alerts/members.py`, `alerts/causes.py`), burn-rate alerts explained
by an outage already handled (`alerts/handled.py`), the latch a person's resolve sets
(`alerts/latch.py`), silence reminders (`alerts/reminders.py`) and the outbox rows
(`alerts/outgoing.py`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Engine, func, insert, select, update
from sqlalchemy.exc import SQLAlchemyError

from alerts.external import (
    EXTERNAL_PREFIX,
    ExternalBatch,
    ExternalOutcome,
    failure_reason,
    is_outage,
)
from alerts.handled import drop_explained, mark_handled
from alerts.latch import latch, live_keys, release_cleared
from alerts.member_store import handled_until, latched_keys
from alerts.members import (
    add_members,
    detection_changes,
    page_impact_start,
    release_reason,
    single_slo,
    sync_members,
)
from alerts.outgoing import Outgoing
from alerts.reminders import remind_expiring
from alerts.routing import route
from alerts.rules import ActiveAlert, grouped
from alerts.silences import Matcher, Silence, create_silence, list_silences, silenced_by
from alerts.steps import advance, shape
from alerts.store import Incident, add_event, get_incident, open_incidents
from monitor.config import EscalationPolicy, Settings
from monitor.errors import PrimewatchError
from monitor.storage.isolate import describe, is_rejection
from monitor.storage.models import IncidentRow

log = logging.getLogger(__name__)
SEVERITY_RANK = {"ticket": 0, "page": 1}
_INSERT_INCIDENT = insert(IncidentRow).returning(IncidentRow.id)
MACHINE_RESOLVERS = frozenset({"auto", "alertmanager"})
"""Who resolves without being a person: their resolves never latch."""


class IncidentError(PrimewatchError):
    """An incident action that cannot be done (unknown id, already resolved)."""


class IncidentNotFound(IncidentError):
    pass


def _storage_down(outcome: ExternalOutcome, exc: BaseException) -> ExternalOutcome:
    outcome.unavailable = describe(exc)
    log.warning("storage failed while storing external alerts: %s", outcome.unavailable)
    return outcome


class IncidentManager:
    """Reconciles firing rules with open incidents and drives their escalation."""

    def __init__(self, engine: Engine, settings: Settings, *,
                 channels: Collection[str] | None = None,
                 on_resolved: Callable[[int, float], None] | None = None) -> None:
        self._engine = engine
        self._settings = settings
        self._policies = {p.name: p for p in settings.alerting.policies}
        usable = set(channels) if channels is not None else {
            c.name for c in settings.alerting.channels if not c.missing_credentials()}
        self._on_resolved = on_resolved
        public = settings.server.public_url
        self._out = Outgoing(usable, public.rstrip("/") if public else None)

    # -- the evaluation tick ------------------------------------------------------

    def tick(self, alerts: Sequence[ActiveAlert], now: float) -> None:
        """Open, update and clear incidents for this tick's firing rules, then run due
        escalation steps, acknowledgement timeouts and silence reminders.

        Burn-rate alerts explained by an outage already handled are left out first
        (`alerts/handled.py`); a key a person resolved while it fired opens nothing
        until it has been seen clear (`alerts/latch.py`)."""
        silences = list_silences(self._engine, now)
        with self._engine.connect() as connection:
            current = {i.key: i for i in open_incidents(connection)}
            handled = handled_until(connection)
            latched = latched_keys(connection)
        kept = drop_explained(self._engine, self._settings, alerts, handled, now)
        kept_ids = {id(a) for a in kept}
        dropped = [a for a in alerts if id(a) not in kept_ids]
        holding = release_cleared(self._engine, latched, live_keys(kept, dropped), now)
        loud = [a for a in kept if silenced_by(silences, a.labels, now) is None]
        firing = {a.key: a for a in grouped(kept)}
        opening = {a.key: a for a in grouped(loud)}  # what opens: silenced members left out
        for key, alert in firing.items():
            try:
                incident = current.get(key)
                if incident is not None:
                    reason = release_reason(incident, alert)
                    if reason is None:
                        self._update(incident, alert, now)
                    else:
                        self._cleared(incident, now, reason)
                elif key in opening and key not in holding:
                    self._open(opening[key], now)
            except Exception:  # boundary: one incident's failure must not stop the rest
                log.exception("incident for %s could not be updated", key)
        for key, incident in current.items():
            if key not in firing and not key.startswith(EXTERNAL_PREFIX):
                self._cleared(incident, now)
        try:
            remind_expiring(self._engine, silences, now, self._remind)
        except Exception:  # boundary: a failed reminder must not stop escalation
            log.exception("silence reminders failed")
        self.escalate_due(now, silences)

    def receive_external(self, firing: Sequence[ActiveAlert], resolved: Sequence[str],
                         now: float) -> ExternalOutcome:
        """Alerts from another rule engine (a chunk of Alertmanager's webhook): firing
        ones open or update their incident (keys get EXTERNAL_PREFIX), resolved keys
        resolve theirs, in one transaction. Should that fail, each alert is stored on
        its own, unless storage is down (`alerts/external.py`)."""
        batch = ExternalBatch.of(firing, resolved)
        outcome = ExternalOutcome()
        try:
            silences = list_silences(self._engine, now)
        except SQLAlchemyError as exc:
            return _storage_down(outcome, exc)
        try:
            self._store_external(batch, silences, now, outcome)
            return outcome
        except Exception as exc:  # boundary: judged here, never lost
            if is_outage(exc):
                return _storage_down(outcome, exc)
            log.warning("%d external alerts failed together (%s): storing them one by one",
                        len(batch.keys), describe(exc))
        for single in batch.singles():
            try:
                self._store_external(single, silences, now, outcome)
            except Exception as exc:  # boundary: one alert must not stop the others
                if is_outage(exc):
                    return _storage_down(outcome, exc)
                [key] = single.keys
                outcome.failed[key] = failure_reason(exc)
                log.warning("external alert %s not stored: %s", key, outcome.failed[key],
                            exc_info=not is_rejection(exc))
        return outcome

    def _store_external(self, batch: ExternalBatch, silences: Sequence[Silence], now: float,
                        outcome: ExternalOutcome) -> None:
        """`batch` in one transaction, then what follows a commit (log lines, drafts)."""
        opened: list[tuple[int, ActiveAlert]] = []
        resolved: list[int] = []
        touched: list[int] = []
        with self._engine.begin() as connection:
            current = {i.key: i for i in open_incidents(connection, batch.keys)}
            for key, alert in batch.firing.items():
                incident = current.get(key)
                if incident is not None:
                    self._update_in(connection, incident, alert, now)
                    touched.append(incident.id)
                elif silenced_by(silences, alert.labels, now) is None:
                    new_id = self._open_in(connection, alert, now)
                    opened.append((new_id, alert))
                    touched.append(new_id)
            for key in batch.resolved:
                incident = current.get(key)
                if incident is not None and not incident.manual_resolve:
                    _, changed = self._resolve_in(
                        connection, incident.id, "alertmanager", now,
                        "Alertmanager reported the alert resolved")
                    if changed:
                        resolved.append(incident.id)
                    touched.append(incident.id)
        outcome.touched.extend(touched)
        outcome.stored.update(batch.keys)
        for new_id, alert in opened:
            self._log_opened(new_id, alert)
        for incident_id in resolved:
            self._after_resolve(incident_id, "alertmanager", now)

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
        with self._engine.begin() as connection:
            new_id = self._open_in(connection, alert, now)
        self._log_opened(new_id, alert)
        return new_id

    def _open_in(self, connection: Connection, alert: ActiveAlert, now: float) -> int:
        """Open the incident and run its first due step, in the caller's transaction."""
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
        if alert.severity == "page":
            paging = [p for p in alert.parts if p.severity == "page"]
            values.update(paged_at=now, page_impact_started_at=page_impact_start(
                paging, (), now))
        # Values as parameters, not `.values(...)`: one cached statement for every
        # incident instead of a new one to build and key each time (a third of the cost
        # of opening thousands of incidents from one Alertmanager post).
        new_id = int(connection.execute(_INSERT_INCIDENT, values).scalar_one())
        add_members(connection, new_id, alert, now)
        text = f"Incident opened ({alert.severity}): {alert.summary}"
        add_event(connection, new_id, now, "opened", text,
                  {"severity": alert.severity, "burn_rate": alert.burn_rate})
        if policy is None:
            add_event(connection, new_id, now, "unrouted",
                      "No escalation policy is configured: nobody is notified")
        self._due_steps_in(connection, new_id, now)
        return new_id

    @staticmethod
    def _log_opened(incident_id: int, alert: ActiveAlert) -> None:
        log.warning("incident %d opened: %s", incident_id, alert.title,
                    extra={"incident": incident_id, "slo": alert.slo, "target": alert.target})

    def _update(self, incident: Incident, alert: ActiveAlert, now: float) -> None:
        with self._engine.begin() as connection:
            self._update_in(connection, incident, alert, now)

    def _update_in(self, connection: Connection, incident: Incident, alert: ActiveAlert,
                   now: float) -> None:
        """Bring the incident up to date with its firing group, in the caller's
        transaction; a raised severity runs the restarted escalation's first step."""
        changes: dict[str, Any] = {}
        events: list[tuple[str, str]] = []
        if alert.burn_rate is not None and (incident.peak_burn_rate is None
                                            or alert.burn_rate > incident.peak_burn_rate):
            changes["peak_burn_rate"] = alert.burn_rate
        if alert.budget_remaining is not None:
            changes["budget_remaining"] = alert.budget_remaining
        if alert.title[:300] != incident.title:
            changes["title"] = alert.title[:300]
        if alert.summary[:2000] != incident.summary:
            changes["summary"] = alert.summary[:2000]
            if shape(alert.summary) != shape(incident.summary):  # not just new numbers
                events.append(("updated", alert.summary))
        slo = single_slo(incident, alert)
        if slo != incident.slo:
            changes["slo"] = slo
        if incident.cleared_at is not None:
            changes["cleared_at"] = None
            events.append(("firing", "The rule fires again"))
        # `severity` is the incident's peak; the label is what fires now.
        current = incident.labels.get("severity", incident.severity)
        upgrade = SEVERITY_RANK[alert.severity] > SEVERITY_RANK.get(current, 0)
        downgrade = SEVERITY_RANK[alert.severity] < SEVERITY_RANK.get(current, 0)
        if upgrade:
            changes.update(labels=dict(alert.labels))
            if SEVERITY_RANK[alert.severity] > SEVERITY_RANK.get(incident.severity, 0):
                changes.update(severity=alert.severity)
            events.append(("severity", f"Severity raised to {alert.severity}"))
            if incident.status == "triggered":
                # A ticket was notified once; a page starts escalation from the top.
                changes.update(self._restart(incident, alert.labels, alert.severity, now))
        elif downgrade:
            # The page tiers cleared, a slower (ticket) tier still fires on fresh
            # failures: stop paging people, keep the incident open until that clears
            # too (Sloth would resolve the page alert and open a ticket alert here).
            changes.update(labels=dict(alert.labels), next_escalation_at=None,
                           ack_deadline=None)
            events.append(("severity", f"Page condition cleared; still firing at "
                                       f"{alert.severity} severity, escalation stopped"))
        members = sync_members(connection, incident, alert, now)
        changes.update(detection_changes(incident, alert, members.paging, now))
        if members.membership_changed:
            events.append(("members", members.describe()))
        if changes or events:
            changes["updated_at"] = now
            connection.execute(update(IncidentRow).where(IncidentRow.id == incident.id)
                               .values(**changes))
        for kind, text in events:
            add_event(connection, incident.id, now, kind, text)
        if upgrade or downgrade or members.membership_changed:
            fresh = get_incident(connection, incident.id)
            assert fresh is not None
            if upgrade:
                self._out.notify_known(connection, fresh, "update",
                                       f"severity:{now:.0f}", now)
            else:  # the first message shows the new causes; no thread reply
                note = members.describe() if members.membership_changed else \
                    f"Now {alert.severity}"
                self._out.notify_known(connection, fresh, "update",
                                       f"members:{now:.0f}", now, note=note,
                                       in_place=True)
        if upgrade:
            self._due_steps_in(connection, incident.id, now)

    def _cleared(self, incident: Incident, now: float, reason: str | None = None) -> None:
        """The incident's group stopped firing, or fires only on what it handled."""
        text = reason or "The rule cleared"
        if not incident.manual_resolve:
            self.resolve(incident.id, "auto", now, reason=text)
            return
        if incident.cleared_at is None:
            with self._engine.begin() as connection:
                connection.execute(update(IncidentRow).where(IncidentRow.id == incident.id)
                                   .values(cleared_at=now, updated_at=now))
                add_event(connection, incident.id, now, "cleared",
                          f"{text}; this policy resolves only by hand")

    # -- escalation ---------------------------------------------------------------

    def _policy(self, incident: Incident) -> EscalationPolicy | None:
        return self._policies.get(incident.policy) if incident.policy else None

    def _run_due_steps(self, incident_id: int, now: float) -> None:
        """Run the step whose time has come. After a restart or a silence several may
        be overdue: each channel any of them names is notified once, not once per step."""
        with self._engine.begin() as connection:
            self._due_steps_in(connection, incident_id, now)

    def _due_steps_in(self, connection: Connection, incident_id: int, now: float) -> None:
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
            if self._out.enqueue(connection, incident, channel, event, key, now):
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
            self._out.notify_known(connection, fresh, "acknowledge", f"ack:{now:.3f}", now,
                                   note=f"Acknowledged by {by}")
        return fresh

    def resolve(self, incident_id: int, by: str, now: float, *,
                reason: str | None = None) -> Incident:
        with self._engine.begin() as connection:
            fresh, changed = self._resolve_in(connection, incident_id, by, now, reason)
        if changed:
            self._after_resolve(incident_id, by, now)
        return fresh

    def _resolve_in(self, connection: Connection, incident_id: int, by: str, now: float,
                    reason: str | None) -> tuple[Incident, bool]:
        """Resolve in the caller's transaction; the incident, and False if it already was."""
        incident = self._get(connection, incident_id)
        if incident.status == "resolved":
            return incident, False
        connection.execute(update(IncidentRow).where(IncidentRow.id == incident_id).values(
            status="resolved", resolved_at=now, resolved_by=by[:100], open_key=None,
            next_escalation_at=None, ack_deadline=None, updated_at=now))
        text = reason or f"Resolved by {by}"
        add_event(connection, incident_id, now, "resolved", text, {"by": by})
        mark_handled(connection, incident, self._settings, now)
        if by not in MACHINE_RESOLVERS and incident.cleared_at is None \
                and not incident.key.startswith(EXTERNAL_PREFIX):
            latch(connection, incident_id, now)
        fresh = self._get(connection, incident_id)
        # Every channel that heard of it hears it resolved, silenced or not.
        self._out.notify_known(connection, fresh, "resolve", "resolve", now, note=text)
        return fresh, True

    def _after_resolve(self, incident_id: int, by: str, now: float) -> None:
        """What follows a resolution's commit: the log line and the post-mortem draft."""
        log.warning("incident %d resolved by %s", incident_id, by,
                    extra={"incident": incident_id})
        if self._on_resolved is not None:
            try:
                self._on_resolved(incident_id, now)
            except Exception:  # boundary: a failed draft must not undo the resolution
                log.exception("post-mortem draft for incident %d failed", incident_id)

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
                                 f"silenced from incident {incident_id}", now=now,
                                 repeatable=False)
        if silence.replayed:
            return silence  # a replayed press: its silence and timeline entry exist
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

    def _remind(self, connection: Connection, incident: Incident, event: str, suffix: str,
                now: float, note: str) -> list[str]:
        return self._out.notify_known(connection, incident, event, suffix, now, note=note)
