"""Tests for slo.alerting: the Workbook's multiwindow tiers, suppression of slower tiers,
hysteresis, the low-traffic guard, no data, maintenance suppression and escalation."""

from __future__ import annotations

from collections.abc import Mapping

import pytest
from hypothesis import given
from hypothesis import strategies as st

from slo.alerting import AlertDecision, AlertState, BurnRateAlerter, scale_rules
from slo.budget import BurnRule, BurnThreshold

DAY = 86400
TIERS = scale_rules(30 * DAY)  # 14.4 (1h/5m), 6 (6h/30m), 3 (1d/2h), 1 (3d/6h)
WINDOWS = sorted({s for tier in TIERS for s in (tier.long_window_s, tier.short_window_s)})
SLO = 0.999
NOW = 1_700_000_000.0


def counts(ratio: float, overrides: Mapping[int, float] | None = None,
           per_second: float = 10.0) -> dict[int, tuple[int, int]]:
    """(good, total) for every window: `ratio` errors, or a per-window ratio override."""
    result = {}
    for seconds in [*WINDOWS, 600]:
        total = int(seconds * per_second)
        bad = round(total * (overrides or {}).get(seconds, ratio))
        result[seconds] = (total - bad, total)
    return result


def empty() -> dict[int, tuple[int, int]]:
    return {seconds: (0, 0) for seconds in [*WINDOWS, 600]}


# --- the tiers ---------------------------------------------------------------------------


def test_scale_rules_gives_the_workbook_thresholds_for_30_days() -> None:
    assert [t.threshold for t in TIERS] == pytest.approx([14.4, 6, 3, 1])
    assert [t.severity for t in TIERS] == ["page", "page", "ticket", "ticket"]
    assert scale_rules(28 * DAY)[0].threshold == pytest.approx(0.02 * 28 * 24)
    custom = scale_rules(30 * DAY, [BurnRule("page", 3600, 300, 0.05)])
    assert custom == (BurnThreshold("page", 3600, 300, 36.0),)  # 0.05 * 720, exact


def test_total_outage_pages_on_the_fastest_tier() -> None:
    decision = BurnRateAlerter(TIERS).evaluate(NOW, counts(1.0), SLO)
    assert decision.severity == "page" and decision.tier == 0 and decision.firing
    assert decision.transition == "fired" and decision.since == NOW
    assert decision.burn_long == pytest.approx(1000) == decision.burn_short
    assert decision.reason == "burn 1000.0 over 1h and 1000.0 over 5m > 14.4"
    assert not decision.no_data


def test_slow_burn_opens_a_ticket_not_a_page() -> None:
    # 0.2% errors on a 99.9% SLO burns at 2: only the 3d/6h tier (threshold 1) fires.
    decision = BurnRateAlerter(TIERS).evaluate(NOW, counts(0.002), SLO)
    assert (decision.severity, decision.tier, decision.transition) == ("ticket", 3, "fired")
    assert decision.burn_long == pytest.approx(2) == decision.burn_short
    assert "over 3d" in decision.reason and "over 6h" in decision.reason


def test_both_windows_must_exceed() -> None:
    alerter = BurnRateAlerter(TIERS)
    # The 3 days burned at 2 but the last 6h are clean: the problem is over.
    decision = alerter.evaluate(NOW, counts(0.002, {21600: 0.0, 7200: 0.0, 1800: 0.0,
                                                    3600: 0.0, 300: 0.0}), SLO)
    assert decision.tier is None and decision.transition is None
    assert decision.reason.startswith("ok: ")
    # A 5-minute spike alone is too small to page.
    spike = alerter.evaluate(NOW, counts(0.0, {300: 1.0}), SLO)
    assert spike.tier is None


def test_a_burn_exactly_at_the_threshold_does_not_fire() -> None:
    """A burn of exactly 1 ends the period at its objective, which meets the SLO: the
    tiers fire above their threshold (the Workbook's `>`), never at it."""
    alerter = BurnRateAlerter([BurnThreshold("ticket", 3600, 300, 1.0)])
    # Objective 0.7 and 3 bad of 10: the burn is exactly 1.0 over both windows.
    at_threshold = alerter.evaluate(NOW, {3600: (7, 10), 300: (7, 10)}, 0.7)
    assert at_threshold.tier is None and "≤ 1" in at_threshold.reason
    above = alerter.evaluate(NOW + 60, {3600: (6, 10), 300: (6, 10)}, 0.7)
    assert above.severity == "ticket" and "> 1" in above.reason


def test_assumed_events_do_not_pass_the_low_traffic_guard() -> None:
    """A young SLO's windows are padded with its unmeasured part as good: the guard must
    still count only the events really seen."""
    alerter = BurnRateAlerter([BurnThreshold("page", 3600, 300, 14.4)], min_events=10)
    padded = {3600: (348, 360), 300: (18, 30)}  # 12 bad of 12 seen, 348 assumed good
    held = alerter.evaluate(NOW, padded, 0.999, observed_events={3600: 3, 300: 3})
    assert held.tier is None and "only 3 events over 1h" in held.reason
    fired = alerter.evaluate(NOW + 60, padded, 0.999, observed_events={3600: 12, 300: 12})
    assert fired.severity == "page"


def test_fastest_tier_suppresses_slower_ones() -> None:
    alerter = BurnRateAlerter(TIERS)
    decision = alerter.evaluate(NOW, counts(0.02), SLO)  # burn 20: all four tiers hold
    assert decision.tier == 0 and decision.severity == "page"
    assert "> 14.4" in decision.reason and "> 6" not in decision.reason
    # Burn 10 fires tiers 1-3; tier 1 is reported.
    assert BurnRateAlerter(TIERS).evaluate(NOW, counts(0.01), SLO).tier == 1


# --- hysteresis ---------------------------------------------------------------------------


def test_resolves_when_short_window_recovers_even_if_long_window_is_high() -> None:
    alerter = BurnRateAlerter(TIERS)
    assert alerter.evaluate(NOW, counts(1.0, {21600: 0, 1800: 0, 86400: 0, 7200: 0,
                                              259200: 0}), SLO).tier == 0
    # The 1h window still burns at 50, but the last 5 minutes are clean.
    later = alerter.evaluate(NOW + 300, counts(0.0, {3600: 0.05}), SLO)
    assert later.tier is None and later.transition == "resolved" and later.since is None
    assert alerter.state == AlertState(None, None)


def test_stays_firing_while_short_window_is_high_after_long_window_recovers() -> None:
    alerter = BurnRateAlerter(TIERS)
    quiet = {21600: 0.0, 1800: 0.0, 86400: 0.0, 7200: 0.0, 259200: 0.0}
    assert alerter.evaluate(NOW, counts(1.0, quiet), SLO).transition == "fired"
    # 1h burn 10 < 14.4, 5m burn 20 >= 14.4: not enough to fire, enough to stay open.
    held = alerter.evaluate(NOW + 60, counts(0.0, {3600: 0.01, 300: 0.02}), SLO)
    assert (held.tier, held.transition, held.since) == (0, None, NOW)
    assert held.reason.startswith("holding until the short window recovers")
    fresh = BurnRateAlerter(TIERS).evaluate(NOW + 60, counts(0.0, {3600: 0.01, 300: 0.02}), SLO)
    assert fresh.tier is None  # the same counts do not open an alert
    done = alerter.evaluate(NOW + 120, counts(0.0, {3600: 0.01, 300: 0.01}), SLO)
    assert (done.tier, done.transition) == (None, "resolved")


def test_short_window_without_events_does_not_resolve() -> None:
    alerter = BurnRateAlerter(TIERS)
    alerter.evaluate(NOW, counts(1.0), SLO)
    silent = counts(1.0)
    silent[300] = (0, 0)
    held = alerter.evaluate(NOW + 60, silent, SLO)
    assert held.tier == 0 and held.transition is None
    assert held.burn_short is None and "no events over 5m" in held.reason


def test_tier_that_stops_resolves_only_when_no_other_tier_fires() -> None:
    alerter = BurnRateAlerter(TIERS)
    alerter.evaluate(NOW, counts(0.02), SLO)  # all tiers: tier 0 reported
    # 5m recovers; burn 10 elsewhere keeps tiers 1-3 firing: deescalate, not resolve.
    decision = alerter.evaluate(NOW + 300, counts(0.01, {300: 0.0}), SLO)
    assert (decision.tier, decision.severity, decision.transition) == (1, "page", "deescalated")
    assert decision.since == NOW


# --- escalation ------------------------------------------------------------------------------


def test_escalates_from_ticket_to_page_and_back() -> None:
    alerter = BurnRateAlerter(TIERS)
    ticket = alerter.evaluate(NOW, counts(0.002), SLO)
    assert (ticket.severity, ticket.tier, ticket.transition) == ("ticket", 3, "fired")
    page = alerter.evaluate(NOW + 600, counts(0.002, {3600: 0.05, 300: 0.05}), SLO)
    assert (page.severity, page.tier, page.transition) == ("page", 0, "escalated")
    assert page.since == NOW  # the incident began with the ticket
    back = alerter.evaluate(NOW + 1200, counts(0.002, {3600: 0.05, 300: 0.0}), SLO)
    assert (back.severity, back.tier, back.transition) == ("ticket", 3, "deescalated")
    steady = alerter.evaluate(NOW + 1260, counts(0.002), SLO)
    assert (steady.tier, steady.transition) == (3, None)
    gone = alerter.evaluate(NOW + 1320, counts(0.0), SLO)
    assert (gone.tier, gone.transition, gone.since) == (None, "resolved", None)


# --- low traffic ------------------------------------------------------------------------------


def test_min_events_blocks_a_page_on_three_events() -> None:
    three = {seconds: (0, 3) for seconds in WINDOWS}
    guarded = BurnRateAlerter(TIERS, min_events=10).evaluate(NOW, three, SLO)
    assert guarded.tier is None and guarded.transition is None
    assert guarded.reason.startswith("only 3 events over 1h (min_events 10)")
    assert BurnRateAlerter(TIERS).evaluate(NOW, three, SLO).tier == 0
    enough = {seconds: (0, 10) for seconds in WINDOWS}
    assert BurnRateAlerter(TIERS, min_events=10).evaluate(NOW, enough, SLO).tier == 0


# --- no data ------------------------------------------------------------------------------


def test_no_data_is_reported_once_and_never_fires() -> None:
    alerter = BurnRateAlerter(TIERS, no_data_after=600)
    first = alerter.evaluate(NOW, empty(), SLO)
    assert first.no_data and first.transition == "no_data" and first.tier is None
    assert first.burn_long is None and first.burn_short is None
    assert "no events in the last 10m" in first.reason
    again = alerter.evaluate(NOW + 60, empty(), SLO)
    assert again.no_data and again.transition is None
    back = alerter.evaluate(NOW + 120, counts(0.0), SLO)
    assert not back.no_data and back.transition == "data_back"
    assert alerter.evaluate(NOW + 180, counts(0.0), SLO).transition is None


def test_without_no_data_after_silence_is_just_not_firing() -> None:
    decision = BurnRateAlerter(TIERS).evaluate(NOW, empty(), SLO)
    assert (decision.tier, decision.no_data, decision.transition) == (None, False, None)
    assert decision.reason == "no events in any alerting window"


def test_no_data_change_waits_behind_a_firing_change() -> None:
    alerter = BurnRateAlerter(TIERS, no_data_after=600)
    alerter.evaluate(NOW, counts(0.01), SLO)  # tier 1 fires
    # The last 10 minutes are silent and the 30m, 2h and 6h windows clean: tier 1 resolves
    # in the same evaluation as no data begins. "resolved" goes first, "no_data" next.
    silent = counts(0.01, {1800: 0.0, 7200: 0.0, 21600: 0.0})
    silent[600] = silent[300] = (0, 0)
    resolved = alerter.evaluate(NOW + 60, silent, SLO)
    assert (resolved.transition, resolved.no_data) == ("resolved", True)
    assert alerter.evaluate(NOW + 120, silent, SLO).transition == "no_data"


def test_no_data_flag_rides_along_a_firing_alert() -> None:
    alerter = BurnRateAlerter(TIERS, no_data_after=600)
    alerter.evaluate(NOW, counts(1.0), SLO)
    silent = counts(1.0)
    silent[600] = silent[300] = (0, 0)
    decision = alerter.evaluate(NOW + 60, silent, SLO)
    assert decision.tier == 0 and decision.no_data and decision.transition == "no_data"


# --- suppression (maintenance windows, silences) ------------------------------------------


def test_suppressed_alert_fires_when_suppression_ends() -> None:
    alerter = BurnRateAlerter(TIERS)
    during = alerter.evaluate(NOW, counts(1.0), SLO, suppressed=True)
    assert (during.severity, during.tier, during.transition, during.since) == (
        None, None, None, None)
    assert during.reason.startswith("suppressed: burn 1000.0")
    after = alerter.evaluate(NOW + 60, counts(1.0), SLO)
    assert (after.tier, after.transition, after.since) == (0, "fired", NOW)


def test_suppression_is_silent_and_a_fired_alert_still_gets_resolved() -> None:
    alerter = BurnRateAlerter(TIERS)
    assert alerter.evaluate(NOW, counts(1.0), SLO).transition == "fired"
    quiet = alerter.evaluate(NOW + 60, counts(0.0), SLO, suppressed=True)
    assert quiet.transition is None and quiet.tier is None
    assert alerter.evaluate(NOW + 120, counts(0.0), SLO).transition == "resolved"


def test_alert_firing_through_suppression_is_not_fired_twice() -> None:
    alerter = BurnRateAlerter(TIERS)
    alerter.evaluate(NOW, counts(1.0), SLO)
    alerter.evaluate(NOW + 60, counts(1.0), SLO, suppressed=True)
    after = alerter.evaluate(NOW + 120, counts(1.0), SLO)
    assert (after.tier, after.transition, after.since) == (0, None, NOW)


def test_suppressed_alert_that_recovers_leaves_no_trace() -> None:
    alerter = BurnRateAlerter(TIERS, no_data_after=600)
    alerter.evaluate(NOW, counts(1.0), SLO, suppressed=True)
    alerter.evaluate(NOW + 60, empty(), SLO, suppressed=True)
    after = alerter.evaluate(NOW + 120, counts(0.0), SLO)
    assert (after.tier, after.transition, after.no_data) == (None, None, False)


# --- persistence and input checks ------------------------------------------------------------


def test_restore_resumes_without_firing_again() -> None:
    alerter = BurnRateAlerter(TIERS)
    alerter.restore(0, NOW - 3600)
    assert alerter.state == AlertState(0, NOW - 3600)
    decision = alerter.evaluate(NOW, counts(1.0), SLO)
    assert (decision.tier, decision.transition, decision.since) == (0, None, NOW - 3600)
    with pytest.raises(ValueError, match="out of range"):
        alerter.restore(4, NOW)
    with pytest.raises(ValueError, match="both"):
        alerter.restore(0, None)


def test_missing_windows_are_named() -> None:
    alerter = BurnRateAlerter(TIERS, no_data_after=600)
    assert alerter.required_windows == frozenset([*WINDOWS, 600])
    partial = counts(0.0)
    del partial[259200], partial[600]
    with pytest.raises(ValueError, match=r"\[600, 259200\]"):
        alerter.evaluate(NOW, partial, SLO)


def test_constructor_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="threshold"):
        BurnRateAlerter([BurnThreshold("page", 3600, 300, 0.0)])
    with pytest.raises(ValueError, match="min_events"):
        BurnRateAlerter(TIERS, min_events=-1)
    with pytest.raises(ValueError, match="no_data_after"):
        BurnRateAlerter(TIERS, no_data_after=0)


# --- properties --------------------------------------------------------------------------------

ratios = st.sampled_from([0.0, 0.0005, 0.002, 0.005, 0.01, 0.02, 1.0])


@given(st.lists(st.tuples(st.dictionaries(st.sampled_from(WINDOWS), ratios), ratios,
                          st.booleans()), min_size=1, max_size=12))
def test_transitions_replay_to_the_reported_tier(
    steps: list[tuple[dict[int, float], float, bool]]
) -> None:
    alerter = BurnRateAlerter(TIERS, min_events=10)
    reported: int | None = None
    for step, (overrides, ratio, suppressed) in enumerate(steps):
        window_counts = counts(ratio, overrides)
        decision: AlertDecision = alerter.evaluate(NOW + 60 * step, window_counts, SLO,
                                                   suppressed=suppressed)
        fresh = BurnRateAlerter(TIERS, min_events=10).evaluate(NOW, window_counts, SLO)
        if suppressed:
            assert decision.tier is None and decision.transition is None
            continue
        # Never slower than what the counts alone would fire.
        if fresh.tier is not None:
            assert decision.tier is not None and decision.tier <= fresh.tier
        assert (decision.since is None) == (decision.tier is None)
        if reported == decision.tier:
            assert decision.transition is None
        elif reported is None:
            assert decision.transition == "fired"
        elif decision.tier is None:
            assert decision.transition == "resolved"
        else:
            assert decision.transition == (
                "escalated" if decision.tier < reported else "deescalated")
        reported = decision.tier
