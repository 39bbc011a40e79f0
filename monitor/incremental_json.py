"""A JSON document decoded a piece at a time, so a large body never holds the GIL long.

`json.loads` is one C call: on a 16 MiB Alertmanager post it holds the GIL for a few
hundred milliseconds, worker thread or not, and the event loop (probes, every other
request) waits that long. `loads` decodes a top-level object one member at a time and
the arrays under `split_keys` one element at a time, so other threads run between the
pieces. It accepts exactly what `json.loads` accepts and returns the same value (a
property test compares them), raising `json.JSONDecodeError` (a ValueError) otherwise.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection
from typing import Any

_DECODER = json.JSONDecoder()
_SPACE = re.compile(r"[ \t\n\r]*")


def loads(raw: bytes | str, split_keys: Collection[str] = ("alerts",)) -> Any:
    """`json.loads(raw)`, decoding the arrays named `split_keys` (members of a top-level
    object) element by element."""
    text = raw if isinstance(raw, str) else raw.decode(json.detect_encoding(raw),
                                                       "surrogatepass")
    if text.startswith("\ufeff"):
        raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", text, 0)
    start = _skip(text, 0)
    if not text.startswith("{", start):
        return _DECODER.decode(text)
    document, end = _object(text, start, split_keys)
    end = _skip(text, end)
    if end != len(text):
        raise json.JSONDecodeError("Extra data", text, end)
    return document


def _skip(text: str, pos: int) -> int:
    match = _SPACE.match(text, pos)
    assert match is not None  # `*` matches the empty string
    return match.end()


def _object(text: str, pos: int, split_keys: Collection[str]) -> tuple[dict[str, Any], int]:
    """The object whose `{` is at `pos`, and the position after its `}`."""
    members: dict[str, Any] = {}
    pos = _skip(text, pos + 1)
    if text.startswith("}", pos):
        return members, pos + 1
    while True:
        if not text.startswith('"', pos):
            raise json.JSONDecodeError(
                "Expecting property name enclosed in double quotes", text, pos)
        key, pos = _DECODER.raw_decode(text, pos)
        pos = _skip(text, pos)
        if not text.startswith(":", pos):
            raise json.JSONDecodeError("Expecting ':' delimiter", text, pos)
        pos = _skip(text, pos + 1)
        if key in split_keys and text.startswith("[", pos):
            members[key], pos = _array(text, pos)
        else:
            members[key], pos = _DECODER.raw_decode(text, pos)
        pos = _skip(text, pos)
        if text.startswith("}", pos):
            return members, pos + 1
        if not text.startswith(",", pos):
            raise json.JSONDecodeError("Expecting ',' delimiter", text, pos)
        pos = _skip(text, pos + 1)


def _array(text: str, pos: int) -> tuple[list[Any], int]:
    """The array whose `[` is at `pos`, one element per decoder call."""
    items: list[Any] = []
    pos = _skip(text, pos + 1)
    if text.startswith("]", pos):
        return items, pos + 1
    while True:
        item, pos = _DECODER.raw_decode(text, pos)
        items.append(item)
        pos = _skip(text, pos)
        if text.startswith("]", pos):
            return items, pos + 1
        if not text.startswith(",", pos):
            raise json.JSONDecodeError("Expecting ',' delimiter", text, pos)
        pos = _skip(text, pos + 1)
