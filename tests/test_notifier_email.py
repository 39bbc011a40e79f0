"""The email notifier against a real SMTP server (aiosmtpd): message, threading, errors."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from typing import Any

import pytest

from alerts.email import EmailNotifier, message_id
from alerts.notification import Delivery, Notification
from monitor.config import EmailChannel
from tests.fake_smtp import FakeSMTP, fake_smtp
from tests.fake_webhook import silent_server
from tests.servers import free_port

SENDER = "primewatch@alerts.example.com"
ONCALL = ["oncall@example.com", "sre-lead@example.com"]
PASSWORD = "smtp-pa55-Xq7"
NOW = 1_700_000_100.0


def notification(**overrides: Any) -> Notification:
    fields: dict[str, Any] = {
        "key": "incident-42/step-0/repeat-0/mail",
        "incident_id": 42,
        "event": "trigger",
        "title": "checkout-availability burning error budget",
        "severity": "page",
        "status": "triggered",
        "summary": "Burn rate 14.9x over 1h and 5m.",
        "occurred_at": 1_700_000_000.0,
        "slo": "checkout-availability",
        "target": "checkout",
        "burn_rate": 14.9,
        "budget_remaining": 0.82,
        "labels": {"team": "payments"},
        "dashboard_url": "http://127.0.0.1:8000/slos/checkout-availability",
        "incident_url": "http://127.0.0.1:8000/incidents/42",
    }
    fields.update(overrides)
    return Notification(**fields)


def make_notifier(host: str | None, port: int, **options: Any) -> EmailNotifier:
    config = {"name": "mail", "type": "email", "smtp_host": host, "smtp_port": port,
              "sender": SENDER, "to": ONCALL}
    config.update({k: options.pop(k) for k in ("username", "password", "to") if k in options})
    options.setdefault("clock", lambda: NOW)
    return EmailNotifier(EmailChannel.model_validate(config), **options)


def send_one(notifier: EmailNotifier, message: Notification) -> Delivery:
    delivery = notifier.send(message)
    assert PASSWORD not in delivery.detail
    return delivery


@pytest.fixture
def smtp() -> Iterator[FakeSMTP]:
    with fake_smtp() as server:
        yield server


@pytest.fixture
def notifier(smtp: FakeSMTP) -> Iterator[EmailNotifier]:
    notifier = make_notifier(smtp.host, smtp.port)
    yield notifier
    notifier.close()


def parts(message: EmailMessage) -> tuple[str, str]:
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None and html is not None
    return text.get_content(), html.get_content()


def test_a_trigger_is_delivered_with_all_facts(smtp: FakeSMTP,
                                               notifier: EmailNotifier) -> None:
    delivery = send_one(notifier, notification())

    [mail] = smtp.mails
    message = mail.message
    first_id = message_id("incident-42/step-0/repeat-0/mail", SENDER)
    assert delivery == Delivery.delivered("accepted", {"message_id": first_id})
    assert mail.mail_from == SENDER
    assert mail.rcpt_tos == ONCALL
    assert message["Subject"] == "[PAGE] checkout-availability burning error budget — triggered"
    assert message["From"] == SENDER
    assert message["To"] == ", ".join(ONCALL)
    assert message["Message-ID"] == first_id
    assert first_id.endswith("@alerts.example.com>")
    assert message["In-Reply-To"] is None and message["References"] is None
    assert message["Auto-Submitted"] == "auto-generated"
    assert parsedate_to_datetime(message["Date"]).timestamp() == NOW

    text, html = parts(message)
    for fact in ("Burn rate 14.9x over 1h and 5m.", "Severity:         PAGE",
                 "SLO:              checkout-availability", "Target:           checkout",
                 "Burn rate:        14.90x", "Budget remaining: 82.0%",
                 "Labels:           team=payments", "2023-11-14 22:13:20 UTC",
                 "Dashboard:        http://127.0.0.1:8000/slos/checkout-availability",
                 "Incident:         http://127.0.0.1:8000/incidents/42"):
        assert fact in text
    assert '<a href="http://127.0.0.1:8000/incidents/42">' in html
    assert "82.0%" in html


def test_later_messages_thread_under_the_first(smtp: FakeSMTP,
                                               notifier: EmailNotifier) -> None:
    first = send_one(notifier, notification())
    ack = send_one(notifier, notification(key="incident-42/ack/mail", event="acknowledge",
                                          status="acknowledged", thread=first.thread))
    resolved = send_one(notifier, notification(key="incident-42/resolve/mail",
                                               event="resolve", status="resolved",
                                               thread=ack.thread))

    first_id = first.thread["message_id"]
    assert ack.thread == resolved.thread == {"message_id": first_id}
    original, acknowledged, resolution = (mail.message for mail in smtp.mails)
    assert original["Message-ID"] == first_id
    for reply in (acknowledged, resolution):
        assert reply["In-Reply-To"] == first_id
        assert reply["References"] == first_id
        assert reply["Message-ID"] != first_id
    assert acknowledged["Subject"].endswith("— acknowledged")
    assert resolution["Subject"].endswith("— resolved")


def test_the_same_key_gives_the_same_message_id_so_a_resend_dedupes() -> None:
    assert message_id("k1", SENDER) == message_id("k1", SENDER)
    assert message_id("k1", SENDER) != message_id("k2", SENDER)
    long_id = message_id("x" * 300 + " <weird>@key", "Primewatch <alerts@example.com>")
    assert len(long_id) < 78 and long_id.endswith("@example.com>")
    assert message_id("k", "not an address").endswith("@primewatch.invalid>")


def test_ticket_severity_and_a_title_with_a_line_break(smtp: FakeSMTP,
                                                       notifier: EmailNotifier) -> None:
    send_one(notifier, notification(severity="ticket", event="escalate",
                                    title="slow\r\nburn on checkout"))
    assert smtp.mails[0].message["Subject"] == (
        "[TICKET] slow burn on checkout — escalated, not yet acknowledged")


def test_451_is_retried(smtp: FakeSMTP, notifier: EmailNotifier) -> None:
    smtp.reject("451 4.3.0 Try again later")
    delivery = send_one(notifier, notification())
    assert delivery.outcome == "retry"
    assert "451" in delivery.detail and "Try again later" in delivery.detail
    assert smtp.mails == []

    smtp.accept()
    assert send_one(notifier, notification()).outcome == "delivered"


def test_550_fails(smtp: FakeSMTP, notifier: EmailNotifier) -> None:
    smtp.reject("550 5.1.1 Mailbox unavailable")
    delivery = send_one(notifier, notification())
    assert delivery.outcome == "failed"
    assert delivery.detail.startswith("all recipients refused: oncall@example.com (550")
    assert smtp.mails == []


def test_one_refused_recipient_does_not_resend_to_the_others(
        smtp: FakeSMTP, notifier: EmailNotifier) -> None:
    smtp.reject("550 5.1.1 Mailbox unavailable", address="sre-lead@example.com")
    delivery = send_one(notifier, notification())
    assert delivery.outcome == "delivered"
    assert "refused: sre-lead@example.com (550" in delivery.detail
    assert smtp.mails[0].rcpt_tos == ["oncall@example.com"]


def test_server_down_is_retried() -> None:
    notifier = make_notifier("127.0.0.1", free_port())
    delivery = send_one(notifier, notification())
    assert delivery.outcome == "retry"
    assert delivery.detail.startswith("ConnectionRefusedError")


def test_a_server_that_never_greets_times_out_into_a_retry() -> None:
    with silent_server() as (host, port):
        delivery = send_one(make_notifier(host, port, timeout=0.3), notification())
    assert delivery.outcome == "retry"


@contextmanager
def hang_up_server() -> Iterator[int]:
    """Accepts each connection and closes it at once, before the SMTP greeting."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    listener.settimeout(5)

    def serve() -> None:
        try:
            connection, _ = listener.accept()
            connection.close()
        except OSError:
            pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        listener.close()
        thread.join(5)


def test_a_disconnect_is_retried() -> None:
    with hang_up_server() as port:
        delivery = send_one(make_notifier("127.0.0.1", port), notification())
    assert delivery.outcome == "retry"
    assert delivery.detail.startswith("server disconnected")


def test_starttls_and_login_when_credentials_are_set() -> None:
    with fake_smtp(tls=True, credentials=("alerts", PASSWORD)) as smtp:
        notifier = make_notifier(smtp.host, smtp.port, username="alerts", password=PASSWORD,
                                 ssl_context=smtp.client_context())
        delivery = send_one(notifier, notification())
        assert delivery.outcome == "delivered", delivery.detail
        assert len(smtp.mails) == 1


def test_a_wrong_password_fails_without_showing_it() -> None:
    with fake_smtp(tls=True, credentials=("alerts", "the-right-one")) as smtp:
        notifier = make_notifier(smtp.host, smtp.port, username="alerts", password=PASSWORD,
                                 ssl_context=smtp.client_context())
        delivery = send_one(notifier, notification())
    assert delivery.outcome == "failed"
    assert delivery.detail.startswith("SMTP 535")


def test_an_untrusted_certificate_fails() -> None:
    with fake_smtp(tls=True, credentials=("alerts", PASSWORD)) as smtp:
        notifier = make_notifier(smtp.host, smtp.port, username="alerts", password=PASSWORD)
        delivery = send_one(notifier, notification())
    assert delivery.outcome == "failed"
    assert delivery.detail.startswith("TLS certificate rejected")
    assert smtp.mails == []


def test_credentials_without_auth_on_the_server_fail() -> None:
    with fake_smtp() as smtp:
        notifier = make_notifier(smtp.host, smtp.port, username="alerts", password=PASSWORD)
        delivery = send_one(notifier, notification())
    assert delivery.outcome == "failed"
    assert "AUTH" in delivery.detail


def test_missing_host_or_recipients_fail() -> None:
    assert make_notifier(None, 25).send(notification()).outcome == "failed"
    assert make_notifier("127.0.0.1", 25, to=[]).send(notification()).outcome == "failed"
