"""A real SMTP server on 127.0.0.1 (aiosmtpd) that records mail and can refuse recipients.

Optional STARTTLS with a trustme CA and AUTH with one user, so the email notifier's
secure path runs against a real server too. The handler runs on aiosmtpd's loop thread;
the recorded list is guarded by a condition variable.

    with fake_smtp() as smtp:
        channel = EmailChannel(name="mail", type="email", smtp_host=smtp.host,
                               smtp_port=smtp.port, to=["oncall@example.com"])
        smtp.reject("550 5.1.1 mailbox unavailable")   # every RCPT until smtp.accept()
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import ssl
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any, cast

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

SERVER_NAME = "smtp.primewatch.test"  # avoids aiosmtpd's slow socket.getfqdn()


@dataclass(frozen=True, slots=True)
class ReceivedMail:
    """One accepted message: envelope and raw bytes."""

    mail_from: str
    rcpt_tos: list[str]
    data: bytes

    @property
    def message(self) -> EmailMessage:
        return email.message_from_bytes(self.data, policy=email.policy.default)


class RecordingHandler:
    """aiosmtpd handler: refuses RCPT as told, records every accepted DATA."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self.mails: list[ReceivedMail] = []
        self.refusal: str | None = None
        self.refused_addresses: dict[str, str] = {}

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        with self._changed:
            reply = self.refused_addresses.get(address) or self.refusal
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.content
        data = content.encode() if isinstance(content, str) else bytes(content or b"")
        mail = ReceivedMail(str(envelope.mail_from), list(envelope.rcpt_tos), data)
        with self._changed:
            self.mails.append(mail)
            self._changed.notify_all()
        return "250 Message accepted for delivery"

    def recorded(self) -> list[ReceivedMail]:
        with self._changed:
            return list(self.mails)

    def refuse(self, reply: str | None, address: str | None = None) -> None:
        with self._changed:
            if address is None:
                self.refusal = reply
            elif reply is None:
                self.refused_addresses.pop(address, None)
            else:
                self.refused_addresses[address] = reply
            if address is None and reply is None:
                self.refused_addresses.clear()

    def wait_for(self, count: int, timeout: float) -> list[ReceivedMail]:
        with self._changed:
            if not self._changed.wait_for(lambda: len(self.mails) >= count, timeout):
                raise AssertionError(f"expected {count} mails, got {len(self.mails)}")
            return list(self.mails)


class _LoopbackController(Controller):
    """Binds port 0 and learns the real port before aiosmtpd's readiness probe uses it."""

    def _trigger_server(self) -> None:
        server = cast(asyncio.Server, self.server)  # set by _run before the probe
        self.port = server.sockets[0].getsockname()[1]
        super()._trigger_server()  # type: ignore[no-untyped-call]


def _authenticator(username: str, password: str) -> Callable[..., AuthResult]:
    def check(server: SMTP, session: Session, envelope: Envelope, mechanism: str,
              auth_data: Any) -> AuthResult:
        ok = (isinstance(auth_data, LoginPassword)
              and auth_data.login == username.encode()
              and auth_data.password == password.encode())
        return AuthResult(success=ok, handled=False)
    return check


class FakeSMTP:
    """The running server: address, recorded mail, refusal switches, TLS trust."""

    def __init__(self, handler: RecordingHandler, host: str, port: int,
                 ca: trustme.CA | None) -> None:
        self._handler = handler
        self.host = host
        self.port = port
        self._ca = ca

    @property
    def mails(self) -> list[ReceivedMail]:
        return self._handler.recorded()

    def wait_for(self, count: int, timeout: float = 5.0) -> list[ReceivedMail]:
        return self._handler.wait_for(count, timeout)

    def reject(self, reply: str = "550 5.1.1 Mailbox unavailable",
               address: str | None = None) -> None:
        """Refuse RCPT with `reply` (e.g. "451 4.3.0 Try again later"), for one or all."""
        self._handler.refuse(reply, address)

    def accept(self) -> None:
        """Accept every recipient again."""
        self._handler.refuse(None)

    def client_context(self) -> ssl.SSLContext:
        """A client SSL context trusting this server's certificate (needs tls=True)."""
        assert self._ca is not None, "started without tls=True"
        context = ssl.create_default_context()
        self._ca.configure_trust(context)
        return context


@contextmanager
def fake_smtp(*, tls: bool = False,
              credentials: tuple[str, str] | None = None) -> Iterator[FakeSMTP]:
    """Run a recording SMTP server; with `credentials`, AUTH is offered (after STARTTLS
    when `tls`, since aiosmtpd rightly refuses AUTH in the clear by default)."""
    handler = RecordingHandler()
    ca = trustme.CA() if tls else None
    options: dict[str, Any] = {}
    if ca is not None:
        server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("127.0.0.1", SERVER_NAME).configure_cert(server_context)
        options["tls_context"] = server_context
    if credentials is not None:
        options["authenticator"] = _authenticator(*credentials)
        options["auth_require_tls"] = tls
    controller = _LoopbackController(handler, hostname="127.0.0.1", port=0,
                                     ready_timeout=10.0, server_hostname=SERVER_NAME,
                                     **options)
    controller.start()
    try:
        yield FakeSMTP(handler, "127.0.0.1", controller.port, ca)
    finally:
        controller.stop()
