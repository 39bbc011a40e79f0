"""The write path: classify a batch of probe results for every SLO and store it."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from sqlalchemy import Engine

from monitor.config import SloConfig
from monitor.storage.repository import write_batch
from probes.base import ProbeResult
from slo.rollup import rollup_deltas


class ResultWriter:
    """Callable used by the sink (in a worker thread): results → raw rows + rollups."""

    def __init__(self, engine: Engine, slos: Sequence[SloConfig]) -> None:
        self._engine = engine
        by_target: dict[str, list[SloConfig]] = defaultdict(list)
        for slo in slos:
            by_target[slo.target].append(slo)
        self._slos_by_target = dict(by_target)

    def __call__(self, results: Sequence[ProbeResult]) -> None:
        write_batch(self._engine, results, rollup_deltas(results, self._slos_by_target))
