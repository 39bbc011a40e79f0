"""The result sink: probe results are queued on the event loop and written in batches
from a worker thread, so a slow or failing database never delays a probe.

A failed write is retried with backoff; meanwhile results wait in a bounded buffer.
When the buffer is full the oldest waiting results are dropped and counted — never
silently.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence

from monitor.metrics import Metrics
from probes.base import ProbeResult

log = logging.getLogger(__name__)

Writer = Callable[[Sequence[ProbeResult]], None]


class ResultSink:
    """Buffers results and hands them to `writer` (run in a thread) in batches."""

    def __init__(self, writer: Writer, metrics: Metrics, *, batch_size: int = 500,
                 flush_interval: float = 1.0, max_buffer: int = 100_000,
                 max_backoff: float = 30.0, shutdown_grace: float = 5.0) -> None:
        self._writer = writer
        self._shutdown_grace = shutdown_grace
        self._closing_since: float | None = None
        self._metrics = metrics
        self._batch_size = batch_size
        self._flush_interval = flush_interval
        self._max_buffer = max_buffer
        self._max_backoff = max_backoff
        self._buffer: deque[ProbeResult] = deque()
        self._in_flight = 0
        self._wakeup = asyncio.Event()
        self._closing = False
        self.written = 0
        self.dropped = 0
        self.last_error: str | None = None

    @property
    def pending(self) -> int:
        """Results accepted but not yet written (buffered and in flight)."""
        return len(self._buffer) + self._in_flight

    def submit(self, result: ProbeResult) -> None:
        """Accept one result; O(1), never blocks, never raises."""
        if self.pending >= self._max_buffer and self._buffer:
            self._buffer.popleft()
            self.dropped += 1
            self._metrics.results_dropped.inc()
        self._buffer.append(result)
        self._metrics.results_buffered.set(self.pending)
        if len(self._buffer) >= self._batch_size:
            self._wakeup.set()

    async def run(self) -> None:
        """Write batches until `close` is called and the buffer is empty."""
        first_backoff = min(0.5, self._max_backoff)
        backoff = first_backoff
        while True:
            if not self._buffer:
                if self._closing:
                    return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), self._flush_interval)
                self._wakeup.clear()
                continue
            batch = [self._buffer.popleft()
                     for _ in range(min(self._batch_size, len(self._buffer)))]
            self._in_flight = len(batch)
            try:
                await asyncio.to_thread(self._writer, batch)
            except Exception as exc:  # boundary: storage errors are retried, not fatal
                self._in_flight = 0
                self._buffer.extendleft(reversed(batch))
                self._trim()
                self.last_error = f"{type(exc).__name__}: {exc}"[:300]
                self._metrics.storage_errors.inc()
                log.warning("storage write of %d results failed (%s); retrying in %.1fs",
                            len(batch), type(exc).__name__, backoff)
                if self._closing and self._closing_since is not None and \
                        time.monotonic() - self._closing_since >= self._shutdown_grace:
                    # Storage may have come back the instant we were told to stop: keep
                    # trying for the grace period, then say what is lost.
                    log.error("giving up: %d results not written at shutdown", self.pending)
                    return
                await asyncio.sleep(min(backoff, self._shutdown_grace) if self._closing
                                    else backoff)
                backoff = min(backoff * 2, self._max_backoff)
                continue
            backoff = first_backoff
            self._in_flight = 0
            self.written += len(batch)
            self.last_error = None
            self._metrics.results_written.inc(len(batch))
            self._metrics.results_buffered.set(self.pending)
            if len(self._buffer) < self._batch_size and not self._closing:
                # Let results accumulate into the next batch instead of writing tiny ones.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), self._flush_interval)
                self._wakeup.clear()

    def _trim(self) -> None:
        while self.pending > self._max_buffer and self._buffer:
            self._buffer.popleft()
            self.dropped += 1
            self._metrics.results_dropped.inc()

    def close(self) -> None:
        """Ask `run` to flush what is buffered and return."""
        self._closing = True
        if self._closing_since is None:
            self._closing_since = time.monotonic()
        self._wakeup.set()
