"""One HTTP exchange as probes need it: redirects followed by hand, body read capped.

Why by hand: a probe must count redirects, stop loops with a clear error and read at
most `max_body` bytes (a hostile target may send 100 MB or never end its body).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urljoin

import httpx

from probes.base import ErrorClass

REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})


class FetchFailed(Exception):
    """The exchange failed in a way that is the target's fault (not a transport error)."""

    def __init__(self, error_class: str, message: str, status_code: int | None = None,
                 cert_days_left: float | None = None) -> None:
        super().__init__(message)
        self.error_class = error_class
        self.status_code = status_code
        self.cert_days_left = cert_days_left


@dataclass(frozen=True, slots=True)
class Fetched:
    """The final response of an exchange, with its (capped) body."""

    status_code: int
    headers: httpx.Headers
    body: bytes
    url: str
    redirects: int
    cert_days_left: float | None


async def fetch(client: httpx.AsyncClient, method: str, url: str, *,
                headers: dict[str, str] | None = None, body: bytes | None = None,
                timeout: httpx.Timeout | float | None = None, max_body: int,
                follow_redirects: bool = True, max_redirects: int = 5) -> Fetched:
    """Send one request (and its redirects); raise FetchFailed or httpx.TransportError."""
    visited = [url]
    redirects = 0
    cert_days: float | None = None
    while True:
        request = client.build_request(method, url, headers=headers, content=body,
                                       timeout=timeout)
        response = await client.send(request, stream=True)
        try:
            days = cert_days_left(response)
            cert_days = days if cert_days is None else cert_days
            location = response.headers.get("location")
            if follow_redirects and response.status_code in REDIRECT_CODES and location:
                next_url = urljoin(url, location)
                redirects += 1
                if next_url in visited:
                    chain = " → ".join([*visited[-3:], next_url])
                    raise FetchFailed(ErrorClass.REDIRECTS, f"redirect loop: {chain}",
                                      response.status_code, cert_days)
                if redirects > max_redirects:
                    raise FetchFailed(ErrorClass.REDIRECTS,
                                      f"more than {max_redirects} redirects",
                                      response.status_code, cert_days)
                visited.append(next_url)
                if response.status_code == 303 or (
                        response.status_code in (301, 302) and method not in ("GET", "HEAD")):
                    method, body = "GET", None
                url = next_url
                continue
            content = await read_capped(response, max_body, cert_days)
            return Fetched(response.status_code, response.headers, content, url, redirects,
                           cert_days)
        finally:
            await response.aclose()


async def read_capped(response: httpx.Response, max_body: int,
                      cert_days: float | None = None) -> bytes:
    """The (decoded) body, or FetchFailed(too_large) as soon as it passes `max_body`."""
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_body:
        raise FetchFailed(ErrorClass.TOO_LARGE,
                          f"body of {int(declared)} bytes exceeds max_body {max_body}",
                          response.status_code, cert_days)
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > max_body:
            raise FetchFailed(ErrorClass.TOO_LARGE, f"body exceeds max_body {max_body} bytes",
                              response.status_code, cert_days)
        chunks.append(chunk)
    return b"".join(chunks)


def cert_days_left(response: httpx.Response) -> float | None:
    """Days until the peer certificate expires (https with verification), else None."""
    stream = response.extensions.get("network_stream")
    if stream is None:
        return None
    ssl_object = stream.get_extra_info("ssl_object")
    if ssl_object is None:
        return None
    cert = ssl_object.getpeercert()
    not_after = cert.get("notAfter") if cert else None
    if not not_after:
        return None
    expires = datetime.fromtimestamp(ssl.cert_time_to_seconds(not_after), UTC)
    return round((expires - datetime.now(UTC)).total_seconds() / 86400.0, 2)
