"""X-Forwarded-For is the client's to write, so it counts only from `trusted_proxies`.

The app runs under a real `uvicorn.Server` configured by `monitor.serving.server_config`,
the function `primewatch run` uses, so uvicorn's own proxy handling is in the loop too.
Every test client connects from loopback, which uvicorn trusted by default: a forged
header used to pick the audit log's client, the rate-limit key and whom a lockout hit.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
import uvicorn
from prometheus_client import CollectorRegistry

from monitor.app import create_app
from monitor.clock import FakeClock
from monitor.config import Settings
from monitor.metrics import Metrics
from monitor.ratelimit import client_address
from monitor.serving import server_config
from monitor.storage.engine import make_engine, upgrade
from tests.conftest import make_settings

WRITE, OTHER_WRITE, READ = "px-write-token", "px-other-write-token", "px-read-token"
TOKENS = [{"name": "alertmanager", "token": WRITE, "scope": "write"},
          {"name": "oncall", "token": OTHER_WRITE, "scope": "write"},
          {"name": "viewer", "token": READ, "scope": "read"}]
SILENCE = {"matchers": [{"name": "slo", "value": "api-availability"}], "duration": "1h",
           "comment": "proxy test"}


@contextmanager
def serve(tmp_path: Path, **server: Any) -> Iterator[str]:
    """The app on a free loopback port, served as `primewatch run` serves it."""
    engine = make_engine(f"sqlite:///{tmp_path / 'pw.db'}")
    upgrade(engine)
    settings = make_settings(server={"tokens": TOKENS, **server}, dashboard={"auth": "token"},
                             storage={"url": f"sqlite:///{tmp_path / 'pw.db'}"})  # spill there
    app = create_app(settings, engine, clock=FakeClock(), metrics=Metrics(CollectorRegistry()),
                     run_background=False, limits_clock=FakeClock(0.0))
    uv = uvicorn.Server(server_config(app, settings, "127.0.0.1", 0))
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not uv.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{uv.servers[0].sockets[0].getsockname()[1]}"
    finally:
        uv.should_exit = True
        thread.join(10)
        engine.dispose()


def client(url: str, token: str | None = WRITE, address: str = "127.0.0.1",
           forwarded: str | None = None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if forwarded:
        headers["X-Forwarded-For"] = forwarded
    return httpx.Client(base_url=url, headers=headers, timeout=10,
                        transport=httpx.HTTPTransport(local_address=address))


def audit_clients(url: str) -> list[str]:
    with client(url, READ, address="127.0.0.3") as reader:  # an address nobody locked
        return [item["client"] for item in reader.get("/api/v1/audit").json()["items"]]


def test_a_forged_forwarded_for_changes_neither_audit_nor_rate_limit(tmp_path: Path) -> None:
    with serve(tmp_path, rate_limit={"requests_per_second": 0.001, "burst": 3}) as url:
        statuses = []
        for n in range(5):  # a new "address" per request used to mean a fresh bucket
            with client(url, forwarded=f"203.0.113.{n}") as forger:
                statuses.append(forger.post("/api/v1/silences", json=SILENCE).status_code)
        assert statuses == [201, 201, 201, 429, 429]
        clients = audit_clients(url)
    assert len(clients) == 5 and set(clients) == {"127.0.0.1"}


def test_guesses_with_a_forged_address_lock_out_neither_it_nor_a_working_client(
        tmp_path: Path) -> None:
    with serve(tmp_path, failed_auth={"max_failures": 10, "window": "1m"}) as url, \
            client(url, WRITE) as alertmanager, \
            client(url, WRITE, address="127.0.0.2") as victim:
        assert alertmanager.get("/api/v1/targets").status_code == 200  # a working client
        assert victim.get("/api/v1/targets").status_code == 200
        with client(url, "wrong-guess", forwarded="127.0.0.2") as attacker:
            assert [attacker.get("/api/v1/targets").status_code for _ in range(10)] \
                == [401] * 10
            assert attacker.get("/api/v1/targets").status_code == 429  # its own address
        # The forged address (a real peer here) is not the one locked out.
        assert victim.post("/api/v1/silences", json=SILENCE).status_code == 201
        # The attacker's own address is, but not for a token that already worked from it.
        assert alertmanager.get("/api/v1/targets").status_code == 200
        assert alertmanager.post("/api/v1/silences", json=SILENCE).status_code == 201
        # A valid token new to the locked address is refused like a guess: a locked-out
        # guesser must not learn which guess is right.
        with client(url, OTHER_WRITE) as newcomer:
            refused = newcomer.post("/api/v1/silences", json=SILENCE)
        assert refused.status_code == 429 and "Retry-After" in refused.headers
        assert set(audit_clients(url)) == {"127.0.0.1", "127.0.0.2"}


def test_forwarded_for_is_honoured_from_a_trusted_proxy(tmp_path: Path) -> None:
    with serve(tmp_path, trusted_proxies=["127.0.0.1"],
               rate_limit={"requests_per_second": 0.001, "burst": 1}) as url:
        with client(url, forwarded="198.51.100.7") as alice:
            assert alice.post("/api/v1/silences", json=SILENCE).status_code == 201
            assert alice.post("/api/v1/silences", json=SILENCE).status_code == 429
        # The proxy appends the peer it saw: what the client wrote before it is ignored.
        with client(url, forwarded="6.6.6.6, 198.51.100.8") as bob:
            assert bob.post("/api/v1/silences", json=SILENCE).status_code == 201
        with client(url, address="127.0.0.2", forwarded="198.51.100.9") as untrusted:
            assert untrusted.post("/api/v1/silences", json=SILENCE).status_code == 201
        clients = audit_clients(url)
    assert sorted(clients) == ["127.0.0.2", "198.51.100.7", "198.51.100.7", "198.51.100.8"]


def _scope(peer: str, forwarded: str | None, trusted: list[str]) -> dict[str, Any]:
    settings = SimpleNamespace(server=SimpleNamespace(trusted_proxies=trusted))
    app = SimpleNamespace(state=SimpleNamespace(runtime=SimpleNamespace(settings=settings)))
    headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded else []
    return {"type": "http", "client": (peer, 5000), "headers": headers, "app": app}


@pytest.mark.parametrize(("peer", "forwarded", "trusted", "expected"), [
    ("127.0.0.1", "1.2.3.4", [], "127.0.0.1"),
    ("127.0.0.1", "1.2.3.4", ["127.0.0.1"], "1.2.3.4"),
    ("10.1.2.3", "1.2.3.4, 10.0.0.9", ["10.0.0.0/8"], "1.2.3.4"),  # a proxy chain
    ("10.1.2.3", "10.0.0.8, 10.0.0.9", ["10.0.0.0/8"], "10.0.0.8"),  # all trusted
    ("192.0.2.1", "1.2.3.4", ["10.0.0.0/8"], "192.0.2.1"),  # not from a trusted peer
    ("::1", "2001:db8::5", ["::1"], "2001:db8::5"),
    ("127.0.0.1", None, ["127.0.0.1"], "127.0.0.1"),
])
def test_client_address_follows_forwarded_for_only_from_trusted_peers(
        peer: str, forwarded: str | None, trusted: list[str], expected: str) -> None:
    assert client_address(_scope(peer, forwarded, trusted)) == expected


def test_the_production_server_config_trusts_only_the_configured_proxies() -> None:
    default = server_config(object(), make_settings(), "127.0.0.1", 0)
    assert default.proxy_headers is False and default.forwarded_allow_ips == []
    settings: Settings = make_settings(server={"trusted_proxies": ["10.0.0.0/8"]})
    behind = server_config(object(), settings, "127.0.0.1", 0)
    assert behind.proxy_headers is True and behind.forwarded_allow_ips == ["10.0.0.0/8"]
    with pytest.raises(ValueError, match="not an IP address"):
        make_settings(server={"trusted_proxies": ["proxy.internal"]})
