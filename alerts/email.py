"""Email through an SMTP relay, one conversation per incident.

Threading: the incident's first message on this channel is remembered in
`Delivery.thread["message_id"]`; every later message carries `In-Reply-To` and
`References` pointing at it, so mail clients group them. Message-IDs are derived from the
notification key, so when a reply is lost and the outbox retries, the copy has the same
Message-ID and mail systems can drop it as a duplicate.

Credentials: with `username` and `password` set, STARTTLS is used whenever the server
offers it, then AUTH. A relay that offers no STARTTLS gets the password in the clear; point
such channels at a relay on localhost or a private network. The password never reaches a
detail.

Errors, for the outbox:

    4xx SMTP replies, disconnects, refused connections, timeouts, DNS errors   retry
    5xx SMTP replies (e.g. 550 recipient unknown), no AUTH, bad certificate    failed
"""

from __future__ import annotations

import hashlib
import html
import re
import smtplib
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import formatdate, parseaddr

from alerts.notification import Delivery, Event, Notification
from monitor.config import EmailChannel

TIMEOUT = 10.0

HEADLINES: dict[Event, str] = {
    "trigger": "triggered",
    "escalate": "escalated, not yet acknowledged",
    "update": "update",
    "acknowledge": "acknowledged",
    "resolve": "resolved",
}


def subject(notification: Notification) -> str:
    """`[PAGE] <title> — triggered`: severity first so filters and eyes can sort on it."""
    title = " ".join(notification.title.split())  # a header may not hold a line break
    return f"[{notification.severity.upper()}] {title} — {HEADLINES[notification.event]}"


def message_id(key: str, sender: str) -> str:
    """A Message-ID that is the same for the same notification key (retries dedupe).

    Short enough never to be folded: the key is cut and made unique again by a hash.
    """
    readable = re.sub(r"[^A-Za-z0-9._-]", "-", key)[:24].strip(".-") or "n"
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    address = parseaddr(sender)[1]
    domain = address.rpartition("@")[2] if "@" in address else ""
    if not re.fullmatch(r"[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*", domain) or len(domain) > 40:
        domain = "primewatch.invalid"
    return f"<{readable}.{digest}@{domain}>"


def facts(notification: Notification) -> list[tuple[str, str]]:
    """The incident's facts as (label, value) rows, unknown ones left out."""
    rows = [
        ("Severity", notification.severity.upper()),
        ("Status", notification.status),
        ("Event", notification.event),
        ("SLO", notification.slo),
        ("Target", notification.target),
        ("Burn rate", None if notification.burn_rate is None
         else f"{notification.burn_rate:.2f}x"),
        ("Budget remaining", None if notification.budget_remaining is None
         else f"{notification.budget_remaining:.1%}"),
        ("Labels", ", ".join(f"{k}={v}" for k, v in sorted(notification.labels.items()))),
        ("Occurred at", datetime.fromtimestamp(notification.occurred_at, UTC)
         .strftime("%Y-%m-%d %H:%M:%S UTC")),
        ("Incident", f"#{notification.incident_id}"),
    ]
    return [(label, value) for label, value in rows if value]


def links(notification: Notification) -> list[tuple[str, str]]:
    candidates = (("Dashboard", notification.dashboard_url),
                  ("Incident", notification.incident_url),
                  ("Post-mortem", notification.postmortem_url))
    return [(label, url) for label, url in candidates if url]


def text_body(notification: Notification) -> str:
    lines = [notification.title, "", notification.summary, ""]
    lines += [f"{label + ':':<18}{value}" for label, value in facts(notification)]
    if links(notification):
        lines.append("")
        lines += [f"{label + ':':<18}{url}" for label, url in links(notification)]
    lines += ["", "-- ", f"primewatch · {notification.key}"]
    return "\n".join(lines) + "\n"


def html_body(notification: Notification) -> str:
    """The same facts as the text part, as a plain table (no CSS, no images)."""
    esc = html.escape
    rows = "".join(f"<tr><th align=left>{esc(label)}</th><td>{esc(value)}</td></tr>"
                   for label, value in facts(notification))
    rows += "".join(f'<tr><th align=left>{esc(label)}</th>'
                    f'<td><a href="{esc(url)}">{esc(url)}</a></td></tr>'
                    for label, url in links(notification))
    return (f"<html><body><h2>{esc(notification.title)}</h2>"
            f"<p>{esc(notification.summary)}</p><table>{rows}</table>"
            f"<p><small>primewatch · {esc(notification.key)}</small></p></body></html>\n")


def build_message(notification: Notification, *, sender: str, to: list[str],
                  now: float) -> EmailMessage:
    """The complete message, threaded under `notification.thread["message_id"]` if any."""
    message = EmailMessage()
    message["Subject"] = subject(notification)
    message["From"] = sender
    message["To"] = ", ".join(to)
    message["Date"] = formatdate(now, usegmt=True)
    message["Message-ID"] = message_id(notification.key, sender)
    first = notification.thread.get("message_id")
    if first:
        message["In-Reply-To"] = first
        message["References"] = first
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies to us
    message["X-Primewatch-Incident"] = str(notification.incident_id)
    message["X-Primewatch-Event"] = notification.event
    message.set_content(text_body(notification))
    message.add_alternative(html_body(notification), subtype="html")
    return message


class EmailNotifier:
    """Sends each notification as one message over one SMTP session."""

    def __init__(self, channel: EmailChannel, *, timeout: float = TIMEOUT,
                 ssl_context: ssl.SSLContext | None = None,
                 clock: Callable[[], float] | None = None) -> None:
        self.name = channel.name
        self._host = channel.smtp_host or ""
        self._port = channel.smtp_port
        self._sender = channel.sender
        self._to = list(channel.to)
        self._username = channel.username or ""
        self._password = channel.password.get_secret_value() if channel.password else ""
        self._timeout = timeout
        self._ssl_context = ssl_context or ssl.create_default_context()
        self._clock = clock or time.time

    def send(self, notification: Notification) -> Delivery:
        if not self._host or not self._to:
            return Delivery.failed("smtp_host and to are required")
        try:
            message = build_message(notification, sender=self._sender, to=self._to,
                                    now=self._clock())
            refused = self._transmit(message)
        except (smtplib.SMTPException, OSError, UnicodeError, ValueError) as exc:
            return self._scrub(classify(exc))
        first = notification.thread.get("message_id") or str(message["Message-ID"])
        detail = "accepted" + (f"; refused: {_recipients(refused)}" if refused else "")
        return Delivery.delivered(detail, {"message_id": first})

    def close(self) -> None:
        """Nothing to release: each send opens and closes its own SMTP session."""

    def _transmit(self, message: EmailMessage) -> Mapping[str, tuple[int, bytes]]:
        """One SMTP session; returns the recipients refused while others were accepted."""
        smtp = smtplib.SMTP(self._host, self._port, timeout=self._timeout)
        try:
            if self._username and self._password:
                smtp.ehlo()
                if smtp.has_extn("starttls"):
                    smtp.starttls(context=self._ssl_context)
                    smtp.ehlo()
                smtp.login(self._username, self._password)
            return smtp.send_message(message)
        finally:
            _quit_quietly(smtp)

    def _scrub(self, delivery: Delivery) -> Delivery:
        """A server echoing the password in its reply must not put it in our logs."""
        if not self._password or self._password not in delivery.detail:
            return delivery
        return replace(delivery, detail=delivery.detail.replace(self._password, "***"))


def _quit_quietly(smtp: smtplib.SMTP) -> None:
    """Once DATA was accepted the mail is sent: a failing QUIT must not cause a resend."""
    try:
        smtp.quit()
    except (smtplib.SMTPException, OSError):
        smtp.close()


def classify(exc: BaseException) -> Delivery:
    """Map an SMTP, socket or encoding error to retry (transient) or failed (permanent)."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        detail = f"all recipients refused: {_recipients(exc.recipients)}"
        transient = bool(codes) and all(400 <= code < 500 for code in codes)
        return Delivery.retry(detail) if transient else Delivery.failed(detail)
    if isinstance(exc, smtplib.SMTPResponseException):
        detail = f"SMTP {exc.smtp_code}: {_text(exc.smtp_error)}"
        transient = 400 <= exc.smtp_code < 500
        return Delivery.retry(detail) if transient else Delivery.failed(detail)
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return Delivery.retry(f"server disconnected: {exc}")
    if isinstance(exc, smtplib.SMTPException):  # e.g. AUTH or STARTTLS not supported
        return Delivery.failed(f"{type(exc).__name__}: {exc}")
    if isinstance(exc, ssl.SSLCertVerificationError):
        return Delivery.failed(f"TLS certificate rejected: {exc.verify_message}")
    if isinstance(exc, OSError):  # refused, timeouts, DNS, TLS handshake hiccups
        return Delivery.retry(f"{type(exc).__name__}: {exc}")
    if isinstance(exc, UnicodeError):  # never echo the string: it may be the password
        return Delivery.failed("a header, address or credential is not encodable")
    return Delivery.failed(f"cannot build the message: {exc}")  # ValueError from a header


def _recipients(refused: Mapping[str, tuple[int, bytes]]) -> str:
    return ", ".join(f"{address} ({code} {_text(reply)})"
                     for address, (code, reply) in refused.items())


def _text(reply: bytes | str) -> str:
    text = reply.decode(errors="replace") if isinstance(reply, bytes) else reply
    return " ".join(text.split())[:200]
