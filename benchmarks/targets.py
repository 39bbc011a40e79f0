"""A tiny, fast HTTP/1.1 target server for benchmarks: loopback only, one fixed answer.

Why not nginx or a framework: the benchmark must run anywhere the venv does, and the
target must cost far less than the prober, or the numbers measure the target. A raw
asyncio Protocol (on uvloop when installed) answers every request — any path, so
`/t/{i}` gives N distinct target URLs on one port — with the same 200 JSON response,
honouring `Connection: close` and otherwise keeping the connection open until the
client closes it (httpx with keep-alive off simply closes after the response).

`GET /_stats` (neither it nor its connection is counted) returns the counters and this
process's CPU time, so the benchmark can check that every probe reached the server and
that the server was never the bottleneck.

For the benchmark's `--mixed` mode two more shapes, still fixed and cheap: `/metrics...`
answers a small Prometheus text exposition whose counters grow with the requests served
(so the `prometheus` probe sees real deltas), and `/page...` a small HTML page that
references two same-origin assets (`/static/app.css`, `/static/app.js`, answered like
any other path), for the `page` probe.

Run standalone: `python benchmarks/targets.py --port 18080 --cpu 1`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import json
import os
import resource
import signal
import socket
import sys
import time
from collections.abc import Coroutine
from typing import Any, TypeVar, cast

HOST = "127.0.0.1"  # loopback only, by design: never expose a load target
BODY = b'{"status":"ok","service":"target"}\n'
RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            b"Content-Length: " + str(len(BODY)).encode() + b"\r\n\r\n" + BODY)
RESPONSE_CLOSE = RESPONSE.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n", 1)
MAX_HEAD = 64 * 1024  # a request head larger than this is not a probe: drop it
PAGE = (b"<!doctype html><html><head><title>target</title>"
        b'<link rel="stylesheet" href="/static/app.css"></head>'
        b'<body><h1>ok</h1><script src="/static/app.js"></script></body></html>\n')
PAGE_RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n"
                 b"Content-Length: " + str(len(PAGE)).encode() + b"\r\n\r\n" + PAGE)
PAGE_RESPONSE_CLOSE = PAGE_RESPONSE.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n", 1)
METRICS_TEMPLATE = """\
# HELP app_requests_total Requests served, by status code.
# TYPE app_requests_total counter
app_requests_total{{code="200",method="GET"}} {ok}
app_requests_total{{code="404",method="GET"}} {not_found}
app_requests_total{{code="500",method="GET"}} {errors}
# HELP app_active_users Users with an open session.
# TYPE app_active_users gauge
app_active_users 42
# HELP app_request_duration_seconds Request duration.
# TYPE app_request_duration_seconds histogram
app_request_duration_seconds_bucket{{le="0.1"}} {fast}
app_request_duration_seconds_bucket{{le="0.5"}} {ok}
app_request_duration_seconds_bucket{{le="+Inf"}} {total}
app_request_duration_seconds_sum {seconds}
app_request_duration_seconds_count {total}
# HELP process_resident_memory_bytes Resident memory size in bytes.
# TYPE process_resident_memory_bytes gauge
process_resident_memory_bytes 3.1457280e+07
"""

T = TypeVar("T")


class Counters:
    """What the server has done, for the benchmark's sanity checks."""

    def __init__(self) -> None:
        self.requests = 0
        self.connections = 0
        self.started = time.time()

    def as_json(self) -> bytes:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return json.dumps({
            "requests": self.requests, "connections": self.connections,
            "cpu_s": usage.ru_utime + usage.ru_stime, "pid": os.getpid(),
            "uptime_s": time.time() - self.started,
        }).encode()


class TargetProtocol(asyncio.Protocol):
    """One connection: answer each complete request head with the fixed response."""

    __slots__ = ("_buffer", "_counters", "_transport")

    def __init__(self, counters: Counters) -> None:
        self._counters = counters
        self._buffer = b""
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, hence cast, not assert.
        self._transport = cast(asyncio.Transport, transport)
        self._counters.connections += 1

    def data_received(self, data: bytes) -> None:
        transport = self._transport
        assert transport is not None
        buffer = self._buffer + data if self._buffer else data
        while True:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                break
            head, buffer = buffer[:end], buffer[end + 4:]
            if self._answer(transport, head):
                transport.close()
                return
        if len(buffer) > MAX_HEAD:
            transport.close()
            return
        self._buffer = buffer

    def _answer(self, transport: asyncio.Transport, head: bytes) -> bool:
        """Write the response for one request head; True when the connection must close."""
        if head.startswith(b"GET /_stats "):
            self._counters.connections -= 1  # the stats connection is not a probe's
            body = self._counters.as_json()
            transport.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                            b"Connection: close\r\nContent-Length: "
                            + str(len(body)).encode() + b"\r\n\r\n" + body)
            return True
        counters = self._counters
        counters.requests += 1
        lowered = head.lower()
        close = b"connection: close" in lowered or b" http/1.0\r\n" in lowered
        if head.startswith(b"GET /metrics"):
            transport.write(metrics_response(counters.requests, close))
        elif head.startswith(b"GET /page"):
            transport.write(PAGE_RESPONSE_CLOSE if close else PAGE_RESPONSE)
        else:
            transport.write(RESPONSE_CLOSE if close else RESPONSE)
        return close


def metrics_response(served: int, close: bool) -> bytes:
    """A small exposition whose counters follow the requests served (1 % are 500s)."""
    errors, not_found = served // 100, served // 50
    ok = served - errors - not_found
    body = METRICS_TEMPLATE.format(ok=ok, not_found=not_found, errors=errors,
                                   fast=ok * 9 // 10, total=served,
                                   seconds=f"{served * 0.012:.3f}").encode()
    return (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
            + (b"Connection: close\r\n" if close else b"")
            + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


def pin_to_cpu(cpu: int | None) -> list[int]:
    """Pin this process to one CPU when the machine has it; returns the affinity in force."""
    if cpu is not None and hasattr(os, "sched_setaffinity"):
        available = os.sched_getaffinity(0)
        if cpu in available:
            os.sched_setaffinity(0, {cpu})
    return sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []


def die_with_parent() -> None:
    """Ask Linux to SIGKILL us when the parent dies, so no load process is ever orphaned."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() == 1:  # the parent died before prctl took effect
        sys.exit(1)


def listen_socket(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, port))
    sock.listen(4096)
    sock.setblocking(False)
    return sock


async def serve(port: int, max_seconds: float) -> None:
    """Serve until SIGTERM/SIGINT or `max_seconds`; prints `{"port": ...}` once ready."""
    loop = asyncio.get_running_loop()
    counters = Counters()
    sock = listen_socket(port)
    server = await loop.create_server(lambda: TargetProtocol(counters), sock=sock,
                                      backlog=4096)
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    print(json.dumps({"port": sock.getsockname()[1], "pid": os.getpid()}), flush=True)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), max_seconds)
    server.close()


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run on uvloop when installed (as uvicorn would), else plain asyncio."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0,
                        help="TCP port on 127.0.0.1 (0: any free port, printed on stdout)")
    parser.add_argument("--cpu", type=int, default=None,
                        help="pin the server to this CPU (the prober gets another one)")
    parser.add_argument("--max-seconds", type=float, default=3600.0,
                        help="exit after this long whatever happens (a bound on any load)")
    parser.add_argument("--die-with-parent", action="store_true",
                        help="exit when the launching process dies (used by the benchmark)")
    args = parser.parse_args(argv)
    if args.die_with_parent:
        die_with_parent()
    pin_to_cpu(args.cpu)
    run(serve(args.port, args.max_seconds))


if __name__ == "__main__":
    main()
