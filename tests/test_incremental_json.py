"""`monitor/incremental_json.py` accepts what `json.loads` accepts, returns the same value,
and refuses what it refuses: compared on generated documents, valid and not."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.incremental_json import loads

SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.text(max_size=5), inner, max_size=4), max_leaves=20)
SPACE = st.sampled_from(["", " ", "\n", "\t", "\r\n  "])


def same(raw: bytes | str) -> None:
    """Both decode `raw` to the same value, or both refuse it."""
    try:
        expected: Any = json.loads(raw)
    except ValueError:
        with pytest.raises(ValueError):
            loads(raw)
        return
    assert json.dumps(loads(raw)) == json.dumps(expected)


@given(st.dictionaries(st.sampled_from(["alerts", "version", "x"]), VALUES, max_size=3),
       st.lists(VALUES, max_size=5), st.integers(min_value=0, max_value=4) | st.none(),
       st.sampled_from(["utf-8", "utf-16", "utf-8-sig"]))
def test_valid_documents_decode_as_json_loads_does(
        document: dict[str, Any], alerts: list[Any], indent: int | None, encoding: str
        ) -> None:
    document = {**document, "alerts": alerts}
    raw = json.dumps(document, indent=indent, ensure_ascii=False).encode(encoding)
    assert loads(raw) == json.loads(raw) == document


@given(st.lists(st.sampled_from(['{', '}', '[', ']', ',', ':', '"alerts"', '"a"', '1',
                                 'null', '"x"', ' ', '\n', 'NaN', '-', '"\\u00e9"']),
                max_size=14))
def test_any_sequence_of_tokens_is_judged_as_json_loads_does(tokens: list[str]) -> None:
    same("".join(tokens))


@pytest.mark.parametrize("raw", [
    '{"alerts": [1, 2,]}', '{"alerts": [1 2]}', '{"alerts": [1], }', '{"alerts": []} x',
    '{"alerts" [1]}', '{1: 2}', '\ufeff{}', '{"alerts": [{"a": 1}, {"b": [2, 3]}]}',
    '{"alerts": 5}', '[1, 2]', '"text"', ' {"a": {"alerts": [1]}, "alerts": [] } ',
    '{"alerts": [1], "alerts": [2]}', '{"alerts": [', '',
])
def test_edge_cases(raw: str) -> None:
    same(raw)
    same(raw.encode())


def test_a_byte_order_mark_is_accepted_in_bytes_only() -> None:
    assert loads(b'\xef\xbb\xbf{"alerts": [1]}') == {"alerts": [1]}
    with pytest.raises(ValueError):
        loads('\ufeff{"alerts": [1]}')


@given(st.lists(SPACE, min_size=6, max_size=6))
def test_whitespace_anywhere_json_allows_it(spaces: list[str]) -> None:
    a, b, c, d, e, f = spaces
    same(f'{a}{{{b}"alerts"{c}:{d}[{e}1{f},2]}}{a}')
