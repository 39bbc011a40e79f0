"""A post-mortem draft in Markdown, rendered from the facts of a resolved incident.

Why a template and not code: every team words its post-mortems differently, so the
draft is a Jinja2 file (the bundled `templates/postmortem.md.j2`, or the user's own)
filled from an `IncidentFacts` value. The numbers a reader will trust (durations,
budget, deltas) are computed here, in Python, and only formatted by the template.

A template sees `facts` (IncidentFacts), `derived` (DerivedFacts), `summary` (one
factual paragraph), `generated_at` (unix s) and `timezone` (IANA name), plus these
filters, each rendering an unknown value (None) as "—":

    duration    3125.0      -> "52m 5s"
    timestamp   1714572187  -> "2024-05-01 16:03:07+02:00"   (or `timestamp("%H:%M")`)
    percent     0.00123     -> "0.123%"                      (or `percent(2)` decimals)
    burn_rate   14.4        -> "14.4×"
    delta       (950, 180)  -> "×5.3"; (250, 200) -> "+25%"  (`during | delta(before)`)
    ms          950.0       -> "950 ms"
    count       100000      -> "100,000"
    cell        "a|b"       -> "a\\|b"   (safe inside a Markdown table cell)

Templates run sandboxed, with StrictUndefined (a misspelt name is an error, not a
blank), no autoescaping (Markdown, not HTML), `trim_blocks` and `lstrip_blocks`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal
from zoneinfo import ZoneInfo

from jinja2 import (
    FileSystemLoader,
    StrictUndefined,
    Template,
    TemplateError,
    TemplateNotFound,
    TemplateSyntaxError,
)
from jinja2.sandbox import SandboxedEnvironment

from monitor.clock import Clock, SystemClock
from monitor.errors import PrimewatchError

DEFAULT_TEMPLATE = Path(__file__).parent / "templates" / "postmortem.md.j2"
UNKNOWN = "—"


class PostmortemTemplateError(PrimewatchError):
    """A post-mortem template could not be read, parsed or rendered.

    `path` and `line` locate the problem (line is None when the file itself is the
    problem), so the message reads like a compiler's: "file:line: what went wrong".
    """

    def __init__(self, path: str | Path, line: int | None, message: str) -> None:
        self.path = Path(path)
        self.line = line
        where = f"{path}:{line}" if line else str(path)
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    """One event of the incident: an alert, an acknowledgement, a note, a deploy."""

    at: float  # unix seconds
    kind: str
    text: str


@dataclass(frozen=True, slots=True, kw_only=True)
class IncidentFacts:
    """Everything the draft states as fact, gathered from the database at resolve time.

    Keyword-only with no defaults: a fact the gatherer forgets is a TypeError at
    construction, not a silent "—" in a document people will quote.
    """

    id: int
    title: str
    severity: Literal["page", "ticket"]
    status: str
    opened_at: float
    acknowledged_at: float | None
    resolved_at: float | None
    detected_after: float | None
    """Seconds from the start of impact to the incident opening: time to detect."""
    impact_started_at: float | None
    slos: tuple[str, ...]
    target: str | None
    labels: Mapping[str, str]
    acknowledged_by: str | None
    resolved_by: str | None
    """Who resolved it; "auto" when the alert rule cleared on its own."""
    budget_consumed: float | None
    """Fraction of the error budget consumed during the incident: 0.25 = 25%."""
    peak_burn_rate: float | None
    p95_during_ms: float | None
    p95_week_before_ms: float | None
    error_ratio_during: float | None
    error_ratio_week_before: float | None
    good_during: int | None
    total_during: int | None
    timeline: tuple[TimelineEntry, ...]
    dashboard_url: str | None
    incident_url: str | None
    service_name: str
    impact_ended_at: float | None = None
    """When the last failing minute ended; None: unknown, impact runs to resolution.
    (Slow burn-rate tiers keep an incident open hours after service recovered.)"""

    def __post_init__(self) -> None:
        # A frozen dataclass still holds the caller's dict; copy it so it stays a fact.
        object.__setattr__(self, "labels", MappingProxyType(dict(self.labels)))


@dataclass(frozen=True, slots=True)
class DerivedFacts:
    """Numbers computed from the facts, so no template has to do arithmetic."""

    time_to_detect: float | None
    time_to_acknowledge: float | None
    time_to_resolve: float | None
    impact_started_at: float
    """When impact began: `impact_started_at`, or the incident opening when unknown."""
    impact_duration: float | None
    impact_ended_at: float | None
    """When impact ended: `impact_ended_at`, else the resolution (None while open)."""
    bad_during: int | None
    timeline: tuple[TimelineEntry, ...]
    """The facts' timeline ordered by time (stable for equal times)."""


def derived(facts: IncidentFacts) -> DerivedFacts:
    """Time to detect/acknowledge/resolve, duration of impact, bad events, sorted timeline."""
    start = facts.impact_started_at if facts.impact_started_at is not None else facts.opened_at
    detect = facts.detected_after
    if detect is None and facts.impact_started_at is not None:
        detect = facts.opened_at - facts.impact_started_at
    ended = facts.impact_ended_at if facts.impact_ended_at is not None else facts.resolved_at
    bad = None
    if facts.good_during is not None and facts.total_during is not None:
        bad = facts.total_during - facts.good_during
    return DerivedFacts(
        time_to_detect=detect,
        time_to_acknowledge=_elapsed(facts.opened_at, facts.acknowledged_at),
        time_to_resolve=_elapsed(facts.opened_at, facts.resolved_at),
        impact_started_at=start,
        impact_duration=_elapsed(start, ended),
        impact_ended_at=ended,
        bad_during=bad,
        timeline=tuple(sorted(facts.timeline, key=lambda entry: entry.at)),
    )


def _elapsed(start: float, end: float | None) -> float | None:
    return None if end is None else end - start


# --- formatting, shared by the filters and the summary sentence ------------------------


def format_duration(seconds: float | None) -> str:
    """"1h 12m 5s": whole seconds, from the largest unit, trailing zero units dropped."""
    if seconds is None:
        return UNKNOWN
    sign, total = ("-" if seconds < 0 else ""), round(abs(seconds))
    amounts = [total // 86400, total % 86400 // 3600, total % 3600 // 60, total % 60]
    parts = [f"{n}{unit}" for n, unit in zip(amounts, "dhms", strict=True)]
    first = next((i for i, n in enumerate(amounts) if n), 3)
    last = max(i for i, n in enumerate(amounts) if n or i == first)
    return sign + " ".join(parts[first:last + 1])


def format_timestamp(unix: float | None, zone: ZoneInfo, fmt: str | None = None) -> str:
    """ISO-like local time with its UTC offset, so readers in any zone can convert."""
    if unix is None:
        return UNKNOWN
    moment = datetime.fromtimestamp(unix, zone)
    return moment.strftime(fmt) if fmt else moment.isoformat(sep=" ", timespec="seconds")


def format_percent(ratio: float | None, digits: int | None = None) -> str:
    """A ratio as a percentage with three significant digits (0.00123 → "0.123%").

    Why significant digits: error ratios span 0.01% to 100%, and a fixed number of
    decimals either hides the small ones or pads the big ones.
    """
    if ratio is None:
        return UNKNOWN
    value = ratio * 100
    if digits is not None:
        return f"{value:.{digits}f}%"
    if value == 0:
        return "0%"
    decimals = min(4, max(1, 2 - math.floor(math.log10(abs(value)))))
    text = f"{value:.{decimals}f}"
    while decimals > 1 and text.endswith("0"):
        text, decimals = text[:-1], decimals - 1
    return f"{text}%"


def format_burn_rate(rate: float | None) -> str:
    """"14.4×": how many times faster than sustainable the budget was burning."""
    return UNKNOWN if rate is None else f"{rate:.1f}×"


def format_delta(during: float | None, before: float | None) -> str:
    """The change from the week before: "+25%" / "-40%" for small moves, "×5.3" past double."""
    if during is None or before is None:
        return UNKNOWN
    if before == 0:
        return "±0%" if during == 0 else "up from 0"
    ratio = during / before
    if ratio >= 2:
        return f"×{ratio:.1f}"
    change = round((ratio - 1) * 100)
    return "±0%" if change == 0 else f"{change:+d}%"


def format_ms(value: float | None) -> str:
    """Latency in milliseconds, one decimal only below 100 ms where it still matters."""
    if value is None:
        return UNKNOWN
    return f"{value:,.0f} ms" if abs(value) >= 100 else f"{value:.1f} ms"


def format_count(value: int | None) -> str:
    """An event count with thousands separators."""
    return UNKNOWN if value is None else f"{value:,}"


def markdown_cell(value: object) -> str:
    """Text that cannot break a Markdown table row: pipes escaped, newlines as <br>."""
    text = UNKNOWN if value is None else str(value)
    return text.replace("|", "\\|").replace("\r\n", "<br>").replace("\n", "<br>")


def summary_sentence(facts: IncidentFacts, facts_derived: DerivedFacts, zone: ZoneInfo) -> str:
    """The facts as prose, leaving out what is unknown rather than printing "—" mid-sentence."""
    affected = f" affected the SLOs {', '.join(facts.slos)}" if facts.slos else ""
    on_target = f" of target {facts.target}" if facts.target else ""
    lasted = ""
    if facts_derived.impact_duration is not None:
        lasted = (f" for {format_duration(facts_derived.impact_duration)}, from "
                  f"{format_timestamp(facts_derived.impact_started_at, zone)} to "
                  f"{format_timestamp(facts_derived.impact_ended_at, zone)}")
    sentences = [f"Incident #{facts.id} ({facts.severity}){affected}{on_target}{lasted}."]
    budget = []
    if facts.budget_consumed is not None:
        budget.append(f"consumed {format_percent(facts.budget_consumed)} of the error budget")
    if facts.peak_burn_rate is not None:
        budget.append(f"peaked at a burn rate of {format_burn_rate(facts.peak_burn_rate)}")
    if budget:
        sentences.append(f"It {' and '.join(budget)}.")
    if facts_derived.bad_during is not None and facts.total_during is not None:
        sentences.append(f"{format_count(facts_derived.bad_during)} of "
                         f"{format_count(facts.total_during)} events failed.")
    if facts_derived.time_to_resolve is not None:
        how = " when the alert rule cleared" if facts.resolved_by == "auto" else ""
        sentences.append(f"It was resolved{how} {format_duration(facts_derived.time_to_resolve)}"
                         " after the incident opened.")
    return " ".join(sentences)


# --- rendering -------------------------------------------------------------------------


def render_postmortem(facts: IncidentFacts, *, template: Path | None = None,
                      timezone: str = "UTC", clock: Clock | None = None) -> str:
    """The Markdown draft for `facts`, from `template` or the bundled default.

    Times are shown in `timezone` (an IANA name; an unknown one raises
    `zoneinfo.ZoneInfoNotFoundError`, which config validation should catch first).
    `clock` dates the "Generated at" footer. Raises PostmortemTemplateError when the
    template is missing, unreadable, invalid, or fails while rendering.
    """
    zone = ZoneInfo(timezone)
    path = Path(template) if template is not None else DEFAULT_TEMPLATE
    env = _environment(path.parent, zone)
    loaded = _load(env, path)
    facts_derived = derived(facts)
    context = {
        "facts": facts,
        "derived": facts_derived,
        "summary": summary_sentence(facts, facts_derived, zone),
        "generated_at": (clock or SystemClock()).now(),
        "timezone": timezone,
    }
    try:
        return loaded.render(context)
    except TemplateSyntaxError as exc:  # an {% include %}d file that does not parse
        raise PostmortemTemplateError(exc.filename or path, exc.lineno, exc.message or "") from exc
    except (TemplateError, TypeError, ValueError, ArithmeticError) as exc:
        filename, line = _template_location(exc, path)
        raise PostmortemTemplateError(filename, line, f"{type(exc).__name__}: {exc}") from exc


def _environment(directory: Path, zone: ZoneInfo) -> SandboxedEnvironment:
    """A sandbox: a user's template may read the facts but never reach Python internals."""
    env = SandboxedEnvironment(
        loader=FileSystemLoader(directory),
        undefined=StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        finalize=_never_none,
    )
    filters: dict[str, Callable[..., str]] = {
        "duration": format_duration,
        "timestamp": lambda unix, fmt=None: format_timestamp(unix, zone, fmt),
        "percent": format_percent,
        "burn_rate": format_burn_rate,
        "delta": format_delta,
        "ms": format_ms,
        "count": format_count,
        "cell": markdown_cell,
    }
    env.filters.update(filters)
    return env


def _never_none(value: Any) -> Any:
    """Every `{{ ... }}` that comes out None prints "—": a draft never says "None"."""
    return UNKNOWN if value is None else value


def _load(env: SandboxedEnvironment, path: Path) -> Template:
    """Load and parse the template, turning every failure into one located error."""
    try:
        return env.get_template(path.name)
    except TemplateNotFound as exc:
        raise PostmortemTemplateError(path, None, "post-mortem template not found "
                                                  "(or not a file)") from exc
    except TemplateSyntaxError as exc:
        raise PostmortemTemplateError(exc.filename or path, exc.lineno, exc.message or "") from exc
    except OSError as exc:
        raise PostmortemTemplateError(path, None, f"cannot read post-mortem template: "
                                                  f"{exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise PostmortemTemplateError(path, None, f"post-mortem template is not UTF-8: "
                                                  f"{exc.reason}") from exc


def _template_location(exc: BaseException, path: Path) -> tuple[str, int | None]:
    """The template file and line a render error came from.

    Jinja rewrites tracebacks so that template frames carry the template's file name
    and line; the last such frame (not a .py file) under the template's folder is where
    the template went wrong, even inside an {% include %}.
    """
    folder = os.path.normpath(path.parent) + os.sep
    found: tuple[str, int | None] = (str(path), None)
    tb = exc.__traceback__
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if filename.startswith(folder) and not filename.endswith(".py"):
            found = (filename, tb.tb_lineno)
        tb = tb.tb_next
    return found
