"""`--mixed`: the other probe kinds beside `http`, in proportion, on the same core.

Why: a real config is not only HTTP checks. The other kinds cost differently per probe
(`prometheus` parses an exposition in a worker thread, `page` fetches a page and its
assets, `redis` and `sql` hold their own connections), and their per-target state adds
memory, so the goals are checked on a mix too. The shares are fixed so two runs compare:

  * `prometheus` 10 % — scrapes a small exposition the target server serves at
    `/metrics/{i}`, with one ratio (requests not 5xx / all) and one gauge;
  * `page` 5 % — the target server's `/page/{i}` HTML and its two same-origin assets;
  * `redis` and `sql` — 2 % each but at most `CAPPED_RATE` probes/s per kind: they hit
    the machine's shared Redis (127.0.0.1:6379) and a temporary SQLite file, which must
    not be hammered or become what is measured;
  * `http` — the rest.

Kinds are written by other hands in parallel and may not be in `probes.REGISTRY` yet.
Each one is imported, one target validated with its own config model, built with its
`KIND.build` and run once; a kind whose module is missing, broken, or whose smoke probe
fails is skipped with a printed note (its share goes to `http`). The kinds that work
are then added to the registry of *this benchmark child only*, before `monitor.config`
is imported (it builds the target union from the registry at import), so `Settings`
validates them and the real `Runtime` builds them through `build_probe` → `KIND.build`.
"""

from __future__ import annotations

import asyncio
import importlib
import math
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

from targets import HOST

SHARES = {"prometheus": 0.10, "page": 0.05}
CAPPED_SHARE = 0.02
CAPPED_RATE = 5.0  # probes/s per capped kind: redis + sql stay at ~10/s together
CAPPED_KINDS = ("redis", "sql")
OPTIONAL_KINDS = ("prometheus", "page", "redis", "sql")
REDIS_URL = "redis://127.0.0.1:6379/0"


def target_config(kind: str, name: str, index: int, port: int, interval: float,
                  timeout: float, sqlite_path: Path) -> dict[str, Any]:
    """One target of `kind` as config.yaml would give it (all point at local servers)."""
    base: dict[str, Any] = {"type": kind, "name": name, "interval": interval,
                            "timeout": timeout}
    if kind == "prometheus":
        return {**base, "url": f"http://{HOST}:{port}/metrics/{index}",
                "ratios": {"requests": {"good": 'app_requests_total{code!~"5.."}',
                                        "total": "app_requests_total"}},
                "gauges": {"active_users": "app_active_users"}}
    if kind == "page":
        return {**base, "url": f"http://{HOST}:{port}/page/{index}"}
    if kind == "redis":
        return {**base, "url": REDIS_URL}
    if kind == "sql":
        return {**base, "url": f"sqlite:///{sqlite_path}", "query": "SELECT count(*) FROM t",
                "expect": {"value": 100}}
    return {**base, "url": f"http://{HOST}:{port}/t/{index}"}


def make_sqlite(path: Path) -> Path:
    """The `sql` kind's target: a small SQLite file with one table."""
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE IF NOT EXISTS t (x INTEGER)")
        db.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(100)])
    return path


async def usable_kinds(port: int, timeout: float, sqlite_path: Path
                       ) -> tuple[dict[str, Any], list[str]]:
    """Each optional kind that imports, validates, builds and passes one smoke probe.

    Returns ({type: ProbeKind}, notes about the kinds skipped).
    """
    from probes.base import ProbeContext
    from probes.http_client import HttpClientPool

    usable: dict[str, Any] = {}
    notes: list[str] = []
    clients = HttpClientPool()
    try:
        for kind in OPTIONAL_KINDS:
            try:
                module = importlib.import_module(f"probes.{kind}")
                probe_kind = module.KIND
                config = probe_kind.config_model.model_validate(
                    target_config(kind, "smoke", 0, port, 60.0, timeout, sqlite_path))
                probe = probe_kind.build(config, ProbeContext(clients=clients))
                try:
                    result = await asyncio.wait_for(probe.run(time.time()), timeout + 2)
                finally:
                    await probe.aclose()
            except ModuleNotFoundError as exc:
                notes.append(f"{kind}: skipped, module missing ({exc.name})")
                continue
            except Exception as exc:  # boundary: a broken kind is skipped, not fatal
                notes.append(f"{kind}: skipped, {type(exc).__name__}: {str(exc)[:200]}")
                continue
            if not result.ok:
                notes.append(f"{kind}: skipped, smoke probe failed: "
                             f"{result.error_class}: {result.error}")
                continue
            usable[kind] = probe_kind
    finally:
        await clients.aclose()
    return usable, notes


def register(kinds: dict[str, Any]) -> list[str]:
    """Add kinds missing from `probes.REGISTRY` (this process only); returns notes."""
    import probes

    missing = {k: v for k, v in kinds.items() if k not in probes.REGISTRY}
    if missing and "monitor.config" in sys.modules:
        # Too late: the config's target union is already built without them.
        for kind in missing:
            kinds.pop(kind)
        return [f"{kind}: skipped, monitor.config was imported before it could be "
                "registered" for kind in missing]
    for kind, probe_kind in missing.items():
        probes.REGISTRY[kind] = probe_kind
    return [f"{kind}: not in probes.REGISTRY yet; registered for this benchmark only"
            for kind in missing]


def counts(total: int, interval: float, kinds: list[str]) -> dict[str, int]:
    """Targets per kind: fixed shares, redis/sql capped by rate, `http` the rest."""
    out: dict[str, int] = {}
    for kind in kinds:
        if kind in SHARES:
            out[kind] = round(SHARES[kind] * total)
        elif kind in CAPPED_KINDS:
            cap = max(1, math.floor(CAPPED_RATE * interval))
            out[kind] = max(1, min(round(CAPPED_SHARE * total), cap))
    out["http"] = total - sum(out.values())
    if out["http"] < 0:
        raise ValueError(f"{total} targets are too few for a mix")
    return out


def interleave(per_kind: dict[str, int]) -> list[str]:
    """A kind for every target index, spread evenly (smooth weighted round-robin).

    Why spread: the scheduler staggers targets by sorted name across the interval, so
    interleaving by index spreads each kind over time instead of firing all `redis`
    probes in one burst.
    """
    total = sum(per_kind.values())
    credit = dict.fromkeys(per_kind, 0)
    order: list[str] = []
    for _ in range(total):
        for kind, weight in per_kind.items():
            credit[kind] += weight
        chosen = max(credit, key=lambda k: credit[k])
        credit[chosen] -= total
        order.append(chosen)
    return order
