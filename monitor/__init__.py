"""primewatch's application core: config, storage, scheduling, the JSON API, CLI and /metrics.

`monitor` is the composition root: it is the only package that wires probes, SLO math,
storage and the web layer together (see `monitor.app.create_app`).
"""

__version__ = "0.1.0"
