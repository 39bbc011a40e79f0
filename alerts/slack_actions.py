"""Slack interactive buttons: verify that `POST /slack/actions` came from Slack, then parse it.

The HTTP route lives in the web layer; this module holds what it needs and nothing that
does I/O, so both halves are testable without a server: `verify_request` (signature and
5-minute replay window, with time passed in) and `parse_action` (the `block_actions`
payload → `SlackAction`, or None for anything we did not send). The action ids are
defined here and used by `alerts.slack` when it builds the buttons, so the two cannot drift.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import parse_qs

from slack_sdk.signature import Clock, SignatureVerifier

ActionKind = Literal["ack", "resolve", "silence"]

ACTION_IDS: dict[ActionKind, str] = {
    "ack": "incident_ack",
    "resolve": "incident_resolve",
    "silence": "incident_silence_1h",
}
"""Button action_id per action kind; the buttons' `value` is the incident id."""

_KIND_BY_ACTION_ID: dict[str, ActionKind] = {v: k for k, v in ACTION_IDS.items()}
_MAX_INCIDENT_DIGITS = 18  # fits a signed 64-bit column


@dataclass(frozen=True, slots=True)
class SlackAction:
    """One button press on an incident message."""

    kind: ActionKind
    incident_id: int
    user: str
    """Who pressed: the Slack username when given (readable in the timeline), else the id."""
    channel: str | None
    message_ts: str | None
    response_url: str | None
    """Where to post an ephemeral or replacing answer (valid 30 minutes, 5 uses)."""


class _FixedClock(Clock):
    """slack-sdk's clock interface answering one instant, so callers own the time."""

    def __init__(self, now: float) -> None:
        self._now = now

    def now(self) -> float:
        return self._now


def verify_request(signing_secret: str, body: bytes, headers: Mapping[str, str],
                   now: float) -> bool:
    """True when the body was signed with our secret less than 5 minutes from `now`.

    Any doubt (missing or garbled headers, an empty secret) answers False: an unverified
    request must never acknowledge or resolve an incident.
    """
    try:
        verifier = SignatureVerifier(signing_secret, clock=_FixedClock(now))
        return verifier.is_valid_request(body, headers)
    except ValueError:  # empty secret, or a timestamp header that is not an integer
        return False


def sign(signing_secret: str, body: bytes, timestamp: float) -> dict[str, str]:
    """The two headers Slack would send with `body` at `timestamp` (for tests and tools)."""
    stamp = str(int(timestamp))
    signature = SignatureVerifier(signing_secret).generate_signature(timestamp=stamp, body=body)
    return {"X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": signature or ""}


def parse_action(body: bytes) -> SlackAction | None:
    """The button press in a form-encoded `block_actions` body; None when malformed or foreign.

    The body is attacker-reachable until verified and Slack may send interaction types we
    do not handle, so every unexpected shape answers None instead of raising.
    """
    payload = _payload(body)
    if payload is None or payload.get("type") != "block_actions":
        return None
    found = _our_action(payload.get("actions"))
    user = _user(payload.get("user"))
    if found is None or user is None:
        return None
    kind, incident_id = found
    return SlackAction(
        kind=kind,
        incident_id=incident_id,
        user=user,
        channel=_text(_field(payload, "channel", "id")) or _text(
            _field(payload, "container", "channel_id")),
        message_ts=_text(_field(payload, "container", "message_ts")) or _text(
            _field(payload, "message", "ts")),
        response_url=_text(payload.get("response_url")),
    )


def _payload(body: bytes) -> dict[str, Any] | None:
    """The JSON object in the `payload` form field, if there is exactly that."""
    try:
        fields = parse_qs(body.decode("utf-8"), max_num_fields=20)
        values = fields.get("payload", [])
        decoded = json.loads(values[0]) if len(values) == 1 else None
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    return decoded if isinstance(decoded, dict) else None


def _our_action(actions: object) -> tuple[ActionKind, int] | None:
    """The first action that is one of our buttons carrying a valid incident id."""
    if not isinstance(actions, list):
        return None
    for action in actions:
        if not isinstance(action, dict):
            continue
        kind = _KIND_BY_ACTION_ID.get(str(action.get("action_id")))
        incident_id = _incident_id(action.get("value"))
        if kind is not None and incident_id is not None:
            return kind, incident_id
    return None


def _incident_id(value: object) -> int | None:
    """A positive decimal id; rejects '+5', ' 5', non-ASCII digits and absurd lengths."""
    if not isinstance(value, str) or not value.isascii() or not value.isdigit():
        return None
    if len(value) > _MAX_INCIDENT_DIGITS or int(value) <= 0:
        return None
    return int(value)


def _user(user: object) -> str | None:
    """Username, else name, else id of the pressing user."""
    if not isinstance(user, dict):
        return None
    for key in ("username", "name", "id"):
        value = _text(user.get(key))
        if value:
            return value
    return None


def _field(payload: Mapping[str, Any], outer: str, inner: str) -> object:
    """payload[outer][inner] when both levels exist, else None."""
    container = payload.get(outer)
    return container.get(inner) if isinstance(container, dict) else None


def _text(value: object) -> str | None:
    """A non-empty string, else None (Slack sends null for absent channels)."""
    return value if isinstance(value, str) and value else None
