"""`primewatch export prometheus-rules`: Prometheus recording and alerting rules for every
SLO, in Sloth's layout, so a team whose paging runs through Prometheus and Alertmanager
gets the same multiwindow, multi-burn-rate alerts as primewatch's own alerter.

The rules read one metric, `primewatch_slo_ingested_events_total{slo, result}`: `rate()`
of its good and bad counters gives any window's error ratio whatever the SLI kind,
because primewatch has already judged each event (and left maintenance out).
Per SLO there are three groups, named like Sloth's with primewatch in place of sloth:

- `primewatch-slo-sli-recordings-<slo>`: `slo:sli_error:ratio_rate<W>` for 5m 30m 1h 2h
  6h 1d 3d, every window of the SLO's own burn-rate tiers, and the SLO period;
- `primewatch-slo-meta-recordings-<slo>`: `slo:objective:ratio`, `slo:error_budget:ratio`,
  `slo:time_period:days`, `slo:current_burn_rate:ratio`, `slo:period_burn_rate:ratio`,
  `slo:period_error_budget_remaining:ratio` and `primewatch_slo_rules_info`;
- `primewatch-slo-alerts-<slo>`: one `PrimewatchErrorBudgetBurn` rule per severity, the OR
  of its tiers, with thresholds from `alert_tiers` (the ones primewatch alerts on).

Record names are Sloth's so Sloth's Grafana dashboards can be pointed at them; labels are
primewatch's (`primewatch_slo`, `primewatch_window`) so the two never mix.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

import yaml

from monitor.config import Settings
from monitor.config_slo import SloConfig
from monitor.slo_engine import alert_tiers
from monitor.units import format_duration
from slo.budget import BURN_WINDOWS, BurnThreshold

__all__ = ["ALERT_NAME", "EVENTS_METRIC", "render"]

EVENTS_METRIC = "primewatch_slo_ingested_events_total"
ALERT_NAME = "PrimewatchErrorBudgetBurn"
SLO_LABEL = "primewatch_slo"
WINDOW_LABEL = "primewatch_window"
DAY = 86400
CALENDAR_PERIODS = {"quarter": 91 * DAY, "month": 30 * DAY, "week": 7 * DAY}
"""Rules cannot follow a calendar quarter, month or week, so each uses a fixed period of
about its length: 91 days for a quarter (90 to 92), 30 for a month (28 to 31)."""

_LABEL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SEVERITIES = ("page", "ticket")


def render(settings: Settings) -> str:
    """The rules file for every SLO in `settings`, byte-for-byte the same for the same
    config, so it can be committed and diffed (and a test can prove it did not drift)."""
    service = settings.service
    header = [
        f"# Prometheus rules for the SLOs of service {_one_line(service.name)!r} "
        f"(environment {_one_line(service.environment)!r}),",
        "# generated from its config by `primewatch [--config FILE] export prometheus-rules`.",
        "# Do not edit: change the config's `slos:` and run the command again.",
        "#",
        f"# Reads {EVENTS_METRIC} from primewatch's /metrics. Prometheus must",
        "# retain it for the longest SLO period: the period's ratio is a rate over all of it.",
        "# Unlike primewatch's own alerter, these rules have no hysteresis (an alert clears",
        "# as soon as a window drops under its threshold) and no no-data alert, and a page",
        "# and a ticket of one SLO fire together. To let the page speak alone, inhibit:",
        "#   inhibit_rules:",
        f"#     - source_matchers: [alertname=\"{ALERT_NAME}\", severity=\"page\"]",
        f"#       target_matchers: [alertname=\"{ALERT_NAME}\", severity=\"ticket\"]",
        f"#       equal: [{SLO_LABEL}]",
    ]
    if not settings.slos:
        return "\n".join([*header, "groups: []", ""])
    sections = [_slo_section(slo, settings) for slo in settings.slos]
    return "\n".join([*header, "groups:", *sections])


def _slo_section(slo: SloConfig, settings: Settings) -> str:
    """One SLO's comment and three groups; groups are dumped per SLO so that the comment
    saying how the rules approximate primewatch sits right above them."""
    period = _period(slo)
    tiers = alert_tiers(slo, period)
    comments = [f"# --- {slo.name}: {slo.sli} SLI, {_percent(slo.objective)} over "
                f"{_window_text(slo)} ---"]
    if slo.calendar:
        comments.append(
            f"# A calendar {slo.window} cannot be a range selector: the period ratio is the "
            f"last {format_duration(period)}'s")
        comments.append(
            f"# and thresholds are scaled to {format_duration(period)} (primewatch scales them to "
            f"the current {slo.window}'s length).")
    if slo.budgeting != "occurrences":
        comments.append(
            f"# Budgeting is {slo.budgeting} in primewatch; these rules use the ratio of "
            "bad events instead of")
        comments.append(
            "# bad slices: higher while errors stay under the slice target, lower when "
            "slices miss it by a little.")
    if not slo.alerts.enabled:
        comments.append("# alerts.enabled is false: recording rules only.")
    labels = _slo_labels(slo)
    groups: list[dict[str, Any]] = [
        {"name": f"primewatch-slo-sli-recordings-{slo.name}",
         "rules": _sli_rules(slo, _windows(tiers, period), labels)},
        {"name": f"primewatch-slo-meta-recordings-{slo.name}",
         "rules": _meta_rules(slo, period, labels)},
    ]
    if slo.alerts.enabled and tiers:
        groups.append({"name": f"primewatch-slo-alerts-{slo.name}",
                       "rules": _alert_rules(slo, tiers, period, labels, settings)})
    return "\n".join(comments) + "\n" + _dump(groups)


def _period(slo: SloConfig) -> int:
    """The SLO period in seconds: the rolling window, or the calendar unit's fixed stand-in."""
    if isinstance(slo.window, str):
        return CALENDAR_PERIODS[slo.window]
    return int(slo.window)


def _windows(tiers: Iterable[BurnThreshold], period: int) -> list[int]:
    """Sloth's standard windows (dashboards expect them), every window a custom tier
    reads, and the period; each recorded once (two rules writing one series conflict)."""
    seconds = {s for _, s in BURN_WINDOWS} | {period}
    for tier in tiers:
        seconds |= {tier.long_window_s, tier.short_window_s}
    return sorted(seconds)


def _sli_rules(slo: SloConfig, windows: list[int], labels: dict[str, str]) -> list[dict[str, Any]]:
    bad = _selector(EVENTS_METRIC, slo=slo.name, result="bad")
    every = _selector(EVENTS_METRIC, slo=slo.name)
    return [
        {"record": _sli_record(seconds),
         "expr": f"sum(rate({bad}[{format_duration(seconds)}]))\n/\n"
                 f"sum(rate({every}[{format_duration(seconds)}]))\n",
         "labels": _sorted({**labels, WINDOW_LABEL: format_duration(seconds)})}
        for seconds in windows
    ]


def _meta_rules(slo: SloConfig, period: int, labels: dict[str, str]) -> list[dict[str, Any]]:
    """The figures Sloth's dashboards read; burn rates divide `ignoring` the window label
    so the result carries the SLO's labels only."""
    mine = _selector_of(slo)
    budget = f"slo:error_budget:ratio{mine}"
    info = {**labels, "primewatch_sli": slo.sli, "primewatch_target": slo.target,
            "primewatch_objective": _number(slo.objective),
            "primewatch_period": format_duration(period), "primewatch_budgeting": slo.budgeting}
    return [
        _record("slo:objective:ratio", f"vector({_number(slo.objective)})", labels),
        _record("slo:error_budget:ratio", f"vector({_number(1 - slo.objective)})", labels),
        _record("slo:time_period:days", f"vector({_number(period / DAY)})", labels),
        _record("slo:current_burn_rate:ratio",
                f"{_sli_record(300)}{mine}\n/ ignoring({WINDOW_LABEL})\n{budget}\n", labels),
        _record("slo:period_burn_rate:ratio",
                f"{_sli_record(period)}{mine}\n/ ignoring({WINDOW_LABEL})\n{budget}\n", labels),
        _record("slo:period_error_budget_remaining:ratio",
                f"1 - slo:period_burn_rate:ratio{mine}", labels),
        # Not `primewatch_slo_info`: primewatch itself exposes a metric of that name.
        _record("primewatch_slo_rules_info", "vector(1)", info),
    ]


def _alert_rules(slo: SloConfig, tiers: tuple[BurnThreshold, ...], period: int,
                 labels: dict[str, str], settings: Settings) -> list[dict[str, Any]]:
    """One rule per severity, its tiers OR-ed as Sloth does, so Alertmanager sees one
    alert per SLO and severity whichever tier fired."""
    rules = []
    for severity in _SEVERITIES:
        mine = [tier for tier in tiers if tier.severity == severity]
        if not mine:
            continue
        expr = "\nor\n".join(_tier_expr(slo, tier) for tier in mine) + "\n"
        conditions = ", or ".join(
            f"≥ {_number(t.threshold)} over both {format_duration(t.long_window_s)} and "
            f"{format_duration(t.short_window_s)}" for t in mine)
        description = (
            f"The error budget of {slo.name} ({_percent(slo.objective)} over "
            f"{_window_text(slo)}) burns too fast for a {severity}: burn rate {conditions}"
            f" (a burn rate of 1 spends the budget in {format_duration(period)}).")
        if slo.description:
            description += f" {slo.description}"
        annotations = {
            "summary": f"{slo.name}: error budget burning too fast ({severity})",
            "description": _literal_template(description),
        }
        if settings.server.public_url:
            annotations["dashboard_url"] = \
                f"{settings.server.public_url.rstrip('/')}/slos/{slo.name}"
        rules.append({"alert": ALERT_NAME, "expr": expr,
                      "labels": _sorted({**labels, "severity": severity}),
                      "annotations": annotations})
    return rules


def _tier_expr(slo: SloConfig, tier: BurnThreshold) -> str:
    """Both windows at or above the threshold (`>=`, as primewatch's alerter), and the
    long window holding `min_events`, the alerter's guard against paging on 1 bad of 3."""
    mine = _selector_of(slo)
    limit = f"({_number(tier.threshold)} * {_number(1 - slo.objective)})"
    lines = [
        f"  max({_sli_record(tier.long_window_s)}{mine} >= {limit}) without ({WINDOW_LABEL})",
        "  and",
        f"  max({_sli_record(tier.short_window_s)}{mine} >= {limit}) without ({WINDOW_LABEL})",
    ]
    if slo.alerts.min_events:
        every = _selector(EVENTS_METRIC, slo=slo.name)
        lines += ["  and on()",
                  f"  sum(increase({every}[{format_duration(tier.long_window_s)}])) >= "
                  f"{slo.alerts.min_events}"]
    return "(\n" + "\n".join(lines) + "\n)"


def _record(name: str, expr: str, labels: dict[str, str]) -> dict[str, Any]:
    return {"record": name, "expr": expr, "labels": _sorted(labels)}


def _sli_record(seconds: int) -> str:
    return f"slo:sli_error:ratio_rate{format_duration(seconds)}"


def _slo_labels(slo: SloConfig) -> dict[str, str]:
    """The SLO's own labels, made valid Prometheus label names, then primewatch's (which
    win a clash: the alert expressions select on them)."""
    own: dict[str, str] = {}
    for key in sorted(slo.labels):
        name = key if _LABEL_NAME.match(key) else re.sub(r"[^A-Za-z0-9_]|^(?=[0-9])", "_", key)
        own[name] = slo.labels[key]
    return {**own, SLO_LABEL: slo.name}


def _selector(metric: str, **matchers: str) -> str:
    # json.dumps quotes and escapes like PromQL's double-quoted strings do
    inner = ",".join(f"{key}={json.dumps(value)}" for key, value in matchers.items())
    return f"{metric}{{{inner}}}"


def _selector_of(slo: SloConfig) -> str:
    return f"{{{SLO_LABEL}={json.dumps(slo.name)}}}"


def _number(value: float) -> str:
    """12 significant digits: 1 - 0.999 prints as 0.001, not 0.0010000000000000009."""
    return f"{value:.12g}"


def _percent(ratio: float) -> str:
    return f"{ratio * 100:.10g}%"


def _window_text(slo: SloConfig) -> str:
    if isinstance(slo.window, str):
        return f"the calendar {slo.window}"
    return format_duration(int(slo.window))


def _literal_template(text: str) -> str:
    """Annotations are Go templates: print the config's own `{{` literally."""
    return re.sub(r"\{\{|\}\}", lambda m: '{{ "' + m.group(0) + '" }}', text)


def _one_line(text: str) -> str:
    """A config value in a comment: a newline would end the comment and break the YAML."""
    return " ".join(text.split())


def _sorted(labels: dict[str, str]) -> dict[str, str]:
    return dict(sorted(labels.items()))


class _Dumper(yaml.SafeDumper):
    """Block scalars for multi-line expressions: PromQL stays readable in the file."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def _dump(groups: list[dict[str, Any]]) -> str:
    text: str = yaml.dump(groups, Dumper=_Dumper, sort_keys=False, allow_unicode=True,
                          width=1000, default_flow_style=False)
    return text
