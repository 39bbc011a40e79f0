"""One primewatch app served in this process, for benchmarks that must read its state
(the scheduler's run count, the exposition's renderings) while measuring it."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

START_TIMEOUT = 30.0


@contextmanager
def serve_in_thread(app: object) -> Iterator[str]:
    """Run `app` under uvicorn on a free loopback port in a daemon thread; yield its URL
    and stop the server (its lifespan included) on the way out."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0,  # type: ignore[arg-type]
                                           log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(60)
