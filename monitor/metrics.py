"""primewatch's own Prometheus metrics, on a registry passed in (never the global one).

Labels are bounded: target and SLO names come from config, windows and error classes
from fixed vocabularies; no URLs, no error messages.
"""

from __future__ import annotations

import contextlib
import platform
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

from monitor import __version__
from monitor.units import format_duration
from probes.base import ProbeResult
from slo.status import SloStatus

if TYPE_CHECKING:
    from monitor.config_slo import SloConfig
    from monitor.phases import PhaseStatus, TriggerStatus

# Probe latencies span ~1 ms (loopback) to the timeout; buckets dense around typical
# SLO thresholds (100 ms, 200 ms, 500 ms, 2 s).
PROBE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75,
                 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)
LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)


class Metrics:
    """All metrics primewatch exposes on /metrics."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.build_info = Info("primewatch_build", "primewatch version and Python runtime",
                               registry=r)
        self.build_info.info({"version": __version__, "python": platform.python_version()})
        self.probe_success = Gauge("primewatch_probe_success",
                                   "1 if the last probe of the target succeeded, else 0",
                                   ["target"], registry=r)
        self.probe_duration = Histogram("primewatch_probe_duration_seconds",
                                        "Probe duration, connect to last body byte",
                                        ["target"], buckets=PROBE_BUCKETS, registry=r)
        self.probe_status_code = Gauge("primewatch_probe_last_status_code",
                                       "HTTP status code of the last probe (0 if none)",
                                       ["target"], registry=r)
        self.probe_last_run = Gauge("primewatch_probe_last_run_timestamp_seconds",
                                    "When the last probe of the target started",
                                    ["target"], registry=r)
        self.probes_total = Counter("primewatch_probes_total",
                                    "Probes run, by outcome (ok or an error class)",
                                    ["target", "outcome"], registry=r)
        # A timestamp, not "days left": base units pass `promtool check metrics`, and
        # `(x - time()) / 86400` counts down between probes instead of going stale.
        self.cert_expiry = Gauge("primewatch_probe_tls_cert_expiry_timestamp_seconds",
                                 "When the target's TLS certificate expires, as seen by the "
                                 "last probe (Unix time, about 15 min precision)",
                                 ["target"], registry=r)
        self.cold_starts = Counter("primewatch_probe_cold_starts_total",
                                   "Probes that met a cold start (slow answer after idle)",
                                   ["target"], registry=r)
        self.scheduler_lag = Histogram("primewatch_scheduler_lag_seconds",
                                       "Delay between a probe's planned and actual start",
                                       buckets=LAG_BUCKETS, registry=r)
        self.probes_skipped = Counter("primewatch_probes_skipped_total",
                                      "Probe runs skipped because the previous run of the "
                                      "same target was still going", ["target"], registry=r)
        self.results_written = Counter("primewatch_results_written_total",
                                       "Probe results written to storage", registry=r)
        self.results_dropped = Counter("primewatch_results_dropped_total",
                                       "Probe results lost: write buffer and spill file "
                                       "full, or a spilled record unreadable", registry=r)
        self.results_quarantined = Counter(
            "primewatch_results_quarantined_total",
            "Probe results the database refused on their own (not an outage): left out, "
            "not retried, while the rest of their batch was stored", registry=r)
        self.results_buffered = Gauge("primewatch_results_buffered",
                                      "Probe results waiting to be written", registry=r)
        self.storage_errors = Counter("primewatch_storage_write_errors_total",
                                      "Failed storage write attempts (retried)", registry=r)
        self.slo_sli = Gauge("primewatch_slo_sli_ratio",
                             "SLI over the SLO window (absent when there is no data)",
                             ["slo"], registry=r)
        self.slo_objective = Gauge("primewatch_slo_objective_ratio",
                                   "The SLO's objective as a ratio", ["slo"], registry=r)
        self.slo_budget = Gauge("primewatch_slo_error_budget_remaining_ratio",
                                "Error budget left over the SLO window (negative: overspent)",
                                ["slo"], registry=r)
        self.slo_burn = Gauge("primewatch_slo_burn_rate",
                              "Error ratio over the window divided by the error budget",
                              ["slo", "window"], registry=r)
        self.slo_events = Gauge("primewatch_slo_events",
                                "Valid events in the SLO window", ["slo", "kind"], registry=r)
        self.slo_alert = Gauge("primewatch_slo_alert_firing",
                               "1 while a burn-rate alert fires for the SLO, by severity",
                               ["slo", "severity"], registry=r)
        self.slo_exhaustion = Gauge("primewatch_slo_error_budget_exhaustion_seconds",
                                    "Seconds until the budget is spent at the last hour's "
                                    "burn (absent when not burning)", ["slo"], registry=r)
        self.phase_met = Gauge("primewatch_phase_met",
                               "1 when every SLO of the scaling phase is met, 0 when one is "
                               "not (absent while one has no data)", ["phase"], registry=r)
        self.target_down = Gauge("primewatch_target_down",
                                 "1 while the target's last down_after probes all failed",
                                 ["target"], registry=r)
        self.trigger_firing = Gauge("primewatch_trigger_firing",
                                    "1 while the decision trigger's condition holds",
                                    ["trigger"], registry=r)
        self.slo_info = Info("primewatch_slo",
                             "One series per configured SLO (value 1) carrying its config, "
                             "to join on `slo` in Grafana",
                             ["slo", "target", "sli_kind", "objective", "window", "budgeting"],
                             registry=r)
        self.slo_no_data = Gauge("primewatch_slo_no_data",
                                 "1 when the SLO window holds no events", ["slo"], registry=r)
        self.slo_events_total = Counter(
            "primewatch_slo_ingested_events_total",
            "SLO events stored since start, by result (good, bad); maintenance left out. "
            "rate() of these gives any window's SLI, as Sloth-style rules expect",
            ["slo", "result"], registry=r)
        self.up = Gauge("primewatch_up", "1 while this primewatch process runs", registry=r)
        self.up.set(1)
        self.last_evaluation = Gauge(
            "primewatch_last_evaluation_timestamp_seconds",
            "When the last SLO evaluation tick finished: alert if it stops moving",
            registry=r)
        self.leader = Gauge(
            "primewatch_leader",
            "1 while this instance holds leadership (evaluates alert rules and notifies)",
            registry=r)
        self.heartbeat = Gauge(
            "primewatch_heartbeat_timestamp_seconds",
            "When this instance last heartbeated into the shared database", registry=r)
        self.targets_stalled = Gauge(
            "primewatch_targets_stalled",
            "Targets not probed for 3 of their intervals (the scheduler or probes hang)",
            registry=r)
        self.incidents_open = Gauge("primewatch_incidents_open",
                                    "Open incidents by severity and status",
                                    ["severity", "status"], registry=r)
        self.notifications = Counter("primewatch_notifications_total",
                                     "Notification attempts by channel and outcome "
                                     "(delivered, retry, failed)", ["channel", "outcome"],
                                     registry=r)
        self.notifications_pending = Gauge("primewatch_notifications_pending",
                                           "Notifications queued and not yet delivered",
                                           registry=r)
        # The storage-outage path (monitor/sink.py, monitor/spill.py).
        self.storage_up = Gauge("primewatch_storage_up",
                                "1 while storage writes succeed, 0 from a failed write "
                                "until the next one succeeds", registry=r)
        self.results_spilled = Counter("primewatch_results_spilled_total",
                                       "Probe results moved to the spill file because the "
                                       "write buffer was full", registry=r)
        self.results_replayed = Counter("primewatch_results_replayed_total",
                                        "Spilled probe results written to storage (also "
                                        "counted in primewatch_results_written_total)",
                                        registry=r)
        self.spill_results = Gauge("primewatch_spill_results",
                                   "Probe results in the spill file not yet written",
                                   registry=r)
        self.spill_bytes = Gauge("primewatch_spill_bytes",
                                 "Size of the spill file (0 when there is none)", registry=r)

    def describe_slos(self, slos: Iterable[SloConfig]) -> None:
        """Publish `primewatch_slo_info` from config, so dashboards can show an SLO's
        objective and window next to its gauges without reading the YAML."""
        self.slo_info.clear()  # a second call describes the new config, not both
        for slo in slos:
            window = slo.window if isinstance(slo.window, str) else format_duration(slo.window)
            self.slo_info.labels(slo.name, slo.target, slo.sli, f"{slo.objective:.12g}",
                                 window, slo.budgeting).info({})

    def count_events(self, slo: str, good: int, total: int) -> None:
        """Called by the writer for every stored batch."""
        self.slo_events_total.labels(slo, "good").inc(good)
        self.slo_events_total.labels(slo, "bad").inc(total - good)

    def observe_probe(self, result: ProbeResult) -> None:
        """Called by the scheduler for every result, before storage, so /metrics shows a
        failing target even while the database is down."""
        target = result.target
        self.probe_success.labels(target).set(1 if result.ok else 0)
        self.probe_duration.labels(target).observe(result.latency)
        self.probe_status_code.labels(target).set(result.status_code or 0)
        self.probe_last_run.labels(target).set(result.started_at)
        self.probes_total.labels(target, "ok" if result.ok else result.error_class or "error").inc()
        if result.cert_days_left is not None:
            self.cert_expiry.labels(target).set(
                result.started_at + result.cert_days_left * 86400.0)
        if result.values.get("cold_start"):
            self.cold_starts.labels(target).inc()

    def observe_slo(self, status: SloStatus) -> None:
        """Called on every evaluation tick; values without data are removed, not zeroed."""
        name = status.name
        self.slo_objective.labels(name).set(status.objective)
        self.slo_no_data.labels(name).set(1 if status.state == "no_data" else 0)
        self.slo_events.labels(name, "good").set(status.good)
        self.slo_events.labels(name, "total").set(status.total)
        _set_or_remove(self.slo_sli, (name,), status.sli)
        _set_or_remove(self.slo_budget, (name,), status.budget_remaining)
        for window in status.windows:
            _set_or_remove(self.slo_burn, (name, window.window), window.burn_rate)
        for severity in ("page", "ticket"):
            self.slo_alert.labels(name, severity).set(
                1 if status.alert.severity == severity else 0)
        _set_or_remove(self.slo_exhaustion, (name,), status.exhaustion_seconds)

    def observe_phases(self, phases: Sequence[PhaseStatus],
                       triggers: Sequence[TriggerStatus]) -> None:
        """Called on every evaluation tick, after the SLOs the phases are judged on."""
        for phase in phases:
            value = None if phase.state == "unknown" else (1.0 if phase.state == "met" else 0.0)
            _set_or_remove(self.phase_met, (phase.name,), value)
        for trigger in triggers:
            self.trigger_firing.labels(trigger.name).set(1 if trigger.firing else 0)


def _set_or_remove(gauge: Gauge, labels: tuple[str, ...], value: float | None) -> None:
    """No data is an absent series, not a zero that looks like a measurement."""
    if value is None:
        with contextlib.suppress(KeyError):
            gauge.remove(*labels)
    else:
        gauge.labels(*labels).set(value)
