"""The `primewatch` command line, run in-process: output, exit codes and error messages."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from monitor.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, main
from monitor.storage.engine import head_revision
from tests.servers import RouteServer, route_server, send

SLO_NAMES = ["api-availability", "api-latency-p95", "web-availability"]


def write_config(tmp_path: Path, base_url: str = "http://127.0.0.1:9") -> Path:
    """A valid config with two targets, three SLOs and a SQLite file under tmp_path."""
    path = tmp_path / "primewatch.yaml"
    path.write_text(f"""\
service: {{name: CLI test}}
storage: {{url: "sqlite:///{tmp_path}/x.db"}}
targets:
  - {{name: api, type: http, url: "{base_url}/health", timeout: 2s}}
  - {{name: web, type: http, url: "{base_url}/", timeout: 2s}}
slos:
  - {{name: api-availability, target: api, sli: availability, objective: 99.9}}
  - {{name: api-latency-p95, target: api, sli: latency, threshold: 200ms, objective: 95}}
  - {{name: web-availability, target: web, sli: availability, objective: 99}}
alerting:
  policies:
    - {{name: default, steps: [{{notify: [hook]}}]}}
  channels:
    - {{name: hook, type: webhook, url: "{base_url}/hook"}}
""", encoding="utf-8")
    return path


def health(handler: BaseHTTPRequestHandler) -> None:
    send(handler, 200, '{"status": "ok"}', "application/json")


def broken(handler: BaseHTTPRequestHandler) -> None:
    send(handler, 500, "internal error")


@pytest.fixture
def server() -> Iterator[RouteServer]:
    with route_server({"/health": health, "/": broken}) as running:
        yield running


@pytest.fixture(autouse=True)
def _no_config_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PRIMEWATCH_CONFIG", raising=False)


def test_help_lists_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for command in ("run", "check", "probe", "db", "slo", "demo-target", "--config"):
        assert command in out


def test_missing_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main([])
    assert info.value.code == EXIT_USAGE
    assert "COMMAND" in capsys.readouterr().err


def test_check_prints_the_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_config(tmp_path)
    assert main(["--config", str(path), "check"]) == EXIT_OK
    captured = capsys.readouterr()
    assert captured.out == (f"{path}: OK — 2 targets, 3 SLOs, 1 of 1 channels enabled, "
                            "1 escalation policies\n")
    assert "error" not in captured.err


def test_check_warns_about_literal_secrets_and_disabled_channels(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("""\
alerting:
  channels:
    - {name: pager, type: pagerduty, routing_key: R0UT1NG}
    - {name: chat, type: slack}
""", encoding="utf-8")
    assert main(["--config", str(path), "check"]) == EXIT_OK
    err = capsys.readouterr().err
    assert f"warning: {path}:3: alerting.channels[0].routing_key: a literal secret" in err
    assert "notice: channel 'chat' is disabled: token or webhook_url empty" in err


def test_check_lists_every_error_with_file_line_and_key(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("""\
targets:
  - name: api
    type: http
    url: http://127.0.0.1:9/
    interval: 10x
slos:
  - {name: avail, target: shop, sli: availability, objective: 99}
""", encoding="utf-8")
    assert main(["--config", str(path), "check"]) == EXIT_USAGE
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert lines == [
        f"error: {path}:5: targets[0].interval: invalid duration '10x': "
        "expected e.g. 500ms, 10s, 5m, 30d",
        f"error: {path}:7: slos[0].target: SLO 'avail' names target 'shop', which is not "
        "defined (targets: api)",
        f"{path}: 2 error(s)",
    ]
    assert all(re.fullmatch(r"error: .+:\d+: [\w.\[\]]+: .+", line) for line in lines[:-1])


def test_missing_config_file_is_a_clear_usage_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.yaml"
    assert main(["--config", str(missing), "check"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert f"error: {missing}: cannot read config: No such file or directory" in err


def test_primewatch_config_env_var_is_the_default(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    path = write_config(tmp_path)
    # read by build_parser, which main() calls on every invocation
    monkeypatch.setenv("PRIMEWATCH_CONFIG", str(path))
    assert main(["check"]) == EXIT_OK
    assert capsys.readouterr().out.startswith(f"{path}: OK")
    # an explicit --config still wins
    assert main(["--config", str(tmp_path / "other.yaml"), "check"]) == EXIT_USAGE
    assert "other.yaml: cannot read config" in capsys.readouterr().err


def test_config_is_interpolated_from_the_process_environment(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("service: {name: '${PW_TEST_SERVICE}'}\n", encoding="utf-8")
    monkeypatch.delenv("PW_TEST_SERVICE", raising=False)
    assert main(["--config", str(path), "check"]) == EXIT_USAGE
    assert "environment variable PW_TEST_SERVICE is not set" in capsys.readouterr().err
    monkeypatch.setenv("PW_TEST_SERVICE", "shop")
    assert main(["--config", str(path), "check"]) == EXIT_OK


def test_probe_of_a_healthy_target_prints_what_it_measured(
        tmp_path: Path, server: RouteServer, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_config(tmp_path, server.url)
    assert main(["--config", str(path), "probe", "api"]) == EXIT_OK
    out = capsys.readouterr().out
    assert f"api ({server.url}/health): OK" in out
    assert re.search(r"latency: \d+(\.\d+)? m?s\n", out)
    assert "status_code: 200" in out
    assert server.hits["/health"] == 1


def test_probe_of_a_failing_target_exits_1(
        tmp_path: Path, server: RouteServer, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_config(tmp_path, server.url)
    assert main(["--config", str(path), "probe", "web"]) == EXIT_FAILED
    out = capsys.readouterr().out
    assert "FAILED (http_status)" in out
    assert "status_code: 500" in out


def test_probe_json_is_machine_readable(
        tmp_path: Path, server: RouteServer, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_config(tmp_path, server.url)
    assert main(["--config", str(path), "probe", "api", "--json"]) == EXIT_OK
    result = json.loads(capsys.readouterr().out)
    assert result["target"] == "api"
    assert result["ok"] is True
    assert result["status_code"] == 200
    assert result["error_class"] is None
    assert isinstance(result["latency_ms"], float) and result["latency_ms"] > 0

    assert main(["--config", str(path), "probe", "web", "--json"]) == EXIT_FAILED
    failed = json.loads(capsys.readouterr().out)
    assert (failed["ok"], failed["status_code"], failed["error_class"]) == \
        (False, 500, "http_status")


def test_probe_of_an_unknown_target_names_the_known_ones(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_config(tmp_path)
    assert main(["--config", str(path), "probe", "db"]) == EXIT_USAGE
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "error: no target named 'db' (targets: api, web)" in captured.err


def test_db_upgrade_creates_the_schema_and_is_repeatable(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_config(tmp_path)
    assert main(["--config", str(path), "db", "upgrade"]) == EXIT_OK
    assert (tmp_path / "x.db").exists()
    assert main(["--config", str(path), "db", "upgrade"]) == EXIT_OK
    assert capsys.readouterr().out.splitlines() == [f"database at revision {head_revision()}"] * 2


def test_slo_status_before_db_upgrade_says_what_to_run(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_config(tmp_path)
    assert main(["--config", str(path), "slo", "status"]) == EXIT_USAGE
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "run `primewatch db upgrade`" in captured.err


def test_slo_status_json_lists_every_slo_without_data(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_config(tmp_path)
    assert main(["--config", str(path), "db", "upgrade"]) == EXIT_OK
    capsys.readouterr()
    assert main(["--config", str(path), "slo", "status", "--json"]) == EXIT_OK
    report = json.loads(capsys.readouterr().out)
    assert report["phases"] == [] and report["triggers"] == []
    statuses = report["slos"]
    assert [s["name"] for s in statuses] == SLO_NAMES
    assert {s["state"] for s in statuses} == {"no_data"}
    assert [s["objective"] for s in statuses] == [0.999, 0.95, 0.99]
    assert all(s["total"] == 0 for s in statuses)


def test_slo_status_table_names_every_slo(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_config(tmp_path)
    assert main(["--config", str(path), "db", "upgrade"]) == EXIT_OK
    capsys.readouterr()
    assert main(["--config", str(path), "slo", "status"]) == EXIT_OK
    out = capsys.readouterr().out
    assert "SLOs — CLI test" in out
    for name in SLO_NAMES:  # whole, even though captured output is not a terminal
        assert name in out
    assert out.count("no data") == len(SLO_NAMES)


def test_probe_of_a_counter_kind_measures_twice_to_show_deltas(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    scrapes = {"n": 0}

    def metrics(handler: BaseHTTPRequestHandler) -> None:
        scrapes["n"] += 1
        ok, failed = 10 * scrapes["n"], scrapes["n"]
        send(handler, 200, "# TYPE requests_total counter\n"
                           f'requests_total{{code="200"}} {ok}\n'
                           f'requests_total{{code="500"}} {failed}\n')

    with route_server({"/metrics": metrics}) as srv:
        config = tmp_path / "config.yaml"
        config.write_text(f"""
targets:
  - name: app
    type: prometheus
    url: {srv.url}/metrics
    ratios:
      requests_ok: {{good: 'requests_total{{code!~"5.."}}', total: requests_total}}
""")
        code = main(["--config", str(config), "probe", "app", "--json", "--gap", "0.1"])
    data = json.loads(capsys.readouterr().out)
    assert code == EXIT_OK
    assert scrapes["n"] == 2
    assert data["counts"]["requests_ok"] == {"good": 10.0, "total": 11.0}


def test_disabled_targets_are_announced_and_their_slos_skipped(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("""
targets:
  - {name: web, type: http, url: "http://127.0.0.1:9/"}
  - {name: cache, type: redis, url: "redis://127.0.0.1:1/0", enabled: "${REDIS_ON:-false}"}
slos:
  - {name: web-up, target: web, sli: availability, objective: 99}
  - {name: hits, target: cache, sli: ratio, stream: cache, objective: 70}
""")
    assert main(["--config", str(config), "check"]) == EXIT_OK
    captured = capsys.readouterr()
    assert "1 targets (+1 disabled), 1 SLOs" in captured.out
    assert "target 'cache' is disabled" in captured.err
    assert "SLOs not evaluated: hits" in captured.err
    assert main(["--config", str(config), "probe", "cache"]) == EXIT_USAGE
