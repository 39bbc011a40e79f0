"""Burn-rate alerts that only repeat an outage already handled are left out.

The Workbook's slow tiers look back 1 to 3 days: after a one-hour outage was paged,
fixed and resolved (with its post-mortem), the 3d/6h ticket tier keeps firing for up
to three days on the same failed events, and would keep the incident open or open a
new one about nothing new. So when an incident resolves, each SLO it affected is
marked "handled until" the resolve time (`record_handled`); afterwards, a burn-rate
alert of that SLO counts only the bad events after the mark: if those alone would not
reach its tier's threshold over the tier's long window, the alert is explained by the
handled outage and dropped. A fresh burn after recovery accumulates its own bad
events and fires as it would have on a clean window.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from sqlalchemy import Connection, Engine

from alerts.member_store import record_handled
from alerts.members import affected_slo_names
from alerts.rules import ActiveAlert
from alerts.store import Incident
from monitor.config import Settings
from monitor.slo_engine import plan
from monitor.window_counts import align_up, counts_between
from slo.budget import burn_rate

log = logging.getLogger(__name__)


def handled_slos(incident: Incident, settings: Settings) -> set[str]:
    """The SLOs an incident dealt with: its members', and every SLO of a target that
    was down in it (an outage burns them all, even those whose tier had not fired)."""
    names = set(affected_slo_names(incident, settings.slos)) | set(incident.slos)
    if not incident.members and incident.kind == "down" and incident.target:
        names |= {slo.name for slo in settings.slos if slo.target == incident.target}
    return names


def mark_handled(connection: Connection, incident: Incident, settings: Settings,
                 at: float) -> None:
    """Record that the incident handled its SLOs' bad events up to `at`."""
    record_handled(connection, handled_slos(incident, settings), incident.id, at)


def explained(engine: Engine, settings: Settings, alert: ActiveAlert, handled: float,
              now: float) -> bool:
    """Whether a firing burn-rate alert is due only to bad events before `handled`."""
    slo = settings.slo(alert.slo) if alert.slo else None
    if slo is None or alert.tier is None:
        return False
    tiers = plan(slo, now).tiers
    if not 0 <= alert.tier < len(tiers):
        return False
    tier = tiers[alert.tier]
    end = align_up(now)
    start = end - tier.long_window_s
    if handled <= start:
        return False  # the window no longer reaches back to what was handled
    _, total = counts_between(engine, slo, start, end)
    after_good, after_total = counts_between(engine, slo, align_up(handled), end)
    if total <= 0:
        return True
    bad_after = max(0.0, after_total - after_good)
    burn = burn_rate(max(0.0, total - bad_after), total, slo.objective)
    return burn is not None and burn < tier.threshold


def drop_explained(engine: Engine, settings: Settings, alerts: Sequence[ActiveAlert],
                   handled: Mapping[str, float], now: float) -> list[ActiveAlert]:
    """The alerts minus burn-rate ones explained by handled bad events."""
    kept: list[ActiveAlert] = []
    for alert in alerts:
        until = handled.get(alert.slo) if alert.slo else None
        if alert.kind == "burn_rate" and until is not None:
            try:
                if explained(engine, settings, alert, until, now):
                    continue
            except Exception:  # boundary: a failed read must not hide a real alert
                log.exception("could not check whether %s is already handled", alert.key)
        kept.append(alert)
    return kept
