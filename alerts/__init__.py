"""Incidents, escalation policies, notifiers and post-mortems (arrives with issue 5).

Depends on SLO and probe states; never imports `dashboards`.
"""
