"""Stale-while-revalidate for heavy dashboard pages: one slow request, then never."""

from __future__ import annotations

import threading

from dashboards.data import TtlCache


def test_stale_values_are_served_while_one_refresh_runs() -> None:
    now = [0.0]
    cache = TtlCache(monotonic=lambda: now[0])
    made: list[int] = []
    gate = threading.Event()

    def make() -> int:
        if made:
            gate.wait(5)  # the refresh is slow
        made.append(len(made) + 1)
        return made[-1]

    assert cache.get_stale("k", make, fresh_for=10) == 1
    now[0] = 5.0
    assert cache.get_stale("k", make, fresh_for=10) == 1 and made == [1]  # fresh
    now[0] = 20.0
    assert cache.get_stale("k", make, fresh_for=10) == 1  # stale: served at once
    assert cache.get_stale("k", make, fresh_for=10) == 1  # one refresh only
    gate.set()
    for _ in range(100):
        if made == [1, 2]:
            break
        threading.Event().wait(0.02)
    assert made == [1, 2]
    assert cache.get_stale("k", make, fresh_for=10) == 2
    now[0] = 10_000.0  # too old to serve: the caller waits for a fresh value
    assert cache.get_stale("k", make, fresh_for=10, keep_for=600) == 3
