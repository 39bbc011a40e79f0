"""Target URLs: validation with messages that never echo credentials, and redaction.

Every kind that takes an http(s) URL uses `HttpUrlStr`, so the check and its message are
the same everywhere and a password in a URL never reaches a log, an error or a page.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit, urlunsplit

from pydantic import AfterValidator, Field


def redact_url(url: str) -> str:
    """The URL without user:password, safe for logs, the API and dashboards."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, f"***@{host}", parts.path, parts.query, parts.fragment))


def check_http_url(value: str) -> str:
    """Accept http:// and https:// URLs with a host; explain the expected form otherwise."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"invalid URL {redact_url(value)!r}: expected "
                         "http://host[:port]/path or https://...")
    return value


HttpUrlStr = Annotated[str, AfterValidator(check_http_url), Field(repr=False)]
"""An http(s) URL in a target config; may carry credentials, so it is kept out of repr."""
