"""Cold starts that the prober cannot fool: a busy prober, a noisy but warm target and a
thin baseline are not cold starts; a slow answer after a real idle gap is.

Idle gaps come from explicit `started_at` timestamps (the detector's only clock), so no
test waits for them; latencies are real only where a loopback server or a stalled loop
makes them so, and no test asserts how long anything took.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest
from pydantic import ValidationError

from probes import HttpClientPool, ProbeContext, build_probe
from probes.base import ErrorClass, ProbeResult
from probes.http import ColdStartOptions, HttpTarget
from probes.http_signals import ColdStartDetector
from probes.loop_lag import LoopLag
from tests.servers import route_server, send

T0 = 1_800_000_000.0  # an arbitrary epoch second: the probes' explicit start times
WARM = 0.015  # the warm median of the incident: ~15 ms


def detector(**options: Any) -> ColdStartDetector:
    """A detector built from config options exactly as the http probe builds it."""
    cold = ColdStartOptions.model_validate(options)
    return ColdStartDetector(idle_after=cold.idle_after, factor=cold.factor,
                             min_latency=cold.min_latency, history=cold.history,
                             min_cold_latency=cold.floor, min_samples=cold.min_samples)


def warm_up(d: ColdStartDetector, count: int, start: float = T0, every: float = 10.0) -> float:
    """`count` warm probes `every` seconds apart; returns the last one's start time."""
    at = start
    for i in range(count):
        at = start + i * every
        assert not d.judge(at, WARM, True).cold
    return at


# --- the detector, on explicit timestamps ---------------------------------------------

def test_the_incidents_busy_prober_is_not_a_cold_start() -> None:
    # config.yaml before the fix judged every probe: 569 and 297 ms while the machine
    # was busy, against a 15 ms median, paged through the 99.9 % no-cold-starts SLO.
    d = detector(idle_after="0s", factor=4, min_latency="3s")
    last = warm_up(d, 10)
    assert not d.judge(last + 10, 0.569, True, prober_lag=0.42).cold
    assert not d.judge(last + 20, 0.297, True).cold  # under the floor, lag or not


def test_latency_made_by_loop_lag_is_taken_off_before_judging() -> None:
    d = detector(factor=4, min_latency="3s")
    last = warm_up(d, 10)
    idle = last + 1200  # 20 minutes without a request: a real idle gap
    late = d.judge(idle, 3.4, True, prober_lag=3.1)  # over min_latency only because of us
    assert not late.cold
    assert late.reason == "prober late 3100ms"
    partly = d.judge(idle + 1200, 4.0, True, prober_lag=0.5)  # 3.5 s is still the target's
    assert partly.cold
    assert partly.reason == "3500ms over min_latency 3000ms, after 20m idle"


def test_a_noisy_but_warm_target_never_counts() -> None:
    d = detector(idle_after="0s", factor=4, min_latency="3s")  # every probe judged
    flagged = []
    at = T0
    for i in range(300):
        latency = (0.3 + (i % 4) * 0.1) if i % 7 == 6 else WARM  # 300-600 ms spikes
        at += 1800.0 if i % 50 == 49 else 10.0  # and a few real idle gaps too
        verdict = d.judge(at, latency, True)
        flagged.append(verdict.cold)
        assert verdict.reason is None  # below the floor: not even worth explaining
    assert not any(flagged)


def test_a_slow_answer_after_a_real_idle_gap_is_a_cold_start() -> None:
    d = detector(factor=4)  # default floor 1 s and idle_after 5 m
    last = warm_up(d, 12)
    busy = d.judge(last + 10, 2.5, True)  # the same slowness without idleness
    assert not busy.cold
    assert busy.reason == "not idle: 10s since the last probe, idle_after 5m"
    cold = d.judge(last + 10 + 16 * 60, 2.5, True)  # Render sleeps after 15 minutes
    assert cold.cold
    assert cold.reason == "2500ms over 4 x the warm median 15ms, after 16m idle"
    assert not d.judge(last + 40 * 60, 0.02, True).cold  # idle, but as fast as usual


def test_too_few_warm_probes_judge_only_by_the_absolute_threshold() -> None:
    d = detector(idle_after="0s", factor=4, min_latency="3s")
    first = d.judge(T0, 2.5, True)  # 166 x nothing: no baseline yet
    assert not first.cold
    assert first.reason == "2500ms but only 0 warm probes, 5 needed to compare with their median"
    last = warm_up(d, 3, start=T0 + 10)
    assert not d.judge(last + 10, 2.5, True).cold  # 4 warm probes: still not enough
    assert d.judge(last + 20, 3.2, True).cold  # over min_latency needs no baseline
    assert d.judge(last + 30, 2.5, True).cold  # 5 warm probes now (both 2.5 s ones too)


def test_without_min_latency_nothing_is_cold_until_the_baseline_exists() -> None:
    d = detector(idle_after="0s")
    assert [d.judge(T0 + i, 30.0, True).cold for i in range(5)] == [False] * 5
    assert d.judge(T0 + 5, 120.0, True).cold  # over 3 x the median of five 30 s answers


def test_failures_are_never_cold_and_do_not_feed_the_baseline() -> None:
    d = detector(idle_after="0s", min_latency="2s")
    assert not d.judge(T0, 4.0, False).cold
    assert d.judge(T0 + 1, 4.0, True).cold


# --- config -------------------------------------------------------------------------

def test_defaults_are_the_quiet_ones() -> None:
    cold = ColdStartOptions()
    assert (cold.idle_after, cold.floor, cold.min_samples) == (300.0, 1.0, 5)


def test_idle_after_zero_stays_allowed_when_written_out() -> None:
    assert ColdStartOptions.model_validate({"idle_after": "0s"}).idle_after == 0.0


def test_an_older_min_latency_under_the_default_floor_keeps_its_threshold() -> None:
    assert ColdStartOptions.model_validate({"min_latency": "500ms"}).floor == 0.5
    assert ColdStartOptions.model_validate({"min_latency": "3s"}).floor == 1.0


@pytest.mark.parametrize(("options", "message"), [
    ({"min_cold_latency": "2s", "min_latency": "1s"}, "above min_latency"),
    ({"min_samples": 30, "history": 20}, "above history"),
    ({"idle_after": "-1s"}, "idle_after"),
])
def test_contradictory_options_are_refused(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ColdStartOptions.model_validate(options)


# --- the http probe, against real loopback servers ------------------------------------

def answers_after(delays: list[float]) -> dict[str, Any]:
    """Routes whose `/` answers each request after the next of `delays` (then at once)."""
    def handler(h: BaseHTTPRequestHandler) -> None:
        if delays:
            time.sleep(delays.pop(0))
        send(h, 200, "ok")
    return {"/": handler}


def run_at(url: str, cold_start: dict[str, Any], starts: Sequence[float],
           stall: float = 0.0, **target: Any) -> list[ProbeResult]:
    """Probe `url` once per explicit start time. `stall`: block the prober's event loop
    that long just after the last probe's request went out, as a busy machine would."""
    config = HttpTarget.model_validate({"name": "api", "type": "http", "url": url,
                                        "timeout": "3s", "cold_start": cold_start, **target})

    async def go() -> list[ProbeResult]:
        clients = HttpClientPool()
        try:
            probe = build_probe(config, ProbeContext(clients))
            results = []
            for index, started_at in enumerate(starts):
                if stall and index == len(starts) - 1:
                    asyncio.get_running_loop().call_later(0.01, time.sleep, stall)
                results.append(await probe.run(started_at))
            return results
        finally:
            await clients.aclose()

    return asyncio.run(go())


def test_a_probe_slowed_by_its_own_busy_loop_is_not_a_cold_start() -> None:
    cold_start = {"idle_after": "0s", "min_cold_latency": "250ms", "min_latency": "400ms"}
    with route_server(answers_after([0.0] * 5 + [0.05])) as server:
        *warm, stalled = run_at(server.url + "/", cold_start,
                                [T0 + 10 * i for i in range(6)], stall=0.6)
    assert all(r.values["cold_start"] == 0.0 for r in warm)
    assert stalled.ok
    assert stalled.values["cold_start"] == 0.0
    assert stalled.counts["warm"] == (1.0, 1.0)
    assert stalled.details["cold_start_skipped"].startswith("prober late ")
    assert stalled.details["prober_lag"].endswith("ms")  # kept to explain the spike


def test_a_cold_start_after_an_idle_gap_is_counted() -> None:
    cold_start = {"idle_after": "10m", "factor": 4, "min_cold_latency": "200ms"}
    starts = [T0 + 10 * i for i in range(6)] + [T0 + 60, T0 + 60 + 1200]
    with route_server(answers_after([0.0] * 6 + [0.3, 0.3])) as server:
        results = run_at(server.url + "/", cold_start, starts)
    flags = [r.values["cold_start"] for r in results]
    assert flags == [0.0] * 7 + [1.0]  # the 7th is as slow, but came 10 s after the 6th
    assert results[6].details["cold_start_skipped"].startswith("not idle")
    assert results[-1].counts["warm"] == (0.0, 1.0)
    assert "after 20m idle" in results[-1].details["cold_start_reason"]


def test_a_cold_start_slower_than_max_latency_still_counts() -> None:
    cold_start = {"idle_after": "0s", "min_cold_latency": "150ms", "min_latency": "200ms"}
    with route_server(answers_after([0.25])) as server:
        [result] = run_at(server.url + "/", cold_start, [T0],
                          expect={"max_latency": "100ms"})
    assert result.error_class == ErrorClass.SLOW  # availability sees a slow answer ...
    assert result.values["cold_start"] == 1.0  # ... and the warm stream a cold start
    assert result.counts["warm"] == (0.0, 1.0)


def test_a_wrong_answer_is_not_judged() -> None:
    def failing(handler: BaseHTTPRequestHandler) -> None:
        time.sleep(0.15)
        send(handler, 500, "boom")

    cold_start = {"idle_after": "0s", "min_cold_latency": "50ms", "min_latency": "100ms"}
    with route_server({"/": failing}) as server:
        [result] = run_at(server.url + "/", cold_start, [T0])
    assert result.error_class == ErrorClass.HTTP_STATUS
    assert result.values["cold_start"] == 0.0
    assert "warm" not in result.counts


def test_loop_lag_sees_a_blocked_loop() -> None:
    async def go() -> tuple[float, float]:
        with LoopLag() as quiet:
            await asyncio.sleep(0.05)
        with LoopLag() as blocked:
            asyncio.get_running_loop().call_later(0.01, time.sleep, 0.3)
            await asyncio.sleep(0.05)
        return quiet.seconds, blocked.seconds

    quiet, blocked = asyncio.run(go())
    assert blocked > 0.3 - LoopLag().tick  # under-counted by at most one tick
    assert blocked > quiet
