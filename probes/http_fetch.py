"""One HTTP exchange as probes need it: redirects followed by hand, body read capped.

Why by hand: a probe must count redirects, stop loops with a clear error and read at
most `max_body` bytes (a hostile target may send 100 MB or never end its body).
Following by hand also means doing what browsers and httpx do on a redirect: configured
credentials (Authorization, Cookie, API-key headers) go only to the origin they were
configured for, never to the host a redirect names, which the target (or whoever
controls its Location header) chooses. Every URL in a message goes through `redact_url`.
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import ssl
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal
from urllib.parse import urljoin

import httpx

from probes.base import ErrorClass, ProbeResult
from probes.urls import Origin, origin, redact_text, redact_url

log = logging.getLogger(__name__)

REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})

CREDENTIAL_HEADER = re.compile(r"auth|cookie|token|key|secret|session|passw", re.IGNORECASE)
"""Header names whose values are credentials: Authorization, Proxy-Authorization, Cookie,
and the API-key kind a target config may add (`X-Api-Key`, `X-Auth-Token`,
`X-Session-Secret`). Target headers have no "secret" marker, so the name decides; broad
on purpose: a header wrongly held back costs a failed probe, a key sent away costs a key."""

FollowRedirects = bool | Literal["same-origin"]
"""`true` follows any redirect (credentials dropped on a cross-origin hop), `false` none,
`same-origin` follows only within the configured origin and fails the probe otherwise."""


def without_credentials(headers: Mapping[str, str]) -> dict[str, str]:
    """`headers` minus those `CREDENTIAL_HEADER` names: what may go to another origin."""
    return {name: value for name, value in headers.items()
            if not CREDENTIAL_HEADER.search(name)}


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
                headers: Mapping[str, str] | None = None, body: bytes | None = None,
                timeout: httpx.Timeout | float | None = None, max_body: int,
                follow_redirects: FollowRedirects = True, max_redirects: int = 5,
                credentials_origin: Origin | None = None) -> Fetched:
    """Send one request (and its redirects); raise FetchFailed or httpx.TransportError.

    `headers` go whole only to `credentials_origin` (default: `url`'s origin); any other
    origin, first URL or redirect, gets them without credentials. The page probe passes
    its configured URL's origin for assets, whose own URL may be elsewhere."""
    home = credentials_origin or origin(url)
    given = dict(headers or {})
    stripped = without_credentials(given)
    visited = [url]
    redirects = 0
    cert_days: float | None = None
    while True:
        request = client.build_request(
            method, url, headers=given if origin(url) == home else stripped, content=body,
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
                    chain = " → ".join(map(redact_url, [*visited[-3:], next_url]))
                    raise FetchFailed(ErrorClass.REDIRECTS, f"redirect loop: {chain}",
                                      response.status_code, cert_days)
                if follow_redirects == "same-origin" and origin(next_url) != home:
                    raise FetchFailed(
                        ErrorClass.REDIRECTS,
                        f"redirect to another origin refused (follow_redirects: same-origin):"
                        f" {redact_url(url)} → {redact_url(next_url)}",
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


Fail = Callable[[str, str, int | None], ProbeResult]
"""Builds a failed result from (error class, message, status code)."""


async def guarded(measure: Awaitable[ProbeResult], *, timeout: float, fail: Fail,
                  timeout_message: str, kind: str, name: str) -> ProbeResult:
    """Run an HTTP-based measurement under one deadline, turning every failure into a
    failed result: a probe never raises into the scheduler."""
    try:
        async with asyncio.timeout(timeout):
            return await measure
    except (TimeoutError, httpx.TimeoutException):
        return fail(ErrorClass.TIMEOUT, timeout_message, None)
    except FetchFailed as failed:
        return fail(failed.error_class, str(failed), failed.status_code)
    except httpx.TransportError as exc:
        error_class, message = classify_transport_error(exc)
        return fail(error_class, message, None)
    except Exception as exc:  # boundary: a probe never raises into the scheduler
        log.exception("%s probe %s failed unexpectedly", kind, name)
        return fail(ErrorClass.INTERNAL, f"internal error: {type(exc).__name__}", None)


def classify_transport_error(exc: BaseException) -> tuple[str, str]:
    """Map an httpx transport error to an error class by walking its cause chain."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, socket.gaierror):  # messages of these quote no URL
            return ErrorClass.DNS, f"DNS lookup failed: {_short(seen)}"
        if isinstance(seen, ConnectionRefusedError):
            return ErrorClass.REFUSED, "connection refused"
        if isinstance(seen, ssl.SSLError):
            return ErrorClass.TLS, f"TLS error: {_short(seen)}"
        seen = seen.__cause__ or seen.__context__
    text = redact_text(str(exc))  # httpx may quote the URL, credentials and all
    lowered = text.lower()
    if "name or service not known" in lowered or "nodename nor servname" in lowered \
            or "temporary failure in name resolution" in lowered:
        return ErrorClass.DNS, f"DNS lookup failed: {_short(text)}"
    if "connection refused" in lowered or "errno 111" in lowered:
        return ErrorClass.REFUSED, "connection refused"
    if "ssl" in lowered or "certificate" in lowered:
        return ErrorClass.TLS, f"TLS error: {_short(text)}"
    if isinstance(exc, httpx.ConnectError):
        return ErrorClass.CONNECTION, f"connect failed: {_short(text) or type(exc).__name__}"
    if isinstance(exc, httpx.ProtocolError | httpx.DecodingError):
        return ErrorClass.PROTOCOL, f"protocol error: {_short(text) or type(exc).__name__}"
    return ErrorClass.CONNECTION, f"{type(exc).__name__}: {_short(text)}"


def _short(value: object) -> str:
    text = str(value)
    return text if len(text) <= 120 else text[:117] + "..."
