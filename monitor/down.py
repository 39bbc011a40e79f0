"""Hard-outage detection: `down_after` consecutive failed probes of a target page at once,
without waiting for a burn rate to build up; the first success resolves it.

Two refinements for real topologies:

- Regions. Instances probing from several regions write results with their `region`;
  a region is failing when its own newest `down_after` results all failed, and the
  target is down when `min_regions_failing` regions are (default 1). One region's
  network trouble then does not page as an outage of the target, and a region's first
  success clears that region at once.
- Dependencies. A target with `depends_on` is reported `under` the down target it
  depends on (the topmost one, following chains; for a target itself down, a merely
  failing one will do), so the incident manager groups its alerts with that target's:
  a database outage pages once, not once per service.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import Engine, select

from monitor.storage.models import ProbeResultRow
from probes.base import TargetConfig

Outcome = tuple[float, bool, str | None]
REGION_HORIZON_INTERVALS = 3
"""A region counts while it has results within this many `down_after` runs of the
target's interval: an instance that stopped probing neither keeps a target down nor
vouches for it."""
MIN_REGION_HORIZON = 300.0


@dataclass(frozen=True, slots=True)
class DownState:
    target: str
    down: bool
    since: float | None
    failures: int
    transition: str | None  # "fired" | "resolved" | None
    reason: str
    under: str | None = None
    """The down (or, for a down target, failing) target this one depends on, topmost
    of a chain; None when there is none."""
    failing: bool = False
    """Any failure among the newest `down_after` results of any region: down, or
    possibly on its way there (its dependents group under it already)."""


def recent_outcomes(engine: Engine, target: str, count: int,
                    region: str | None = None) -> list[Outcome]:
    """The newest `count` results of a target (of one region if given), newest first:
    (started_at, ok, error)."""
    query = (select(ProbeResultRow.started_at, ProbeResultRow.ok, ProbeResultRow.error)
             .where(ProbeResultRow.target == target))
    if region is not None:
        query = query.where(ProbeResultRow.region == region)
    query = query.order_by(ProbeResultRow.started_at.desc()).limit(count)
    with engine.connect() as connection:
        return [(float(t), bool(ok), error) for t, ok, error in connection.execute(query)]


def recent_regions(engine: Engine, target: str, since: float) -> list[str]:
    """The regions that wrote results of a target since `since`."""
    query = (select(ProbeResultRow.region).distinct()
             .where(ProbeResultRow.target == target, ProbeResultRow.started_at >= since))
    with engine.connect() as connection:
        return sorted(str(region) for region in connection.execute(query).scalars())


def outcomes_by_region(engine: Engine, target: TargetConfig, now: float
                       ) -> dict[str, list[Outcome]]:
    """Each recent region's newest `down_after` outcomes. One region (the usual case)
    reads the target's newest results whatever their age, as before regions existed."""
    horizon = max(REGION_HORIZON_INTERVALS * target.down_after * target.interval,
                  MIN_REGION_HORIZON)
    regions = recent_regions(engine, target.name, now - horizon)
    if len(regions) <= 1:
        return {regions[0] if regions else "": recent_outcomes(engine, target.name,
                                                              target.down_after)}
    return {region: recent_outcomes(engine, target.name, target.down_after, region)
            for region in regions}


def _region_failing(outcomes: Sequence[Outcome], down_after: int) -> bool:
    return len(outcomes) == down_after and not any(ok for _, ok, _ in outcomes)


class DownDetector:
    """Tracks which targets are down across evaluation ticks."""

    def __init__(self, targets: Sequence[TargetConfig],
                 suppressed: Callable[[str, float], bool] | None = None) -> None:
        self.targets = list(targets)
        self._suppressed = suppressed or (lambda _target, _now: False)
        self._since: dict[str, float] = {}
        self.last: dict[str, DownState] = {}

    def evaluate(self, engine: Engine, now: float) -> list[DownState]:
        states = [self._evaluate(engine, target, now) for target in self.targets]
        down = {s.target for s in states if s.down}
        failing = {s.target for s in states if s.failing}
        parents = {t.name: t.depends_on for t in self.targets}
        out = []
        for state in states:
            # Everything of a target groups under a dependency that is down; a target
            # that is down itself also under one merely failing (both went down
            # together, and its down_after ran out first). A dependency's stray failed
            # probe does not move a healthy dependent's alerts around.
            under = topmost_failing(state.target, parents, down | failing if state.down
                                    else down)
            if under is not None:
                state = DownState(state.target, state.down, state.since, state.failures,
                                  state.transition, state.reason, under, state.failing)
            self.last[state.target] = state
            out.append(state)
        return out

    def _evaluate(self, engine: Engine, target: TargetConfig, now: float) -> DownState:
        regions = outcomes_by_region(engine, target, now)
        down_regions = {region: outcomes for region, outcomes in regions.items()
                        if _region_failing(outcomes, target.down_after)}
        down = len(down_regions) >= target.min_regions_failing
        suppressed = self._suppressed(target.name, now)
        if suppressed:
            down = False
        was_down = target.name in self._since
        transition = None
        if down and not was_down:
            # the first failure of the earliest failing region's run
            self._since[target.name] = min(o[-1][0] for o in down_regions.values())
            transition = "fired"
        elif not down and was_down:
            del self._since[target.name]
            transition = "resolved"
        newest = [outcomes[0] for outcomes in regions.values() if outcomes]
        failures = max((sum(1 for _, ok, _ in o if not ok) for o in regions.values()),
                       default=0)
        reason = ""
        if down:
            last = max(newest, key=lambda outcome: outcome[0])
            reason = f"{target.down_after} consecutive failures"
            if len(regions) > 1:
                reason += (f" in {len(down_regions)} of {len(regions)} regions "
                           f"({', '.join(sorted(down_regions))})")
            if last[2] and not last[1]:
                reason += f"; last: {last[2]}"
        return DownState(target.name, down, self._since.get(target.name), failures,
                         transition, reason, None, failures > 0 and not suppressed)


def topmost_failing(target: str, parents: Mapping[str, Sequence[str]],
                    failing: set[str]) -> str | None:
    """The failing target `target` depends on, followed up the chain to the topmost
    failing one; None when nothing it depends on fails. Cycles (refused by `check`)
    end the walk instead of looping."""
    found: str | None = None
    seen = {target}
    node = target
    while True:
        parent = next((p for p in parents.get(node, ()) if p in failing and p not in seen),
                      None)
        if parent is None:
            return found
        found = node = parent
        seen.add(parent)
