"""Incident facts and the stored post-mortem draft, from real rollups and a real incident.

The scenario: target `api` probed once a minute (ok, 50 ms) for eight days, except one
bad hour, 12:00-13:00 UTC, with five probes a minute: three fail and two answer slowly
(400 ms), i.e. 60% errors. Impact starts 30 s into that hour, the incident opens 4m 30s
later, is acknowledged after 5 minutes and resolved 20 s after the hour ends. Every
expected number below is worked out by hand from that.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from sqlalchemy import Engine, update

from alerts.escalation import IncidentManager, IncidentNotFound
from alerts.facts import affected_slos, gather_facts, impact_span, write_postmortem
from alerts.postmortem import format_ms
from alerts.rules import ActiveAlert, labels_for
from alerts.store import Incident, get_incident, list_incidents, postmortem_text, timeline
from monitor.cli import EXIT_FAILED, EXIT_OK, main
from monitor.config import Settings
from monitor.config_loader import load_config
from monitor.ingest import ResultWriter
from monitor.storage.engine import make_engine, upgrade
from monitor.storage.models import IncidentRow
from probes.base import ProbeResult
from tests.conftest import make_settings

MINUTE, HOUR, DAY = 60, 3600, 86400
T = 1_714_521_600  # 2024-05-01 00:00 UTC
BAD_START, BAD_END = T + 12 * HOUR, T + 13 * HOUR
IMPACT = BAD_START + 30  # rounds down to BAD_START
OPENED = BAD_START + 300
ACKED = OPENED + 300
RESOLVED = BAD_END + 20  # rounds up to BAD_END + 1 min
SLO = "api-availability"

# Impact span [BAD_START, BAD_END + 1 min): 60 bad minutes × 5 probes (3 failed, 2 slow)
# plus the one clean probe at BAD_END.
# Impact ends with the last failing minute (BAD_END), not at the resolve 20 s later:
# the clean probe of minute BAD_END is not part of it.
GOOD_DURING, TOTAL_DURING = 60 * 2, 60 * 5  # 120, 300
BAD_DURING = TOTAL_DURING - GOOD_DURING  # 180
# The 7-day window at RESOLVED is [BAD_END + 1 min - 7d, BAD_END + 1 min): 10,080 minutes,
# 60 of them the bad hour: 10,020 clean events + 300 = 10,320; 1% may fail: 103.2.
BUDGET_CONSUMED = BAD_DURING / (0.01 * 10_320)  # 1.744...


def scenario_settings(**overrides: object) -> Settings:
    data: dict[str, object] = {
        "service": {"name": "PrimeTrade"},
        "server": {"public_url": "https://pw.example/"},
        # Probed once a minute, as the clean history below is: the budget's base is the
        # schedule's count over the window (slo/allowance.py).
        "targets": [{"name": "api", "type": "http", "url": "http://127.0.0.1:1/health",
                     "interval": "1m", "timeout": "500ms"}],
        "slos": [
            {"name": SLO, "target": "api", "sli": "availability", "objective": 99,
             "window": "7d"},
            {"name": "api-latency", "target": "api", "sli": "latency", "threshold": "100ms",
             "objective": 90, "window": "7d"},
        ],
        "alerting": {
            "policies": [{"name": "default", "ack_timeout": None,
                          "steps": [{"after": "0m", "notify": ["hook"]},
                                    {"after": "30m", "notify": ["hook"]}]}],
            "channels": [{"name": "hook", "type": "webhook", "url": "http://127.0.0.1:9/"}],
        },
    }
    data.update(overrides)
    return make_settings(**data)


def probe_history() -> list[ProbeResult]:
    """Eight days of one clean probe a minute, and the bad hour's five a minute."""
    results = []
    for minute in range(T - 8 * DAY, BAD_END + MINUTE, MINUTE):
        if BAD_START <= minute < BAD_END:
            results += [ProbeResult("api", minute + 12 * i, ok=False, latency=2.0,
                                    error_class="http_status") for i in range(3)]
            results += [ProbeResult("api", minute + 36 + 12 * i, ok=True, latency=0.4)
                        for i in range(2)]
        else:
            results.append(ProbeResult("api", minute, ok=True, latency=0.05))
    return results


def burn_alert(burn_rate: float) -> ActiveAlert:
    return ActiveAlert(
        key=f"slo:{SLO}", kind="burn_rate", severity="page",
        title=f"SLO {SLO} is burning its error budget", summary="burn rate high",
        slo=SLO, target="api", labels=labels_for("burn_rate", "page", target="api"),
        burn_rate=burn_rate, since=IMPACT)


def run_incident(engine: Engine, settings: Settings, *, resolve: bool = True) -> int:
    """Store the history, then open, escalate, acknowledge and (auto-)resolve the incident;
    the resolve writes the draft through the same hook the runtime uses."""
    ResultWriter(engine, settings.slos)(probe_history())

    def draft(incident_id: int, now: float) -> None:
        write_postmortem(engine, settings, incident_id, now)

    manager = IncidentManager(engine, settings, channels={"hook"}, on_resolved=draft)
    manager.tick([burn_alert(14.4)], OPENED)
    manager.tick([burn_alert(36.0)], OPENED + MINUTE)  # the peak
    manager.tick([burn_alert(20.0)], OPENED + 2 * MINUTE)
    incident_id = newest_incident(engine)
    manager.acknowledge(incident_id, "alice", ACKED)
    if resolve:
        manager.tick([], RESOLVED)  # the rule cleared
    return incident_id


def newest_incident(engine: Engine) -> int:
    incidents, _ = list_incidents(engine, limit=1)
    return incidents[0].id


def stored_incident(engine: Engine, incident_id: int) -> Incident:
    incident = get_incident(engine, incident_id)
    assert incident is not None
    return incident


# --- the pure parts ----------------------------------------------------------------------


def test_affected_slos_are_the_incidents_then_its_targets_then_none(engine: Engine) -> None:
    settings = scenario_settings()
    incident = stored_incident(engine, run_incident(engine, settings))
    assert affected_slos(incident, settings.slos) == (SLO,)  # its one member's
    # A down target among the members hurts every SLO of that target.
    down_member = dataclasses.replace(incident.members[0], key="target:api", kind="down",
                                      slo=None)
    with_outage = dataclasses.replace(incident, slo=None,
                                      members=(*incident.members, down_member))
    assert affected_slos(with_outage, settings.slos) == (SLO, "api-latency")
    # Incidents from before members were recorded: their SLO, else their target's.
    legacy = dataclasses.replace(incident, members=())
    assert affected_slos(legacy, settings.slos) == (SLO,)
    down = dataclasses.replace(legacy, slo=None)
    assert affected_slos(down, settings.slos) == (SLO, "api-latency")
    trigger = dataclasses.replace(legacy, slo=None, target=None)
    assert affected_slos(trigger, settings.slos) == ()


def test_impact_span_is_rounded_outward_to_minutes(engine: Engine) -> None:
    incident = stored_incident(engine, run_incident(engine, scenario_settings()))
    assert impact_span(incident, now=RESOLVED + DAY) == (BAD_START, BAD_END + MINUTE)
    unknown_start = dataclasses.replace(incident, impact_started_at=None, resolved_at=None)
    assert impact_span(unknown_start, now=OPENED + 1) == (OPENED, OPENED + MINUTE)


# --- facts from storage ------------------------------------------------------------------


def test_facts_of_a_resolved_incident(engine: Engine) -> None:
    settings = scenario_settings()
    incident_id = run_incident(engine, settings)
    facts = gather_facts(engine, settings, incident_id, RESOLVED + HOUR)

    assert (facts.status, facts.severity, facts.slos, facts.target) == \
        ("resolved", "page", (SLO,), "api")
    assert (facts.good_during, facts.total_during) == (GOOD_DURING, TOTAL_DURING)
    assert facts.error_ratio_during == pytest.approx(180 / 300)
    assert facts.error_ratio_week_before == 0.0  # 60 clean probes, same span 7 days earlier
    assert facts.impact_ended_at == BAD_END
    # Against the window when the incident resolved, not at `now` (an hour later).
    assert facts.budget_consumed is not None
    assert facts.budget_consumed == pytest.approx(BUDGET_CONSUMED)
    assert facts.peak_burn_rate == 36.0
    # The sketch's quantiles are within 1% of the exact value: 400 ms and 50 ms.
    assert facts.p95_during_ms == pytest.approx(400, rel=0.01)
    assert facts.p95_week_before_ms == pytest.approx(50, rel=0.01)
    assert (facts.impact_started_at, facts.opened_at) == (IMPACT, OPENED)
    assert facts.detected_after == 270.0
    assert facts.acknowledged_at is not None and facts.resolved_at is not None
    assert facts.acknowledged_at - facts.opened_at == 300.0
    assert facts.resolved_at - facts.opened_at == 3320.0
    assert (facts.acknowledged_by, facts.resolved_by) == ("alice", "auto")
    assert facts.dashboard_url == "https://pw.example/"
    assert facts.incident_url == f"https://pw.example/api/v1/incidents/{incident_id}"
    assert facts.service_name == "PrimeTrade"


def test_timeline_is_in_order_and_leaves_out_draft_notes(engine: Engine) -> None:
    settings = scenario_settings()
    incident_id = run_incident(engine, settings)
    facts = gather_facts(engine, settings, incident_id, RESOLVED)
    kinds = [entry.kind for entry in facts.timeline]
    wanted = ["opened", "escalated", "acknowledged", "resolved"]
    assert [kind for kind in kinds if kind in wanted] == wanted
    assert "postmortem" not in kinds
    assert [entry.at for entry in facts.timeline] == sorted(e.at for e in facts.timeline)
    assert facts.timeline[0].at == OPENED
    assert facts.timeline[-1].at == RESOLVED


def test_an_open_incident_counts_impact_up_to_now(engine: Engine) -> None:
    settings = scenario_settings()
    incident_id = run_incident(engine, settings, resolve=False)
    facts = gather_facts(engine, settings, incident_id, BAD_START + 10 * MINUTE + 5)
    assert (facts.status, facts.resolved_at, facts.resolved_by) == \
        ("acknowledged", None, None)
    # [12:00, 12:11): eleven bad minutes.
    assert (facts.good_during, facts.total_during) == (22, 55)


def test_no_events_means_unknown_not_zero(engine: Engine) -> None:
    settings = scenario_settings()
    manager = IncidentManager(engine, settings, channels={"hook"})
    manager.tick([burn_alert(14.4)], OPENED)
    facts = gather_facts(engine, settings, newest_incident(engine), OPENED + MINUTE)
    assert (facts.good_during, facts.total_during, facts.error_ratio_during) == \
        (None, None, None)
    assert (facts.budget_consumed, facts.p95_during_ms, facts.p95_week_before_ms) == \
        (None, None, None)


def test_unknown_incident_raises(engine: Engine) -> None:
    with pytest.raises(IncidentNotFound):
        gather_facts(engine, scenario_settings(), 404, OPENED)


# --- the stored draft --------------------------------------------------------------------


def test_resolving_stores_a_draft_with_the_numbers(engine: Engine) -> None:
    settings = scenario_settings()
    incident_id = run_incident(engine, settings)
    text = postmortem_text(engine, incident_id)
    assert text is not None
    assert stored_incident(engine, incident_id).has_postmortem
    for expected in (
        "120 good of 300 (180 bad)",
        "| Error ratio | 60.0% | 0% | up from 0 |",
        "**Error budget consumed:** 174.4%",
        "**Peak burn rate:** 36.0×",
        "**Time to detect:** 4m 30s",
        "**Time to acknowledge:** 5m (by alice)",
        "**Time to resolve:** 55m 20s (automatically: the alert rule cleared)",
        "**Affected SLOs:** api-availability",
        f"(https://pw.example/api/v1/incidents/{incident_id}) (resolved)",
        "**Service:** PrimeTrade",
        "2024-05-01 12:05:00+00:00",  # opened, in the timeline
    ):
        assert expected in text
    facts = gather_facts(engine, settings, incident_id, RESOLVED)
    assert f"| p95 latency | {format_ms(facts.p95_during_ms)} | " \
           f"{format_ms(facts.p95_week_before_ms)} |" in text
    last = timeline(engine, incident_id)[-1]
    assert (last.at, last.kind, last.text) == (RESOLVED, "postmortem",
                                               "Post-mortem draft written")


def test_write_postmortem_replaces_the_draft_and_returns_it(engine: Engine) -> None:
    settings = scenario_settings()
    incident_id = run_incident(engine, settings)
    text = write_postmortem(engine, settings, incident_id, RESOLVED + DAY)
    assert postmortem_text(engine, incident_id) == text
    assert [e.kind for e in timeline(engine, incident_id)].count("postmortem") == 2


def test_a_broken_template_falls_back_to_the_bundled_one(
        engine: Engine, tmp_path: Path) -> None:
    broken = tmp_path / "pm.md.j2"
    broken.write_text("# {{ facts.title }\n", encoding="utf-8")
    settings = scenario_settings()
    incident_id = run_incident(engine, settings)
    custom = settings.model_copy(update={"alerting": settings.alerting.model_copy(
        update={"postmortem_template": str(broken)})})
    text = write_postmortem(engine, custom, incident_id, RESOLVED + MINUTE)
    assert "## Action items" in text  # the bundled template's section
    event = timeline(engine, incident_id)[-1]
    assert event.kind == "postmortem"
    assert event.text.startswith("Post-mortem draft written from the bundled template (")
    assert f"{broken}:1:" in event.text
    assert f"{broken}:1:" in event.data["template_error"]


# --- the command line --------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _no_config_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PRIMEWATCH_CONFIG", raising=False)


def cli_config(tmp_path: Path) -> Path:
    path = tmp_path / "primewatch.yaml"
    path.write_text(f"""\
service: {{name: CLI test}}
server: {{public_url: "https://pw.example"}}
storage: {{url: "sqlite:///{tmp_path}/x.db"}}
targets:
  - {{name: api, type: http, url: "http://127.0.0.1:9/health", timeout: 2s}}
slos:
  - {{name: {SLO}, target: api, sli: availability, objective: 99.9}}
alerting:
  policies:
    - {{name: default, steps: [{{notify: [hook]}}]}}
  channels:
    - {{name: hook, type: webhook, url: "http://127.0.0.1:9/hook"}}
""", encoding="utf-8")
    return path


def open_cli_incident(path: Path) -> int:
    """An acknowledged (still open) incident in the config's database."""
    settings = load_config(path, {}).settings
    engine = make_engine(settings.storage.url)
    try:
        upgrade(engine)
        manager = IncidentManager(engine, settings, channels={"hook"})
        manager.tick([burn_alert(14.4)], OPENED)
        return manager.acknowledge(newest_incident(engine), "alice", ACKED).id
    finally:
        engine.dispose()


def set_stored_draft(path: Path, incident_id: int, text: str) -> None:
    engine = make_engine(load_config(path, {}).settings.storage.url)
    try:
        with engine.begin() as connection:
            connection.execute(update(IncidentRow).where(IncidentRow.id == incident_id)
                               .values(postmortem=text))
    finally:
        engine.dispose()


def test_cli_prints_an_open_incidents_draft_then_the_stored_one(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = cli_config(tmp_path)
    incident_id = open_cli_incident(path)
    assert main(["postmortem", str(incident_id), "--config", str(path)]) == EXIT_OK
    out = capsys.readouterr().out
    assert out.startswith(f"# Post-mortem: SLO {SLO} is burning its error budget "
                          f"(incident #{incident_id})")
    assert f"[#{incident_id}](https://pw.example/api/v1/incidents/{incident_id}) " \
           "(acknowledged)" in out
    assert "**Time to resolve:** —" in out

    set_stored_draft(path, incident_id, "edited by hand\n")
    assert main(["--config", str(path), "postmortem", str(incident_id)]) == EXIT_OK
    assert capsys.readouterr().out == "edited by hand\n"

    draft = tmp_path / "pm.md"
    assert main(["--config", str(path), "postmortem", str(incident_id), "--regenerate",
                 "--output", str(draft)]) == EXIT_OK
    captured = capsys.readouterr()
    assert captured.out == ""
    assert str(draft) in captured.err
    assert draft.read_text(encoding="utf-8").startswith("# Post-mortem: ")


def test_cli_unknown_incident_is_an_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = cli_config(tmp_path)
    open_cli_incident(path)
    assert main(["postmortem", "999", "--config", str(path)]) == EXIT_FAILED
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "error: no incident 999" in captured.err


def test_cli_help_explains_the_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["postmortem", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for words in ("INCIDENT_ID", "post-mortem draft", "--output", "--regenerate",
                  "--config"):
        assert words in out
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "postmortem" in capsys.readouterr().out
