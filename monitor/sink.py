"""The result sink: probe results are queued on the event loop and written in batches
from a worker thread, so a slow or failing database never delays a probe.

A failed write is retried with backoff; meanwhile results wait in a bounded buffer.
When the buffer is full the oldest waiting results move to the spill file
(monitor/spill.py), which is written back once storage answers again — after the
buffer, so fresh data reaches dashboards first. Only when the spill file is full too
(or disabled) are the oldest results dropped: counted, and logged once per outage.

A write the database refuses (a value it will never accept, not an outage) is not
retried: the batch is split until the refused results are found
(monitor/storage/isolate.py); those are quarantined (counted, logged once per target
without their payload) and every other result of the batch is stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence

from monitor.metrics import Metrics
from monitor.spill import SpillBatch, SpillFile
from monitor.storage.isolate import Isolated, Quarantined, write_isolating
from monitor.storage.sanitize import TARGET_CHARS, clean_text
from probes.base import ProbeResult

log = logging.getLogger(__name__)

Writer = Callable[[Sequence[ProbeResult]], None]
_TOLD_TARGETS = 1000  # targets whose first quarantined result was logged (bounded)


class ResultSink:
    """Buffers results and hands them to `writer` (run in a thread) in batches.

    Failed writes are retried after 0.5 s, doubling up to `max_backoff`: 5 s, because an
    attempt costs one refused connection while the delay is how long results wait after
    the database is back.
    """

    def __init__(self, writer: Writer, metrics: Metrics, *, batch_size: int = 500,
                 flush_interval: float = 1.0, max_buffer: int = 100_000,
                 max_backoff: float = 5.0, shutdown_grace: float = 5.0,
                 spill: SpillFile | None = None) -> None:
        self._writer = writer
        self._shutdown_grace = shutdown_grace
        self._closing_since: float | None = None
        self._metrics = metrics
        self._batch_size = batch_size
        self._flush_interval = flush_interval
        self._max_buffer = max_buffer
        self._max_backoff = max_backoff
        self._spill = spill
        # Spill in chunks: one file append per chunk instead of one per result.
        self._spill_chunk = max(1, min(batch_size, max_buffer // 10))
        # While the spill file is replayed, the buffer is written once it holds this
        # many: a full batch, but never so late that it overflows into the file again.
        self._buffer_due = max(1, min(batch_size, max_buffer // 2))
        self._buffer: deque[ProbeResult] = deque()
        self._in_flight = 0
        self._wakeup = asyncio.Event()
        self._closing = False
        self.written = 0
        self.dropped = 0
        self.quarantined = 0
        """Results the database refused on their own: never stored, never retried."""
        self._quarantine_told: set[str] = set()
        self.last_error: str | None = None
        self.storage_ok = True
        self._outage_since: float | None = None
        self._told: set[str] = set()  # what was logged in this outage (once each)
        metrics.storage_up.set(1)
        self._publish_spill()

    @property
    def pending(self) -> int:
        """Results accepted but not yet written (buffered and in flight)."""
        return len(self._buffer) + self._in_flight

    @property
    def spilled(self) -> int:
        """Results in the spill file, waiting to be written."""
        return self._spill.pending if self._spill is not None else 0

    @property
    def spill(self) -> SpillFile | None:
        return self._spill

    def submit(self, result: ProbeResult) -> None:
        """Accept one result; never raises, and blocks at most for one chunk's append
        to the spill file while storage is down."""
        if self.pending >= self._max_buffer and self._buffer:
            self._make_room()
        self._buffer.append(result)
        self._metrics.results_buffered.set(self.pending)
        if len(self._buffer) >= self._batch_size:
            self._wakeup.set()

    async def run(self) -> None:
        """Write batches until `close` is called and the buffer is empty; then replay
        the spill file for the rest of the shutdown grace."""
        try:
            await self._run()
        except asyncio.CancelledError:
            # Stopped before it could finish: what is buffered survives on disk.
            self._spill_buffer()
            raise
        finally:
            if self._spill is not None:
                self._spill.close()  # let the next process take the file over

    async def _run(self) -> None:
        first_backoff = min(0.5, self._max_backoff)
        backoff = first_backoff
        while True:
            job = self._next_job()
            if job is None:
                if self._closing:
                    if self.spilled:
                        log.warning("%d spilled results left in %s for the next start",
                                    self.spilled, self._spill.path if self._spill else "")
                    return
                await self._idle()
                continue
            try:
                stored = await (self._write_buffered() if job == "buffer"
                                else self._replay_spilled())
            except Exception as exc:  # boundary: storage errors are retried, not fatal
                self._failed(exc, backoff)
                if self._closing and self._grace_over():
                    # Storage may have come back the instant we were told to stop: keep
                    # trying for the grace period, then keep or report what is left.
                    self._give_up()
                    return
                await asyncio.sleep(min(backoff, self._shutdown_grace) if self._closing
                                    else backoff)
                backoff = min(backoff * 2, self._max_backoff)
                continue
            if not stored:
                continue
            backoff = first_backoff
            self._succeeded()
            if len(self._buffer) < self._batch_size and not self._closing \
                    and not self.spilled:
                # Let results accumulate into the next batch instead of writing tiny ones.
                await self._idle()

    def _next_job(self) -> str | None:
        """The buffer first; the spill backlog while the buffer is filling up again."""
        backlog = self.spilled > 0
        if self._buffer and (not backlog or self._closing
                             or len(self._buffer) >= self._buffer_due):
            return "buffer"
        if backlog and not (self._closing and self._grace_over()):
            return "spill"
        return None  # a non-empty buffer was taken by one of the two cases above

    async def _write_buffered(self) -> bool:
        batch = [self._buffer.popleft()
                 for _ in range(min(self._batch_size, len(self._buffer)))]
        self._in_flight = len(batch)
        try:
            outcome = await asyncio.to_thread(write_isolating, self._writer, batch)
        except Exception:  # not on cancellation: the thread may still store the batch
            self._in_flight = 0
            self._buffer.extendleft(reversed(batch))
            self._trim()
            raise
        self._in_flight = 0
        if outcome.error is not None:
            # Storage went down while a refused row was being isolated: what is left
            # goes back to the front, as a failed batch does.
            self._buffer.extendleft(reversed(outcome.unwritten))
            self._trim()
        self._settle(outcome)
        if outcome.error is not None:
            raise outcome.error
        return True

    async def _replay_spilled(self) -> bool:
        """Store the next batch of the spill file; False if the file itself failed."""
        spill = self._spill
        assert spill is not None
        try:
            batch = await asyncio.to_thread(spill.read, self._batch_size)
        except OSError as exc:
            # A local disk problem, not a storage outage: retrying would loop forever.
            lost = spill.pending
            spill.discard(f"{type(exc).__name__}: {exc}")
            self._lose(lost, "the spill file could not be read")
            self._publish_spill()
            return False
        outcome, done = await asyncio.to_thread(self._store_spilled, spill, batch)
        if done is not None:
            spill.advance(done)
            if done.unreadable:
                self._lose(done.unreadable, "unreadable records in the spill file")
        self._settle(outcome)
        self._metrics.results_replayed.inc(outcome.written)
        self._publish_spill()
        if outcome.error is not None:
            raise outcome.error  # an outage halfway: the rest is replayed once it is over
        if not spill.pending:
            log.info("spill file %s fully written to storage", spill.path)
        return True

    def _store_spilled(self, spill: SpillFile,
                       batch: SpillBatch) -> tuple[Isolated, SpillBatch | None]:
        """Worker thread: store a batch (quarantining what the database refuses), then
        save the offset past it, or past the part done before an outage cut it short."""
        outcome = write_isolating(self._writer, batch.results)
        done = batch.head(outcome.done) if outcome.unwritten else batch
        if done is not None:
            spill.save_offset(done.end)
        return outcome, done

    def _settle(self, outcome: Isolated) -> None:
        """Count what a write stored and what it quarantined."""
        self._count_written(outcome.written)
        if outcome.quarantined:
            self._quarantine(outcome.quarantined)

    def _quarantine(self, refused: Sequence[Quarantined]) -> None:
        """Refused by the database: counted and logged once per target, never retried.
        The log names the target and the kind of refusal, not the payload, which came
        from the endpoint."""
        self.quarantined += len(refused)
        self._metrics.results_quarantined.inc(len(refused))
        for item in refused:
            target = clean_text(item.result.target, TARGET_CHARS)
            if target in self._quarantine_told or \
                    len(self._quarantine_told) >= _TOLD_TARGETS:
                continue
            self._quarantine_told.add(target)
            log.error("storage refused a result of target %r (%s): quarantined, not "
                      "stored; the rest of its batch was (counted in "
                      "primewatch_results_quarantined_total; logged once per target)",
                      target, item.reason)

    def _count_written(self, count: int) -> None:
        self.written += count
        self._metrics.results_written.inc(count)
        self._metrics.results_buffered.set(self.pending)

    def _failed(self, exc: Exception, backoff: float) -> None:
        self.last_error = f"{type(exc).__name__}: {exc}"[:300]
        self._metrics.storage_errors.inc()
        self._metrics.storage_up.set(0)
        if self.storage_ok:
            self.storage_ok = False
            self._outage_since = time.monotonic()
        log.warning("storage write failed (%s); %d results buffered, %d spilled; retrying "
                    "in %.1fs", type(exc).__name__, self.pending, self.spilled, backoff)

    def _succeeded(self) -> None:
        self.last_error = None
        if not self.storage_ok:
            self.storage_ok = True
            self._metrics.storage_up.set(1)
            down = time.monotonic() - (self._outage_since or time.monotonic())
            log.info("storage is back after %.1fs; writing %d buffered and %d spilled "
                     "results", down, self.pending, self.spilled)
            self._told.clear()

    def _make_room(self) -> None:
        """Move the oldest chunk to the spill file; drop the oldest result only when
        that is impossible (no spill file, or it is full)."""
        spill = self._spill
        if spill is not None:
            chunk = [self._buffer.popleft()
                     for _ in range(min(self._spill_chunk, len(self._buffer)))]
            kept = spill.append(chunk)
            if kept < len(chunk):
                self._buffer.extendleft(reversed(chunk[kept:]))
            if kept:
                self._metrics.results_spilled.inc(kept)
                self._publish_spill()
                self._tell("spill", "write buffer full (%d results): spilling the oldest "
                           "to %s", self._max_buffer, spill.path)
                return
        self._buffer.popleft()
        self._lose(1, "the write buffer is full" if spill is None
                   else "the write buffer and the spill file are full")

    def _trim(self) -> None:
        while self.pending > self._max_buffer and self._buffer:
            self._make_room()

    def _lose(self, count: int, why: str) -> None:
        self.dropped += count
        self._metrics.results_dropped.inc(count)
        self._tell(why, "dropping probe results: %s (counted in "
                   "primewatch_results_dropped_total; logged once per outage)", why,
                   level=logging.ERROR)

    def _tell(self, key: str, message: str, *args: object,
              level: int = logging.WARNING) -> None:
        if key not in self._told:
            self._told.add(key)
            log.log(level, message, *args)

    def _give_up(self) -> None:
        """Shutdown with storage still down: spill what is buffered for the next start."""
        kept = self._spill_buffer()
        if kept:
            log.warning("storage unreachable at shutdown: %d results kept in %s for the "
                        "next start", kept, self._spill.path if self._spill else "")
        if self.pending:
            log.error("giving up: %d results not written at shutdown", self.pending)

    def _spill_buffer(self) -> int:
        if self._spill is None or not self._buffer:
            return 0
        kept = self._spill.append(list(self._buffer))
        for _ in range(kept):
            self._buffer.popleft()
        self._metrics.results_spilled.inc(kept)
        self._metrics.results_buffered.set(self.pending)
        self._publish_spill()
        return kept

    def _publish_spill(self) -> None:
        spill = self._spill
        self._metrics.spill_results.set(spill.pending if spill is not None else 0)
        self._metrics.spill_bytes.set(spill.size if spill is not None else 0)

    def _grace_over(self) -> bool:
        return self._closing_since is not None and \
            time.monotonic() - self._closing_since >= self._shutdown_grace

    async def _idle(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wakeup.wait(), self._flush_interval)
        self._wakeup.clear()

    def close(self) -> None:
        """Ask `run` to flush what is buffered and return."""
        self._closing = True
        if self._closing_since is None:
            self._closing_since = time.monotonic()
        self._wakeup.set()
