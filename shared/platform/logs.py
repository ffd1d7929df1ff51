"""Structured logging: one JSON object per line, an event name plus fields.

Never pass secrets, signatures, keys or whole payloads as fields; :data:`REDACTED_FIELDS`
are masked as a last line of defence.

Context bound with ``structlog.contextvars`` is on every line: ``request_id`` for an API
request, and ``task_id``, ``task`` and the ``request_id`` that queued it for a task.
"""

from __future__ import annotations

import logging
import re
import sys
import uuid

import structlog

from shared.platform.settings import get_settings

_HANDLER_NAME = "recon-json"

REDACTED_FIELDS = frozenset(
    {"secret", "signature", "authorization", "api_key", "key", "token", "password", "payload"}
)


REQUEST_ID_HEADER = "X-Request-ID"
_REQUEST_ID = re.compile(r"[\x20-\x7e]{1,128}")


def _redact(_: object, __: str, event_dict: dict) -> dict:
    for field in REDACTED_FIELDS.intersection(event_dict):
        event_dict[field] = "[redacted]"
    return event_dict


# Marks a record whose message structlog has already rendered as a JSON line.
_RENDERED = "recon_rendered"
_to_json = structlog.processors.JSONRenderer()


def _render(logger: object, method_name: str, event_dict: dict) -> tuple[tuple, dict]:
    return (_to_json(logger, method_name, event_dict),), {"extra": {_RENDERED: True}}


class _Formatter(structlog.stdlib.ProcessorFormatter):
    """Writes structlog's rendered lines as they are; renders foreign records as JSON."""

    def format(self, record: logging.LogRecord) -> str:
        if getattr(record, _RENDERED, False):
            return record.msg
        return super().format(record)


def configure_logging() -> None:
    """Route structlog and the standard library's logging to JSON lines on stderr.

    structlog's lines are rendered to JSON on structlog's side and handed to the standard
    library already written, so other handlers (the tests' leak scan) still see every
    line; only foreign records (gunicorn, Celery, SQLAlchemy) go through the formatter's
    processors. That halves a line's CPU (docs/decisions.md, "Logs and metrics").
    """
    level = logging.getLevelNamesMapping()[get_settings().log_level]
    shared_processors = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_logger_name,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _redact,
    ]
    structlog.configure(
        processors=[*shared_processors, structlog.processors.format_exc_info, _render],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(level),
        cache_logger_on_first_use=True,
    )
    # No line names the file and line it was logged from, so the standard library need
    # not look it up for each record (the logging HOWTO's "Optimization" section).
    logging._srcfile = None
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        _Formatter(
            foreign_pre_chain=shared_processors,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                structlog.processors.JSONRenderer(),
            ],
        )
    )
    handler.set_name(_HANDLER_NAME)
    root = logging.getLogger()
    # Replace only our own handler, so calling this twice (or under pytest) stacks nothing.
    root.handlers[:] = [h for h in root.handlers if h.get_name() != _HANDLER_NAME]
    root.addHandler(handler)
    root.setLevel(level)


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    """A structured logger: ``log.info("event.stored", provider=..., event_id=...)``."""
    return structlog.get_logger(name)


def request_id_from(value: str | None) -> str:
    """``value`` if it is a usable request id (1–128 printable ASCII characters), else a new one."""
    if value is not None and _REQUEST_ID.fullmatch(value):
        return value
    return uuid.uuid4().hex


def current_request_id() -> str | None:
    """The request id bound to this context: an API request's, or the one a task carries."""
    return structlog.contextvars.get_contextvars().get("request_id")
