"""PromQL-style instant vector selectors (`name{label="v", code!~"5.."}`) for picking samples.

Why our own parser: the `prometheus` probe filters scraped samples locally, with no
Prometheus server to ask, and config validation must reject a bad selector with a
precise message (the loader adds the file and line). The grammar is PromQL's, minus
functions and ranges: the probe computes deltas itself. Semantics follow Prometheus:
a missing label equals "", regexes are fully anchored, and a selector must contain at
least one matcher that does not match the empty string.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import PlainSerializer, PlainValidator, WithJsonSchema

Op = Literal["=", "!=", "=~", "!~"]

_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_OPERATOR = re.compile(r"=~|!~|!=|=")
_SIMPLE_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t",
                   "v": "\v", "\\": "\\", '"': '"', "'": "'"}
_HEX_ESCAPES = {"x": 2, "u": 4, "U": 8}
_OCTAL_DIGITS = "01234567"
_HEX_DIGITS = "0123456789abcdefABCDEF"


@dataclass(frozen=True, slots=True)
class Matcher:
    """One `label op "value"` condition; regex matchers hold their compiled pattern."""

    label: str
    op: Op
    value: str
    pattern: re.Pattern[str] | None = field(default=None, compare=False, repr=False)

    def matches(self, actual: str) -> bool:
        """Whether a label value (\"\" when the label is absent) satisfies this matcher."""
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        assert self.pattern is not None  # built by parse_selector for =~ and !~
        found = self.pattern.fullmatch(actual) is not None
        return found if self.op == "=~" else not found

    def __str__(self) -> str:
        return f"{self.label}{self.op}{json.dumps(self.value, ensure_ascii=False)}"


@dataclass(frozen=True, slots=True)
class Selector:
    """A parsed instant selector: an optional metric name and label matchers, all ANDed."""

    name: str | None
    matchers: tuple[Matcher, ...] = ()

    def matches(self, sample_name: str, labels: Mapping[str, str]) -> bool:
        """Whether one sample (its full name, e.g. `x_total`, and labels) is selected."""
        if self.name is not None and sample_name != self.name:
            return False
        for matcher in self.matchers:
            actual = sample_name if matcher.label == "__name__" else labels.get(matcher.label, "")
            if not matcher.matches(actual):
                return False
        return True

    def __str__(self) -> str:
        inner = ", ".join(map(str, self.matchers))
        if self.name is None:
            return "{" + inner + "}"
        return self.name + ("{" + inner + "}" if inner else "")


def parse_selector(text: str) -> Selector:
    """Parse `name{label="v", ...}`; raises ValueError saying what is wrong and where."""
    if not isinstance(text, str):
        raise ValueError(f"a selector must be text like http_requests_total{{code=\"200\"}}, "
                         f"got {type(text).__name__}")
    return _Parser(text).selector()


class _Parser:
    """A tiny scanner over one selector; positions in messages are 1-based columns."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        # quoted for messages without repr's doubled backslashes, which would mislead here
        self.quoted = "'" + text.replace("\n", "\\n") + "'"

    def selector(self) -> Selector:
        self._skip_space()
        if self.pos == len(self.text):
            raise ValueError('empty selector: expected a metric name like http_requests_total '
                             'or matchers like {job="api"}')
        name: str | None = None
        found = _METRIC_NAME.match(self.text, self.pos)
        if found:
            name = found.group()
            self.pos = found.end()
            self._skip_space()
        matchers: list[Matcher] = []
        if self._peek() == "{":
            self.pos += 1
            matchers = self._matchers()
            self._skip_space()
        if self.pos != len(self.text):
            self._unexpected_tail(name is not None or bool(matchers))
        return self._checked(name, tuple(matchers))

    def _matchers(self) -> list[Matcher]:
        matchers: list[Matcher] = []
        while True:
            self._skip_space()
            if self._peek() == "}":
                self.pos += 1
                return matchers
            if self.pos == len(self.text):
                raise ValueError(f"unclosed '{{' in selector {self.quoted}: expected '}}'")
            label_match = _LABEL_NAME.match(self.text, self.pos)
            if not label_match:
                raise ValueError(f"expected a label name at column {self.pos + 1} of "
                                 f"{self.quoted}, found {self._rest()!r}")
            label = label_match.group()
            self.pos = label_match.end()
            self._skip_space()
            op_match = _OPERATOR.match(self.text, self.pos)
            if not op_match:
                raise ValueError(f"expected =, !=, =~ or !~ after label {label!r} at column "
                                 f"{self.pos + 1} of {self.quoted}")
            op: Op = op_match.group()  # type: ignore[assignment]  # the regex admits only Op
            self.pos = op_match.end()
            self._skip_space()
            value = self._string(label)
            matchers.append(_matcher(label, op, value))
            self._skip_space()
            if self._peek() == ",":
                self.pos += 1
            elif self._peek() != "}":
                if self.pos == len(self.text):
                    raise ValueError(f"unclosed '{{' in selector {self.quoted}: expected '}}'")
                raise ValueError(f"expected ',' or '}}' at column {self.pos + 1} of "
                                 f"{self.quoted}, found {self._rest()!r}")

    def _string(self, label: str) -> str:
        """A quoted value: "..." or '...' with Go escapes, or `...` taken literally."""
        quote = self._peek()
        if quote not in ('"', "'", "`"):
            raise ValueError(f"expected a quoted value for label {label!r} at column "
                             f"{self.pos + 1} of {self.quoted} (write {label}=\"...\")")
        start = self.pos
        self.pos += 1
        out: list[str] = []
        while self.pos < len(self.text):
            char = self.text[self.pos]
            if char == quote:
                self.pos += 1
                return "".join(out)
            if char == "\\" and quote != "`":
                out.append(self._escape())
                continue
            if char == "\n" and quote != "`":
                break
            out.append(char)
            self.pos += 1
        raise ValueError(f"unterminated string starting at column {start + 1} of {self.quoted}")

    def _escape(self) -> str:
        """Decode the escape at `pos` (a backslash), like PromQL's Go-style strings."""
        start = self.pos
        code = self.text[self.pos + 1: self.pos + 2]
        if code in _SIMPLE_ESCAPES:
            self.pos += 2
            return _SIMPLE_ESCAPES[code]
        if code in _HEX_ESCAPES:
            digits = self.text[self.pos + 2: self.pos + 2 + _HEX_ESCAPES[code]]
            if len(digits) == _HEX_ESCAPES[code] and all(d in _HEX_DIGITS for d in digits):
                self.pos += 2 + len(digits)
                try:
                    return chr(int(digits, 16))
                except (ValueError, OverflowError):
                    pass
        elif code and code in _OCTAL_DIGITS:
            digits = self.text[self.pos + 1: self.pos + 4]
            if len(digits) == 3 and all(d in _OCTAL_DIGITS for d in digits):
                self.pos += 4
                return chr(int(digits, 8))
        raise ValueError(f"unknown escape sequence {self.text[start:start + 2]} at column "
                         f"{start + 1} of {self.quoted}; in a regex write \\\\d inside "
                         f"\"...\" or use backquotes: `5\\d\\d`")

    def _unexpected_tail(self, had_selector: bool) -> None:
        char = self._peek()
        if char == "(":
            raise ValueError(f"functions are not supported in a selector ({self.quoted}): "
                             f"name the counter itself, e.g. http_requests_total{{code=\"500\"}};"
                             f" the probe computes the deltas")
        if char == "[":
            raise ValueError(f"range selectors like [5m] are not supported ({self.quoted}): "
                             f"the probe computes deltas between scrapes itself")
        where = "after the selector" if had_selector else "where a metric name or '{' belongs"
        raise ValueError(f"unexpected {self._rest()!r} at column {self.pos + 1} of "
                         f"{self.quoted} ({where})")

    def _checked(self, name: str | None, matchers: tuple[Matcher, ...]) -> Selector:
        if name is not None and any(m.label == "__name__" for m in matchers):
            raise ValueError(f"metric name given twice in {self.quoted}: as {name!r} and as a "
                             f"__name__ matcher")
        if name is None and all(m.matches("") for m in matchers):
            raise ValueError(f"selector {self.quoted} matches every series: give a metric "
                             f"name or at least one matcher that does not match the empty "
                             f"string")
        return Selector(name, matchers)

    def _skip_space(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in " \t\r\n":
            self.pos += 1

    def _peek(self) -> str:
        return self.text[self.pos: self.pos + 1]

    def _rest(self) -> str:
        rest = self.text[self.pos:]
        return rest if len(rest) <= 20 else rest[:17] + "..."


def _matcher(label: str, op: Op, value: str) -> Matcher:
    if op in ("=", "!="):
        return Matcher(label, op, value)
    try:
        # DOTALL: like Prometheus 3, `.` matches any character, newlines included
        pattern = re.compile(value, re.DOTALL)
    except re.error as exc:
        raise ValueError(f"invalid regex {value!r} for label {label!r}: {exc}") from None
    return Matcher(label, op, value, pattern)


def _validate(value: Any) -> Selector:
    return value if isinstance(value, Selector) else parse_selector(value)


SelectorField = Annotated[
    Selector,
    PlainValidator(_validate),
    PlainSerializer(str, return_type=str),
    WithJsonSchema({"type": "string", "description": 'PromQL selector, e.g. x_total{code!~"5.."}'}),
]
"""A config field holding a selector: written as text, validated when the config loads."""
