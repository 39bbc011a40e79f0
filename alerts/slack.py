"""Slack notifier: one Block Kit message per incident, later events in its thread.

Two forms, chosen by the channel's config:

- bot token (Web API): the first message carries Acknowledge / Resolve / Silence buttons
  (answered at `POST /slack/actions`, see `alerts.slack_actions`); later events `chat.update`
  that message, so the channel always shows the current status, and reply in its thread
  (an `in_place` update, a change of the incident's causes, only edits the message).
- incoming webhook: no threads and no buttons (a webhook cannot receive actions), so every
  event is a new message.

slack-sdk's retry handlers are disabled: one `send` is one attempt, and the outbox alone
decides when to try again (honouring the Retry-After that a 429 carries).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from http.client import HTTPException
from typing import Any

from pydantic import SecretStr
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web import SlackResponse
from slack_sdk.webhook import WebhookClient

from alerts.notification import Delivery, Event, Notification, Status
from alerts.retry_after import retry_after_seconds
from alerts.slack_actions import ACTION_IDS
from monitor.config import SlackChannel

logger = logging.getLogger(__name__)

TIMEOUT_SECONDS = 10
Block = dict[str, Any]

_TRANSIENT_ERRORS = frozenset({
    "ratelimited", "rate_limited", "service_unavailable", "fatal_error", "internal_error",
    "request_timeout",
})
"""`ok: false` errors that Slack documents as temporary; every other error is permanent."""

_HEADLINES: dict[Event, str] = {
    "trigger": ":rotating_light: *Triggered*",
    "escalate": ":rotating_light: *Escalated*: still not acknowledged",
    "acknowledge": ":eyes: *Acknowledged*",
    "resolve": ":white_check_mark: *Resolved*",
    "update": ":information_source: *Update*",
}
_STATUSES: dict[Status, str] = {
    "triggered": ":red_circle: Triggered",
    "acknowledged": ":large_yellow_circle: Acknowledged",
    "resolved": ":white_check_mark: Resolved",
}
_HEADER_MAX = 150  # Slack's limit for a header block
_SECTION_MAX = 3000  # ... and for a section's text


class SlackNotifier:
    """Posts one channel's incident messages; built from a `SlackChannel` config section."""

    def __init__(self, channel: SlackChannel) -> None:
        """Pick the form from the credentials; raise ValueError when neither is usable.

        A channel without credentials is meant to be disabled (`missing_credentials()`),
        not built, so an error here means a caller skipped that check: fail loudly rather
        than drop alerts in silence.
        """
        self.name = channel.name
        token, webhook_url = _secret(channel.token), _secret(channel.webhook_url)
        self._secrets = tuple(s for s in (token, webhook_url) if s)
        self._channel = channel.channel or ""
        self._client: WebClient | WebhookClient
        if token:
            if not self._channel:
                raise ValueError(f"slack channel {channel.name!r}: a bot token needs `channel`")
            self._client = WebClient(token=token, base_url=channel.api_url,
                                     timeout=TIMEOUT_SECONDS, retry_handlers=[])
        elif webhook_url:
            self._client = WebhookClient(webhook_url, timeout=TIMEOUT_SECONDS,
                                         retry_handlers=[])
        else:
            raise ValueError(f"slack channel {channel.name!r}: needs a token or a webhook_url")

    def send(self, notification: Notification) -> Delivery:
        """One attempt; every failure becomes a Delivery whose detail holds no secret."""
        try:
            delivery = self._send(notification)
        except _Undelivered as undelivered:
            delivery = undelivered.delivery
        except Exception as exc:  # the Notifier contract: a bug here must not kill the outbox
            logger.exception("slack notifier %s failed unexpectedly", self.name)
            delivery = Delivery.failed(f"unexpected {type(exc).__name__}: {exc}")
        return _replace_detail(delivery, self._scrub(delivery.detail))

    def close(self) -> None:
        """Nothing to release: slack-sdk's urllib transport opens a connection per request."""

    def _send(self, n: Notification) -> Delivery:
        if isinstance(self._client, WebhookClient):
            return _post_webhook(self._client, n)
        channel, ts = n.thread.get("channel"), n.thread.get("ts")
        if n.event == "trigger" or not channel or not ts:
            return self._post_first(self._client, n)
        if n.in_place:
            return _refresh(self._client, n, channel, ts)
        return _follow_up(self._client, n, channel, ts)

    def _post_first(self, web: WebClient, n: Notification) -> Delivery:
        """The incident's top-level message; its channel id and ts thread later events."""
        resp = _call(web, "chat.postMessage", {
            "channel": self._channel, "text": fallback_text(n),
            "blocks": message_blocks(n, interactive=True),
        })
        channel, ts = resp.get("channel"), resp.get("ts")
        if not isinstance(channel, str) or not isinstance(ts, str):
            return Delivery.delivered("posted, but Slack returned no channel/ts to thread on")
        return Delivery.delivered(f"posted {channel}/{ts}", thread={"channel": channel, "ts": ts})

    def _scrub(self, text: str) -> str:
        """Remove the token and webhook URL from text bound for logs and the database."""
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text


# ---- transport -----------------------------------------------------------------------------


class _Undelivered(Exception):
    """Carries a failed call's Delivery up to `send`; never leaves this module."""

    def __init__(self, delivery: Delivery) -> None:
        super().__init__(delivery.detail)
        self.delivery = delivery


def _follow_up(web: WebClient, n: Notification, channel: str, ts: str) -> Delivery:
    """Update the first message, then reply in its thread.

    The update goes first because it is idempotent: if the reply then fails, the outbox's
    retry repeats a harmless update instead of a duplicate reply. A permanent update
    failure (message deleted) must not swallow the news, so the reply still goes out.
    """
    notes: list[str] = []
    try:
        _call(web, "chat.update", {"channel": channel, "ts": ts, "text": fallback_text(n),
                                   "blocks": message_blocks(n, interactive=True)})
    except _Undelivered as undelivered:
        if undelivered.delivery.outcome == "retry":
            raise
        notes.append(f"; first message not updated: {undelivered.delivery.detail}")
    _call(web, "chat.postMessage", {
        "channel": channel, "thread_ts": ts, "text": thread_reply_text(n),
        # a thread reply alone notifies nobody new, and escalating is about being seen
        "reply_broadcast": n.event == "escalate",
    })
    return Delivery.delivered("replied in thread" + "".join(notes), thread=n.thread)


def _refresh(web: WebClient, n: Notification, channel: str, ts: str) -> Delivery:
    """Edit the first message only: the causes or severity changed, which the channel
    should show, but a thread reply per change would bury the replies that matter."""
    _call(web, "chat.update", {"channel": channel, "ts": ts, "text": fallback_text(n),
                               "blocks": message_blocks(n, interactive=True)})
    return Delivery.delivered("first message updated", thread=n.thread)


def _call(web: WebClient, method: str, payload: dict[str, Any]) -> SlackResponse:
    """One Web API call; raises `_Undelivered` with the classified outcome on failure."""
    try:
        return web.api_call(method, json=payload)
    except SlackApiError as exc:
        resp = exc.response
        data = resp.data if isinstance(resp.data, dict) else {}
        raise _Undelivered(_classify(method, resp.status_code, str(data.get("error", "")),
                                     resp.headers)) from None
    except (OSError, HTTPException) as exc:  # refused, reset, timed out, TLS, cut short
        raise _Undelivered(Delivery.retry(f"slack {method}: {_describe(exc)}")) from None
    except SlackClientError as exc:  # a request slack-sdk refuses to send (bad api_url)
        raise _Undelivered(Delivery.failed(f"slack {method}: {_describe(exc)}")) from None


def _post_webhook(client: WebhookClient, n: Notification) -> Delivery:
    """A new message per event: `ok` on 200, else Slack's error word in the body."""
    blocks = message_blocks(n, interactive=False)
    if n.event != "trigger":
        blocks.insert(0, _context(_HEADLINES[n.event]))
    try:
        resp = client.send(text=fallback_text(n), blocks=blocks)
    except (OSError, HTTPException) as exc:
        return Delivery.retry(f"slack webhook: {_describe(exc)}")
    except SlackClientError as exc:
        return Delivery.failed(f"slack webhook: {_describe(exc)}")
    if resp.status_code == 200:
        return Delivery.delivered("posted via webhook")
    return _classify("webhook", resp.status_code, resp.body.strip(), resp.headers)


# ---- outcome classification ----------------------------------------------------------------


def _classify(where: str, status: int, error: str, headers: Mapping[str, Any]) -> Delivery:
    """429 → retry after its Retry-After; 5xx or a temporary error → retry; else failed."""
    error = error[:200] or "no error given"
    detail = f"slack {where}: " + (error if status == 200 else f"HTTP {status} {error}".strip())
    if status == 429 or error in ("ratelimited", "rate_limited"):
        return Delivery.retry(detail, retry_after=_retry_after(headers))
    if status >= 500 or error in _TRANSIENT_ERRORS:
        return Delivery.retry(detail)
    return Delivery.failed(detail)


def _retry_after(headers: Mapping[str, Any]) -> float | None:
    """Seconds from a Retry-After header; None when absent or not a sane number."""
    for key, value in headers.items():
        if key.lower() == "retry-after":
            raw = value[0] if isinstance(value, list) and value else value
            return retry_after_seconds(raw if isinstance(raw, str) else None, time.time())
    return None


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:300]


def _replace_detail(delivery: Delivery, detail: str) -> Delivery:
    if detail == delivery.detail:
        return delivery
    return Delivery(delivery.outcome, detail, delivery.retry_after, delivery.thread)


def _secret(value: SecretStr | None) -> str:
    return value.get_secret_value().strip() if value is not None else ""


# ---- message content (pure) ----------------------------------------------------------------


def fallback_text(n: Notification) -> str:
    """The text Slack shows in push notifications and where blocks cannot render.

    Slack parses it like mrkdwn, so a title carrying `<!channel>` would notify everyone:
    escaped like every other untrusted text."""
    return _escape(f"[{n.severity.upper()}] {n.title}: {n.status}")


def thread_reply_text(n: Notification) -> str:
    """A later event as one thread reply: what happened, the engine's summary, any post-mortem."""
    lines = [_HEADLINES[n.event], _escape(n.summary)]
    if n.postmortem_url:
        lines.append(_link(n.postmortem_url, "Post-mortem draft"))
    return _truncate("\n".join(line for line in lines if line), _SECTION_MAX)


def message_blocks(n: Notification, *, interactive: bool) -> list[Block]:
    """The incident's message: header, fields, summary, links, and buttons until resolved.

    The header is plain_text, which Slack shows as written (no mentions, no links), so
    the title goes there unescaped; every mrkdwn text is escaped (`_escape`)."""
    blocks: list[Block] = [
        {"type": "header",
         "text": {"type": "plain_text", "text": _truncate(n.title, _HEADER_MAX), "emoji": True}},
        {"type": "section", "fields": [_mrkdwn(f"*{k}*\n{v}") for k, v in _fields(n)]},
    ]
    if n.summary:
        blocks.append({"type": "section",
                       "text": _mrkdwn(_truncate(_escape(n.summary), _SECTION_MAX))})
    links = _links(n)
    if links:
        blocks.append(_context(" · ".join(links)))
    if interactive and n.status != "resolved":
        blocks.append(_actions(n))
    return blocks


def _fields(n: Notification) -> list[tuple[str, str]]:
    """Label/value pairs; absent values are left out rather than shown as 'None'."""
    fields = [("Severity", _escape(n.severity.capitalize())), ("Status", _STATUSES[n.status])]
    if n.slo:
        fields.append(("SLO", _escape(n.slo)))
    if n.target:
        fields.append(("Target", _escape(n.target)))
    if n.burn_rate is not None:
        fields.append(("Burn rate", f"{n.burn_rate:.1f}×"))
    if n.budget_remaining is not None:
        fields.append(("Error budget left", f"{n.budget_remaining * 100:.1f}%"))
    return fields


def _links(n: Notification) -> list[str]:
    pairs = [(n.dashboard_url, "Dashboard"), (n.incident_url, "Incident"),
             (n.postmortem_url, "Post-mortem")]
    return [_link(url, label) for url, label in pairs if url]


def _actions(n: Notification) -> Block:
    """Buttons whose value is the incident id; Acknowledge goes once someone has."""
    labels = {"ack": "Acknowledge", "resolve": "Resolve", "silence": "Silence 1h"}
    kinds = [k for k in ACTION_IDS if not (k == "ack" and n.status == "acknowledged")]
    buttons: list[Block] = []
    for kind in kinds:
        button: Block = {"type": "button", "action_id": ACTION_IDS[kind],
                         "text": {"type": "plain_text", "text": labels[kind]},
                         "value": str(n.incident_id)}
        if kind == "ack":
            button["style"] = "primary"
        buttons.append(button)
    return {"type": "actions", "block_id": f"incident_{n.incident_id}", "elements": buttons}


def _context(text: str) -> Block:
    return {"type": "context", "elements": [_mrkdwn(text)]}


def _mrkdwn(text: str) -> dict[str, str]:
    return {"type": "mrkdwn", "text": text}


def _link(url: str, label: str) -> str:
    """A mrkdwn link; '|' would end the URL early, so it is percent-encoded."""
    return f"<{_escape(url).replace('|', '%7C')}|{label}>"


def _escape(text: str) -> str:
    """Slack's three control characters, for every untrusted text in `text` or mrkdwn:
    unescaped, `<!channel>` in a title pings everyone and `<http://x|click>` is a link.
    The one escaping function of this module; only `_link` adds real `<...>` markup."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
