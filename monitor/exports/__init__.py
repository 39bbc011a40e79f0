"""Artefacts for the tools people already run: Prometheus rules, a Grafana dashboard,
OpenSLO documents. Each kind is one module with one `render(settings) -> str`,
registered in EXPORTERS (imported lazily: `primewatch check` never pays for them)."""

from __future__ import annotations

import importlib
from collections.abc import Callable

from monitor.config import Settings

EXPORTERS: dict[str, tuple[str, str, str | None]] = {
    # kind: (module, help, default output file or None for stdout)
    "prometheus-rules": ("monitor.exports.prometheus_rules",
                         "Prometheus recording and multi-window burn-rate alerting rules",
                         None),
    "grafana-dashboard": ("monitor.exports.grafana",
                          "an importable Grafana dashboard over primewatch's metrics",
                          "dashboards/grafana/primewatch.json"),
    "openslo": ("monitor.exports.openslo", "OpenSLO v1 Service, SLI, SLO and AlertPolicy "
                                           "documents", None),
}


def renderer(kind: str) -> Callable[[Settings], str]:
    module, _, _ = EXPORTERS[kind]
    render: Callable[[Settings], str] = importlib.import_module(module).render
    return render
