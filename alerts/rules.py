"""What is firing right now, as one flat list the incident manager reconciles.

Why levels, not transitions: the manager compares this list with the open incidents
on every tick, so a restart, a missed tick or a second evaluator converges to the same
incidents instead of depending on having seen each "fired" edge exactly once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from monitor.config_slo import SloConfig
from monitor.down import DownState
from monitor.phases import TriggerStatus
from slo.status import SloStatus

Severity = Literal["page", "ticket"]


@dataclass(frozen=True, slots=True)
class ActiveAlert:
    """One firing rule; `key` names its episode ("slo:<name>", "target:<name>" ...)."""

    key: str
    kind: str  # burn_rate | no_data | down | trigger
    severity: Severity
    title: str
    summary: str
    slo: str | None = None
    target: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    burn_rate: float | None = None
    budget_remaining: float | None = None
    since: float | None = None  # when the condition began, if the rule knows


def labels_for(kind: str, severity: str, *, slo: SloConfig | None = None,
               target: str | None = None, name: str | None = None) -> dict[str, str]:
    """The labels silences and routing match on: the SLO's own plus identity labels."""
    labels = dict(slo.labels) if slo is not None else {}
    labels.update(alertname=kind, severity=severity)
    if slo is not None:
        labels["slo"] = slo.name
    if target:
        labels["target"] = target
    if name:
        labels["trigger"] = name
    return labels


def active_alerts(statuses: Sequence[SloStatus], slos: Mapping[str, SloConfig],
                  down: Sequence[DownState], triggers: Sequence[TriggerStatus]
                  ) -> list[ActiveAlert]:
    out: list[ActiveAlert] = []
    for status in statuses:
        alert, slo = status.alert, slos.get(status.name)
        if slo is None or alert.severity is None or alert.suppressed:
            continue
        kind = "no_data" if alert.no_data else "burn_rate"
        severity: Severity = "page" if alert.severity == "page" else "ticket"
        burn = status.burn_rates.get("1h")
        title = (f"No data for SLO {status.name}" if alert.no_data else
                 f"SLO {status.name} is burning its error budget")
        out.append(ActiveAlert(
            key=f"slo:{status.name}", kind=kind, severity=severity, title=title,
            summary=alert.reason or title, slo=status.name, target=status.target,
            labels=labels_for(kind, severity, slo=slo, target=status.target),
            burn_rate=None if alert.no_data else burn,
            budget_remaining=status.budget_remaining, since=alert.since))
    for state in down:
        if state.down:
            out.append(ActiveAlert(
                key=f"target:{state.target}", kind="down", severity="page",
                title=f"Target {state.target} is down", summary=state.reason,
                target=state.target, labels=labels_for("down", "page", target=state.target),
                since=state.since))
    for trigger in triggers:
        if trigger.firing:
            title = f"Scaling trigger fired: {trigger.description or trigger.name}"
            out.append(ActiveAlert(
                key=f"trigger:{trigger.name}", kind="trigger", severity="ticket",
                title=title[:300],
                summary=f"{trigger.name}: measured {trigger.value} "
                        f"({trigger.direction} {trigger.threshold})",
                labels=labels_for("trigger", "ticket", name=trigger.name),
                since=trigger.since))
    return out


def grouped(alerts: Sequence[ActiveAlert]) -> list[ActiveAlert]:
    """One alert per target: a target that is down also burns its SLOs' budgets, and
    on-call wants one page for one outage (Alertmanager's `group_by: [target]`).
    Alerts without a target (decision triggers) stay on their own."""
    by_group: dict[str, list[ActiveAlert]] = {}
    for alert in alerts:
        by_group.setdefault(f"target:{alert.target}" if alert.target else alert.key,
                            []).append(alert)
    return [_merge(key, members) for key, members in by_group.items()]


def _merge(key: str, members: list[ActiveAlert]) -> ActiveAlert:
    if len(members) == 1 and members[0].key == key:
        return members[0]
    ordered = sorted(members, key=lambda a: (a.severity != "page", a.kind != "down", a.key))
    lead = ordered[0]
    burns = [a.burn_rate for a in members if a.burn_rate is not None]
    budgets = [a.budget_remaining for a in members if a.budget_remaining is not None]
    starts = [a.since for a in members if a.since is not None]
    slos = sorted({a.slo for a in members if a.slo})
    labels = dict(lead.labels)
    if len(slos) > 1:
        labels.pop("slo", None)
    return ActiveAlert(
        key=key, kind=lead.kind, severity=lead.severity, title=lead.title,
        summary="; ".join(a.summary for a in ordered)[:2000],
        slo=slos[0] if len(slos) == 1 else None, target=lead.target, labels=labels,
        burn_rate=max(burns) if burns else None,
        budget_remaining=min(budgets) if budgets else None,
        since=min(starts) if starts else None)
