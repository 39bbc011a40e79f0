"""The stakeholder dashboard: server-rendered HTML pages with SVG charts.

No JavaScript framework, no CDN: pages are Jinja2 templates (`dashboards/templates/`),
charts are SVG strings built in `dashboards/svg.py`, and a small script of our own
(`dashboards/static/app.js`) adds local times, sorting, tooltips and refresh. Pages read
the same service functions as the JSON API; they never import `alerts` internals beyond
its read functions.
"""
