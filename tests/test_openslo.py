"""OpenSLO export and import: the repo's config survives export → import unchanged,
hand-written OpenSLO maps as documented, and whatever cannot map is reported in full,
by the module and by `primewatch import openslo`."""

from __future__ import annotations

import os
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.cli import EXIT_OK, EXIT_USAGE, main
from monitor.config import Settings
from monitor.config_loader import LoadedConfig, load_config, parse_config
from monitor.config_slo import SloConfig
from monitor.exports import EXPORTERS, renderer
from monitor.exports.openslo import OpenSloImportError, import_openslo, render

REPO = Path(__file__).resolve().parent.parent
# every SLO of config.yaml (redis is off by default) and a calendar zone that is not UTC
ENV = {"PRIMETRADE_REDIS_ENABLED": "true", "PRIMEWATCH_TIMEZONE": "Europe/Berlin"}
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
SHORTHAND = re.compile(r"^[1-9][0-9]*[mhdwMQY]$")


@pytest.fixture(scope="module")
def repo_config() -> LoadedConfig:
    return load_config(REPO / "config.yaml", ENV)


def documents(text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(text) if doc is not None]


def dumps(slos: list[SloConfig]) -> list[dict[str, Any]]:
    return [slo.model_dump() for slo in slos]


TARGET_KINDS: dict[str, dict[str, object]] = {
    # The kinds whose streams and values the SLOs below read (`check` refuses others).
    "db": {"type": "sql", "url": "sqlite:///:memory:", "query": "SELECT 1",
           "database_size": True},
    "cache": {"type": "redis", "url": "redis://127.0.0.1:9/0"},
}


def target_configs(targets: list[str]) -> list[dict[str, object]]:
    return [{"name": t, **TARGET_KINDS.get(t, {"type": "http", "url": "http://127.0.0.1:9/"})}
            for t in targets]


def load_with_targets(imported: str, targets: list[str]) -> list[SloConfig]:
    """The imported `slos:` as the real loader reads it (`${...}` interpolation included)."""
    config = {"targets": target_configs(targets), **yaml.safe_load(imported)}
    return parse_config(yaml.safe_dump(config), "imported.yaml", {}).settings.slos


def test_the_registry_names_this_module() -> None:
    assert EXPORTERS["openslo"][0] == "monitor.exports.openslo"
    assert renderer("openslo") is render


# --- export ---------------------------------------------------------------------------


def test_export_of_the_repo_config_has_every_document(repo_config: LoadedConfig) -> None:
    slos = repo_config.settings.slos
    docs = documents(render(repo_config.settings))
    assert {doc["apiVersion"] for doc in docs} == {"openslo/v1"}
    assert Counter(doc["kind"] for doc in docs) == {
        "Service": 1, "SLI": len(slos), "SLO": len(slos),
        # the Workbook's four tiers, one policy each; 7 days drop the 3d/6h ticket
        "AlertPolicy": 4 * len(slos) - sum(slo.window == 7 * 86400 for slo in slos),
        "AlertNotificationTarget": 2}
    names: dict[str, set[str]] = {}
    for doc in docs:
        assert DNS_LABEL.match(doc["metadata"]["name"]), doc["metadata"]["name"]
        names.setdefault(doc["kind"], set()).add(doc["metadata"]["name"])
    for doc in docs:
        spec = doc["spec"]
        if doc["kind"] == "SLO":
            assert spec["service"] == "primetrade-dashboard"
            assert spec["indicatorRef"] in names["SLI"]
            assert {p["alertPolicyRef"] for p in spec["alertPolicies"]} <= names["AlertPolicy"]
            assert SHORTHAND.match(spec["timeWindow"][0]["duration"])
            assert all(0 < o["target"] < 1 for o in spec["objectives"])
        if doc["kind"] == "AlertPolicy":  # v1: exactly one condition, some target
            (condition,) = spec["conditions"]
            assert condition["spec"]["condition"]["kind"] == "burnrate"
            assert condition["spec"]["condition"]["op"] == "gte"
            assert SHORTHAND.match(condition["spec"]["condition"]["lookbackWindow"])
            assert spec["notificationTargets"][0]["targetRef"] in names["AlertNotificationTarget"]


def test_export_maps_each_sli_kind_window_and_budgeting_method(
        repo_config: LoadedConfig) -> None:
    docs = {(doc["kind"], doc["metadata"]["name"]): doc
            for doc in documents(render(repo_config.settings))}
    latency = docs["SLI", "api-latency-p95"]["spec"]["ratioMetric"]
    assert latency["good"]["metricSource"] == {"type": "primewatch", "spec": {
        "target": "api-tasks", "sli": "latency", "threshold": "200ms", "events": "good"}}
    ratio = docs["SLI", "api-error-rate"]["spec"]["ratioMetric"]["good"]["metricSource"]["spec"]
    assert ratio["stream"] == "requests_ok"
    assert ratio["selectors"] == ['http_requests_total{code!~"5.."}']
    threshold = docs["SLI", "db-query-time"]["spec"]["thresholdMetric"]["metricSource"]["spec"]
    assert threshold == {"target": "database", "sli": "threshold", "value": "query_seconds"}
    assert docs["SLO", "db-query-time"]["spec"]["objectives"] == [
        {"target": 0.99, "op": "lte", "value": 0.05}]
    monthly = docs["SLO", "uptime-monthly"]
    assert monthly["metadata"]["labels"] == {"metric": "uptime"}
    assert monthly["spec"]["timeWindow"] == [{"duration": "1M", "isRolling": False, "calendar": {
        "startTime": "2024-01-01 00:00:00", "timeZone": "Europe/Berlin"}}]
    assert monthly["spec"]["budgetingMethod"] == "Timeslices"
    assert monthly["spec"]["objectives"] == [
        {"target": 0.999, "timeSliceWindow": "1m", "timeSliceTarget": 0.99}]
    assert docs["SLO", "cache-hit-rate"]["spec"]["timeWindow"] == [
        {"duration": "7d", "isRolling": True}]
    page = docs["AlertPolicy", "api-availability-page-1h"]["spec"]["conditions"][0]["spec"]
    assert page["severity"] == "page"
    assert page["condition"] == {"kind": "burnrate", "op": "gte", "threshold": 14.4,
                                 "lookbackWindow": "1h", "alertAfter": "5m"}


def test_round_trip_restores_every_slo_of_the_repo_config(repo_config: LoadedConfig) -> None:
    slos = repo_config.settings.slos
    assert {s.sli for s in slos} == {"availability", "latency", "ratio", "threshold"}
    assert {s.budgeting for s in slos} == {"occurrences", "timeslices"}
    assert {s.calendar for s in slos} == {True, False}
    imported = import_openslo(render(repo_config.settings), "export.yaml")
    raw = yaml.safe_load((REPO / "config.yaml").read_text(encoding="utf-8"))
    raw["slos"] = yaml.safe_load(imported)["slos"]
    again = parse_config(yaml.safe_dump(raw, sort_keys=False), "roundtrip.yaml", ENV)
    assert dumps(again.settings.slos) == dumps(slos)


OPTIONS: list[dict[str, Any]] = [
    {"name": "API_latency.p95", "target": "api", "sli": "latency", "threshold": "250ms",
     "objective": 99.5, "window": "week", "timezone": "America/New_York",
     "budgeting": "ratio_timeslices", "timeslice": "5m", "public": True,
     "description": "p95 under 250 ms; ${NOT_A_VARIABLE} stays text",
     "labels": {"team": "edge", "tier": "1"}},
    {"name": "api.latency.p95", "target": "api", "sli": "latency", "threshold": 0.0005,
     "objective": 99, "window": "90m", "timezone": "Asia/Kolkata"},
    {"name": "disk-size", "target": "db", "sli": "threshold", "value": "database_size_bytes",
     "threshold": "10GB", "comparison": ">=", "objective": 90, "window": "36h",
     "region": "eu", "alerts": {
         "enabled": False, "min_events": 3, "no_data": "30m", "burn_rates": [
             {"severity": "page", "long_window": "1h", "short_window": "30s",
              "budget_share": 2},
             {"severity": "ticket", "long_window": "1d", "short_window": "2h",
              "threshold": 2.5}]}},
    {"name": "hits", "target": "cache", "sli": "ratio", "stream": "cache", "objective": 70,
     "window": "2w", "budgeting": "timeslices", "timeslice": "1h", "timeslice_target": 75,
     "alerts": {"burn_rates": [{"severity": "ticket", "long_window": "6h",
                                "short_window": "30m", "budget_share": 5}]}},
    {"name": "quiet", "target": "api", "sli": "availability", "objective": 99,
     "alerts": {"enabled": False, "burn_rates": []}},
]


def test_round_trip_keeps_every_option() -> None:
    """What config.yaml does not use: week windows, RatioTimeslices, `>=` and sizes,
    regions, own burn-rate tiers (a share, a threshold, a sub-minute window), disabled
    alerts and alerts without tiers, names that are not DNS labels (two of them alike),
    `${` in text."""
    targets = ["api", "db", "cache"]
    settings = Settings.model_validate({
        "targets": target_configs(targets), "slos": OPTIONS})
    exported = render(settings)
    docs = documents(exported)
    slo_names = [doc["metadata"]["name"] for doc in docs if doc["kind"] == "SLO"]
    assert slo_names == ["api-latency-p95", "api-latency-p95-2", "disk-size", "hits", "quiet"]
    assert all(DNS_LABEL.match(doc["metadata"]["name"]) for doc in docs)
    disk = next(doc for doc in docs if doc["metadata"]["name"] == "disk-size-page-1h")
    assert disk["spec"]["alertWhenBreaching"] is False
    condition = disk["spec"]["conditions"][0]
    assert condition["metadata"]["annotations"] == {
        "primewatch/budget-share": "2.0", "primewatch/short-window": "30s"}
    assert condition["spec"]["condition"]["alertAfter"] == "1m"  # no seconds in OpenSLO
    again = load_with_targets(import_openslo(exported, "export.yaml"), targets)
    assert dumps(again) == dumps(settings.slos)


# --- import ---------------------------------------------------------------------------

EXAMPLE = """\
apiVersion: openslo/v1
kind: Service
metadata: {name: web-shop}
spec: {description: The shop}
---
apiVersion: openslo/v1
kind: DataSource
metadata: {name: prometheus-datasource}
spec:
  type: Prometheus
  connectionDetails: {url: "http://prometheus:9090"}
---
apiVersion: openslo/v1
kind: SLI
metadata: {name: shop-requests, displayName: Successful shop requests}
spec:
  ratioMetric:
    counter: true
    good:
      metricSource:
        metricSourceRef: prometheus-datasource
        spec: {query: 'sum(rate(http_requests_total{code!~"5.."}[5m]))'}
    total:
      metricSource:
        type: Prometheus
        spec: {query: 'sum(rate(http_requests_total[5m]))'}
---
apiVersion: openslo/v1
kind: SLO
metadata:
  name: shop-availability
  labels: {team: shop, tags: [web, checkout]}
  annotations:
    primewatch/target: shop-health
    primewatch/sli: availability
spec:
  description: The shop answers.
  service: web-shop
  indicatorRef: shop-requests
  timeWindow: [{duration: 28d, isRolling: true}]
  budgetingMethod: Occurrences
  objectives: [{displayName: Good, target: 0.995}]
  alertPolicies: [{alertPolicyRef: shop-fast-burn}]
---
apiVersion: openslo/v1
kind: AlertPolicy
metadata: {name: shop-fast-burn}
spec:
  alertWhenBreaching: true
  conditions: [{conditionRef: fast-burn}]
  notificationTargets: [{targetRef: oncall}]
---
apiVersion: openslo/v1
kind: AlertCondition
metadata: {name: fast-burn}
spec:
  severity: page
  condition: {kind: burnrate, op: gte, threshold: 14.4, lookbackWindow: 1h, alertAfter: 5m}
---
apiVersion: openslo/v1
kind: AlertNotificationTarget
metadata: {name: oncall}
spec: {target: slack}
---
# an SLA: a calendar month of good minutes, an internal objective and the contract's
apiVersion: openslo/v1
kind: SLO
metadata: {name: service-availability}
spec:
  service: web-shop
  indicator:
    metadata: {name: web-latency}
    spec:
      ratioMetric:
        good:
          metricSource:
            type: primewatch
            spec: {target: shop-health, sli: latency, threshold: 500ms, events: good}
        total:
          metricSource:
            type: primewatch
            spec: {target: shop-health, sli: latency, threshold: 500ms, events: total}
  timeWindow:
    - duration: 1M
      isRolling: false
      calendar: {startTime: 2022-01-01 00:00:00, timeZone: America/New_York}
  budgetingMethod: Timeslices
  objectives:
    - {displayName: Internal objective, target: 0.995, timeSliceTarget: 0.99,
       timeSliceWindow: 1m}
    - {displayName: SLA, targetPercent: 99, timeSliceTarget: 0.95, timeSliceWindow: 5}
---
apiVersion: openslo/v1
kind: SLO
metadata:
  name: search-latency
  annotations:
    primewatch/target: shop-search
    primewatch/sli: latency
    primewatch/threshold: 500ms
spec:
  service: web-shop
  indicator:
    metadata: {name: search-latency}
    spec:
      thresholdMetric:
        metricSource: {type: Any, spec: {query: Any}}
  timeWindow: [{duration: 2w, isRolling: true}]
  budgetingMethod: RatioTimeslices
  objectives:
    - {displayName: Good experience, op: lt, value: 500, target: 0.99, timeSliceWindow: 1m}
"""


def test_import_of_a_hand_written_openslo_example() -> None:
    imported = import_openslo(EXAMPLE, "shop.yaml")
    slos = load_with_targets(imported, ["shop-health", "shop-search"])
    expected = [
        {"name": "shop-availability", "target": "shop-health", "sli": "availability",
         "objective": 99.5, "window": "28d", "description": "The shop answers.",
         "labels": {"team": "shop", "tags": "web,checkout"},
         "alerts": {"burn_rates": [{"severity": "page", "long_window": "1h",
                                    "short_window": "5m", "threshold": 14.4}]}},
        {"name": "service-availability-internal-objective", "target": "shop-health",
         "sli": "latency", "threshold": "500ms", "objective": 99.5, "window": "month",
         "timezone": "America/New_York", "budgeting": "timeslices", "timeslice": "1m",
         "timeslice_target": 99},
        {"name": "service-availability-sla", "target": "shop-health", "sli": "latency",
         "threshold": "500ms", "objective": 99, "window": "month",
         "timezone": "America/New_York", "budgeting": "timeslices", "timeslice": "5m",
         "timeslice_target": 95},
        {"name": "search-latency", "target": "shop-search", "sli": "latency",
         "threshold": "500ms", "objective": 99, "window": "14d",
         "budgeting": "ratio_timeslices", "timeslice": "1m"},
    ]
    assert dumps(slos) == dumps([SloConfig.model_validate(e) for e in expected])


def test_a_condition_without_alert_after_gets_the_workbook_short_window() -> None:
    source = EXAMPLE.replace(", alertAfter: 5m}", "}").replace("lookbackWindow: 1h",
                                                                "lookbackWindow: 6h")
    slo = load_with_targets(import_openslo(source, "shop.yaml"), ["shop-health", "shop-search"])[0]
    assert slo.alerts.burn_rates != "default"
    assert [(r.long_window, r.short_window) for r in slo.alerts.burn_rates] == [(21600, 1800)]


BAD = """\
apiVersion: openslo/v1alpha
kind: SLO
metadata: {name: old}
spec: {}
---
apiVersion: openslo/v1
kind: Dashboard
metadata: {name: board}
---
apiVersion: openslo/v1
kind: SLO
metadata: {name: yearly}
spec:
  service: shop
  indicatorRef: nowhere
  timeWindow: [{duration: 1Y, calendar: {startTime: 2024-01-01 00:00:00, timeZone: UTC}}]
  objectives: [{target: 0.99}]
---
apiVersion: openslo/v1
kind: SLO
metadata: {name: prom}
spec:
  service: shop
  indicator:
    metadata: {name: prom}
    spec:
      ratioMetric:
        good: {metricSource: {type: Prometheus, spec: {query: up}}}
        total: {metricSource: {type: Prometheus, spec: {query: up}}}
  timeWindow: [{duration: 30d, isRolling: true}]
  budgetingMethod: Occurrences
  objectives: [{target: 0.99, targetPercent: 99}]
---
apiVersion: openslo/v1
kind: SLO
metadata: {name: sev, annotations: {primewatch/target: api}}
spec:
  service: shop
  indicator:
    metadata: {name: sev}
    spec:
      ratioMetric:
        good: {metricSource: {type: Datadog, spec: {query: ok}}}
        total: {metricSource: {type: Datadog, spec: {query: all}}}
  budgetingMethod: Occurrences
  objectives: [{target: 0.99}]
  alertPolicies:
    - kind: AlertPolicy
      metadata: {name: sev-page}
      spec:
        conditions:
          - kind: AlertCondition
            metadata: {name: sev1}
            spec:
              severity: sev1
              condition: {kind: burnrate, op: gte, threshold: 2, lookbackWindow: 1h}
---
apiVersion: openslo/v1
kind: SLO
metadata: {name: odd-slices, annotations: {primewatch/target: api}}
spec:
  service: shop
  indicator:
    metadata: {name: odd}
    spec:
      ratioMetric:
        good: {metricSource: {type: Any, spec: {}}}
        total: {metricSource: {type: Any, spec: {}}}
  timeWindow: [{duration: 1M, calendar: {startTime: 2024-01-15 00:00:00, timeZone: UTC}}]
  budgetingMethod: Timeslices
  objectives: [{target: 0.99, timeSliceTarget: 0.9, timeSliceWindow: 7m}]
---
apiVersion: openslo/v1
kind: SLO
metadata: {name: seven-minutes, annotations: {primewatch/target: api}}
spec:
  service: shop
  indicator:
    metadata: {name: seven}
    spec:
      ratioMetric:
        good: {metricSource: {type: Any, spec: {}}}
        total: {metricSource: {type: Any, spec: {}}}
  budgetingMethod: Timeslices
  objectives: [{target: 0.99, timeSliceTarget: 0.9, timeSliceWindow: 7m}]
"""


def test_every_problem_is_reported_with_its_document() -> None:
    with pytest.raises(OpenSloImportError) as caught:
        import_openslo(BAD, "bad.yaml")
    problems = caught.value.problems
    expected = [
        ("bad.yaml:1: document 1 (SLO 'old')",
         "apiVersion 'openslo/v1alpha' is not supported"),
        ("bad.yaml:6: document 2 (Dashboard 'board')", "unknown kind 'Dashboard'"),
        ("document 3 (SLO 'yearly')", "indicatorRef 'nowhere' names no SLI document"),
        ("document 3 (SLO 'yearly')", "calendar window 1Y is not supported: primewatch's "
                                      "calendar windows are a quarter (1Q), a month (1M) or "
                                      "a week (1w)"),
        ("document 3 (SLO 'yearly')", "spec.budgetingMethod is missing"),
        ("document 4 (SLO 'prom')",
         "metricSource prometheus cannot be probed by primewatch: set its primewatch target "
         "via metadata.annotations['primewatch/target']"),
        ("document 4 (SLO 'prom')", "give exactly one of target (0.999) or targetPercent"),
        ("document 5 (SLO 'sev')", "AlertCondition 'sev1': severity 'sev1' has no primewatch "
                                   "equivalent: use page or ticket"),
        ("document 6 (SLO 'odd-slices')", "calendar startTime 2024-01-15 00:00:00 does not "
                                          "start a month"),
        ("document 7 (SLO 'seven-minutes')", "SLO 'seven-minutes': `timeslice` must be whole "
                                             "minutes that divide a day"),
    ]
    assert len(problems) == len(expected), "\n".join(problems)
    for problem, (where, what) in zip(problems, expected, strict=True):
        assert where in problem and what in problem, problem


# --- calendar quarters -----------------------------------------------------------------

QUARTERLY: dict[str, Any] = {
    "name": "api-quarterly", "target": "api", "sli": "availability", "objective": 99.9,
    "window": "quarter", "timezone": "Europe/Berlin"}


def quarter_source(duration: str, start: str, zone: str = "America/New_York",
                   rolling: str = "") -> str:
    """One SLO over a primewatch source with the given calendar timeWindow."""
    source = "{type: primewatch, spec: {target: api, sli: availability, events: %s}}"
    return f"""\
apiVersion: openslo/v1
kind: SLO
metadata: {{name: api-quarterly}}
spec:
  service: shop
  indicator:
    metadata: {{name: api-quarterly}}
    spec:
      ratioMetric:
        good: {{metricSource: {source % "good"}}}
        total: {{metricSource: {source % "total"}}}
  timeWindow:
    - {{duration: {duration}, {rolling}calendar: {{startTime: {start}, timeZone: {zone}}}}}
  budgetingMethod: Occurrences
  objectives: [{{target: 0.999}}]
"""


def test_a_calendar_quarter_exports_as_1q_with_tiers_for_91_days() -> None:
    settings = Settings.model_validate({"targets": target_configs(["api"]),
                                        "slos": [QUARTERLY]})
    docs = documents(render(settings))
    (slo,) = (doc for doc in docs if doc["kind"] == "SLO")
    assert slo["spec"]["timeWindow"] == [{"duration": "1Q", "isRolling": False, "calendar": {
        "startTime": "2024-01-01 00:00:00", "timeZone": "Europe/Berlin"}}]
    assert "primewatch/timezone" not in slo["metadata"].get("annotations", {})
    thresholds = {doc["metadata"]["name"]: doc["spec"]["conditions"][0]["spec"]["condition"]
                  ["threshold"] for doc in docs if doc["kind"] == "AlertPolicy"}
    assert thresholds == {"api-quarterly-page-1h": 43.68, "api-quarterly-page-6h": 18.2,
                          "api-quarterly-ticket-1d": 9.1, "api-quarterly-ticket-3d": 3.033333}


def test_a_calendar_quarter_survives_export_and_import() -> None:
    settings = Settings.model_validate({"targets": target_configs(["api"]),
                                        "slos": [QUARTERLY]})
    imported = import_openslo(render(settings), "export.yaml")
    assert yaml.safe_load(imported)["slos"][0]["window"] == "quarter"
    again = load_with_targets(imported, ["api"])
    assert dumps(again) == dumps(settings.slos)


@pytest.mark.parametrize(("duration", "start"), [
    ("1Q", "2024-01-01 00:00:00"), ("1Q", "2023-10-01 00:00:00"), ("1Q", "2024-07-01"),
    ("3M", "2024-04-01 00:00:00")])
def test_import_reads_a_calendar_1q_as_a_quarter(duration: str, start: str) -> None:
    (slo,) = load_with_targets(import_openslo(quarter_source(duration, start), "q.yaml"),
                               ["api"])
    assert (slo.window, slo.timezone, slo.calendar) == ("quarter", "America/New_York", True)


@pytest.mark.parametrize("start", ["2024-02-01 00:00:00", "2024-04-02 00:00:00",
                                   "2024-04-01 06:00:00"])
def test_a_quarter_starting_off_a_quarter_start_is_refused(start: str) -> None:
    with pytest.raises(OpenSloImportError) as caught:
        import_openslo(quarter_source("1Q", start), "q.yaml")
    assert caught.value.problems == [
        f"q.yaml:1: document 1 (SLO 'api-quarterly'): calendar startTime {start} does not "
        "start a quarter: primewatch's quarters start at local midnight on the 1st of "
        "January, April, July or October"]


def test_a_rolling_quarter_is_refused() -> None:
    with pytest.raises(OpenSloImportError) as caught:
        import_openslo(quarter_source("1Q", "2024-01-01 00:00:00", rolling="isRolling: true, "),
                       "q.yaml")
    assert len(caught.value.problems) == 1
    assert "a timeWindow with `calendar` cannot have isRolling: true" in \
        caught.value.problems[0]


@pytest.mark.parametrize(("source", "message"), [
    ("kind: SLO\nmetadata: [1, 2\n", "bad.yaml:3: invalid YAML"),
    ("# nothing here\n", "bad.yaml: no SLO documents"),
    ("- just\n- a list\n", "bad.yaml:1: document 1: not a mapping"),
])
def test_input_that_is_not_openslo_at_all(source: str, message: str) -> None:
    with pytest.raises(OpenSloImportError) as caught:
        import_openslo(source, "bad.yaml")
    assert len(caught.value.problems) == 1
    assert caught.value.problems[0].startswith(message), caught.value.problems


# --- command line ---------------------------------------------------------------------


def test_cli_import_prints_slos_the_config_loads(
        repo_config: LoadedConfig, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "openslo.yaml"
    source.write_text(render(repo_config.settings), encoding="utf-8")
    assert main(["import", "openslo", str(source)]) == EXIT_OK
    printed = capsys.readouterr().out
    raw = yaml.safe_load((REPO / "config.yaml").read_text(encoding="utf-8"))
    raw["slos"] = yaml.safe_load(printed)["slos"]
    loaded = parse_config(yaml.safe_dump(raw, sort_keys=False), "cli.yaml", ENV)
    assert dumps(loaded.settings.slos) == dumps(repo_config.settings.slos)

    written = tmp_path / "out" / "slos.yaml"
    assert main(["import", "openslo", str(source), "-o", str(written)]) == EXIT_OK
    assert written.read_text(encoding="utf-8") == printed
    assert f"wrote slos to {written}" in capsys.readouterr().err


def test_cli_import_lists_every_error_and_exits_2(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "bad.yaml"
    source.write_text(BAD, encoding="utf-8")
    with pytest.raises(OpenSloImportError) as caught:
        import_openslo(BAD, str(source))
    assert main(["import", "openslo", str(source)]) == EXIT_USAGE
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines() == [f"error: {p}" for p in caught.value.problems]


def test_cli_export_prints_the_documents(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    config = REPO / "config.yaml"
    assert main(["--config", str(config), "export", "openslo"]) == EXIT_OK
    assert capsys.readouterr().out == render(load_config(config, os.environ).settings)
