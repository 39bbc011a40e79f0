"""SLO math: SLI classification, rollups, error budgets and burn rates (pure functions)."""
