"""Checks of what a valid config *means*: names an SLO reads that its target never
produces, thresholds that cannot be what the user meant, timings that overlap.

Each passes field validation, so without these a typo silently becomes an SLO with no
data (or, for a latency threshold in seconds above the timeout, an availability SLO in
disguise). Errors stop `check`; warnings are printed and the config still loads.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from monitor.config import Settings, StorageSection
from monitor.units import format_duration, format_seconds

TRIGGER_BUILTINS = frozenset({"latency", "error"})
"""Trigger measures every target has, besides the values its kind produces."""


@dataclass(frozen=True, slots=True)
class MeaningProblem:
    path: tuple[str | int, ...]
    message: str
    error: bool


def meaning_problems(settings: Settings) -> list[MeaningProblem]:
    """Every problem of meaning in an otherwise valid config, errors and warnings."""
    problems: list[MeaningProblem] = []
    targets = {target.name: target for target in settings.targets}
    for index, target in enumerate(settings.targets):
        if target.timeout > target.interval:
            problems.append(MeaningProblem(
                ("targets", index, "timeout"),
                f"timeout {format_duration(target.timeout)} is longer than interval "
                f"{format_duration(target.interval)}: a slow answer overlaps the next probe "
                f"of {target.name!r}; make timeout at most the interval", error=False))
    for index, slo in enumerate(settings.slos):
        slo_target = targets.get(slo.target)
        if slo_target is None:
            continue
        kind = getattr(slo_target, "type", "?")
        signals = slo_target.signals()
        if slo.sli == "ratio" and slo.stream not in signals.streams:
            problems.append(MeaningProblem(
                ("slos", index, "stream"),
                f"target {slo_target.name!r} ({kind}) produces no count stream "
                f"{slo.stream!r}; {_choices('streams', signals.streams)}", error=True))
        if slo.sli == "threshold" and slo.value not in signals.values:
            problems.append(MeaningProblem(
                ("slos", index, "value"),
                f"target {slo_target.name!r} ({kind}) produces no value {slo.value!r}; "
                f"{_choices('values', signals.values)}", error=True))
        if slo.sli == "latency" and slo.threshold is not None \
                and slo.threshold >= slo_target.timeout:
            problems.append(MeaningProblem(
                ("slos", index, "threshold"),
                f"threshold {format_seconds(slo.threshold)} is not below target "
                f"{slo_target.name!r}'s timeout {format_seconds(slo_target.timeout)}, so every "
                "answer meets it and this is an availability SLO; a bare number is "
                f"seconds — did you mean {slo.threshold:g}ms?", error=True))
    for index, trigger in enumerate(settings.triggers):
        measured = targets.get(trigger.target)
        if measured is None or trigger.measure in TRIGGER_BUILTINS:
            continue
        values = measured.signals().values
        if trigger.measure not in values:
            problems.append(MeaningProblem(
                ("triggers", index, "measure"),
                f"target {measured.name!r} ({getattr(measured, 'type', '?')}) produces no value "
                f"{trigger.measure!r}; "
                f"{_choices('measures', TRIGGER_BUILTINS | values)}", error=True))
    spill = spill_problem(settings.storage)
    if spill is not None:
        problems.append(MeaningProblem(("storage", "spill_path"), spill, error=False))
    return problems


def spill_problem(storage: StorageSection) -> str | None:
    """Why results could not be spilled where configured, or None. Found at start, not
    during the database outage the spill file exists for, when results would be lost.
    A warning, not an error: the database may never go away, and `check` may run on
    another machine than `run`."""
    from monitor.spill import default_path  # the path the sink will really use

    if storage.spill_max_bytes == 0:
        return None
    path = Path(storage.spill_path) if storage.spill_path else default_path(storage.url)
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        return (f"spill file {str(path)!r}: directory {str(directory)!r} does not exist; "
                "results past storage.max_buffer would be lost in a database outage")
    writable = os.access(path, os.W_OK) if path.exists() \
        else os.access(directory, os.W_OK | os.X_OK)
    if not writable:
        return (f"spill file {str(path)!r} is not writable by this user; results past "
                "storage.max_buffer would be lost in a database outage")
    return None


def _choices(what: str, names: frozenset[str]) -> str:
    if not names:
        return f"it produces no {what}"
    return f"it produces: {', '.join(sorted(names))}"
