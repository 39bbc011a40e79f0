"""Incidents, escalation policies, notifiers, silences and post-mortem drafts.

Depends on SLO and probe states; never imports `dashboards`.
"""
