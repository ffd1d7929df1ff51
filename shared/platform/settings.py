"""Process settings, read once from the environment (pydantic-settings).

Every variable of the design is here. An invalid value stops start-up with one line that
names the variable (see :func:`get_settings`).
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/recon"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_DRIVER_SCHEME = re.compile(r"^postgres(?:ql)?(?:\+\w+)?://")


def psycopg_url(url: str) -> str:
    """``url`` with its scheme set to ``postgresql+psycopg``, whatever driver it named."""
    if not _DRIVER_SCHEME.match(url):
        raise ValueError("must start with postgresql:// (or postgres://)")
    return _DRIVER_SCHEME.sub("postgresql+psycopg://", url, count=1)


# A PostgreSQL URL setting, stored with the psycopg 3 driver whatever driver it named.
PostgresUrl = Annotated[str, AfterValidator(psycopg_url)]


class ConfigError(SystemExit):
    """Start-up refused: the message is one line naming the offending variable."""


class Settings(BaseSettings):
    """The service's configuration; field names are the environment variables, upper-cased."""

    # An empty variable (``ADMIN_EMAIL=``) means "unset", as compose passes them.
    model_config = SettingsConfigDict(
        env_file=None, extra="ignore", frozen=True, env_ignore_empty=True
    )

    database_url: PostgresUrl = Field(
        default=DEFAULT_DATABASE_URL,
        description="PostgreSQL URL; whatever the scheme's driver, psycopg 3 is used.",
    )
    redis_url: str = Field(default=DEFAULT_REDIS_URL, description="Redis URL (Celery broker).")
    reconciliation_daily_token: SecretStr | None = Field(
        default=None, description="Token for POST /billing/reconciliation/runs/daily."
    )
    daily_token_max_failures: int = Field(
        default=5, ge=1, description="Wrong daily tokens per client before it is refused (429)."
    )
    daily_token_window_seconds: int = Field(
        default=900, ge=1, description="How long a client's wrong daily tokens are counted."
    )
    reconciliation_timezone: str = Field(
        default="UTC", description="IANA time zone given to new organisations."
    )
    reconciliation_hour: int = Field(
        default=2, ge=0, le=23, description="Local hour of the daily run for new organisations."
    )
    reconciliation_paused: bool = Field(
        default=False, description="Skip every scheduled run (logged)."
    )
    reconciliation_auto_fix: bool = Field(
        default=False, description="Resolve discrepancies whose condition has cleared."
    )
    admin_email: str | None = Field(default=None, description="Recipient of run reports.")
    smtp_host: str | None = Field(default=None, description="SMTP server for run reports.")
    smtp_port: int = Field(default=587, ge=1, le=65535, description="SMTP port.")
    smtp_username: str | None = Field(default=None, description="SMTP user name.")
    smtp_password: SecretStr | None = Field(default=None, description="SMTP password.")
    smtp_starttls: bool = Field(default=True, description="Upgrade the SMTP link with STARTTLS.")
    smtp_from: str = Field(default="recon@localhost", description="Sender of run reports.")
    webhook_tolerance_seconds: int = Field(
        default=300, ge=1, le=86_400, description="Accepted clock skew of webhook timestamps."
    )
    max_body_bytes: int = Field(
        default=1_048_576, ge=1024, description="Largest accepted request body (413 above)."
    )
    settlement_max_bytes: int = Field(
        default=200_000_000,
        ge=1024,
        description="Largest accepted settlement file upload (413 above).",
    )
    bank_statement_max_bytes: int = Field(
        default=200_000_000,
        ge=1024,
        description="Largest accepted bank statement upload (413 above).",
    )
    pending_event_sweep_seconds: int = Field(
        default=120,
        ge=10,
        description="Age after which a still-pending event is re-enqueued (and a waiting "
        "payment match wakes a worker).",
    )
    log_level: str = Field(default="INFO", description="Log level of every process.")
    metrics_token: SecretStr | None = Field(
        default=None, description="Bearer token GET /metrics requires (open while unset)."
    )

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str) -> str:
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value

    @field_validator("reconciliation_timezone")
    @classmethod
    def _iana_zone(cls, value: str) -> str:
        validate_timezone(value)
        return value

    @field_validator("admin_email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        if value is not None and not _EMAIL.match(value):
            raise ValueError("is not an e-mail address")
        return value

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        upper = value.upper()
        if upper not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
        return upper

    @property
    def mail_enabled(self) -> bool:
        """True when run reports are to be mailed (ADMIN_EMAIL and SMTP_HOST are both set)."""
        return bool(self.admin_email and self.smtp_host)


def validate_timezone(name: str) -> str:
    """Return ``name`` if it is an IANA time zone, else raise ``ValueError``."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"{name!r} is not an IANA time zone") from exc
    return name


def load_settings() -> Settings:
    """Read the environment; on an invalid value raise ConfigError with one clear line."""
    try:
        return Settings()
    except ValidationError as exc:
        error = exc.errors()[0]
        variable = str(error["loc"][0]).upper() if error["loc"] else "settings"
        message = error["msg"].removeprefix("Value error, ")
        raise ConfigError(f"invalid setting {variable}: {message}") from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, loaded on first use."""
    return load_settings()
