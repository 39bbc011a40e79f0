"""Rollup sums over ranges that can no longer change, kept between evaluations.

Why: a 30-day window is read as ~5 ranges (minute and hour edges around a block of
whole days), and all but the newest minutes are history. Re-reading the day and hour
rows every 30-second tick cost PostgreSQL ~0.1 s per full evaluation
(benchmarks/slo_eval.py); only the ranges still open to writes need reading. A range
is *settled* once its end is `settle` seconds in the past: probe results are written
with their start time within a flush interval or two, so later writes into it only come
from a sink that buffered through a database outage, and `forget(since=...)` (called
by the writer for such late batches) drops what they touch. Writers this process does
not see (`primewatch slo backfill`, another instance) are caught up with by re-reading
every entry after `REFRESH_SECONDS` (jittered, so the re-reads spread over ticks).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from slo.windows import split_by_resolution

Range = tuple[int, int, int]  # (resolution, first bucket start, end exclusive)
Span = tuple[int, int]
V = TypeVar("V")

SETTLE_SECONDS = 600.0
CHUNK_SECONDS = 600  # minute ranges are cut at these boundaries, so a window whose start
# moves on by a minute re-reads at most one partial chunk instead of its whole minute edge
IDLE_SECONDS = 3 * 3600.0  # an entry no evaluation asked for this long is dropped
REFRESH_SECONDS = 3600.0  # mean age at which an entry is read again anyway


@dataclass(slots=True)
class _Entry(Generic[V]):
    value: V
    expires: float  # read again after this, whatever happened
    last_used: float


class SettledSums(Generic[V]):
    """Per-(SLO, range) sums, reused while the range is settled.

    `fetch(requests)` answers [(names, range), ...] with {name: value} per request, in
    one round trip if it can; `combine` adds two values (counts or histograms).
    """

    def __init__(self, fetch: Callable[[Sequence[tuple[Sequence[str], Range]]],
                                       list[dict[str, V]]],
                 combine: Callable[[V, V], V], zero: Callable[[], V],
                 settle: float = SETTLE_SECONDS) -> None:
        self._fetch = fetch
        self._combine = combine
        self._zero = zero
        self._settle = settle
        self._entries: dict[tuple[str, Range], _Entry[V]] = {}
        self._random = random.Random(0)
        self._next_sweep = 0.0
        self._newest_end = 0  # no entry's range ends later: most forget() calls stop here
        self.reads = 0  # (name, range) pairs fetched from storage, for benchmarks

    def sums(self, wanted: Mapping[Span, Sequence[str]], now: float
             ) -> dict[Span, dict[str, V]]:
        """The sum over each span for each of its names, reading only unsettled ranges
        and ranges not seen before."""
        split = {span: chunked(split_by_resolution(*span)) for span in wanted}
        missing: dict[Range, set[str]] = {}
        for span, names in wanted.items():
            for range_ in split[span]:
                for name in names:
                    entry = self._entries.get((name, range_))
                    if entry is not None and entry.expires > now:
                        entry.last_used = now
                    else:
                        missing.setdefault(range_, set()).add(name)
        fresh = self._read(missing, now)
        out: dict[Span, dict[str, V]] = {}
        for span, names in wanted.items():
            totals: dict[str, V] = {}
            for name in names:
                total = self._zero()
                for range_ in split[span]:
                    key = (name, range_)
                    part = fresh.get(key)
                    total = self._combine(total,
                                          self._entries[key].value if part is None else part)
                totals[name] = total
            out[span] = totals
        self._sweep(now)
        return out

    def _read(self, missing: Mapping[Range, set[str]], now: float
              ) -> dict[tuple[str, Range], V]:
        if not missing:
            return {}
        ranges = sorted(missing)
        answers = self._fetch([(sorted(missing[r]), r) for r in ranges])
        fresh: dict[tuple[str, Range], V] = {}
        settled_before = now - self._settle
        for range_, answer in zip(ranges, answers, strict=True):
            keep = range_[2] <= settled_before
            for name in missing[range_]:
                value = answer.get(name, self._zero())
                fresh[(name, range_)] = value
                if keep:
                    self._newest_end = max(self._newest_end, range_[2])
                    self._entries[(name, range_)] = _Entry(
                        value, now + REFRESH_SECONDS * (0.5 + self._random.random()), now)
            self.reads += len(missing[range_])
        return fresh

    def forget(self, since: float | None = None, names: Iterable[str] | None = None) -> None:
        """Drop entries that writes at or after `since` (all, if None) may have changed,
        for `names` (all, if None): after a late batch, a backfill or a correction."""
        if since is not None and since >= self._newest_end:
            return
        only = None if names is None else set(names)
        for key in list(self._entries):
            name, (_, _, end) = key
            if (only is None or name in only) and (since is None or end > since):
                del self._entries[key]

    def _sweep(self, now: float) -> None:
        """Drop entries of windows that have moved on (bounded memory)."""
        if now < self._next_sweep:
            return
        self._next_sweep = now + 300.0
        idle_before = now - IDLE_SECONDS
        for key, entry in list(self._entries.items()):
            if entry.last_used < idle_before:
                del self._entries[key]

    def __len__(self) -> int:
        return len(self._entries)


def chunked(ranges: Sequence[Range], chunk: int = CHUNK_SECONDS) -> list[Range]:
    """`ranges` with every finer-than-`chunk` range cut at multiples of `chunk`."""
    out: list[Range] = []
    for resolution, first, end in ranges:
        if resolution >= chunk:
            out.append((resolution, first, end))
            continue
        cut = first
        while cut < end:
            upto = min(end, (cut // chunk + 1) * chunk)
            out.append((resolution, cut, upto))
            cut = upto
    return out


def add_counts(a: tuple[int, int], b: tuple[int, int]) -> tuple[int, int]:
    return a[0] + b[0], a[1] + b[1]


def add_bins(a: dict[int, int], b: dict[int, int]) -> dict[int, int]:
    merged = dict(a)
    for index, count in b.items():
        merged[index] = merged.get(index, 0) + count
    return merged
