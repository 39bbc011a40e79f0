"""Target URLs: validation with messages that never echo credentials, and redaction.

Every kind that takes an http(s) URL uses `HttpUrlStr`, so the check and its message are
the same everywhere and a password in a URL never reaches a log, an error or a page.
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


def redact_url(url: str) -> str:
    """The URL with user:password and credential-like query values replaced by `***`
    (`https://***@host/path?token=***&region=eu`): the one view of a target URL that
    logs, the API, /metrics, dashboards, alerts and post-mortems may show."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.username is not None or parts.password is not None:
        netloc = f"***@{host_and_port(parts)}"
    query = "&".join(_redact_param(pair) for pair in parts.query.split("&")) \
        if parts.query else ""
    if netloc == parts.netloc and query == parts.query:
        return url
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def host_and_port(parts: SplitResult) -> str:
    """`host[:port]` of a split URL without its userinfo, an IPv6 host in brackets.
    Raises ValueError for a port that is not a number in range (as `parts.port` does)."""
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    return f"{host}:{parts.port}" if parts.port else host


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
