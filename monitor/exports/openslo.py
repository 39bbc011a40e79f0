"""OpenSLO v1 both ways: `render` writes the config's SLOs as Service, SLI, SLO and
AlertPolicy documents; `import_openslo` turns OpenSLO documents into a validated `slos:`
section, listing every document it cannot map.

OpenSLO leaves metric sources to implementations, so each exported SLI reads from a
documented custom source that says which primewatch events it counts; an import reads it
back, which makes export → import lossless:

    metricSource:
      type: primewatch
      spec:
        target: api-tasks      # the primewatch target whose results are the events
        sli: latency           # availability | latency | ratio | threshold
        events: good          # ratioMetric only: which count (good | total) this gives
        threshold: 200ms       # latency: a good event succeeds within this
        stream: cache          # ratio: the target's count stream
        value: query_seconds   # threshold: the measured value the objective's op/value judge
        region: eu             # optional: only results probed from this region
        selectors: [...]       # ratio: the counters behind the stream, for readers only

Mapping: availability, latency and ratio SLIs are a ratioMetric (good / total events), a
threshold SLI a thresholdMetric whose objective carries `op` and `value`. Budgeting
occurrences | timeslices | ratio_timeslices is Occurrences | Timeslices | RatioTimeslices;
a calendar quarter is `1Q` (from Jan/Apr/Jul/Oct 1st midnight), a month `1M` and a week
`1w` (from Monday midnight) in `calendar.timeZone`.
Each burn-rate tier is an AlertPolicy of its own, because v1 allows one condition per
policy: lookbackWindow = long window, alertAfter = short window, op gte; default tiers are
the ones primewatch alerts on for the window's period (`burn_rules_for_period`: none
below a burn of 1, three for 7 days; a calendar month as 30 days, a quarter as 91). What
OpenSLO has no field for travels as `primewatch/*` annotations: on the SLO `name` (when
not DNS-safe), `timezone` (rolling windows), `burn-rates` (default | none), `alerts: disabled`,
`min-events`, `no-data`, `public`;
on an AlertCondition `budget-share` and exact `long-window`/`short-window`.

Foreign sources (Prometheus, Datadog ...) cannot be probed: an SLO over one imports only
with `primewatch/target` (plus `primewatch/sli`, default availability, and `stream`,
`threshold`, `value`, `region` where the SLI kind needs them) in metadata.annotations.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from datetime import date, datetime, time
from typing import Any, NamedTuple

import yaml
from pydantic import ValidationError

from monitor.config import Settings
from monitor.config_slo import SloConfig
from monitor.errors import PrimewatchError
from monitor.units import format_duration, parse_duration
from probes.prometheus import PrometheusTarget
from probes.promql import PromqlTarget
from slo.budget import burn_rules_for_period, scaled_burn_threshold

API_VERSION = "openslo/v1"
SOURCE_TYPE = "primewatch"
KINDS = ("Service", "SLI", "SLO", "AlertPolicy", "AlertCondition", "AlertNotificationTarget",
         "DataSource")
BUDGETING = {"occurrences": "Occurrences", "timeslices": "Timeslices",
             "ratio_timeslices": "RatioTimeslices"}
CALENDAR_EXPORT = {"quarter": "1Q", "month": "1M", "week": "1w"}
CALENDAR_IMPORT = {"1Q": "quarter", "3M": "quarter", "1M": "month", "1w": "week", "7d": "week"}
# a Monday and January 1st: starts a week, a month and a quarter
CALENDAR_START = "2024-01-01 00:00:00"
NOMINAL_PERIOD = {"quarter": 91 * 86400, "month": 30 * 86400, "week": 7 * 86400}
QUARTER_FIRST_MONTHS = (1, 4, 7, 10)
SLO_KEYS = ("name", "target", "sli", "threshold", "stream", "value", "comparison", "objective",
            "window", "timezone", "budgeting", "timeslice", "timeslice_target", "region",
            "description", "labels", "alerts", "public")
SOURCE_KEYS = {"target", "sli", "events", "threshold", "stream", "value", "region", "selectors"}
_SHORTHAND = re.compile(r"^(\d+)([mhdwMQY])$")
_SHORTHAND_SECONDS = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_VARIABLE = re.compile(r"\$(\$)?\{[A-Za-z_][A-Za-z0-9_]*(?::-[^}]*)?\}")

Doc = dict[str, Any]


class OpenSloImportError(PrimewatchError):
    """OpenSLO input primewatch cannot use; `problems` lists every one, not just the first."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


# --- export ---------------------------------------------------------------------------


class _Tier(NamedTuple):
    severity: str
    long_window: float
    short_window: float
    threshold: float
    budget_share: float | None  # set when the rule was written as a budget share


class _Namer:
    """RFC 1123 labels (what OpenSLO tools accept), unique per kind: `API_p95` → `api-p95`."""

    def __init__(self) -> None:
        self._taken: dict[str, set[str]] = {}

    def name(self, kind: str, text: str, suffix: str = "") -> str:
        tail = f"-{suffix}" if suffix else ""
        base = _slug(text)[: 63 - len(tail)].strip("-") or "x"
        taken = self._taken.setdefault(kind, set())
        candidate, number = base + tail, 1
        while candidate in taken:
            number += 1
            candidate = f"{base[: 62 - len(tail) - len(str(number))].strip('-')}-{number}{tail}"
        taken.add(candidate)
        return candidate


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def render(settings: Settings) -> str:
    """The config's SLOs as OpenSLO v1 YAML documents (one stream, `---` separated)."""
    names = _Namer()
    service = names.name("Service", settings.service.name)
    docs = [_doc("Service", {"name": service, "displayName": settings.service.name[:63]},
                 {"description": f"{settings.service.name} "
                                 f"({settings.service.environment}), watched by primewatch"})]
    severities: set[str] = set()
    for slo in settings.slos:
        docs.extend(_slo_documents(slo, settings, service, names, severities))
    for severity in sorted(severities):
        docs.append(_doc("AlertNotificationTarget", {"name": f"primewatch-{severity}"}, {
            "target": "primewatch",
            "description": f"primewatch routes {severity} alerts to the escalation policies "
                           f"(alerting.policies) that take severity {severity}"}))
    header = ("# OpenSLO v1 documents written by `primewatch export openslo`; metric sources of\n"
              "# type primewatch name the primewatch target and SLI kind that count the events.\n")
    return header + "---\n".join(
        yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=100) for doc in docs)


def _doc(kind: str, metadata: Doc, spec: Doc) -> Doc:
    return {"apiVersion": API_VERSION, "kind": kind, "metadata": metadata, "spec": spec}


def _slo_documents(slo: SloConfig, settings: Settings, service: str, names: _Namer,
                   severities: set[str]) -> list[Doc]:
    name = names.name("SLO", slo.name)
    sli = names.name("SLI", slo.name)
    annotations: dict[str, str] = {}
    if name != slo.name:
        annotations["primewatch/name"] = slo.name
    if not slo.calendar and slo.timezone != "UTC":
        annotations["primewatch/timezone"] = slo.timezone
    if slo.alerts.burn_rates == "default":
        annotations["primewatch/burn-rates"] = "default"
    elif not slo.alerts.burn_rates:  # no tier: no AlertPolicy would say so
        annotations["primewatch/burn-rates"] = "none"
    if not slo.alerts.enabled:  # also said by alertWhenBreaching, unless there is no tier
        annotations["primewatch/alerts"] = "disabled"
    if slo.alerts.min_events != 10:
        annotations["primewatch/min-events"] = str(slo.alerts.min_events)
    if slo.alerts.no_data is not None:
        annotations["primewatch/no-data"] = format_duration(slo.alerts.no_data)
    if slo.public:
        annotations["primewatch/public"] = "true"
    metadata: Doc = {"name": name}
    if slo.labels:
        metadata["labels"] = dict(slo.labels)
    if annotations:
        metadata["annotations"] = annotations
    if isinstance(slo.window, str):
        window: Doc = {"duration": CALENDAR_EXPORT[slo.window],
                       "calendar": {"startTime": CALENDAR_START, "timeZone": slo.timezone},
                       "isRolling": False}
    else:
        window = {"duration": _shorthand(slo.window)[0], "isRolling": True}
    objective: Doc = {"target": slo.objective}
    if slo.sli == "threshold":
        objective |= {"op": "lte" if slo.comparison == "<=" else "gte", "value": slo.threshold}
    if slo.budgeting != "occurrences":
        objective["timeSliceWindow"] = _shorthand(slo.timeslice)[0]
    if slo.budgeting == "timeslices":
        objective["timeSliceTarget"] = slo.timeslice_target
    policies = _alert_policies(slo, name, names, severities)
    spec: Doc = {"description": slo.description} if slo.description else {}
    spec |= {"service": service, "indicatorRef": sli, "timeWindow": [window],
             "budgetingMethod": BUDGETING[slo.budgeting], "objectives": [objective]}
    if policies:
        spec["alertPolicies"] = [{"alertPolicyRef": p["metadata"]["name"]} for p in policies]
    return [_doc("SLI", {"name": sli}, _sli_spec(slo, settings)),
            _doc("SLO", metadata, spec), *policies]


def _sli_spec(slo: SloConfig, settings: Settings) -> Doc:
    source: Doc = {"target": slo.target, "sli": slo.sli}
    if slo.sli == "latency" and slo.threshold is not None:
        source["threshold"] = _duration_text(slo.threshold)
    if slo.stream is not None:
        source["stream"] = slo.stream
    if slo.value is not None:
        source["value"] = slo.value
    if slo.region is not None:
        source["region"] = slo.region
    what = {"availability": f"probes of {slo.target} that succeed, of all its probes",
            "latency": f"probes of {slo.target} that succeed within "
                       f"{source.get('threshold')}, of all its probes",
            "ratio": f"good of all events in {slo.target}'s count stream {slo.stream}",
            "threshold": f"{slo.target}'s {slo.value} per probe, judged by the objective's "
                         "op and value"}[slo.sli]
    spec: Doc = {"description": f"primewatch {slo.sli} SLI: {what}"}
    if slo.sli == "threshold":
        spec["thresholdMetric"] = {"metricSource": {"type": SOURCE_TYPE, "spec": source}}
        return spec
    selectors = _selectors(slo, settings)

    def side(events: str) -> Doc:
        own = source | {"events": events}
        if selectors.get(events):
            own["selectors"] = selectors[events]
        return {"metricSource": {"type": SOURCE_TYPE, "spec": own}}

    # counts of events per window, not a raw monotonic counter
    spec["ratioMetric"] = {"counter": False, "good": side("good"), "total": side("total")}
    return spec


def _selectors(slo: SloConfig, settings: Settings) -> dict[str, list[str]]:
    """The counters behind a ratio stream, so a reader of the SLI sees what is counted."""
    target = settings.target(slo.target)
    if isinstance(target, PrometheusTarget) and slo.stream in target.ratios:
        ratio = target.ratios[slo.stream]
        return {"good": [str(s) for s in ratio.good], "total": [str(s) for s in ratio.total]}
    if isinstance(target, PromqlTarget) and target.stream == slo.stream and target.good \
            and target.total:
        return {"good": [target.good], "total": [target.total]}
    return {}


def _alert_policies(slo: SloConfig, slo_name: str, names: _Namer,
                    severities: set[str]) -> list[Doc]:
    """One AlertPolicy per burn-rate tier (OpenSLO v1 allows a single condition each)."""
    period = NOMINAL_PERIOD[slo.window] if isinstance(slo.window, str) else slo.window
    if slo.alerts.burn_rates == "default":
        # the tiers primewatch alerts on: scaled, none below 1, some dropped for short
        # periods (7 days keep three)
        tiers = [_Tier(t.severity, t.long_window_s, t.short_window_s, round(t.threshold, 6),
                       None) for t in burn_rules_for_period(period)]
    else:
        # a rule's own threshold travels exactly; one scaled from a budget share is shown
        # rounded, and the share itself travels as an annotation
        tiers = [_Tier(r.severity, r.long_window, r.short_window,
                       r.threshold if r.threshold is not None
                       else round(scaled_burn_threshold(r.budget_share or 0.0, period,
                                                        r.long_window), 6),
                       r.budget_share) for r in slo.alerts.burn_rates]
    policies = []
    for tier in tiers:
        severities.add(tier.severity)
        long_text, long_exact = _shorthand(tier.long_window)
        short_text, short_exact = _shorthand(tier.short_window)
        name = names.name("AlertPolicy", slo_name, f"{tier.severity}-{long_text.lower()}")
        annotations: dict[str, str] = {}
        if tier.budget_share is not None:
            annotations["primewatch/budget-share"] = repr(round(tier.budget_share * 100, 10))
        if not long_exact:
            annotations["primewatch/long-window"] = format_duration(tier.long_window)
        if not short_exact:
            annotations["primewatch/short-window"] = format_duration(tier.short_window)
        metadata: Doc = {"name": name}
        if annotations:
            metadata["annotations"] = annotations
        condition: Doc = {"kind": "AlertCondition", "metadata": metadata, "spec": {
            "description": f"burn rate of {slo.name} at least {tier.threshold:g} over "
                           f"{format_duration(tier.long_window)} and "
                           f"{format_duration(tier.short_window)}",
            "severity": tier.severity,
            "condition": {"kind": "burnrate", "op": "gte", "threshold": tier.threshold,
                          "lookbackWindow": long_text, "alertAfter": short_text}}}
        policies.append(_doc("AlertPolicy", {"name": name}, {
            "description": f"{tier.severity} when {slo.name} burns its error budget fast "
                           "(a primewatch multi-window burn-rate tier)",
            "alertWhenBreaching": slo.alerts.enabled,
            "alertWhenNoData": slo.alerts.no_data is not None,
            "conditions": [condition],
            "notificationTargets": [{"targetRef": f"primewatch-{tier.severity}"}]}))
    return policies


def _shorthand(seconds: float) -> tuple[str, bool]:
    """OpenSLO's one-unit duration (`30d`, `36h`, `90m`) and whether it is exact: the
    format has no seconds, so a sub-minute rest is rounded up (the caller annotates)."""
    minutes = math.ceil(seconds / 60)
    exact = minutes * 60 == seconds
    for unit, size in (("d", 1440), ("h", 60)):
        if minutes and minutes % size == 0:
            return f"{minutes // size}{unit}", exact
    return f"{max(minutes, 1)}m", exact and minutes > 0


def _duration_text(seconds: float) -> str | float:
    """`200ms` when that reads back exactly, else the plain number of seconds."""
    text = format_duration(seconds)
    return text if parse_duration(text) == seconds else seconds


# --- import ---------------------------------------------------------------------------


class _Doc(NamedTuple):
    number: int  # position in the stream, from 1
    line: int
    kind: str
    name: str
    body: Mapping[str, Any]


Index = dict[str, dict[str, _Doc]]
Report = Callable[[str], None]


def import_openslo(source: str, origin: str) -> str:
    """OpenSLO v1 YAML (one or many documents) → the text of a `slos:` section, every SLO
    validated as primewatch would load it; raises OpenSloImportError listing every
    problem, each with its file, line, document number, kind and name."""
    problems: list[str] = []
    docs = _read_documents(source, origin, problems)
    index: Index = {}
    for doc in docs:
        if doc.name in index.setdefault(doc.kind, {}):
            problems.append(f"{_where(origin, doc)}: duplicate {doc.kind} name {doc.name!r}")
        index[doc.kind][doc.name] = doc
    entries: list[Doc] = []
    seen: set[str] = set()
    for doc in docs:
        if doc.kind != "SLO":
            continue

        def report(message: str, doc: _Doc = doc) -> None:
            problems.append(f"{_where(origin, doc)}: {message}")

        for entry in _import_slo(doc, index, report):
            if entry["name"] in seen:
                report(f"SLO name {entry['name']!r} is already taken by an earlier SLO")
            seen.add(entry["name"])
            entries.append(entry)
    if not problems and not entries:
        problems.append(f"{origin}: no SLO documents (kind: SLO, apiVersion: {API_VERSION})")
    if problems:
        raise OpenSloImportError(problems)
    header = (f"# SLOs imported from {origin} by `primewatch import openslo`; the targets\n"
              "# they name must be defined under `targets:`.\n")
    return header + yaml.safe_dump({"slos": [_escape(e) for e in entries]}, sort_keys=False,
                                   allow_unicode=True, width=100)


def _where(origin: str, doc: _Doc) -> str:
    return f"{origin}:{doc.line}: document {doc.number} ({doc.kind} {doc.name!r})"


def _read_documents(source: str, origin: str, problems: list[str]) -> list[_Doc]:
    try:
        nodes = list(yaml.compose_all(source, Loader=yaml.SafeLoader))
        bodies = list(yaml.safe_load_all(source))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f":{mark.line + 1}" if mark is not None else ""
        problems.append(f"{origin}{at}: invalid YAML: {getattr(exc, 'problem', None) or exc}")
        return []
    docs = []
    for number, (node, body) in enumerate(zip(nodes, bodies, strict=True), start=1):
        if body is None:
            continue
        line = node.start_mark.line + 1
        if not isinstance(body, dict):
            problems.append(f"{origin}:{line}: document {number}: not a mapping with apiVersion,"
                            " kind, metadata and spec")
            continue
        metadata = _mapping(body.get("metadata"))
        name = metadata.get("name")
        doc = _Doc(number, line, str(body.get("kind")), str(name or "?"), body)
        if body.get("apiVersion") != API_VERSION:
            problems.append(f"{_where(origin, doc)}: apiVersion {body.get('apiVersion')!r} is "
                            f"not supported: primewatch reads {API_VERSION}")
        elif doc.kind not in KINDS:
            problems.append(f"{_where(origin, doc)}: unknown kind {doc.kind!r} "
                            f"(OpenSLO v1 kinds: {', '.join(KINDS)})")
        elif not isinstance(name, str) or not name:
            problems.append(f"{_where(origin, doc)}: metadata.name is missing")
        else:
            docs.append(doc)
    return docs


def _prefixed(fail: Report, prefix: str) -> Report:
    return lambda message: fail(f"{prefix}: {message}")


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _annotations(body: Mapping[str, Any]) -> dict[str, str]:
    raw = _mapping(_mapping(body.get("metadata")).get("annotations"))
    return {str(k): str(v) for k, v in raw.items()}


def _import_slo(doc: _Doc, index: Index, report: Report) -> list[Doc]:
    """One SLO document → one primewatch SLO per objective (validated), or [] on problems.

    Label values that are lists (allowed by v1) become comma-joined text, since primewatch
    labels are text; `primewatch/*` annotations of the SLI apply unless the SLO's differ."""
    failed = []

    def fail(message: str) -> None:
        failed.append(message)
        report(message)

    spec = _mapping(doc.body.get("spec"))
    indicator = _indicator(spec, index, fail)
    annotations = {**(indicator[1] if indicator else {}), **_annotations(doc.body)}
    fields = _sli_fields(indicator[0], annotations, index, fail) if indicator else {}
    window = _window(spec.get("timeWindow"), annotations, fail)
    budgeting = _budgeting(spec.get("budgetingMethod"), fail)
    alerts = _alerts(spec.get("alertPolicies"), annotations, index, fail)
    objectives = spec.get("objectives")
    if not isinstance(objectives, list) or not objectives:
        fail("spec.objectives must list at least one objective")
        objectives = []
    common: Doc = {**fields, **window}
    if budgeting != "occurrences":
        common["budgeting"] = budgeting
    if spec.get("description"):
        common["description"] = str(spec["description"])
    labels = _mapping(_mapping(doc.body.get("metadata")).get("labels"))
    if labels:
        common["labels"] = {str(k): ",".join(map(str, v)) if isinstance(v, list) else str(v)
                            for k, v in labels.items()}
    if alerts:
        common["alerts"] = alerts
    if annotations.get("primewatch/public", "").lower() == "true":
        common["public"] = True
    base = _annotations(doc.body).get("primewatch/name", doc.name)
    entries = []
    for number, objective in enumerate(objectives, start=1):
        where = f"objectives[{number - 1}]"
        own = _objective(_mapping(objective), budgeting, fields, _prefixed(fail, where))
        entry: Doc = {"name": base, **common, **own}
        if len(objectives) > 1:
            title = _slug(str(_mapping(objective).get("displayName", "")))
            entry["name"] = f"{base}-{title or number}"
        entries.append({key: entry[key] for key in SLO_KEYS if key in entry})
    if failed:
        return []
    valid = []
    for entry in entries:
        try:
            SloConfig.model_validate(entry)
        except ValidationError as exc:
            for error in exc.errors(include_url=False):
                where = ".".join(map(str, error["loc"]))
                report(f"SLO {entry['name']!r}: {where + ': ' if where else ''}"
                       f"{str(error['msg']).removeprefix('Value error, ')}")
            continue
        valid.append(entry)
    return valid


def _indicator(spec: Mapping[str, Any], index: Index,
               fail: Report) -> tuple[Mapping[str, Any], dict[str, str]] | None:
    """The SLI's spec and annotations, inline or through indicatorRef."""
    inline, ref = spec.get("indicator"), spec.get("indicatorRef")
    if inline is not None and ref is not None:
        fail("give spec.indicator or spec.indicatorRef, not both")
    elif isinstance(inline, dict):
        return _mapping(inline.get("spec")), _annotations(inline)
    elif ref is None:
        fail("spec.indicatorRef (or an inline spec.indicator) is missing")
    elif str(ref) not in index.get("SLI", {}):
        fail(f"indicatorRef {ref!r} names no SLI document in this file")
    else:
        sli = index["SLI"][str(ref)].body
        return _mapping(sli.get("spec")), _annotations(sli)
    return None


def _sli_fields(sli: Mapping[str, Any], annotations: Mapping[str, str], index: Index,
                fail: Report) -> Doc:
    """target, sli and the fields its kind needs, from a primewatch source or annotations."""
    ratio, threshold = sli.get("ratioMetric"), sli.get("thresholdMetric")
    if (ratio is None) == (threshold is None):
        fail("the SLI needs exactly one of ratioMetric or thresholdMetric")
        return {}
    parts = {p: v for p, v in _mapping(ratio).items() if p in ("good", "bad", "total", "raw")} \
        if ratio is not None else {"metric": threshold}
    if not parts:
        fail("the ratioMetric needs good (or bad) and total, or raw")
        return {}
    sources = {part: _source(value, index) for part, value in parts.items()}
    types = sorted({kind for kind, _ in sources.values()})
    if types == [SOURCE_TYPE]:
        return _own_source(sources, fail)
    if SOURCE_TYPE in types:
        fail(f"the SLI mixes primewatch with other metric sources ({', '.join(types)})")
        return {}
    if "primewatch/target" not in annotations:
        for kind in types:
            fail(f"metricSource {kind} cannot be probed by primewatch: set its primewatch target "
                 "via metadata.annotations['primewatch/target']")
        return {}
    fields: Doc = {"target": annotations["primewatch/target"]}
    fields["sli"] = annotations.get("primewatch/sli",
                                    "availability" if ratio is not None else "")
    if not fields["sli"]:
        fail(f"a thresholdMetric from {', '.join(types)} needs "
             "metadata.annotations['primewatch/sli'] (latency or threshold)")
    for key in ("threshold", "stream", "value", "region"):
        if f"primewatch/{key}" in annotations:
            fields[key] = annotations[f"primewatch/{key}"]
    needs = {"latency": "threshold", "ratio": "stream", "threshold": "value"}.get(fields["sli"])
    if needs and needs not in fields:
        fail(f"sli {fields['sli']} needs metadata.annotations['primewatch/{needs}']")
    return fields


def _source(part: Any, index: Index) -> tuple[str, Mapping[str, Any]]:
    """(lower-case type, spec) of a metricSource; a metricSourceRef names a DataSource."""
    source = _mapping(_mapping(part).get("metricSource"))
    kind = source.get("type")
    ref = source.get("metricSourceRef")
    if kind is None and ref is not None and str(ref) in index.get("DataSource", {}):
        kind = _mapping(index["DataSource"][str(ref)].body.get("spec")).get("type")
    return str(kind or "unknown").lower(), _mapping(source.get("spec"))


def _own_source(sources: Mapping[str, tuple[str, Mapping[str, Any]]], fail: Report) -> Doc:
    """The fields a primewatch source names; good and total must name the same events."""
    if "metric" not in sources and set(sources) != {"good", "total"}:
        fail("a primewatch ratioMetric has a good and a total source (not bad or raw)")
        return {}
    identity = SOURCE_KEYS - {"events", "selectors"}
    views = []
    for part, (_, spec) in sources.items():
        unknown = sorted(set(map(str, spec)) - SOURCE_KEYS)
        if unknown:
            fail(f"unknown key(s) {', '.join(unknown)} in the {part} primewatch metricSource "
                 f"(known: {', '.join(sorted(SOURCE_KEYS))})")
        views.append({k: v for k, v in spec.items() if k in identity})
    if any(view != views[0] for view in views):
        fail("the good and total primewatch metric sources name different events")
    for key in ("target", "sli"):
        if key not in views[0]:
            fail(f"the primewatch metricSource spec needs `{key}`")
    return views[0]


def _window(value: Any, annotations: Mapping[str, str], fail: Report) -> Doc:
    """window and timezone; no timeWindow (optional in v1) leaves primewatch's 30d."""
    out: Doc = {}
    if value is not None and (not isinstance(value, list) or len(value) != 1
                              or not isinstance(value[0], dict)):
        fail("spec.timeWindow must be a list of exactly one window")
    elif value is not None:
        window = value[0]
        duration, calendar = str(window.get("duration", "")), window.get("calendar")
        match = _SHORTHAND.fullmatch(duration)
        if match is None:
            fail(f"timeWindow duration {duration!r} is not a duration shorthand "
                 "(30d, 4w, 1M, 1Q)")
        elif calendar is not None:
            unit = CALENDAR_IMPORT.get(duration)
            if window.get("isRolling") is True:
                fail("a timeWindow with `calendar` cannot have isRolling: true")
            elif unit is None:
                fail(f"calendar window {duration} is not supported: primewatch's calendar "
                     "windows are a quarter (1Q), a month (1M) or a week (1w)")
            else:
                zone = _mapping(calendar).get("timeZone", "UTC")
                out = {"window": unit, "timezone": str(zone)}
                _check_start(_mapping(calendar).get("startTime"), unit, fail)
        elif window.get("isRolling") is False:
            fail("a timeWindow with isRolling: false needs `calendar`")
        elif match.group(2) in "MQY":
            fail(f"rolling window {duration} is not a fixed length: write it in days or weeks "
                 "(e.g. 30d)")
        else:
            out = {"window": duration}
    if "timezone" not in out and "primewatch/timezone" in annotations:
        out["timezone"] = annotations["primewatch/timezone"]
    return out


def _check_start(value: Any, unit: str, fail: Report) -> None:
    """primewatch periods start at local midnight on the 1st of January, April, July or
    October (quarters), the 1st (months) or a Monday (weeks); another startTime would
    shift every period, so it is refused rather than silently moved."""
    if value is None:
        return
    start: date | None = value if isinstance(value, date) else None
    if isinstance(value, str):
        try:
            start = datetime.fromisoformat(value.strip())
        except ValueError:
            fail(f"calendar startTime {value!r} is not a date and time (2024-01-01 00:00:00)")
            return
    midnight = not isinstance(start, datetime) or start.time() == time(0)
    if not (midnight and start is not None and _starts_period(start, unit)):
        first = {"quarter": "the 1st of January, April, July or October",
                 "month": "the 1st"}.get(unit, "a Monday")
        fail(f"calendar startTime {value} does not start a {unit}: primewatch's {unit}s start "
             f"at local midnight on {first}")


def _starts_period(start: date, unit: str) -> bool:
    """Whether the day `start` is the first of a primewatch quarter, month or week."""
    if unit == "quarter":
        return start.day == 1 and start.month in QUARTER_FIRST_MONTHS
    if unit == "month":
        return start.day == 1
    return start.weekday() == 0


def _budgeting(value: Any, fail: Report) -> str:
    methods = {v.lower(): k for k, v in BUDGETING.items()}
    if str(value).lower() in methods:
        return methods[str(value).lower()]
    known = ", ".join(BUDGETING.values())
    fail(f"budgetingMethod {value!r} is not one of {known}" if value is not None
         else f"spec.budgetingMethod is missing ({known})")
    return "occurrences"


def _percent(value: Any, scale: float) -> float | int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = round(float(value) * scale, 10)
    return int(number) if number.is_integer() else number


def _objective(objective: Mapping[str, Any], budgeting: str, fields: Mapping[str, Any],
               fail: Report) -> Doc:
    out: Doc = {}
    target, percent = objective.get("target"), objective.get("targetPercent")
    if (target is None) == (percent is None):
        fail("give exactly one of target (0.999) or targetPercent (99.9)")
    else:
        out["objective"] = _percent(target, 100) if percent is None else _percent(percent, 1)
        if out["objective"] is None:
            fail(f"target {target if percent is None else percent!r} is not a number")
    if budgeting != "occurrences":
        window = objective.get("timeSliceWindow")
        if isinstance(window, int) and not isinstance(window, bool):
            out["timeslice"] = f"{window}m"  # a bare number counts minutes
        elif isinstance(window, str) and (match := _SHORTHAND.fullmatch(window)) \
                and match.group(2) in _SHORTHAND_SECONDS:
            out["timeslice"] = window
        else:
            fail(f"timeSliceWindow {window!r}: {BUDGETING[budgeting]} needs a slice length "
                 "such as 1m or 5m")
    if budgeting == "timeslices":
        out["timeslice_target"] = _percent(objective.get("timeSliceTarget"), 100)
        if out["timeslice_target"] is None:
            fail("Timeslices needs timeSliceTarget, the ratio that makes a slice good (0.99)")
    if fields.get("sli") == "threshold":
        comparison = {"lte": "<=", "lt": "<=", "gte": ">=", "gt": ">="}.get(
            str(objective.get("op")))
        value = fields.get("threshold", objective.get("value"))
        if comparison is None or value is None:
            fail("a threshold SLI's objective needs `op` (lte or gte) and `value`, the threshold")
        else:
            out["threshold"] = value
            if comparison != "<=":  # the default, left out as a hand-written config would
                out["comparison"] = comparison
    return out


def _alerts(policies: Any, annotations: Mapping[str, str], index: Index, fail: Report) -> Doc:
    """primewatch `alerts:` (only what differs from the defaults) from alert policies.

    A policy without alertWhenBreaching counts as alerting: a burn-rate policy exists to
    alert, and reading the omission as "never" would silently drop the tier."""
    rules: list[tuple[bool, Doc]] = []
    if policies is not None and not isinstance(policies, list):
        fail("spec.alertPolicies must be a list")
    for number, item in enumerate(policies if isinstance(policies, list) else []):
        policy = _resolve(_mapping(item), "alertPolicyRef", "AlertPolicy", index,
                          _prefixed(fail, f"alertPolicies[{number}]"))
        if policy is None:
            continue
        spec = _mapping(policy.get("spec"))
        breaching = spec.get("alertWhenBreaching", True) is not False
        for item_c in spec.get("conditions") or []:
            name = _mapping(policy.get("metadata")).get("name")
            condition = _resolve(_mapping(item_c), "conditionRef", "AlertCondition", index,
                                 _prefixed(fail, f"AlertPolicy {name!r}"))
            rule = _burn_rule(condition, fail) if condition is not None else None
            if rule is not None:
                rules.append((breaching, rule))
    out: Doc = {}
    silenced = bool(rules) and not any(on for on, _ in rules)
    if silenced or annotations.get("primewatch/alerts") == "disabled":
        out["enabled"] = False
    if annotations.get("primewatch/burn-rates") == "none":
        out["burn_rates"] = []
    elif rules and annotations.get("primewatch/burn-rates") != "default":
        active = [rule for on, rule in rules if on]
        out["burn_rates"] = active or [rule for _, rule in rules]
    if "primewatch/min-events" in annotations:
        try:
            out["min_events"] = int(annotations["primewatch/min-events"])
        except ValueError:
            fail("annotation primewatch/min-events must be a whole number")
    if "primewatch/no-data" in annotations:
        out["no_data"] = annotations["primewatch/no-data"]
    return out


def _resolve(item: Mapping[str, Any], ref_key: str, kind: str, index: Index,
             fail: Report) -> Mapping[str, Any] | None:
    if ref_key in item:
        found = index.get(kind, {}).get(str(item[ref_key]))
        if found is None:
            fail(f"{ref_key} {item[ref_key]!r} names no {kind} document in this file")
        return found.body if found else None
    if item.get("kind") == kind:
        return item
    fail(f"expected {ref_key} or an inline {kind}")
    return None


def _burn_rule(body: Mapping[str, Any], fail: Report) -> Doc | None:
    """An AlertCondition → a primewatch burn-rate tier: lookbackWindow is the long window,
    alertAfter the short one (long / 12, the Workbook's ratio, when it is 0 or missing)."""
    name = _mapping(body.get("metadata")).get("name")
    spec = _mapping(body.get("spec"))
    condition = _mapping(spec.get("condition"))
    annotations = _annotations(body)
    problems: list[str] = []
    severity = str(spec.get("severity", "")).lower()
    if severity not in ("page", "ticket"):
        problems.append(f"severity {spec.get('severity')!r} has no primewatch equivalent: "
                        "use page or ticket")
    if condition.get("kind", "burnrate") != "burnrate":
        problems.append(f"condition kind {condition.get('kind')!r}: only burnrate maps")
    if str(condition.get("op", "gte")) not in ("gte", "gt"):
        problems.append(f"op {condition.get('op')!r}: primewatch alerts when the burn rate is at "
                        "or above the threshold (gte)")
    threshold = condition.get("threshold")
    if isinstance(threshold, bool) or not isinstance(threshold, int | float) or threshold < 1:
        problems.append(f"threshold {threshold!r} must be a burn rate of at least 1 (a burn "
                        "below 1 finishes the window under budget)")
    long_window = annotations.get("primewatch/long-window") or _rolling(
        condition.get("lookbackWindow"))
    short_window = annotations.get("primewatch/short-window") or _rolling(
        condition.get("alertAfter"))
    if long_window is None:
        problems.append(f"lookbackWindow {condition.get('lookbackWindow')!r} must be a duration "
                        "in m, h, d or w")
    elif short_window is None:
        short_window = format_duration(parse_duration(long_window) / 12)
    for problem in problems:
        fail(f"AlertCondition {name!r}: {problem}")
    if problems:
        return None
    rule: Doc = {"severity": severity, "long_window": long_window, "short_window": short_window}
    if "primewatch/budget-share" not in annotations:
        return rule | {"threshold": threshold}
    try:
        return rule | {"budget_share": float(annotations["primewatch/budget-share"])}
    except ValueError:
        fail(f"AlertCondition {name!r}: annotation primewatch/budget-share must be a percent")
        return None


def _rolling(value: Any) -> str | None:
    """A shorthand primewatch reads as it is (m, h, d, w), or None (absent, 0, M/Q/Y)."""
    match = _SHORTHAND.fullmatch(str(value))
    if match is None or match.group(2) not in _SHORTHAND_SECONDS or int(match.group(1)) == 0:
        return None
    return match.group(0)


def _escape(value: Any) -> Any:
    """Double the `$` of `${NAME}` in text so the config loader keeps it, not interpolates."""
    if isinstance(value, dict):
        return {_escape(k): _escape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_escape(v) for v in value]
    if isinstance(value, str):
        return _VARIABLE.sub(lambda m: "$" + m.group(0), value)
    return value
