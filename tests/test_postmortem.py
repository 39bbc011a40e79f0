"""The post-mortem draft: hand-computed facts in, exact Markdown numbers out."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from alerts.postmortem import (
    DEFAULT_TEMPLATE,
    IncidentFacts,
    PostmortemTemplateError,
    TimelineEntry,
    derived,
    format_burn_rate,
    format_delta,
    format_duration,
    format_percent,
    render_postmortem,
)
from monitor.clock import FakeClock
from monitor.errors import PrimewatchError

T0 = 1_714_572_000.0  # 2024-05-01 14:00:00 UTC = 16:00:00 in Berlin (CEST, +02:00)

UNKNOWN_FIELDS = (
    "acknowledged_at", "resolved_at", "detected_after", "impact_started_at", "target",
    "acknowledged_by", "resolved_by", "budget_consumed", "peak_burn_rate", "p95_during_ms",
    "p95_week_before_ms", "error_ratio_during", "error_ratio_week_before", "good_during",
    "total_during", "dashboard_url", "incident_url",
)


def make_facts(**changes: object) -> IncidentFacts:
    """Impact at T0, opened 2 min later, acked 5 min after opening, resolved 1h 12m 5s after."""
    facts = IncidentFacts(
        id=42,
        title="Checkout API returning 5xx",
        severity="page",
        status="resolved",
        opened_at=T0 + 120,
        acknowledged_at=T0 + 120 + 300,
        resolved_at=T0 + 120 + 4325,
        detected_after=120.0,
        impact_started_at=T0,
        slos=("api-availability", "api-latency"),
        target="api",
        labels={"env": "prod", "region": "eu"},
        acknowledged_by="alice",
        resolved_by="bob",
        budget_consumed=0.25,
        peak_burn_rate=14.4,
        p95_during_ms=950.0,
        p95_week_before_ms=180.0,
        error_ratio_during=0.0088,
        error_ratio_week_before=0.0005,
        good_during=99_120,
        total_during=100_000,
        timeline=(  # deliberately out of order: the draft sorts by time
            TimelineEntry(T0 + 420, "acknowledged", "alice acknowledged"),
            TimelineEntry(T0 + 120, "triggered", "burn rate 14.4× over 1h"),
            TimelineEntry(T0 + 4445, "resolved", "rolled back | deploy 311"),
            TimelineEntry(T0 + 900, "note", "feature flag disabled"),
        ),
        dashboard_url="https://pw.example/d/api",
        incident_url="https://pw.example/incidents/42",
        service_name="PrimeTrade Dashboard",
    )
    return dataclasses.replace(facts, **changes)  # type: ignore[arg-type]


def render(facts: IncidentFacts, **kwargs: object) -> str:
    return render_postmortem(facts, clock=FakeClock(), **kwargs)  # type: ignore[arg-type]


def section(markdown: str, heading: str) -> str:
    """The text under `## heading` up to the next `## ` heading."""
    start = markdown.index(f"## {heading}\n")
    end = markdown.find("\n## ", start + 1)
    return markdown[start:end if end != -1 else None]


def test_derived_times_are_computed_from_the_facts() -> None:
    d = derived(make_facts())
    assert (d.time_to_detect, d.time_to_acknowledge, d.time_to_resolve) == (120.0, 300.0, 4325.0)
    assert d.impact_started_at == T0
    assert d.impact_duration == 4445.0  # from the start of impact, not the opening
    assert d.bad_during == 880
    assert [entry.at for entry in d.timeline] == [T0 + 120, T0 + 420, T0 + 900, T0 + 4445]


def test_derived_without_impact_start_measures_from_the_opening() -> None:
    d = derived(make_facts(impact_started_at=None, detected_after=None, acknowledged_at=None))
    assert d.impact_started_at == T0 + 120
    assert d.impact_duration == 4325.0
    assert d.time_to_detect is None
    assert d.time_to_acknowledge is None


def test_derived_time_to_detect_falls_back_to_impact_start() -> None:
    assert derived(make_facts(detected_after=None)).time_to_detect == 120.0


def test_draft_states_the_hand_computed_numbers() -> None:
    draft = render(make_facts())

    assert draft.startswith("# Post-mortem: Checkout API returning 5xx (incident #42)\n")
    assert "- **Duration of impact:** 1h 14m 5s (from 2024-05-01 14:00:00+00:00" in draft
    assert "- **Error budget consumed:** 25.0%\n" in draft
    assert "- **Peak burn rate:** 14.4×\n" in draft
    assert "- **Affected SLOs:** api-availability, api-latency\n" in draft
    assert "- **Target:** api (`env=prod`, `region=eu`)\n" in draft
    assert "- **Events during the incident:** 99,120 good of 100,000 (880 bad)\n" in draft
    assert "| p95 latency | 950 ms | 180 ms | ×5.3 |\n" in draft
    assert "| Error ratio | 0.88% | 0.05% | ×17.6 |\n" in draft
    detection = section(draft, "Detection")
    assert "- **Time to detect:** 2m (" in detection
    assert "- **Time to acknowledge:** 5m (by alice)\n" in detection
    assert "- **Time to resolve:** 1h 12m 5s (by bob)\n" in detection


def test_metadata_block_marks_the_draft() -> None:
    draft = render(make_facts())
    assert "- **Date:** 2024-05-01\n" in draft
    assert "- **Status:** Draft\n" in draft
    assert "- **Severity:** page\n" in draft
    assert "- **Authors:** " in draft
    assert "- **Incident:** [#42](https://pw.example/incidents/42) (resolved)\n" in draft


def test_summary_is_prefilled_with_the_facts() -> None:
    summary = section(render(make_facts()), "Summary")
    assert ("Incident #42 (page) affected the SLOs api-availability, api-latency of target api "
            "for 1h 14m 5s") in summary
    assert "consumed 25.0% of the error budget and peaked at a burn rate of 14.4×" in summary
    assert "880 of 100,000 events failed." in summary


def test_auto_resolution_says_the_rule_cleared() -> None:
    draft = render(make_facts(resolved_by="auto"))
    assert "- **Time to resolve:** 1h 12m 5s (automatically: the alert rule cleared)\n" in draft


def timeline_rows(draft: str) -> list[str]:
    return [line for line in section(draft, "Timeline").splitlines()
            if line.startswith("| 2024-")]


def test_timeline_rows_are_in_order_in_the_given_time_zone() -> None:
    utc = timeline_rows(render(make_facts()))
    berlin = timeline_rows(render(make_facts(), timezone="Europe/Berlin"))

    assert utc == [
        "| 2024-05-01 14:02:00+00:00 | **triggered**: burn rate 14.4× over 1h |",
        "| 2024-05-01 14:07:00+00:00 | **acknowledged**: alice acknowledged |",
        "| 2024-05-01 14:15:00+00:00 | **note**: feature flag disabled |",
        "| 2024-05-01 15:14:05+00:00 | **resolved**: rolled back \\| deploy 311 |",
    ]
    assert berlin[0] == "| 2024-05-01 16:02:00+02:00 | **triggered**: burn rate 14.4× over 1h |"
    assert len(berlin) == 4


def test_unknown_values_render_as_a_dash_never_none() -> None:
    facts = make_facts(**dict.fromkeys(UNKNOWN_FIELDS), slos=(), labels={}, timeline=())
    draft = render(facts)

    assert "None" not in draft
    assert "- **Error budget consumed:** —\n" in draft
    assert "- **Peak burn rate:** —\n" in draft
    assert "- **Affected SLOs:** —\n" in draft
    assert "- **Events during the incident:** —\n" in draft
    assert "| p95 latency | — | — | — |\n" in draft
    assert "- **Time to resolve:** —\n" in draft
    assert "| — | _No events recorded; add them here._ |" in draft
    assert "Incident #42 (page).\n" in draft  # the summary leaves out what is unknown


def test_sections_come_in_the_agreed_order() -> None:
    headings = re.findall(r"^#{2,3} (.+)$", render(make_facts()), flags=re.MULTILINE)
    assert headings == [
        "Summary", "Impact", "Detection", "Timeline", "Root cause", "Trigger", "Resolution",
        "Action items", "Lessons learned", "What went well", "What went wrong",
        "Where we got lucky",
    ]


def test_draft_carries_blameless_prompts_and_an_action_table() -> None:
    draft = render(make_facts())
    assert ("Why did this happen? Ask 'why' until you reach a process or system cause, "
            "not a person.") in section(draft, "Root cause")
    actions = section(draft, "Action items")
    assert "| Action | Type | Owner | Ticket | Due |" in actions
    assert "prevent" in actions and "mitigate" in actions and "detect" in actions
    assert draft.endswith("_Generated by primewatch at 2026-01-01 00:00:00+00:00; edit freely._\n")


@pytest.mark.parametrize(("seconds", "text"), [
    (None, "—"), (0, "0s"), (5, "5s"), (120, "2m"), (4325, "1h 12m 5s"), (3600, "1h"),
    (3605, "1h 0m 5s"), (90061, "1d 1h 1m 1s"), (59.6, "1m"), (-30, "-30s"),
])
def test_format_duration(seconds: float | None, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize(("ratio", "text"), [
    (None, "—"), (0.0, "0%"), (0.25, "25.0%"), (0.00123, "0.123%"), (0.0005, "0.05%"),
    (1.0, "100.0%"), (0.999, "99.9%"),
])
def test_format_percent(ratio: float | None, text: str) -> None:
    assert format_percent(ratio) == text


@pytest.mark.parametrize(("during", "before", "text"), [
    (950.0, 180.0, "×5.3"), (250.0, 200.0, "+25%"), (60.0, 100.0, "-40%"),
    (100.0, 100.0, "±0%"), (0.0, 0.0, "±0%"), (0.01, 0.0, "up from 0"),
    (None, 180.0, "—"), (950.0, None, "—"),
])
def test_format_delta(during: float | None, before: float | None, text: str) -> None:
    assert format_delta(during, before) == text


def test_format_burn_rate() -> None:
    assert (format_burn_rate(14.4), format_burn_rate(6), format_burn_rate(None)) == \
        ("14.4×", "6.0×", "—")


def test_a_user_template_replaces_the_default(tmp_path: Path) -> None:
    template = tmp_path / "ours.md.j2"
    template.write_text("# {{ facts.title }}\nFixed in {{ derived.time_to_resolve | duration }}"
                        " at {{ facts.resolved_at | timestamp('%H:%M') }}.\n", encoding="utf-8")

    draft = render(make_facts(), template=template, timezone="Europe/Berlin")

    assert draft == "# Checkout API returning 5xx\nFixed in 1h 12m 5s at 17:14.\n"


def test_a_broken_user_template_names_the_file_and_line(tmp_path: Path) -> None:
    template = tmp_path / "broken.md.j2"
    template.write_text("# {{ facts.title }}\n\n{% if facts.target %}\nno endif\n",
                        encoding="utf-8")

    with pytest.raises(PostmortemTemplateError) as caught:
        render(make_facts(), template=template)

    assert isinstance(caught.value, PrimewatchError)
    assert str(caught.value).startswith(f"{template}:")
    assert caught.value.line is not None and caught.value.line >= 3
    assert caught.value.__cause__ is not None  # the Jinja error is kept, not shown raw


def test_a_syntax_error_reports_its_exact_line(tmp_path: Path) -> None:
    template = tmp_path / "typo.md.j2"
    template.write_text("line one\nline two\n{{ facts.title | }}\n", encoding="utf-8")

    with pytest.raises(PostmortemTemplateError, match=re.escape(f"{template}:3: ")):
        render(make_facts(), template=template)


def test_an_unknown_name_in_a_user_template_names_the_file_and_line(tmp_path: Path) -> None:
    template = tmp_path / "typo.md.j2"
    template.write_text("# {{ facts.title }}\n\n{{ facts.titel }}\n", encoding="utf-8")

    with pytest.raises(PostmortemTemplateError) as caught:
        render(make_facts(), template=template)

    assert (caught.value.path, caught.value.line) == (template, 3)
    assert "titel" in str(caught.value)


def test_an_error_inside_an_include_names_the_included_file(tmp_path: Path) -> None:
    (tmp_path / "main.md.j2").write_text("# Draft\n{% include 'part.md.j2' %}\n",
                                         encoding="utf-8")
    part = tmp_path / "part.md.j2"
    part.write_text("ok\n{{ nope }}\n", encoding="utf-8")

    with pytest.raises(PostmortemTemplateError) as caught:
        render(make_facts(), template=tmp_path / "main.md.j2")

    assert (caught.value.path, caught.value.line) == (part, 2)


def test_the_sandbox_keeps_templates_out_of_python_internals(tmp_path: Path) -> None:
    template = tmp_path / "escape.md.j2"
    template.write_text("{{ facts.__class__.__init__.__globals__ }}\n", encoding="utf-8")

    with pytest.raises(PostmortemTemplateError, match="SecurityError"):
        render(make_facts(), template=template)


def test_a_missing_user_template_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "postmortem.md.j2"

    with pytest.raises(PostmortemTemplateError, match=re.escape(str(missing))) as caught:
        render(make_facts(), template=missing)

    assert caught.value.line is None


def test_an_unreadable_user_template_names_the_path(tmp_path: Path) -> None:
    template = tmp_path / "latin1.md.j2"
    template.write_bytes("Störung\n".encode("latin-1"))

    with pytest.raises(PostmortemTemplateError, match=re.escape(f"{template}: ")):
        render(make_facts(), template=template)


def test_facts_keep_their_own_copy_of_the_labels() -> None:
    labels = {"env": "prod"}
    facts = make_facts(labels=labels)
    labels["env"] = "staging"
    assert facts.labels == {"env": "prod"}


def test_the_default_template_ships_next_to_the_module() -> None:
    assert DEFAULT_TEMPLATE.is_file()
    assert DEFAULT_TEMPLATE.parent.name == "templates"
