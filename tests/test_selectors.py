"""Selector parsing and matching, as tables: what each selector picks and each bad one says."""

from __future__ import annotations

import re

import pytest
from pydantic import BaseModel, ValidationError

from probes.selectors import Selector, SelectorField, parse_selector

REQUESTS = "http_requests_total"
OK = {"method": "GET", "path": "/api/tasks", "code": "200"}
FAILED = {"method": "POST", "path": "/api/tasks", "code": "503"}
NOT_FOUND = {"method": "GET", "path": "/x", "code": "404"}
NO_CODE: dict[str, str] = {"method": "GET"}

# selector, sample name, labels, expected
MATCHES: list[tuple[str, str, dict[str, str], bool]] = [
    ("http_requests_total", REQUESTS, OK, True),
    ("http_requests_total", "http_requests_created", OK, False),
    ("http_requests", REQUESTS, OK, False),  # the full sample name, as Prometheus stores it
    ('http_requests_total{code="200"}', REQUESTS, OK, True),
    ('http_requests_total{code="200"}', REQUESTS, FAILED, False),
    ('http_requests_total{code!="200"}', REQUESTS, FAILED, True),
    ('http_requests_total{code!="200"}', REQUESTS, NO_CODE, True),  # absent label is ""
    ('http_requests_total{code=""}', REQUESTS, NO_CODE, True),
    ('http_requests_total{code=""}', REQUESTS, OK, False),
    ('http_requests_total{code=~"5.."}', REQUESTS, FAILED, True),
    ('http_requests_total{code=~"5.."}', REQUESTS, OK, False),
    ('http_requests_total{code!~"5.."}', REQUESTS, OK, True),
    ('http_requests_total{code!~"5.."}', REQUESTS, FAILED, False),
    ('http_requests_total{code!~"5.."}', REQUESTS, NO_CODE, True),
    ('http_requests_total{code=~"5"}', REQUESTS, FAILED, False),  # anchored: not a search
    ('http_requests_total{code=~"50"}', REQUESTS, FAILED, False),
    ('http_requests_total{code=~"2..|503"}', REQUESTS, FAILED, True),  # anchors wrap the |
    ('http_requests_total{code=~"2..|50"}', REQUESTS, FAILED, False),
    ('http_requests_total{code=~"4..|5.."}', REQUESTS, NOT_FOUND, True),
    ('http_requests_total{method="GET", code!~"5.."}', REQUESTS, OK, True),
    ('http_requests_total{method="GET", code!~"5.."}', REQUESTS, FAILED, False),
    ('http_requests_total{method="GET",code!~"5..",}', REQUESTS, OK, True),  # trailing comma
    ('  http_requests_total { code = "200" }  ', REQUESTS, OK, True),
    ("http_requests_total{}", REQUESTS, OK, True),
    ("http_requests_total{path='/api/tasks'}", REQUESTS, OK, True),
    ("http_requests_total{code=~`5\\d\\d`}", REQUESTS, FAILED, True),  # raw string
    ('http_requests_total{code=~"5\\\\d\\\\d"}', REQUESTS, FAILED, True),  # escaped \\d
    ('{__name__="http_requests_total"}', REQUESTS, OK, True),
    ('{__name__=~"http_.*_total", code="200"}', REQUESTS, OK, True),
    ('{__name__=~"http_.*_total", code="200"}', "cache_hits_total", OK, False),
    ('{code="200"}', "anything", OK, True),
    ("cache_hits_total", "cache_hits_total", {}, True),
    ('x{path="a\\"b"}', "x", {"path": 'a"b'}, True),
    ('x{path="\\u00e9"}', "x", {"path": "é"}, True),
    ('x{path=~"a.b"}', "x", {"path": "a\nb"}, True),  # `.` matches newlines, as in Prometheus 3
    ("namespace:requests:rate5m", "namespace:requests:rate5m", {}, True),
]


@pytest.mark.parametrize(("text", "name", "labels", "expected"), MATCHES)
def test_selector_matches(text: str, name: str, labels: dict[str, str], expected: bool) -> None:
    assert parse_selector(text).matches(name, labels) is expected


# selector, a fragment of the error message
INVALID: list[tuple[str, str]] = [
    ("", "empty selector"),
    ("   ", "empty selector"),
    ("{}", "matches every series"),
    ('{code=""}', "matches every series"),
    ('{code=~".*"}', "matches every series"),
    ('{code!="200"}', "matches every series"),
    ('x{__name__="y"}', "metric name given twice"),
    ("x{code}", "expected =, !=, =~ or !~ after label 'code'"),
    ("x{code=200}", "expected a quoted value for label 'code'"),
    ('x{code="200}', "unterminated string starting at column 8"),
    ('x{code="200"', "unclosed '{'"),
    ('x{code="200" method="GET"}', "expected ',' or '}' at column 14"),
    ('x{1code="200"}', "expected a label name at column 3"),
    ('x{code=="200"}', "expected a quoted value"),
    ('x{code=~"5(.."}', "invalid regex '5(..' for label 'code'"),
    ('x{code="\\d"}', "unknown escape sequence \\d at column 9"),
    ('x{code="\\x4"}', "unknown escape sequence"),
    ("rate(http_requests_total[5m])", "functions are not supported"),
    ("http_requests_total[5m]", "range selectors like [5m] are not supported"),
    ('x{code="200"} y', "unexpected 'y' at column 15"),
    ("5xx", "unexpected '5xx' at column 1"),
    ("x y", "after the selector"),
    ("x{code=\"2\n\"}", "unterminated string"),
]


@pytest.mark.parametrize(("text", "message"), INVALID)
def test_invalid_selectors_say_what_and_where(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_selector(text)


def test_non_text_is_refused() -> None:
    with pytest.raises(ValueError, match="must be text"):
        parse_selector(42)  # type: ignore[arg-type]


@pytest.mark.parametrize("text", [
    'http_requests_total{code!~"5..", method="GET"}',
    '{__name__=~"http_.*"}',
    "cache_hits_total",
    'x{path="a\\"b\\\\c"}',
])
def test_str_round_trips(text: str) -> None:
    parsed = parse_selector(text)
    assert parse_selector(str(parsed)) == parsed


def test_config_field_parses_once_and_reports_errors() -> None:
    class Section(BaseModel):
        selector: SelectorField

    section = Section.model_validate({"selector": 'x_total{code="500"}'})
    assert isinstance(section.selector, Selector)
    assert section.model_dump() == {"selector": 'x_total{code="500"}'}
    with pytest.raises(ValidationError) as caught:
        Section.model_validate({"selector": "x{code=500}"})
    error = caught.value.errors()[0]
    assert error["loc"] == ("selector",)
    assert "expected a quoted value for label 'code'" in error["msg"]
