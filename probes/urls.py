"""Target URLs: validation with messages that never echo credentials, and redaction.

Every kind that takes an http(s) URL uses `HttpUrlStr`, so the check and its message are
the same everywhere and a password in a URL never reaches a log, an error or a page.
`redact_url` is the one redaction of a URL in probes: every URL that becomes text (an
error, a detail, a log line) goes through it, or through `redact_text` for a message
from a library that may quote URLs (Playwright, httpx).
"""

from __future__ import annotations

import re
from typing import Annotated
from urllib.parse import SplitResult, unquote_plus, urlsplit, urlunsplit

from pydantic import AfterValidator, Field

SECRET_PARAM = re.compile(
    r"token|key|secret|pass|pwd|auth|sig|credential|session", re.IGNORECASE)
"""Query parameter names whose values are credentials (`?token=`, `api_key`, `X-Amz-
Signature`, `sig`, `password`, ...). Broad on purpose: hiding a harmless value costs
less than showing a key."""


_URL_IN_TEXT = re.compile(r"""\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'"<>]+""")


def redact_url(url: str) -> str:
    """The URL with user:password and credential-like query (or fragment, as in OAuth's
    `#access_token=`) values replaced by `***` (`https://***@host/path?token=***&region=eu`):
    the one view of a target URL that logs, the API, /metrics, dashboards, alerts and
    post-mortems may show. Never raises: it runs on error paths, on hostile input."""
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unclosed IPv6 bracket: keep no part that may be secret
        return "<unparseable URL>"
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"***@{netloc.rpartition('@')[2]}"
    query = _redact_params(parts.query)
    fragment = _redact_params(parts.fragment) if "=" in parts.fragment else parts.fragment
    if netloc == parts.netloc and query == parts.query and fragment == parts.fragment:
        return url
    return urlunsplit((parts.scheme, netloc, parts.path, query, fragment))


def redact_text(text: str) -> str:
    """`text` with every URL in it passed through `redact_url`: for messages written by
    libraries (a browser's `net::ERR_... at <url>`) that quote the URL they fetched."""
    return _URL_IN_TEXT.sub(lambda match: redact_url(match.group()), text)


Origin = tuple[str, str, int]
"""(scheme, host, port) as browsers compare them for the same-origin rule."""


def origin(url: str) -> Origin | None:
    """The URL's origin, the default port made explicit; None when it has none (not
    http(s), no host, a bad port)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80)


def host_and_port(parts: SplitResult) -> str:
    """`host[:port]` of a split URL without its userinfo, an IPv6 host in brackets.
    Raises ValueError for a port that is not a number in range (as `parts.port` does)."""
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    return f"{host}:{parts.port}" if parts.port else host


def _redact_params(query: str) -> str:
    return "&".join(_redact_param(pair) for pair in query.split("&")) if query else ""


def _redact_param(pair: str) -> str:
    name, equals, value = pair.partition("=")
    if equals and value and SECRET_PARAM.search(unquote_plus(name)):
        return f"{name}=***"
    return pair


def check_http_url(value: str) -> str:
    """Accept http:// and https:// URLs with a host; explain the expected form otherwise."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"invalid URL {redact_url(value)!r}: expected "
                         "http://host[:port]/path or https://...")
    return value


HttpUrlStr = Annotated[str, AfterValidator(check_http_url), Field(repr=False)]
"""An http(s) URL in a target config; may carry credentials, so it is kept out of repr."""
