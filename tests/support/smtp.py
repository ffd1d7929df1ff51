"""A real SMTP server for tests (aiosmtpd on loopback) that keeps what it accepts."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, Session

USERNAME = "recon-mailer"
PASSWORD = "s3cret-smtp-password"


@dataclass
class Delivery:
    """One accepted message and who had logged in to send it."""

    envelope: Envelope
    authenticated_as: str | None

    def message(self) -> EmailMessage:
        """The message as a mail client stores it (line endings normalised)."""
        raw = self.envelope.original_content.replace(b"\r\n", b"\n")
        return message_from_bytes(raw, policy=default_policy)


@dataclass
class Inbox:
    """An aiosmtpd handler that keeps every accepted message.

    With ``require_auth`` it refuses DATA from a session that has not logged in, as a
    submission server does.
    """

    require_auth: bool = False
    deliveries: list[Delivery] = field(default_factory=list)

    async def handle_DATA(self, server, session: Session, envelope: Envelope) -> str:
        if self.require_auth and not session.authenticated:
            return "530 5.7.0 Authentication required"
        self.deliveries.append(Delivery(envelope, session.auth_data))
        return "250 Message accepted for delivery"


@dataclass
class SmtpServer:
    """A running test server: where it listens and what it received."""

    host: str
    port: int
    inbox: Inbox


def free_port() -> int:
    """A loopback TCP port that nothing listens on (at the time of asking)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def accept_test_credentials(server, session, envelope, mechanism, auth_data) -> AuthResult:
    """aiosmtpd authenticator: only USERNAME with PASSWORD may log in."""
    accepted = auth_data.login == USERNAME.encode() and auth_data.password == PASSWORD.encode()
    # handled=False: aiosmtpd then answers a refusal with 535 itself.
    return AuthResult(success=accepted, handled=False, auth_data=USERNAME if accepted else None)


def start_server(inbox: Inbox, **controller_options) -> Iterator[SmtpServer]:
    """Run an aiosmtpd server on a free loopback port until the generator is closed."""
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=free_port(),
        # Without it aiosmtpd resolves this host's FQDN for its greeting.
        server_hostname="localhost",
        **controller_options,
    )
    controller.start()
    try:
        yield SmtpServer(controller.hostname, controller.port, inbox)
    finally:
        controller.stop()


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    """A plain SMTP server on loopback (no TLS, no AUTH)."""
    yield from start_server(Inbox())


@pytest.fixture
def smtp_server_with_auth() -> Iterator[SmtpServer]:
    """An SMTP server that takes mail only after AUTH (offered without TLS: it has none)."""
    # aiosmtpd's own auth_required=True warns (an error here) when TLS is not required too,
    # so the handler refuses unauthenticated mail instead.
    yield from start_server(
        Inbox(require_auth=True), authenticator=accept_test_credentials, auth_require_tls=False
    )
