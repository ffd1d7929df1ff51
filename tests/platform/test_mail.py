"""The run report mail, delivered to a real SMTP server (aiosmtpd) started by the test."""

from __future__ import annotations

import pytest
from structlog.testing import capture_logs

from shared.platform import mail
from shared.platform.logs import get_logger
from shared.platform.mail import MailNotSent, send_report
from shared.platform.settings import Settings
from tests.support.smtp import PASSWORD, USERNAME, SmtpServer, free_port

ADMIN = "finance-admin@example.com"
SENDER = "recon@example.com"
# Non-ASCII on purpose (currency symbols and names must survive as UTF-8), and a table row
# longer than a mail line (it must come back unbroken).
REPORT = (
    "# Daily reconciliation — 2026-11-01\n\n| type | count | amount |\n| --- | ---: | ---: |\n"
    f"| AmountMismatch {'x' * 100} | 3 | 1 234,56 € |\n"
)


@pytest.fixture(autouse=True)
def uncached_mail_logger(monkeypatch):
    """A mail logger not yet cached: structlog caches a logger on first use
    (``cache_logger_on_first_use``), after which ``capture_logs`` no longer sees it, so a
    test that mailed earlier in the same process would hide these tests' entries."""
    monkeypatch.setattr(mail, "log", get_logger(mail.__name__))


def mail_settings(server: SmtpServer | None = None, **overrides) -> Settings:
    values = {
        "admin_email": ADMIN,
        "smtp_from": SENDER,
        "smtp_host": server.host if server else "127.0.0.1",
        "smtp_port": server.port if server else free_port(),
        # The test server has no TLS; production keeps the default (True).
        "smtp_starttls": False,
        # Explicit, so that no SMTP_* variable of the machine running the tests leaks in.
        "smtp_username": None,
        "smtp_password": None,
    }
    return Settings(**(values | overrides))


def test_the_report_is_mailed_to_the_admin_as_body_and_attachment(smtp_server):
    sent = send_report(
        subject="Reconciliation 2026-11-01", markdown=REPORT, settings=mail_settings(smtp_server)
    )

    assert sent is True
    (delivery,) = smtp_server.inbox.deliveries
    assert delivery.envelope.mail_from == SENDER
    assert delivery.envelope.rcpt_tos == [ADMIN]
    # 7-bit on the wire: relays without 8BITMIME pass it unchanged.
    assert delivery.envelope.original_content.isascii()
    message = delivery.message()
    assert message["From"] == SENDER
    assert message["To"] == ADMIN
    assert message["Subject"] == "Reconciliation 2026-11-01"
    body = message.get_body(preferencelist=("plain",))
    assert body.get_content_type() == "text/plain"
    assert body.get_content_charset() == "utf-8"
    assert body.get_content() == REPORT
    (attachment,) = message.iter_attachments()
    assert attachment.get_filename() == "report.md"
    assert attachment.get_content_type() == "text/markdown"
    assert attachment.get_content_charset() == "utf-8"
    assert attachment.get_content() == REPORT


def test_the_mailer_logs_in_when_a_username_is_set(smtp_server_with_auth):
    settings = mail_settings(smtp_server_with_auth, smtp_username=USERNAME, smtp_password=PASSWORD)

    assert send_report(subject="Report", markdown=REPORT, settings=settings) is True
    (delivery,) = smtp_server_with_auth.inbox.deliveries
    assert delivery.authenticated_as == USERNAME


def test_a_server_requiring_auth_refuses_the_mail_without_credentials(smtp_server_with_auth):
    with pytest.raises(MailNotSent):
        send_report(
            subject="Report", markdown=REPORT, settings=mail_settings(smtp_server_with_auth)
        )
    assert smtp_server_with_auth.inbox.deliveries == []


@pytest.mark.parametrize("unset", ["admin_email", "smtp_host"])
def test_nothing_is_sent_when_mail_is_not_configured(smtp_server, unset):
    settings = mail_settings(smtp_server, **{unset: None})

    assert send_report(subject="Report", markdown=REPORT, settings=settings) is False
    assert smtp_server.inbox.deliveries == []


def test_starttls_is_required_when_enabled_and_never_skipped(smtp_server):
    """A server without STARTTLS gets nothing, rather than the report in plain text."""
    settings = mail_settings(smtp_server, smtp_starttls=True)

    with pytest.raises(MailNotSent, match="STARTTLS"):
        send_report(subject="Report", markdown=REPORT, settings=settings)
    assert smtp_server.inbox.deliveries == []


def test_an_unreachable_server_raises_mail_not_sent_and_logs_no_password():
    settings = mail_settings(smtp_username=USERNAME, smtp_password=PASSWORD)

    with capture_logs() as logs, pytest.raises(MailNotSent) as raised:
        send_report(subject="Report", markdown=REPORT, settings=settings)

    assert isinstance(raised.value.__cause__, OSError)
    (entry,) = (entry for entry in logs if entry["event"] == "mail.failed")
    assert entry["log_level"] == "error"
    assert (entry["smtp_host"], entry["smtp_port"]) == (settings.smtp_host, settings.smtp_port)
    assert entry["recipient"] == ADMIN
    assert PASSWORD not in repr(logs)
    assert PASSWORD not in str(raised.value)


def test_wrong_credentials_raise_mail_not_sent_and_log_no_password(smtp_server_with_auth):
    wrong = PASSWORD + "-wrong"
    settings = mail_settings(smtp_server_with_auth, smtp_username=USERNAME, smtp_password=wrong)

    with capture_logs() as logs, pytest.raises(MailNotSent) as raised:
        send_report(subject="Report", markdown=REPORT, settings=settings)

    assert [entry["event"] for entry in logs] == ["mail.failed"]
    assert logs[0]["error_type"] == "SMTPAuthenticationError"
    assert wrong not in repr(logs)
    assert wrong not in str(raised.value)
    assert smtp_server_with_auth.inbox.deliveries == []


def test_a_non_ascii_password_is_refused_before_connecting(smtp_server_with_auth):
    """smtplib cannot send it (CPython gh-73936); the error must not carry it either."""
    password = "pässword-€"
    settings = mail_settings(smtp_server_with_auth, smtp_username=USERNAME, smtp_password=password)

    with capture_logs() as logs, pytest.raises(MailNotSent, match="must be ASCII") as raised:
        send_report(subject="Report", markdown=REPORT, settings=settings)

    assert [entry["event"] for entry in logs] == ["mail.failed"]
    assert password not in repr(logs)
    assert password not in str(raised.value)
    assert smtp_server_with_auth.inbox.deliveries == []
