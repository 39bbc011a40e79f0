"""primewatch's own observability: bug reports to Sentry and log lines as text or JSON.

Both are process-wide (sentry-sdk's client and the logging root are globals by
nature), so the `primewatch` command sets them up once at start and `create_app` never
does: tests and processes embedding the app keep their own logging and error reporting.

Sentry is optional. Without `SENTRY_DSN` sentry-sdk is not even imported and
`report_exception` does nothing. With it, Sentry receives bugs only: unhandled errors
in the web app (FastAPI integration) and exceptions caught at the boundaries that keep
the service running (a probe or a notifier that raised), each reported explicitly with
`report_exception`. Log records are breadcrumbs, never events by themselves: an error
log such as "the webhook refused for a day" is an outage elsewhere, not a bug here.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

from monitor import __version__
from monitor.errors import ConfigError, ConfigProblem

if TYPE_CHECKING:
    from monitor.config import Settings

__all__ = ["EXTRA_FIELDS", "JsonFormatter", "LogFormat", "TextFormatter", "configure_logging",
           "init_sentry", "one_line", "report_exception"]

LogFormat = Literal["text", "json"]
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
EXTRA_FIELDS = ("target", "slo", "incident")
"""`extra=` keys copied into JSON lines, so log search can filter by what a line is about."""
_HANDLER_NAME = "primewatch"
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")
"""Characters that end a line or drive a terminal: every C0 and C1 control but tab,
DEL, and the Unicode line and paragraph separators."""
_NAMED = {"\n": "\\n", "\r": "\\r"}


# -- Sentry -----------------------------------------------------------------------------


def _env_problem(variable: str, message: str) -> ConfigError:
    return ConfigError([ConfigProblem("environment", None, variable, message)])


def _traces_rate(raw: str | None) -> float | None:
    """SENTRY_TRACES_SAMPLE_RATE as a share of requests traced; None (tracing off) when
    unset, since traces cost quota and primewatch's latency is in /metrics already."""
    if raw is None or not raw.strip():
        return None
    try:
        rate = float(raw)
    except ValueError:
        rate = -1.0
    if not 0.0 <= rate <= 1.0:
        raise _env_problem("SENTRY_TRACES_SAMPLE_RATE",
                           f"must be a number from 0 to 1, not {raw!r}")
    return rate


def init_sentry(settings: Settings, environ: Mapping[str, str]) -> bool:
    """Start reporting to the Sentry project in `SENTRY_DSN`; False (and nothing
    imported or patched) when it is unset.

    Raises ConfigError when the DSN is set but unusable (sentry-sdk missing, a malformed
    DSN, a bad SENTRY_TRACES_SAMPLE_RATE): whoever set it expects reports, and silence
    would look like a healthy service.
    """
    dsn = environ.get("SENTRY_DSN", "").strip()
    if not dsn:
        return False
    rate = _traces_rate(environ.get("SENTRY_TRACES_SAMPLE_RATE"))
    try:
        import sentry_sdk
        from sentry_sdk.integrations.fastapi import FastApiIntegration
        from sentry_sdk.integrations.logging import LoggingIntegration
        from sentry_sdk.integrations.starlette import StarletteIntegration
        from sentry_sdk.utils import BadDsn
    except ModuleNotFoundError as exc:
        if not (exc.name or "").startswith("sentry_sdk"):
            raise
        raise _env_problem("SENTRY_DSN", "is set but sentry-sdk is not installed "
                                         "(pip install 'sentry-sdk>=3,<4')") from exc
    try:
        sentry_sdk.init(
            dsn=dsn,
            release=f"primewatch@{__version__}",
            environment=settings.service.environment,
            traces_sample_rate=rate,
            # primewatch holds credentials for everything it probes: frame locals (a DSN,
            # a header dict), request bodies (a Slack button's response_url can post to
            # the channel), headers, cookies and query strings would carry them to
            # Sentry, and user info (IP addresses) is personal data. sentry-sdk 3 chooses
            # all of that in one place; everything here is off.
            data_collection={
                "user_info": False,
                "cookies": {"mode": "off", "terms": []},
                "http_headers": {"request": {"mode": "off", "terms": []}},
                "http_bodies": [],
                "url_query_params": {"mode": "off", "terms": []},
                "database_query_data": False,
                "queues": False,
                "stack_frame_variables": False,
            },
            max_request_body_size="never",
            # Probes must send exactly the configured request: no sentry-trace/baggage
            # headers (baggage names our release) to the systems being monitored.
            trace_propagation_targets=[],
            # Only what is listed: auto-enabled integrations would patch httpx, redis,
            # pymongo and SQLAlchemy inside the probes.
            auto_enabling_integrations=False,
            # Log records become breadcrumbs only: neither events nor Sentry Logs (an
            # error log is usually an outage elsewhere, not a bug here).
            integrations=[StarletteIntegration(), FastApiIntegration(),
                          LoggingIntegration(level=None, event_level=None,
                                             breadcrumb_level=logging.INFO)],
        )
    except BadDsn as exc:
        raise _env_problem("SENTRY_DSN", "is not a valid Sentry DSN (expected "
                                         "https://<key>@<host>/<project>)") from exc
    logging.getLogger(__name__).info("reporting errors to Sentry (environment %s)",
                                     settings.service.environment)
    return True


def report_exception(exc: BaseException) -> None:
    """Send an exception caught at a boundary to Sentry; nothing when Sentry is off.

    Looks sentry-sdk up in `sys.modules` instead of importing it: if nothing imported it,
    `init_sentry` never ran, and a probe failing in a loop should not pay for the import.
    """
    sdk = sys.modules.get("sentry_sdk")
    if sdk is not None and sdk.get_client().is_active():
        sdk.capture_exception(exc)


# -- logging ----------------------------------------------------------------------------


def one_line(text: str) -> str:
    """`text` with its control characters escaped (`\\n`, `\\r`, `\\x1b`, `\\u2028`)."""
    return text if _CONTROL.search(text) is None else _CONTROL.sub(_escape, text)


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    return _NAMED.get(char) or (f"\\x{ord(char):02x}" if ord(char) < 0x100
                                else f"\\u{ord(char):04x}")


class TextFormatter(logging.Formatter):
    """`TEXT_FORMAT`, one line per record: a message quotes text from outside (an
    Alertmanager summary, a probed endpoint's error), and a newline in it followed by a
    timestamp would read as a record of its own (a forged line), an escape sequence
    would drive the reader's terminal. So control characters in the line are escaped
    (`one_line`); a traceback (`exc_info`, `stack_info`) still follows on lines of its
    own, as before. JSON lines need none of this: `json.dumps` escapes them."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def formatMessage(self, record: logging.LogRecord) -> str:
        return one_line(super().formatMessage(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, the
    EXTRA_FIELDS given with `extra=`, and the traceback as `exception`. Log shippers
    (Loki, CloudWatch, Elastic) parse it without a grok pattern, and a multi-line
    traceback stays one record."""

    def format(self, record: logging.LogRecord) -> str:
        moment = datetime.fromtimestamp(record.created, UTC)
        entry: dict[str, object] = {
            "time": moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in EXTRA_FIELDS:
            value = record.__dict__.get(name)
            if value is not None:
                entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str)


def configure_logging(format: LogFormat = "text", level: int | str = logging.INFO
                      ) -> logging.Handler | None:
    """Log to stderr as text or JSON lines; the handler installed, or None.

    Like `logging.basicConfig`, it leaves alone a root logger that someone else already
    gave handlers (a test runner, an application embedding primewatch); calling it
    again replaces its own handler, so the format can change.
    """
    root = logging.getLogger()
    if any(h.get_name() != _HANDLER_NAME for h in root.handlers):
        return None
    for old in list(root.handlers):
        root.removeHandler(old)
        old.close()
    handler = logging.StreamHandler(sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(JsonFormatter() if format == "json" else TextFormatter())
    root.addHandler(handler)
    root.setLevel(level)
    return handler
