"""Mail the Markdown run report to ``ADMIN_EMAIL`` through the configured SMTP server.

Standard library only (``smtplib``, ``email``). Mail is optional: without ``ADMIN_EMAIL``
and ``SMTP_HOST`` nothing is sent. When it is configured and fails, the caller gets a
:class:`MailNotSent` and decides whether that fails its run.
"""

from __future__ import annotations

import smtplib
import ssl
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from shared.platform.logs import get_logger
from shared.platform.settings import Settings, get_settings

log = get_logger(__name__)

# A report mail is not worth holding a worker for: fail fast and let the caller decide.
SMTP_TIMEOUT_SECONDS = 10
REPORT_FILENAME = "report.md"


class MailNotSent(Exception):
    """The report could not be handed to the SMTP server (connection, TLS, login or refusal)."""


def build_report_message(*, subject: str, markdown: str, settings: Settings) -> EmailMessage:
    """The report mail: ``markdown`` as the text/plain body and as ``report.md`` attached.

    Both parts are UTF-8. Raises ``ValueError`` for a subject containing a line break
    (the e-mail policy refuses header injection).
    """
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = settings.smtp_from
    message["To"] = settings.admin_email
    message["Date"] = format_datetime(datetime.now(UTC))
    # An explicit domain: make_msgid() would otherwise resolve this host's FQDN.
    message["Message-ID"] = make_msgid(domain=settings.smtp_from.rpartition("@")[2] or None)
    # Quoted-printable keeps both parts 7-bit: smtplib never announces 8BITMIME, and a
    # relay without it may mangle raw UTF-8 (currency symbols, names).
    message.set_content(markdown, subtype="plain", charset="utf-8", cte="quoted-printable")
    message.add_attachment(
        markdown,
        subtype="markdown",
        charset="utf-8",
        cte="quoted-printable",
        filename=REPORT_FILENAME,
    )
    return message


def send_report(*, subject: str, markdown: str, settings: Settings | None = None) -> bool:
    """Mail a run report to ``ADMIN_EMAIL``; True once the SMTP server accepted it.

    Returns False, sending nothing, when mail is not configured
    (:attr:`Settings.mail_enabled`). Uses STARTTLS when ``SMTP_STARTTLS`` is true (never
    falling back to plain text) and logs in when ``SMTP_USERNAME`` is set. Any SMTP or
    network error is logged (without the password) and raised as :class:`MailNotSent`.
    """
    settings = settings or get_settings()
    if not settings.mail_enabled:
        log.info("mail.skipped", reason="ADMIN_EMAIL or SMTP_HOST not set", subject=subject)
        return False
    message = build_report_message(subject=subject, markdown=markdown, settings=settings)
    fields = {
        "smtp_host": settings.smtp_host,
        "smtp_port": settings.smtp_port,
        "starttls": settings.smtp_starttls,
        "sender": settings.smtp_from,
        "recipient": settings.admin_email,
        "subject": subject,
    }
    username = settings.smtp_username
    password = settings.smtp_password.get_secret_value() if settings.smtp_password else ""
    try:
        if username and not (username + password).isascii():
            # smtplib encodes AUTH as ASCII and would fail mid-session with an error that
            # carries the password (CPython gh-73936): refuse before connecting.
            raise smtplib.SMTPException("SMTP_USERNAME and SMTP_PASSWORD must be ASCII")
        with smtplib.SMTP(
            settings.smtp_host, settings.smtp_port, timeout=SMTP_TIMEOUT_SECONDS
        ) as smtp:
            if settings.smtp_starttls:
                smtp.starttls(context=ssl.create_default_context())
            if username:
                smtp.login(username, password)
            smtp.send_message(message)
    except (smtplib.SMTPException, OSError) as error:
        # The exception text is the server's reply or the socket error, never our password.
        log.error("mail.failed", **fields, error_type=type(error).__name__, error=str(error))
        raise MailNotSent(
            f"report mail to {settings.admin_email} via {settings.smtp_host}:"
            f"{settings.smtp_port} failed: {type(error).__name__}: {error}"
        ) from error
    log.info("mail.sent", **fields)
    return True
