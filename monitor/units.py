"""Parsing of the human units used in config: durations (`500ms`, `5m`, `30d`) and percentages.

Why our own parser: config authors write Prometheus-style durations; accepting exactly
that grammar (and plain numbers as seconds) gives precise error messages.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any

from pydantic import BeforeValidator

_UNIT_SECONDS = {
    "ms": 0.001,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
    "w": 7 * 86400.0,
}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def parse_duration(value: Any) -> float:
    """Return seconds for `500ms`, `10s`, `1h30m`, `30d` or a bare number of seconds."""
    if isinstance(value, bool):
        raise ValueError(f"invalid duration {value!r}: expected e.g. 500ms, 10s, 5m, 30d")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        # `${VAR:-10}` arrives as text; it means the same as a bare 10
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().lower()
        pos = 0
        seconds = 0.0
        for match in _PART.finditer(text):
            if match.start() != pos:
                break
            seconds += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
            pos = match.end()
        if pos != len(text) or not text:
            raise ValueError(f"invalid duration {value!r}: expected e.g. 500ms, 10s, 5m, 30d")
    else:
        raise ValueError(f"invalid duration {value!r}: expected e.g. 500ms, 10s, 5m, 30d")
    if seconds < 0:
        raise ValueError(f"invalid duration {value!r}: must not be negative")
    if not math.isfinite(seconds):  # YAML's .inf and .nan
        raise ValueError(f"invalid duration {value!r}: must be a finite number")
    return seconds


def format_duration(seconds: float) -> str:
    """Render seconds back in the config grammar, largest exact unit first (`90s` → `1m30s`).

    Counts whole milliseconds, so `1.5` renders as `1s500ms`, not a rounded `2s`.
    """
    remaining = round(seconds * 1000)
    parts: list[str] = []
    for unit in ("d", "h", "m", "s", "ms"):
        size = round(_UNIT_SECONDS[unit] * 1000)
        if remaining >= size:
            parts.append(f"{remaining // size}{unit}")
            remaining %= size
    return "".join(parts) or "0s"


def parse_percent(value: Any) -> float:
    """Return a ratio in (0, 1) from `99.9`, `"99.9%"` (percent); ratios like 0.999 are refused
    because `objective: 0.999` most likely means 0.999%, which nobody wants."""
    if isinstance(value, bool):
        raise ValueError(f"invalid percentage {value!r}")
    if isinstance(value, str):
        text = value.strip().removesuffix("%").strip()
        try:
            number = float(text)
        except ValueError:
            raise ValueError(f"invalid percentage {value!r}: expected e.g. 99.9 or 99.9%") from None
    elif isinstance(value, int | float):
        number = float(value)
    else:
        raise ValueError(f"invalid percentage {value!r}: expected e.g. 99.9 or 99.9%")
    if not 1 <= number < 100:
        raise ValueError(
            f"percentage {value!r} out of range: objectives are written in percent, "
            "between 1 and 100 (exclusive), e.g. 99.9"
        )
    return round(number / 100.0, 12)


Duration = Annotated[float, BeforeValidator(parse_duration)]
"""A duration in seconds, written in config as `500ms`, `10s`, `5m`, `30d`."""

Percent = Annotated[float, BeforeValidator(parse_percent)]
"""A ratio in (0, 1), written in config in percent (`99.9` or `99.9%`)."""


_SIZE_UNITS = {"": 1, "b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3,
               "kib": 1024, "mib": 1024**2, "gib": 1024**3}
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmg]i?b|b)?")


def parse_size(value: Any) -> int:
    """Return bytes for `1MiB`, `512KiB`, `10GB` or a bare integer of bytes."""
    if isinstance(value, bool):
        raise ValueError(f"invalid size {value!r}: expected e.g. 1MiB, 512KiB, 10GB")
    if isinstance(value, int):
        number, unit = float(value), ""
    elif isinstance(value, str):
        match = _SIZE.fullmatch(value.strip().lower())
        if not match:
            raise ValueError(f"invalid size {value!r}: expected e.g. 1MiB, 512KiB, 10GB")
        number, unit = float(match.group(1)), match.group(2) or ""
    else:
        raise ValueError(f"invalid size {value!r}: expected e.g. 1MiB, 512KiB, 10GB")
    if number < 0:
        raise ValueError(f"invalid size {value!r}: must not be negative")
    return int(number * _SIZE_UNITS[unit])


ByteSize = Annotated[int, BeforeValidator(parse_size)]
"""A size in bytes, written in config as `1MiB`, `512KiB` or a number of bytes."""


def format_size(size: float) -> str:
    """Bytes as people read them: `254 kB`, `8 GB`, `1.05 MB` (decimal units, as the
    config's `8GB` means 8·10⁹), three significant digits."""
    magnitude = abs(size)
    for unit, scale in (("TB", 1000**4), ("GB", 1000**3), ("MB", 1000**2), ("kB", 1000)):
        if magnitude >= scale:
            return f"{_significant(size / scale)} {unit}"
    return f"{size:.0f} B"


def format_seconds(seconds: float) -> str:
    """A measured time: `12.3 ms` below a second, `3.5 s` below a minute, else `4m10s`."""
    if abs(seconds) < 1:
        return f"{_significant(seconds * 1000)} ms"
    if abs(seconds) < 60:
        return f"{_significant(seconds)} s"
    return format_duration(seconds)


def format_measure(name: str, value: float) -> str:
    """`value` of the measurement `name` in its unit, read from the name's suffix the
    way Prometheus names carry units (`_bytes`, `_seconds`, `_ratio`); never e-notation."""
    if name.endswith("_bytes"):
        return format_size(value)
    if name == "latency" or name.endswith("_seconds"):
        return format_seconds(value)
    if name == "error" or name.endswith("_ratio") or name.endswith("_ratio_total"):
        return f"{_significant(value * 100)} %"
    return _significant(value)


def _significant(number: float) -> str:
    """Three significant digits without exponent; whole numbers of four or more digits
    in full with thousands separators (`12,345`)."""
    if abs(number) >= 1000:
        return f"{number:,.0f}"
    text = f"{number:.3g}"
    if "e" in text:  # tiny values: fall back to fixed notation
        text = f"{number:.6f}".rstrip("0").rstrip(".")
    return text
