"""Pure helpers of escalation: where a policy's steps stand, and what counts as news.

Kept apart from `alerts/escalation.py` (which owns the transactions) so they can be
read and tested without a database.
"""

from __future__ import annotations

import re

from monitor.config import EscalationPolicy


def shape(summary: str) -> str:
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
