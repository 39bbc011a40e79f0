"""Which escalation policy an incident follows (PagerDuty's service → policy routing)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from monitor.config import EscalationPolicy


def route(policies: Sequence[EscalationPolicy], labels: Mapping[str, str], severity: str
          ) -> EscalationPolicy | None:
    """The first policy whose `match` labels all equal the incident's and whose
    `severities` include its severity; else the one named "default"; else the first."""
    for policy in policies:
        if policy.match and severity in policy.severities and all(
                labels.get(name) == value for name, value in policy.match.items()):
            return policy
    for policy in policies:
        if not policy.match and severity in policy.severities:
            return policy
    return next((p for p in policies if p.name == "default"), policies[0] if policies
                else None)
