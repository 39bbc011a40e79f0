"""A person's "Resolve" holds until the condition has been seen clear once.

Why: someone resolves an incident while its rule still fires (the fix is deployed, the
numbers lag behind). Without a latch the very next tick opens a new incident for the
same key and pages again, 30 seconds after the human said "done". With it, the key
opens nothing until a tick sees its condition clear; after that a new episode is a
new incident as usual.

"Clear" means nothing live fires for the key: a burn-rate alert explained by the
handled outage (`alerts/handled.py`) whose last 5 minutes are clean is not live, so
slow tiers that keep counting the resolved outage for days do not hold the latch.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from sqlalchemy import Connection, Engine

from alerts.member_store import set_latched
from alerts.rules import ActiveAlert, group_key
from alerts.store import add_event

LATCHED_TEXT = ("Resolved while the rule still fires: no new incident for it until it "
                "has been seen clear once")
RELEASED_TEXT = "The rule was seen clear: its next episode opens a new incident"


def latch(connection: Connection, incident_id: int, now: float) -> None:
    """Hold the incident's key (call in the resolving transaction)."""
    set_latched(connection, incident_id, True)
    add_event(connection, incident_id, now, "latched", LATCHED_TEXT)


def live_keys(kept: Sequence[ActiveAlert], dropped: Sequence[ActiveAlert]) -> set[str]:
    """Group keys with something live: a kept alert, or an explained one whose fast
    window still sees failures (the outage goes on)."""
    return ({group_key(a) for a in kept}
            | {group_key(a) for a in dropped if a.fast_clean is not True})


def release_cleared(engine: Engine, latched: Mapping[str, int], live: Collection[str],
                    now: float) -> set[str]:
    """Release the latches whose key is clear this tick; the keys still held."""
    still: set[str] = set()
    for key, incident_id in latched.items():
        if key in live:
            still.add(key)
            continue
        with engine.begin() as connection:
            set_latched(connection, incident_id, False)
            add_event(connection, incident_id, now, "latch_released", RELEASED_TEXT)
    return still
