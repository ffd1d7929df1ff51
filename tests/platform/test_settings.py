"""Settings: every design variable is read, and a bad value stops start-up in one line."""

from __future__ import annotations

import pytest

from shared.platform.settings import ConfigError, Settings, load_settings
from tests.conftest import run_cli

DESIGN_VARIABLES = {
    "DATABASE_URL",
    "REDIS_URL",
    "RECONCILIATION_DAILY_TOKEN",
    "RECONCILIATION_TIMEZONE",
    "RECONCILIATION_HOUR",
    "RECONCILIATION_PAUSED",
    "RECONCILIATION_AUTO_FIX",
    "ADMIN_EMAIL",
    "SMTP_HOST",
    "SMTP_PORT",
    "SMTP_USERNAME",
    "SMTP_PASSWORD",
}


def test_every_design_variable_is_a_setting():
    fields = {name.upper() for name in Settings.model_fields}
    assert DESIGN_VARIABLES <= fields


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://u@h:5432/d",
        "postgres://u@h:5432/d",
        "postgresql+psycopg2://u@h:5432/d",
        "postgresql+asyncpg://u@h:5432/d",
    ],
)
def test_database_url_always_uses_psycopg3(monkeypatch, url):
    monkeypatch.setenv("DATABASE_URL", url)
    assert load_settings().database_url == "postgresql+psycopg://u@h:5432/d"


def test_values_are_read_from_the_environment(monkeypatch):
    monkeypatch.setenv("RECONCILIATION_HOUR", "5")
    monkeypatch.setenv("RECONCILIATION_PAUSED", "true")
    monkeypatch.setenv("RECONCILIATION_TIMEZONE", "Europe/Paris")
    monkeypatch.setenv("RECONCILIATION_DAILY_TOKEN", "t0k3n")
    settings = load_settings()
    assert settings.reconciliation_hour == 5
    assert settings.reconciliation_paused is True
    assert settings.reconciliation_timezone == "Europe/Paris"
    assert settings.reconciliation_daily_token.get_secret_value() == "t0k3n"
    assert "t0k3n" not in repr(settings)


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("RECONCILIATION_HOUR", "24", "invalid setting RECONCILIATION_HOUR:"),
        ("RECONCILIATION_HOUR", "two", "invalid setting RECONCILIATION_HOUR:"),
        ("RECONCILIATION_TIMEZONE", "Mars/Olympus", "invalid setting RECONCILIATION_TIMEZONE:"),
        ("RECONCILIATION_PAUSED", "maybe", "invalid setting RECONCILIATION_PAUSED:"),
        ("DATABASE_URL", "mysql://x@y/z", "invalid setting DATABASE_URL:"),
        ("REDIS_URL", "http://x", "invalid setting REDIS_URL:"),
        ("ADMIN_EMAIL", "not-an-address", "invalid setting ADMIN_EMAIL:"),
        ("SMTP_PORT", "70000", "invalid setting SMTP_PORT:"),
    ],
)
def test_invalid_value_names_the_variable(monkeypatch, variable, value, message):
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as raised:
        load_settings()
    assert str(raised.value).startswith(message)
    assert "\n" not in str(raised.value)


def test_cli_refuses_to_start_with_one_clear_line():
    result = run_cli("db", "upgrade", env={"RECONCILIATION_HOUR": "99"})
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("invalid setting RECONCILIATION_HOUR:")
