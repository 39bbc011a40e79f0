"""Silences (Alertmanager's model): label matchers and a time span; a matching alert
opens no incident and an open incident it matches notifies nobody until it ends.

Creating one from an incident (Slack's "Silence 1h", `repeatable=False`) is idempotent
over a short window (`REPEAT_WINDOW`), see `create_silence`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from sqlalchemy import Connection, Engine, false, insert, select, text, update

from monitor.storage.models import SilenceRow

Op = Literal["=", "!=", "=~", "!~"]
OPS: tuple[Op, ...] = ("=", "!=", "=~", "!~")

REPEAT_WINDOW = 300.0
"""Seconds within which an identical request is the same request sent again: Slack's
signature window (a validly signed button press can be replayed for 5 minutes), and
ample for an HTTP client retrying a POST whose answer it did not get."""


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
    replayed: bool = field(default=False, compare=False)
    """True when `create_silence` answered an identical earlier request with this one."""

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
                   ends_at: float, created_by: str, comment: str, now: float,
                   repeatable: bool = True) -> Silence:
    """Store a silence; with `repeatable=False`, answer instead the one an identical
    request made moments ago.

    The REST API stores every silence it is sent, as Alertmanager's does (a client may
    mean two). A button press is different: the same press arrives again as a replay.

    Identical: same matchers, author, comment and duration, starting at most
    `REPEAT_WINDOW` after that silence, which was created within the window and is still
    in effect. So a replayed Slack "Silence 1h" press (valid for 5 minutes) or a retried
    POST changes nothing and answers the first silence, while a new press later on is a
    new silence next to the first: what a human pressing again means (another hour from
    now), and what reminders expect (`alerts.reminders` reminds once per silence id and
    stays quiet while another matching silence outlasts the ending one). A silence ended
    early (`expire_silence`) is not in effect, so the same request afterwards makes a new
    one: whoever asks again after it was ended means it.
    """
    if ends_at <= starts_at:
        raise SilenceError("`ends_at` must be after `starts_at`")
    if ends_at <= now:
        raise SilenceError("the silence would already be over")
    values: dict[str, Any] = {"matchers": [m.as_dict() for m in matchers], "starts_at": starts_at,
              "ends_at": ends_at, "created_by": created_by[:100], "comment": comment[:1000],
              "created_at": now}
    with engine.begin() as connection:
        if not repeatable:
            _one_writer_at_a_time(connection)
            earlier = _same_request(connection, tuple(matchers), values, now)
            if earlier is not None:
                return replace(earlier, replayed=True)
        new_id = connection.execute(insert(SilenceRow).values(**values)
                                    .returning(SilenceRow.id)).scalar_one()
    return Silence(int(new_id), tuple(matchers), starts_at, ends_at, values["created_by"],
                   values["comment"], now)


def _one_writer_at_a_time(connection: Connection) -> None:
    """Make find-then-insert atomic: two copies of one request arriving together (a
    replay racing the original) must not both find nothing and both insert."""
    if connection.dialect.name == "postgresql":
        # Blocks other silence writers only; readers (ACCESS SHARE) go on.
        connection.execute(text("LOCK TABLE silences IN SHARE ROW EXCLUSIVE MODE"))
    else:
        # SQLite takes its single write lock at a transaction's first write, not its
        # first read: a write that changes nothing takes it before we look.
        connection.execute(update(SilenceRow).where(false())
                           .values(ends_at=SilenceRow.ends_at))


def _same_request(connection: Connection, matchers: tuple[Matcher, ...],
                  values: Mapping[str, Any], now: float) -> Silence | None:
    """The silence an identical request made within `REPEAT_WINDOW`, if still in effect."""
    starts_at, duration = values["starts_at"], values["ends_at"] - values["starts_at"]
    rows = connection.execute(
        select(SilenceRow)
        .where(SilenceRow.created_by == values["created_by"],
               SilenceRow.comment == values["comment"],
               SilenceRow.created_at >= now - REPEAT_WINDOW,
               SilenceRow.ends_at > now,
               SilenceRow.starts_at <= starts_at,
               SilenceRow.starts_at >= starts_at - REPEAT_WINDOW)
        .order_by(SilenceRow.id))
    for row in rows:
        silence = _from_row(row)
        if silence.matchers == matchers and \
                abs((silence.ends_at - silence.starts_at) - duration) < 1e-6:
            return silence
    return None


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
