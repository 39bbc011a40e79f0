"""Make the HTTP client libraries' own log records safe to keep.

Our code logs URLs only through `redact_url`, but httpx logs every request's full URL
at INFO, httpcore every response's headers at DEBUG, and slack-sdk a webhook's URL at
DEBUG. Those URLs carry target passwords and `?token=`s, and a webhook's secret is
often its path (Slack's `/services/T…/B…/<secret>`); a redirect's Location or a
Set-Cookie is a credential too. So records from those loggers keep only each URL's
scheme and host, and only harmless header values.

Logger filters are not inherited by child loggers, hence the full list of names below.
Installing is process-wide (logging is) and idempotent.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import urlsplit

from probes.urls import host_and_port

HTTP_LIBRARY_LOGGERS = (
    "httpx",
    "httpcore.connection", "httpcore.http11", "httpcore.http2", "httpcore.proxy",
    "httpcore.socks",
    "slack_sdk.web.base_client", "slack_sdk.web.internal_utils", "slack_sdk.webhook.client",
)
SAFE_HEADERS = frozenset({"content-type", "content-length", "date", "server", "connection",
                          "transfer-encoding", "retry-after", "cache-control", "host"})

_URL = re.compile(r"""\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'"<>]+""")
# httpcore's traces print headers as [(b'Name', b'value'), ...]
_HEADER = re.compile(r"""\(b(['"])([^'"]*)\1, b(?:'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")\)""")


def origin_only(url: str) -> str:
    """`scheme://host[:port]/…`: where a request went, without what may be secret."""
    try:
        parts = urlsplit(url)
        host = host_and_port(parts)
    except ValueError:
        return "<URL>"
    tail = "/…" if parts.path not in ("", "/") or parts.query else "/"
    return f"{parts.scheme}://{host}{tail}"


def scrub(text: str) -> str:
    """`text` with URLs cut to their origin and unsafe header values masked."""
    text = _URL.sub(lambda m: origin_only(m.group()), text)

    def header(match: re.Match[str]) -> str:
        name = match.group(2)
        return match.group() if name.lower() in SAFE_HEADERS else f"(b'{name}', b'***')"

    return _HEADER.sub(header, text)


class RedactingFilter(logging.Filter):
    """Rewrites a record's message through `scrub`; never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: leave it to logging's own error path
            return True
        cleaned = scrub(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def install(names: tuple[str, ...] = HTTP_LIBRARY_LOGGERS) -> None:
    """Attach one `RedactingFilter` to each logger named (again: a no-op)."""
    for name in names:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactingFilter) for f in logger.filters):
            logger.addFilter(RedactingFilter())
