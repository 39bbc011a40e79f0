"""The stakeholder web dashboard and the Grafana dashboard JSON (arrives with issue 6)."""
