"""`primewatch export prometheus-rules`: rules promtool accepts, alerting like primewatch.

The proof that the rules alert at the right moments is promtool's own unit test of the
shipped example (slo/examples/prometheus/rules_test.yaml); these tests make sure that
example is what `render` produces today, so the proof cannot go stale.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.cli import main
from monitor.config import Settings
from monitor.config_loader import load_config
from monitor.exports import renderer
from monitor.exports.prometheus_rules import ALERT_NAME, render
from monitor.slo_engine import alert_tiers
from tests.conftest import make_settings
from tests.test_metrics_prometheus import binary

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "slo" / "examples" / "prometheus"
REGENERATE = ("primewatch --config slo/examples/prometheus/config.yaml export "
              "prometheus-rules -o slo/examples/prometheus/rules.yaml")
# config.yaml's variables all have defaults; these switch on what is off by default
# (the redis target and its SLO) and set a public URL, so the rules have links.
REPO_ENV = {"PRIMEWATCH_PUBLIC_URL": "https://primewatch.example.com",
            "PRIMETRADE_REDIS_ENABLED": "true", "PRIMETRADE_MONGODB_ENABLED": "true"}


def run_promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([binary("promtool"), *args], capture_output=True, text=True, timeout=60,
                          cwd=cwd, check=False)


def check_rules(text: str, tmp_path: Path) -> str:
    """Run `promtool check rules` on `text`; return its output, failing with it."""
    path = tmp_path / "rules.yaml"
    path.write_text(text, encoding="utf-8")
    result = run_promtool("check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def example_settings() -> Settings:
    return load_config(EXAMPLE / "config.yaml", {}).settings


def rules_of(text: str) -> dict[str, list[dict[str, Any]]]:
    """Group name → rules."""
    return {group["name"]: group["rules"] for group in yaml.safe_load(text)["groups"]}


def test_shipped_example_is_what_render_produces_today() -> None:
    shipped = (EXAMPLE / "rules.yaml").read_text(encoding="utf-8")
    assert shipped == render(example_settings()), f"regenerate it: {REGENERATE}"


def test_registered_as_the_prometheus_rules_exporter() -> None:
    assert renderer("prometheus-rules") is render


def test_promtool_accepts_the_rules_for_the_repo_config(tmp_path: Path) -> None:
    settings = load_config(ROOT / "config.yaml", REPO_ENV).settings
    text = render(settings)
    output = check_rules(text, tmp_path)
    groups = rules_of(text)
    for slo in settings.slos:
        assert f"primewatch-slo-sli-recordings-{slo.name}" in groups
        assert f"primewatch-slo-alerts-{slo.name}" in groups
    assert "redis-hit-rate" in {slo.name for slo in settings.slos}
    rules = sum(len(r) for r in groups.values())
    assert f"SUCCESS: {rules} rules found" in output


def test_promtool_accepts_the_shipped_example() -> None:
    result = run_promtool("check", "rules", str(EXAMPLE / "rules.yaml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_of_the_example_pass() -> None:
    """Page not before a 100% outage, page within 3 minutes of it, a ticket (no page) at
    a 0.2% error ratio, and custom tiers at their own thresholds."""
    result = run_promtool("test", "rules", "rules_test.yaml", cwd=EXAMPLE)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_thresholds_are_primewatch_alert_tiers_default_scaled_and_custom(
        tmp_path: Path) -> None:
    settings = make_settings(slos=[
        {"name": "weekly", "target": "api", "sli": "availability", "objective": 99,
         "window": "7d"},
        {"name": "custom", "target": "api", "sli": "availability", "objective": 99.5,
         "window": "30d", "alerts": {"min_events": 0, "burn_rates": [
             {"severity": "page", "long_window": "4h", "short_window": "15m",
              "threshold": 12.5},
             {"severity": "ticket", "long_window": "2d", "short_window": "3h",
              "budget_share": 20}]}},
    ])
    text = render(settings)
    check_rules(text, tmp_path)
    groups = rules_of(text)
    # 7 days scale the Workbook's shares to 3.36, 1.4, 0.7 and 0.7/3; as primewatch does,
    # 0.7 is raised to 1 and the 3d tier (at 1 too, only later) is dropped
    weekly = {r["labels"]["severity"]: r["expr"] for r in groups["primewatch-slo-alerts-weekly"]}
    assert "(3.36 * 0.01)" in weekly["page"] and "(1.4 * 0.01)" in weekly["page"]
    assert weekly["ticket"].count("(1 * 0.01)") == 2
    assert "ratio_rate1d{" in weekly["ticket"] and "ratio_rate3d{" not in weekly["ticket"]
    assert weekly["page"].count("sum(increase(") == 2  # min_events (default 10) per tier
    custom = {r["labels"]["severity"]: r["expr"] for r in groups["primewatch-slo-alerts-custom"]}
    assert "slo:sli_error:ratio_rate4h{" in custom["page"]
    assert "slo:sli_error:ratio_rate15m{" in custom["page"]
    assert custom["page"].count("(12.5 * 0.005)") == 2
    assert custom["ticket"].count("(3 * 0.005)") == 2  # 20% of 30 days spent in 2 days
    assert "increase(" not in custom["page"]  # min_events: 0 drops the guard
    slo = settings.slos[1]
    assert [t.threshold for t in alert_tiers(slo, 30 * 86400)] == [12.5, 3.0]
    recorded = {r["record"] for r in groups["primewatch-slo-sli-recordings-custom"]}
    for window in ("5m", "15m", "30m", "1h", "2h", "3h", "4h", "6h", "1d", "2d", "3d", "30d"):
        assert f"slo:sli_error:ratio_rate{window}" in recorded


def test_error_ratio_comes_from_the_event_counters() -> None:
    groups = rules_of(render(example_settings()))
    rule = next(r for r in groups["primewatch-slo-sli-recordings-api-availability"]
                if r["record"] == "slo:sli_error:ratio_rate1h")
    assert rule["expr"] == (
        'sum(rate(primewatch_slo_ingested_events_total{slo="api-availability",result="bad"}'
        '[1h]))\n/\n'
        'sum(rate(primewatch_slo_ingested_events_total{slo="api-availability"}[1h]))\n')
    assert rule["labels"] == {"primewatch_slo": "api-availability", "primewatch_window": "1h",
                              "team": "backend", "tier": "1"}


def test_alerts_carry_severity_the_slo_labels_and_a_dashboard_link() -> None:
    groups = rules_of(render(example_settings()))
    page, ticket = groups["primewatch-slo-alerts-api-availability"]
    assert page["alert"] == ticket["alert"] == ALERT_NAME
    assert page["labels"] == {"primewatch_slo": "api-availability", "severity": "page",
                              "team": "backend", "tier": "1"}
    assert ticket["labels"]["severity"] == "ticket"
    assert page["annotations"]["dashboard_url"] == \
        "https://primewatch.example.com/slos/api-availability"
    assert "14.4 over both 1h and 5m" in page["annotations"]["description"]


def test_no_public_url_no_link_and_disabled_alerts_only_record(tmp_path: Path) -> None:
    settings = make_settings()
    quiet = settings.slos[1].model_copy(
        update={"alerts": settings.slos[1].alerts.model_copy(update={"enabled": False})})
    settings = settings.model_copy(update={"slos": [settings.slos[0], quiet]})
    text = render(settings)
    check_rules(text, tmp_path)
    groups = rules_of(text)
    assert "primewatch-slo-alerts-api-latency" not in groups
    assert "primewatch-slo-meta-recordings-api-latency" in groups
    assert "# alerts.enabled is false: recording rules only." in text
    for rule in groups["primewatch-slo-alerts-api-availability"]:
        assert "dashboard_url" not in rule["annotations"]


def test_calendar_windows_use_a_fixed_period_and_say_so() -> None:
    text = render(example_settings())
    groups = rules_of(text)
    records = {r["record"]: r for r in groups["primewatch-slo-meta-recordings-uptime-monthly"]}
    assert records["slo:time_period:days"]["expr"] == "vector(30)"
    assert "slo:sli_error:ratio_rate30d{" in records["slo:period_burn_rate:ratio"]["expr"]
    assert "# A calendar month cannot be a range selector" in text
    assert "# Budgeting is timeslices in primewatch" in text


def test_odd_names_labels_and_windows_still_make_valid_rules(tmp_path: Path) -> None:
    """Label keys Prometheus refuses are rewritten, `{{` in descriptions is not read as a
    template, and a 90-minute window is written the way Prometheus parses it."""
    settings = make_settings(slos=[
        {"name": "odd.name:v2", "target": "api", "sli": "availability", "objective": 99,
         "window": "90m", "description": "Uses {{ braces }}",
         "labels": {"app.kubernetes.io/name": "api", "2fa": "yes", "team": "core"}},
    ])
    text = render(settings)
    check_rules(text, tmp_path)
    groups = rules_of(text)
    rule = groups["primewatch-slo-alerts-odd.name:v2"][0]
    assert {"app_kubernetes_io_name", "_2fa", "team"} <= set(rule["labels"])
    assert '{{ "{{" }} braces {{ "}}" }}' in rule["annotations"]["description"]
    recorded = {r["record"] for r in groups["primewatch-slo-sli-recordings-odd.name:v2"]}
    assert "slo:sli_error:ratio_rate1h30m" in recorded


def test_output_is_deterministic() -> None:
    first = make_settings(slos=[{"name": "a", "target": "api", "sli": "availability",
                                 "objective": 99, "labels": {"x": "1", "b": "2"}}])
    second = make_settings(slos=[{"name": "a", "target": "api", "sli": "availability",
                                  "objective": 99, "labels": {"b": "2", "x": "1"}}])
    assert render(first) == render(first) == render(second)


def test_no_slos_is_an_empty_valid_file(tmp_path: Path) -> None:
    text = render(make_settings(slos=[]))
    assert yaml.safe_load(text) == {"groups": []}
    check_rules(text, tmp_path)


def test_cli_writes_the_same_text(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out" / "rules.yaml"
    code = main(["--config", str(EXAMPLE / "config.yaml"), "export", "prometheus-rules",
                 "-o", str(out)])
    assert code == 0
    assert out.read_text(encoding="utf-8") == render(example_settings())
    assert "wrote prometheus-rules" in capsys.readouterr().err


def test_a_calendar_quarter_uses_91_days_and_says_so(tmp_path: Path) -> None:
    settings = make_settings(slos=[
        {"name": "quarterly", "target": "api", "sli": "availability", "objective": 99.9,
         "window": "calendar_quarter", "timezone": "Europe/Berlin"}])
    text = render(settings)
    check_rules(text, tmp_path)
    groups = rules_of(text)
    records = {r["record"]: r for r in groups["primewatch-slo-meta-recordings-quarterly"]}
    assert records["slo:time_period:days"]["expr"] == "vector(91)"
    assert "slo:sli_error:ratio_rate91d{" in records["slo:period_burn_rate:ratio"]["expr"]
    assert "slo:sli_error:ratio_rate91d" in {
        r["record"] for r in groups["primewatch-slo-sli-recordings-quarterly"]}
    assert ("# A calendar quarter cannot be a range selector: the period ratio is the last "
            "91d's\n# and thresholds are scaled to 91d (primewatch scales them to the current "
            "quarter's length).") in text
    # the Workbook's shares scaled to 91 days: 43.68, 18.2, 9.1 and 3.0333
    alerts = {r["labels"]["severity"]: r["expr"] for r in groups["primewatch-slo-alerts-quarterly"]}
    assert alerts["page"].count("(43.68 * 0.001)") == 2
    assert alerts["page"].count("(18.2 * 0.001)") == 2
    assert alerts["ticket"].count("(9.1 * 0.001)") == 2
    assert alerts["ticket"].count("(3.03333333333 * 0.001)") == 2
