"""`server.max_body_bytes`: too large a body is a JSON 413, declared or streamed, and
changes nothing. Real uvicorn on loopback; chunked bodies are sent by httpx from a
generator, so no Content-Length is declared and only counting can catch them."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry

from alerts.slack_actions import sign
from monitor.app import create_app
from monitor.clock import FakeClock
from monitor.metrics import Metrics
from monitor.storage.engine import make_engine, upgrade
from tests.conftest import make_settings
from tests.servers import serve_asgi

LIMIT = 2048
WRITE = "body-write-token"
AS_WRITER = {"Authorization": f"Bearer {WRITE}", "Content-Type": "application/json"}
SIGNING = "body-signing-secret"


def silence(comment_bytes: int) -> bytes:
    """A valid silence request whose JSON is padded past `comment_bytes` (the comment
    field is capped at 1000 characters, so the padding rides in a matcher list)."""
    matchers = [{"name": "slo", "value": "x" * 50}] * max(1, comment_bytes // 70)
    return json.dumps({"matchers": matchers[:50], "duration": "1h",
                       "comment": "p" * min(1000, comment_bytes)}).encode()


def chunks(data: bytes, size: int = 256) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start:start + size]


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[httpx.Client, Any]]:
    engine = make_engine(f"sqlite:///{tmp_path / 'pw.db'}")
    upgrade(engine)
    settings = make_settings(
        server={"tokens": [{"name": "oncall", "token": WRITE}], "max_body_bytes": LIMIT},
        alerting={"channels": [{"name": "slack", "type": "slack", "token": "xoxb-body",
                                "channel": "#c", "signing_secret": SIGNING}]})
    clock = FakeClock()
    app = create_app(settings, engine, clock=clock, metrics=Metrics(CollectorRegistry()),
                     run_background=False)
    with serve_asgi(app) as url, httpx.Client(base_url=url) as client:
        yield client, clock
    engine.dispose()


def silences(client: httpx.Client) -> list[Any]:
    items: list[Any] = client.get("/api/v1/silences").json()["items"]
    return items


def audit(client: httpx.Client) -> list[tuple[str, int]]:
    return [(e["path"], e["status"]) for e in client.get("/api/v1/audit").json()["items"]]


def assert_too_large(response: httpx.Response) -> None:
    assert response.status_code == 413, response.text
    error = response.json()["error"]
    assert error["status"] == 413
    assert error["message"] == (f"request body too large: the limit is {LIMIT} bytes "
                                "(server.max_body_bytes)")


def test_a_body_within_the_limit_is_accepted_declared_or_streamed(
        served: tuple[httpx.Client, Any]) -> None:
    client, _ = served
    small = silence(500)
    assert len(small) < LIMIT
    assert client.post("/api/v1/silences", content=small,
                       headers=AS_WRITER).status_code == 201
    assert client.post("/api/v1/silences", content=chunks(small),
                       headers=AS_WRITER).status_code == 201
    assert len(silences(client)) == 2


def test_a_declared_content_length_over_the_limit_is_refused_unread(
        served: tuple[httpx.Client, Any]) -> None:
    client, _ = served
    big = silence(4000)
    assert len(big) > LIMIT
    assert_too_large(client.post("/api/v1/silences", content=big, headers=AS_WRITER))
    assert silences(client) == []
    assert audit(client) == [("/api/v1/silences", 413)]


def test_a_chunked_body_is_counted_as_it_streams(served: tuple[httpx.Client, Any]) -> None:
    client, _ = served
    big = silence(4000)
    response = client.post("/api/v1/silences", content=chunks(big), headers=AS_WRITER)
    assert "content-length" not in response.request.headers
    assert_too_large(response)
    assert silences(client) == []
    assert audit(client) == [("/api/v1/silences", 413)]


def test_a_huge_chunked_body_is_cut_off_not_buffered(
        served: tuple[httpx.Client, Any]) -> None:
    # 64 MiB offered; the server stops reading after the limit and answers at once.
    client, _ = served

    def endless() -> Iterator[bytes]:
        yield b'{"matchers": ['
        for _ in range(64 * 1024):
            yield b" " * 1024

    # The server may answer and hang up before httpx has finished sending: refused too.
    with contextlib.suppress(httpx.WriteError, httpx.RemoteProtocolError):
        assert_too_large(client.post("/api/v1/silences", content=endless(),
                                     headers=AS_WRITER))
    assert audit(client) == [("/api/v1/silences", 413)]
    assert silences(client) == []


def test_the_slack_route_is_limited_too(served: tuple[httpx.Client, Any]) -> None:
    client, clock = served
    body = b"payload=" + b"x" * (LIMIT * 2)
    headers = {**sign(SIGNING, body, clock.now()),
               "Content-Type": "application/x-www-form-urlencoded"}
    assert_too_large(client.post("/slack/actions", content=chunks(body), headers=headers))
