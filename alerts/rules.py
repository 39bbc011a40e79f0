"""What is firing right now, as one flat list the incident manager reconciles.

Why levels, not transitions: the manager compares this list with the open incidents
on every tick, so a restart, a missed tick or a second evaluator converges to the same
incidents instead of depending on having seen each "fired" edge exactly once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from alerts.causes import compose_summary, compose_title, member_rank
from monitor.config_slo import SloConfig
from monitor.down import DownState
from monitor.phases import TriggerStatus
from monitor.slo_engine import plan
from slo.status import SloStatus

Severity = Literal["page", "ticket"]
FAST_WINDOW = 300
"""The Workbook's fastest short window (5m): where recovery shows first."""


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
    """Over `window`, the long window of the firing burn-rate tier (else the last hour)."""
    budget_remaining: float | None = None
    since: float | None = None  # when the condition began, if the rule knows
    tier: int | None = None
    """The firing burn-rate tier (an index into the SLO's plan), when the rule knows."""
    window: str | None = None
    fast_clean: bool | None = None
    """No bad event in the last 5 minutes (None: no events there to tell)."""
    group: str | None = None
    """The incident key this alert joins, when not its own target's (a failing target
    it depends on)."""
    members: tuple[ActiveAlert, ...] = ()
    """For a grouped alert: the firing alerts it stands for, each with its own figures."""

    @property
    def parts(self) -> tuple[ActiveAlert, ...]:
        """The member alerts: the grouped ones, or this alert alone."""
        return self.members or (self,)


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
    under = {state.target: f"target:{state.under}" for state in down if state.under}
    for status in statuses:
        alert, slo = status.alert, slos.get(status.name)
        if slo is None or alert.severity is None or alert.suppressed:
            continue
        kind = "no_data" if alert.no_data else "burn_rate"
        severity: Severity = "page" if alert.severity == "page" else "ticket"
        window, burn = tier_burn(status, slo)
        title = (f"No data for SLO {status.name}" if alert.no_data else
                 f"SLO {status.name} is burning its error budget")
        out.append(ActiveAlert(
            key=f"slo:{status.name}", kind=kind, severity=severity, title=title,
            summary=alert.reason or title, slo=status.name, target=status.target,
            labels=labels_for(kind, severity, slo=slo, target=status.target),
            burn_rate=None if alert.no_data else burn,
            budget_remaining=status.budget_remaining, since=alert.since, tier=alert.tier,
            window=None if alert.no_data else window, fast_clean=fast_clean(status),
            group=under.get(status.target)))
    for state in down:
        if state.down:
            out.append(ActiveAlert(
                key=f"target:{state.target}", kind="down", severity="page",
                title=f"Target {state.target} is down", summary=state.reason,
                target=state.target, labels=labels_for("down", "page", target=state.target),
                since=state.since, group=under.get(state.target)))
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


def tier_burn(status: SloStatus, slo: SloConfig) -> tuple[str | None, float | None]:
    """(window, burn) of the firing tier's long window: what the tier judged, so a
    ticket on 3 days says "2× over 3d" rather than the last hour's 0×. The last hour
    when no tier fires or its window is not one the status carries."""
    fallback = ("1h", status.burn_rates.get("1h"))
    tier = status.alert.tier
    if tier is None:
        return fallback
    tiers = plan(slo, status.evaluated_at).tiers
    if not 0 <= tier < len(tiers):
        return fallback
    seconds = tiers[tier].long_window_s
    found = next((w for w in status.windows if w.seconds == seconds), None)
    return (found.window, found.burn_rate) if found is not None else fallback


def fast_clean(status: SloStatus) -> bool | None:
    """Whether the fastest window (5m) holds no bad event; None when it holds none at
    all (no evidence either way)."""
    fast = next((w for w in status.windows if w.seconds == FAST_WINDOW), None)
    if fast is None or fast.total <= 0:
        return None
    return fast.good >= fast.total


def group_key(alert: ActiveAlert) -> str:
    """Alertmanager's `group_by: [target]`, where a failing dependency's group wins."""
    if alert.group:
        return alert.group
    return f"target:{alert.target}" if alert.target else alert.key


def grouped(alerts: Sequence[ActiveAlert]) -> list[ActiveAlert]:
    """One alert per target: a target that is down also burns its SLOs' budgets, and
    on-call wants one page for one outage (Alertmanager's `group_by: [target]`); a
    target's alerts join the group of a failing target it depends on. Alerts without a
    target (decision triggers) stay on their own. Each result lists its `members`."""
    by_group: dict[str, list[ActiveAlert]] = {}
    for alert in alerts:
        by_group.setdefault(group_key(alert), []).append(alert)
    return [_merge(key, members) for key, members in by_group.items()]


def _merge(key: str, members: list[ActiveAlert]) -> ActiveAlert:
    ordered = sorted(members, key=member_rank)
    if len(ordered) == 1 and ordered[0].key == key:
        return replace(ordered[0], members=(ordered[0],))
    lead = ordered[0]
    burns = [a.burn_rate for a in members if a.burn_rate is not None]
    budgets = [a.budget_remaining for a in members if a.budget_remaining is not None]
    starts = [a.since for a in members if a.since is not None]
    slos = sorted({a.slo for a in members if a.slo})
    target = key.removeprefix("target:") if key.startswith("target:") else lead.target
    labels = dict(lead.labels)
    if len(slos) > 1:
        labels.pop("slo", None)
    if target:
        labels["target"] = target
    return ActiveAlert(
        key=key, kind=lead.kind, severity=lead.severity, title=compose_title(ordered),
        summary=compose_summary(ordered), slo=slos[0] if len(slos) == 1 else None,
        target=target, labels=labels, burn_rate=max(burns) if burns else None,
        budget_remaining=min(budgets) if budgets else None,
        since=min(starts) if starts else None, members=tuple(ordered))
