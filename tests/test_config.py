"""Loading config.yaml: every bad config gets a named error with file, line and key path."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from textwrap import dedent

import pytest

from monitor.config_loader import LoadedConfig, load_config, parse_config
from monitor.errors import ConfigError, ConfigProblem

ROOT = Path(__file__).resolve().parent.parent

TARGET = "targets:\n  - {name: api, type: http, url: 'http://127.0.0.1:9/health'}\n"


def with_target(text: str) -> str:
    """`text` after a two-line `targets:` section defining target `api`."""
    return TARGET + dedent(text)


def problems(text: str, env: Mapping[str, str] | None = None) -> list[ConfigProblem]:
    """The problems parse_config reports for `text` (which must be invalid)."""
    with pytest.raises(ConfigError) as info:
        parse_config(dedent(text), "bad.yaml", env or {})
    return info.value.problems


def load(text: str, env: Mapping[str, str] | None = None) -> LoadedConfig:
    return parse_config(dedent(text), "good.yaml", env or {})


# (id, config text, line, key path, message fragment); each config has exactly one problem.
BAD_CONFIGS = [
    ("unknown-key", """\
        targets:
          - name: api
            type: http
            url: http://127.0.0.1:9/
            intervl: 10s
        """, 5, "targets[0].intervl", "unknown key 'intervl'; did you mean 'interval'?"),
    ("unknown-top-level-key", """\
        region: local
        servr:
          port: 8000
        """, 2, "servr", "did you mean 'server'?"),
    ("unknown-nested-key", """\
        targets:
          - name: api
            type: http
            url: http://127.0.0.1:9/
            expect: {statuss: [200]}
        """, 5, "targets[0].expect.statuss", "did you mean 'status'?"),
    ("unknown-channel-key", """\
        alerting:
          channels:
            - name: chat
              type: slack
              tokn: xoxb-1
        """, 5, "alerting.channels[0].tokn", "did you mean 'token'?"),
    ("bad-duration", """\
        targets:
          - name: api
            type: http
            url: http://127.0.0.1:9/
            interval: 10x
        """, 5, "targets[0].interval", "invalid duration '10x'"),
    ("bad-size", """\
        targets:
          - name: api
            type: http
            url: http://127.0.0.1:9/
            max_body: lots
        """, 5, "targets[0].max_body", "invalid size 'lots'"),
    ("ratio-instead-of-percent", with_target("""\
        slos:
          - name: avail
            target: api
            sli: availability
            objective: 0.999
        """), 7, "slos[0].objective", "objectives are written in percent"),
    ("percent-out-of-range", with_target("""\
        slos:
          - name: avail
            target: api
            sli: availability
            objective: 100%
        """), 7, "slos[0].objective", "out of range"),
    ("unknown-target-type", """\
        targets:
          - name: api
            type: ftp
            url: http://127.0.0.1:9/
        """, 3, "targets[0].type", "`type` must be one of 'http', 'mongodb'"),
    ("missing-target-type", """\
        targets:
          - name: api
            url: http://127.0.0.1:9/
        """, 2, "targets[0]", "required key 'type' is missing (one of 'http', 'mongodb'"),
    ("missing-channel-type", """\
        alerting:
          channels:
            - name: chat
        """, 3, "alerting.channels[0]", "required key 'type' is missing (one of 'slack',"),
    ("unknown-channel-type", """\
        alerting:
          channels:
            - name: chat
              type: sms
        """, 4, "alerting.channels[0].type", "`type` must be one of 'slack', 'pagerduty'"),
    ("missing-url", """\
        targets:
          - name: api
            type: http
        """, 2, "targets[0].url", "required key 'url' is missing"),
    ("bad-url", """\
        targets:
          - name: api
            type: http
            url: ftp://127.0.0.1/
        """, 4, "targets[0].url", "invalid URL 'ftp://127.0.0.1/'"),
    ("slo-without-objective", with_target("""\
        slos:
          - name: avail
            target: api
            sli: availability
        """), 4, "slos[0].objective", "required key 'objective' is missing"),
    ("latency-slo-without-threshold", with_target("""\
        slos:
          - name: fast
            target: api
            sli: latency
            objective: 95
        """), 4, "slos[0]", "a latency SLO needs `threshold`"),
    ("threshold-on-availability-slo", with_target("""\
        slos:
          - name: avail
            target: api
            sli: availability
            objective: 99
            threshold: 200ms
        """), 4, "slos[0]", "`threshold` does not apply to sli: availability"),
    ("slo-window-too-short", with_target("""\
        slos:
          - name: avail
            target: api
            sli: availability
            objective: 99
            window: 5m
        """), 4, "slos[0]", "`window` must be whole minutes and at least 1h"),
    ("slo-window-unknown-name", with_target("""\
        slos:
          - name: avail
            target: api
            sli: availability
            objective: 99
            window: quarterly
        """), 8, "slos[0].window",
     "invalid SLO window 'quarterly': expected month, quarter, week or a duration (30d)"),
    ("slo-naming-missing-target", with_target("""\
        slos:
          - name: avail
            target: web
            sli: availability
            objective: 99
        """), 5, "slos[0].target",
     "SLO 'avail' names target 'web', which is not defined (targets: api)"),
    ("duplicate-target-name",
     TARGET + "  - name: api\n    type: http\n    url: http://127.0.0.1:10/\n",
     3, "targets[1].name", "duplicate target name 'api'"),
    ("duplicate-slo-name", with_target("""\
        slos:
          - {name: avail, target: api, sli: availability, objective: 99}
          - name: avail
            target: api
            sli: availability
            objective: 99.9
        """), 5, "slos[1].name", "duplicate SLO name 'avail'"),
    ("policy-notifies-unknown-channel", """\
        alerting:
          channels:
            - {name: hook, type: webhook, url: 'http://127.0.0.1:9/'}
          policies:
            - name: default
              steps:
                - after: 5m
                  notify: [hook, pager]
        """, 8, "alerting.policies[0].steps[0].notify[1]",
     "policy 'default' notifies channel 'pager', which is not defined"),
    ("port-out-of-range", """\
        server:
          port: 70000
        """, 2, "server.port", "less than or equal to 65535"),
    ("missing-env-var", """\
        storage:
          url: ${PW_TEST_DATABASE_URL}
        """, 2, "storage.url", "environment variable PW_TEST_DATABASE_URL is not set"),
    ("invalid-yaml", """\
        service:
          name: shop
        region: a: b
        """, 3, "", "invalid YAML: mapping values are not allowed here"),
    ("tab-in-yaml", "service:\n  name: shop\n\tenvironment: prod\n",
     3, "", "invalid YAML: found character '\\t'"),
    ("top-level-list", """\
        - targets
        - slos
        """, 1, "", "the config must be a mapping of sections"),
    ("top-level-scalar", "just a string\n", 1, "", "the config must be a mapping of sections"),
]


@pytest.mark.parametrize(("text", "line", "path", "fragment"),
                         [case[1:] for case in BAD_CONFIGS], ids=[case[0] for case in BAD_CONFIGS])
def test_bad_config_is_reported_with_line_and_key_path(
        text: str, line: int, path: str, fragment: str) -> None:
    [problem] = problems(text)
    assert (problem.file, problem.line, problem.path) == ("bad.yaml", line, path)
    assert fragment in problem.message
    assert str(problem).startswith(f"bad.yaml:{line}:")


def test_missing_env_var_message_names_the_variable_and_the_optional_form() -> None:
    [problem] = problems("service:\n  environment: ${PW_TEST_ENV}\n")
    assert problem.message == ("environment variable PW_TEST_ENV is not set "
                               "(write ${PW_TEST_ENV:-} to make it optional)")
    assert str(problem) == "bad.yaml:2: service.environment: " + problem.message


def test_every_error_in_a_file_is_reported_sorted_by_line() -> None:
    found = problems("""\
        servr: {}
        targets:
          - name: api
            type: http
            url: http://127.0.0.1:9/
            interval: 10x
          - name: web
            url: http://127.0.0.1:9/
        slos:
          - name: avail
            target: shop
            sli: availability
            objective: 0.999
        storage:
          url: ${PW_TEST_UNSET}
        """)
    assert [(p.line, p.path) for p in found] == [
        (1, "servr"),
        (6, "targets[0].interval"),
        (7, "targets[1]"),
        (11, "slos[0].target"),
        (13, "slos[0].objective"),
        (15, "storage.url"),
    ]
    # The exception's text lists them all, one per line, for logs.
    with pytest.raises(ConfigError) as info:
        parse_config("servr: {}\nregion: ''\n", "bad.yaml", {})
    assert len(str(info.value).splitlines()) == 2


def test_env_var_is_substituted_and_default_used_when_unset() -> None:
    loaded = load("""\
        service:
          name: ${PW_TEST_NAME}
          environment: ${PW_TEST_ENVIRONMENT:-staging}
        """, {"PW_TEST_NAME": "shop"})
    assert loaded.settings.service.name == "shop"
    assert loaded.settings.service.environment == "staging"


def test_env_var_wins_over_its_default_even_when_empty() -> None:
    loaded = load("service:\n  environment: ${PW_TEST_ENVIRONMENT:-staging}\n",
                  {"PW_TEST_ENVIRONMENT": ""})
    assert loaded.settings.service.environment == ""


def test_env_var_inside_a_longer_string_and_as_numbers() -> None:
    loaded = load("""\
        server:
          port: ${PW_TEST_PORT}
        targets:
          - name: api
            type: http
            url: ${PW_TEST_BASE}/health?probe=${PW_TEST_PROBE:-1}
            interval: ${PW_TEST_INTERVAL:-15}
            timeout: ${PW_TEST_TIMEOUT:-2s}
        """, {"PW_TEST_PORT": "9100", "PW_TEST_BASE": "http://127.0.0.1:8001"})
    target = loaded.settings.targets[0]
    assert loaded.settings.server.port == 9100
    assert target.url == "http://127.0.0.1:8001/health?probe=1"
    assert target.interval == 15.0
    assert target.timeout == 2.0


def test_double_dollar_escapes_a_literal_reference() -> None:
    loaded = load("""\
        targets:
          - name: api
            type: http
            url: http://127.0.0.1:9/
            headers: {X-Template: "$${NOT_A_VAR} and ${PW_TEST_SET}"}
        """, {"PW_TEST_SET": "set"})
    assert loaded.settings.targets[0].headers == {"X-Template": "${NOT_A_VAR} and set"}


def test_literal_secret_loads_with_a_warning_naming_its_key_path() -> None:
    loaded = load("""\
        server:
          tokens:
            - {name: oncall, token: "${PW_TEST_TOKEN:-}"}
            - {name: ci, token: s3cret-literal}
        alerting:
          channels:
            - name: pager
              type: pagerduty
              routing_key: R0UT1NG
            - name: chat
              type: slack
              token: ${PW_TEST_SLACK_TOKEN}
              channel: "#oncall"
        """, {"PW_TEST_SLACK_TOKEN": "xoxb-from-env"})
    assert [(w.line, w.path) for w in loaded.warnings] == [
        (4, "server.tokens[1].token"),
        (9, "alerting.channels[0].routing_key"),
    ]
    assert all("literal secret" in w.message and "${ENV_VAR}" in w.message
               for w in loaded.warnings)
    assert "s3cret-literal" not in " ".join(str(w) for w in loaded.warnings)
    pager = loaded.settings.alerting.channels[0]
    assert pager.routing_key.get_secret_value() == "R0UT1NG"  # type: ignore[union-attr]


def test_channel_with_empty_credentials_is_disabled_not_an_error() -> None:
    loaded = load("""\
        alerting:
          policies:
            - name: default
              steps: [{notify: [chat, pager, mail]}]
          channels:
            - {name: chat, type: slack, token: "${PW_TEST_SLACK_TOKEN:-}"}
            - {name: pager, type: pagerduty, routing_key: "${PW_TEST_ROUTING_KEY}"}
            - {name: mail, type: email}
            - {name: hook, type: webhook, url: 'http://127.0.0.1:9/hook'}
        """, {"PW_TEST_ROUTING_KEY": "key-from-env"})
    assert loaded.disabled_channels == {
        "chat": ["token or webhook_url"],
        "mail": ["smtp_host", "to"],
    }
    assert loaded.warnings == []
    assert "2 of 4 channels enabled" in loaded.summary()


def test_summary_counts_what_the_config_defines() -> None:
    loaded = load(with_target("""\
        slos:
          - {name: avail, target: api, sli: availability, objective: 99.9}
          - {name: fast, target: api, sli: latency, threshold: 200ms, objective: 95}
        alerting:
          policies:
            - {name: default, steps: [{notify: [hook]}]}
          channels:
            - {name: hook, type: webhook, url: 'http://127.0.0.1:9/hook'}
        """))
    assert loaded.summary() == ("good.yaml: OK — 1 targets, 2 SLOs, 1 of 1 channels enabled, "
                                "1 escalation policies")


def test_empty_config_is_valid_with_defaults() -> None:
    loaded = load("# nothing configured yet\n")
    assert loaded.settings.targets == []
    assert loaded.settings.storage.url == "sqlite:///primewatch.db"
    assert loaded.summary() == ("good.yaml: OK — 0 targets, 0 SLOs, 0 of 0 channels enabled, "
                                "0 escalation policies")


def test_units_are_parsed_into_seconds_and_ratios() -> None:
    loaded = load(with_target("""\
        slos:
          - {name: fast, target: api, sli: latency, threshold: 200ms, objective: "99.5%",
             window: 7d}
        """))
    slo = loaded.settings.slos[0]
    assert (slo.threshold, slo.objective, slo.window) == (0.2, 0.995, 7 * 86400.0)


@pytest.mark.parametrize(("window", "expected"), [
    ("quarter", "quarter"), ("calendar_quarter", "quarter"), ("Quarter", "quarter"),
    ("calendar_month", "month"), ("week", "week"), ("90d", 90 * 86400.0)])
def test_slo_windows_calendar_names_and_durations(window: str, expected: str | float) -> None:
    loaded = load(with_target(f"""\
        slos:
          - {{name: q, target: api, sli: availability, objective: 99.9, window: {window},
             timezone: Europe/Berlin}}
        """))
    slo = loaded.settings.slos[0]
    assert slo.window == expected
    assert slo.calendar is isinstance(expected, str)


def test_load_config_reads_a_file_and_names_it_in_errors(tmp_path: Path) -> None:
    path = tmp_path / "primewatch.yaml"
    path.write_text("servr: {}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path, {})
    [problem] = info.value.problems
    assert (problem.file, problem.line, problem.path) == (str(path), 1, "servr")


@pytest.mark.parametrize(("name", "content", "fragment"), [
    ("missing.yaml", None, "cannot read config: No such file or directory"),
    ("a-directory", "dir", "cannot read config: Is a directory"),
    ("binary.yaml", b"\xff\xfe\x00\x01", "cannot read config: not UTF-8 text"),
])
def test_unreadable_file_is_a_config_error(
        tmp_path: Path, name: str, content: bytes | str | None, fragment: str) -> None:
    path = tmp_path / name
    if content == "dir":
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    with pytest.raises(ConfigError) as info:
        load_config(path, {})
    [problem] = info.value.problems
    assert problem.file == str(path)
    assert problem.line is None
    assert fragment in problem.message
    assert str(problem).startswith(f"{path}: cannot read config")


def test_shipped_config_loads_cleanly_with_an_empty_environment() -> None:
    loaded = load_config(ROOT / "config.yaml", {})
    settings = loaded.settings
    assert loaded.warnings == []
    assert len(settings.targets) >= 3
    assert len(settings.slos) >= 4
    assert {slo.target for slo in settings.slos} == {t.name for t in settings.targets}
    # Without credentials in the environment its channels are disabled, not broken.
    assert set(loaded.disabled_channels) == {c.name for c in settings.alerting.channels}


def test_a_key_set_twice_is_an_error_not_silently_overwritten() -> None:
    text = "targets:\n  - name: a\n    type: http\n    url: http://x/\n    interval: 5s\n" \
           "    interval: 10s\n"
    with pytest.raises(ConfigError) as info:
        parse_config(text, "c.yaml", {})
    [problem] = info.value.problems
    assert (problem.line, problem.path) == (6, "targets[0].interval")
    assert "duplicate key 'interval'" in problem.message


def test_a_missing_variable_in_a_number_field_is_reported_once() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config("server:\n  port: ${PORT}\n", "c.yaml", {})
    [problem] = info.value.problems
    assert "PORT is not set" in problem.message


def test_a_bad_metric_selector_is_reported_at_its_line() -> None:
    text = dedent("""\
        targets:
          - name: app
            type: prometheus
            url: http://127.0.0.1:1/metrics
            ratios:
              ok: {good: 'requests_total{code=~"5.."', total: requests_total}
    """)
    with pytest.raises(ConfigError) as info:
        parse_config(text, "c.yaml", {})
    [problem] = info.value.problems
    assert problem.line == 6
    assert problem.path.startswith("targets[0].ratios.ok")
