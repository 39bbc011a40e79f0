"""The redis probe against real Redis servers (a private one per test) and hostile fakes."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from typing import Any

import pydantic
import pytest
import redis

from probes import HttpClientPool, ProbeContext
from probes.base import ErrorClass, ProbeResult
from probes.redis import CACHE_STREAM, KIND, RedisProbe, RedisTarget
from tests.conftest import service_missing
from tests.servers import free_port

SHARED_URL = "redis://127.0.0.1:6379/0"
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


def make_probe(url: str, timeout: str = "2s") -> RedisProbe:
    config = RedisTarget.model_validate({"name": "cache", "type": "redis", "url": url,
                                         "timeout": timeout})
    probe = KIND.build(config, ProbeContext(HttpClientPool(), region="test"))
    assert isinstance(probe, RedisProbe)
    return probe


class PrivateRedis:
    """A throwaway redis-server on a free loopback port: exact counters, restartable."""

    def __init__(self, *args: str) -> None:
        self.port = free_port()
        self.args = args
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--daemonize", "no", *self.args],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            with suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.2):
                return
            time.sleep(0.02)
        self.stop()
        raise RuntimeError("private redis-server did not start")

    def stop(self) -> None:
        if self.process is not None:
            if self.process.poll() is None:
                os.kill(self.process.pid, signal.SIGCONT)  # in case a test froze it
                self.process.terminate()
            self.process.wait(5)
            self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def client(self, password: str | None = None) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, password=password)


@contextmanager
def private_redis(*args: str) -> Iterator[PrivateRedis]:
    if not os.path.exists(REDIS_SERVER):
        service_missing("redis-server binary not installed")
    server = PrivateRedis(*args)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def lookups(client: redis.Redis, hits: int, misses: int) -> None:
    """Make exactly `hits` keyspace hits and `misses` misses (SET and DEL count neither)."""
    key = f"primewatch-test:{uuid.uuid4().hex}"
    client.set(key, "v")
    for _ in range(hits):
        assert client.get(key) == b"v"
    for index in range(misses):
        assert client.get(f"{key}:missing:{index}") is None
    client.delete(key)


def run_all(probe: RedisProbe, *steps: Callable[[], Any]) -> list[ProbeResult]:
    """Run the probe once, then once after each step; close it at the end."""

    async def go() -> list[ProbeResult]:
        try:
            results = [await probe.run(time.time())]
            for step in steps:
                step()
                await asyncio.sleep(0.05)  # as between intervals: the loop sees any FIN
                results.append(await probe.run(time.time()))
            return results
        finally:
            await probe.aclose()

    return asyncio.run(go())


def test_shared_redis_ping_and_lookups() -> None:
    try:
        with redis.Redis.from_url(SHARED_URL, socket_connect_timeout=1) as client:
            client.ping()
    except redis.RedisError as exc:
        service_missing(f"Redis not reachable at {SHARED_URL}: {type(exc).__name__}")
    with redis.Redis.from_url(SHARED_URL) as client:
        first, second = run_all(make_probe(SHARED_URL), lambda: lookups(client, 4, 3))
    assert first.ok, first.error
    assert first.details["baseline"] == "first reading"
    assert CACHE_STREAM not in first.counts
    assert 0 < first.values["ping_seconds"] <= first.latency < 2
    assert second.ok, second.error
    # keyspace_hits is server-wide: other tests may add lookups, never remove ours.
    good, total = second.counts[CACHE_STREAM]
    assert good >= 4 and total - good >= 3


def test_exact_deltas_and_values_on_a_private_server() -> None:
    with private_redis() as server, server.client() as client:
        first, second, idle = run_all(make_probe(server.url),
                                      lambda: lookups(client, 5, 3), lambda: None)
    assert first.ok and first.details == {"baseline": "first reading",
                                          "redis_version": first.details["redis_version"]}
    assert second.ok, second.error
    assert second.counts == {CACHE_STREAM: (5.0, 8.0)}
    assert second.values["hit_ratio_total"] == pytest.approx(5 / 8)
    assert second.values["used_memory_bytes"] > 0
    assert second.values["connected_clients"] >= 2
    assert "counter_reset" not in second.details
    assert idle.ok and idle.counts == {}, "no lookups means no data, not a 0/0 sample"


def test_restart_and_resetstat_are_counter_resets() -> None:
    with private_redis() as server:
        def traffic(hits: int, misses: int) -> Callable[[], None]:
            def step() -> None:
                with server.client() as client:
                    lookups(client, hits, misses)
            return step

        def resetstat() -> None:
            with server.client() as client:
                client.config_resetstat()
                lookups(client, 1, 0)

        def restart_then_traffic() -> None:
            server.restart()
            traffic(2, 1)()

        results = run_all(make_probe(server.url), traffic(10, 10), restart_then_traffic,
                          resetstat)
    _, before, restarted, reset = results
    assert before.counts[CACHE_STREAM] == (10.0, 20.0)
    assert restarted.ok, restarted.error  # the dropped connection is replaced silently
    assert restarted.details["counter_reset"] == "true"
    assert restarted.counts[CACHE_STREAM] == (2.0, 3.0)
    assert reset.details["counter_reset"] == "true"
    assert reset.counts[CACHE_STREAM] == (1.0, 1.0)


def test_stopped_and_frozen_server_then_recovery() -> None:
    with private_redis() as server:
        probe = make_probe(server.url, timeout="500ms")
        assert server.process is not None
        pid = server.process.pid

        steps: list[Callable[[], None]] = [
            lambda: None, lambda: os.kill(pid, signal.SIGSTOP),
            lambda: os.kill(pid, signal.SIGCONT), server.stop, server.start]

        async def go() -> list[tuple[ProbeResult, float]]:
            out = []
            for step in steps:
                step()
                await asyncio.sleep(0.05)
                t0 = time.monotonic()
                out.append((await probe.run(time.time()), time.monotonic() - t0))
            await probe.aclose()
            return out

        (ok, _), (frozen, frozen_time), (thawed, _), (stopped, _), (back, _) = asyncio.run(go())
    assert ok.ok
    assert frozen.error_class == ErrorClass.TIMEOUT and frozen_time < 1.5
    assert thawed.ok, thawed.error
    assert stopped.error_class == ErrorClass.REFUSED, stopped.error
    assert back.ok, back.error
    assert back.details["counter_reset"] == "true"


def test_auth_failures_and_credentials_never_shown() -> None:
    secret = "s3cret-pw-" + uuid.uuid4().hex[:6]
    with private_redis("--requirepass", secret) as server:
        netloc = f"127.0.0.1:{server.port}"
        (no_password,) = run_all(make_probe(f"redis://{netloc}/0"))
        (wrong,) = run_all(make_probe(f"redis://:wrong-{secret}@{netloc}/0"))
        (right,) = run_all(make_probe(f"redis://:{secret}@{netloc}/0"))
    assert no_password.error_class == ErrorClass.AUTH, no_password.error
    assert wrong.error_class == ErrorClass.AUTH, wrong.error
    assert secret not in (wrong.error or "")
    assert right.ok, right.error
    config = RedisTarget(name="c", url=f"redis://user:{secret}@{netloc}/0")
    assert secret not in config.display_url() and "user" not in config.display_url()


Behaviour = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def fake_server(behaviour: Behaviour) -> AsyncIterator[str]:
    """A TCP server on loopback that misbehaves as told; yields its redis:// URL."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await behaviour(reader, writer)
        finally:
            writer.close()
            with suppress(OSError):
                await writer.wait_closed()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield f"redis://127.0.0.1:{server.sockets[0].getsockname()[1]}/0"
    finally:
        server.close()
        await server.wait_closed()


async def half_reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read(1024)
    writer.write(b"$100\r\nabc")
    writer.write_eof()  # a clean FIN mid-reply (closing with unread input would send RST)
    await reader.read()


async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Accept, then close at once: FIN or RST depending on what the client already sent."""


async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read()  # until the client gives up and closes


async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read(1024)
    writer.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")
    await writer.drain()
    await reader.read()


@pytest.mark.parametrize(("behaviour", "expected"), [
    (half_reply, {ErrorClass.PROTOCOL}),
    (garbage, {ErrorClass.PROTOCOL}),
    (hang_up, {ErrorClass.PROTOCOL, ErrorClass.CONNECTION}),
    (silent, {ErrorClass.TIMEOUT}),
])
def test_hostile_servers_fail_within_the_timeout(behaviour: Behaviour,
                                                 expected: set[str]) -> None:
    async def go() -> tuple[ProbeResult, float]:
        async with fake_server(behaviour) as url:
            probe = make_probe(url, timeout="500ms")
            t0 = time.monotonic()
            result = await probe.run(time.time())
            elapsed = time.monotonic() - t0
            await probe.aclose()
            return result, elapsed

    result, elapsed = asyncio.run(go())
    assert not result.ok
    assert result.error_class in expected, (result.error_class, result.error)
    assert result.error
    assert elapsed < 1.5


@pytest.mark.parametrize(("url", "expected"), [
    (f"redis://127.0.0.1:{free_port()}/0", ErrorClass.REFUSED),
    ("redis://no-such-host.invalid:6379/0", ErrorClass.DNS),
])
def test_unreachable_targets(url: str, expected: str) -> None:
    (result,) = run_all(make_probe(url))
    assert not result.ok
    assert result.error_class == expected, result.error
    assert result.latency < 2


@pytest.mark.parametrize("url", ["http://127.0.0.1:6379", "redis://", "127.0.0.1:6379"])
def test_config_rejects_non_redis_urls(url: str) -> None:
    with pytest.raises(pydantic.ValidationError, match="redis://"):
        RedisTarget(name="c", url=url)


def test_display_url_keeps_host_and_db() -> None:
    config = RedisTarget(name="c", url="rediss://:pw@cache.internal:6380/2")
    assert config.display_url() == "rediss://***@cache.internal:6380/2"
