"""SLO math, pure functions over counts and timestamps: SLI classification (`sli`),
rollups (`rollup`), windows (`windows`), timeslices (`timeslices`), error budgets and
burn rates (`budget`, `projection`), alert state machines (`alerting`), mergeable
value histograms (`sketch`) and per-SLO status (`status`)."""
