"""Silences (Alertmanager's model): label matchers and a time span; a matching alert
opens no incident and an open incident it matches notifies nobody until it ends."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import Engine, insert, select, update

from monitor.storage.models import SilenceRow

Op = Literal["=", "!=", "=~", "!~"]
OPS: tuple[Op, ...] = ("=", "!=", "=~", "!~")


class SilenceError(ValueError):
    """A silence request that cannot be stored (bad matcher, empty span)."""


@dataclass(frozen=True, slots=True)
class Matcher:
    """`name op value`; regexes are anchored like Alertmanager's."""

    name: str
    value: str
    op: Op = "="

    def matches(self, labels: Mapping[str, str]) -> bool:
        actual = labels.get(self.name, "")
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        found = re.fullmatch(self.value, actual) is not None
        return found if self.op == "=~" else not found

    def as_dict(self) -> dict[str, str]:
        return {"name": self.name, "op": self.op, "value": self.value}


def parse_matchers(raw: Sequence[Mapping[str, str]]) -> list[Matcher]:
    """Validated matchers from API/JSON dicts: every problem named, none silently kept."""
    if not raw:
        raise SilenceError("a silence needs at least one matcher")
    out = []
    for index, item in enumerate(raw):
        name, value, op = item.get("name"), item.get("value"), item.get("op", "=")
        if not isinstance(name, str) or not name:
            raise SilenceError(f"matchers[{index}]: `name` must be a non-empty string")
        if not isinstance(value, str):
            raise SilenceError(f"matchers[{index}]: `value` must be a string")
        if op not in OPS:
            raise SilenceError(f"matchers[{index}]: `op` must be one of {', '.join(OPS)}")
        if op in ("=~", "!~"):
            try:
                re.compile(value)
            except re.error as exc:
                raise SilenceError(f"matchers[{index}]: bad regex {value!r}: {exc}") from exc
        out.append(Matcher(name, value, op))
    if all(m.op in ("!=", "!~") or (m.op == "=~" and re.fullmatch(m.value, "")) for m in out):
        # Alertmanager's rule: a silence that also matches an empty label set would
        # silence everything.
        raise SilenceError("at least one matcher must require a non-empty value")
    return out


@dataclass(frozen=True, slots=True)
class Silence:
    id: int
    matchers: tuple[Matcher, ...]
    starts_at: float
    ends_at: float
    created_by: str
    comment: str
    created_at: float

    def active(self, now: float) -> bool:
        return self.starts_at <= now < self.ends_at

    def state(self, now: float) -> str:
        if now < self.starts_at:
            return "pending"
        return "active" if now < self.ends_at else "expired"

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(m.matches(labels) for m in self.matchers)

    def as_dict(self, now: float) -> dict[str, object]:
        return {"id": self.id, "matchers": [m.as_dict() for m in self.matchers],
                "starts_at": self.starts_at, "ends_at": self.ends_at,
                "created_by": self.created_by, "comment": self.comment,
                "created_at": self.created_at, "state": self.state(now)}


def _from_row(row: Any) -> Silence:
    return Silence(row.id, tuple(Matcher(m["name"], m["value"], m.get("op", "="))
                                 for m in row.matchers),
                   row.starts_at, row.ends_at, row.created_by, row.comment, row.created_at)


def create_silence(engine: Engine, matchers: Sequence[Matcher], *, starts_at: float,
                   ends_at: float, created_by: str, comment: str, now: float) -> Silence:
    if ends_at <= starts_at:
        raise SilenceError("`ends_at` must be after `starts_at`")
    if ends_at <= now:
        raise SilenceError("the silence would already be over")
    values: dict[str, Any] = {"matchers": [m.as_dict() for m in matchers], "starts_at": starts_at,
              "ends_at": ends_at, "created_by": created_by[:100], "comment": comment[:1000],
              "created_at": now}
    with engine.begin() as connection:
        new_id = connection.execute(insert(SilenceRow).values(**values)
                                    .returning(SilenceRow.id)).scalar_one()
    return Silence(int(new_id), tuple(matchers), starts_at, ends_at, values["created_by"],
                   values["comment"], now)


def list_silences(engine: Engine, now: float, *, include_expired: bool = False
                  ) -> list[Silence]:
    query = select(SilenceRow).order_by(SilenceRow.id)
    if not include_expired:
        query = query.where(SilenceRow.ends_at > now)
    with engine.connect() as connection:
        return [_from_row(row) for row in connection.execute(query)]


def get_silence(engine: Engine, silence_id: int) -> Silence | None:
    with engine.connect() as connection:
        row = connection.execute(select(SilenceRow).where(SilenceRow.id == silence_id)
                                 ).first()
    return None if row is None else _from_row(row)


def expire_silence(engine: Engine, silence_id: int, now: float) -> Silence | None:
    """End a silence now (kept for the record); None if there is no such silence."""
    with engine.begin() as connection:
        connection.execute(update(SilenceRow)
                           .where(SilenceRow.id == silence_id, SilenceRow.ends_at > now)
                           .values(ends_at=now))
    return get_silence(engine, silence_id)


def silenced_by(silences: Sequence[Silence], labels: Mapping[str, str], now: float
                ) -> Silence | None:
    """The first active silence matching `labels`."""
    return next((s for s in silences if s.active(now) and s.matches(labels)), None)
