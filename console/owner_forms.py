"""The owners' forms (settings, provider accounts, people) and their queries.

A form's fields are text; the settings and account forms become the very change models
the API validates (``SettingsChange``, ``NewAccount``, ``AccountChange``), each number
read as the API's JSON would hold it (:func:`typed_value`), so a form is refused with
the API's messages. A checkbox is sent only when ticked: the forms that show one read
its absence as false.
"""

from __future__ import annotations

import json
from decimal import Decimal
from itertools import zip_longest
from typing import Annotated, Any, Literal

from pydantic import Field
from werkzeug.datastructures import MultiDict

from console.forms import Form
from shared.access.settings import OrganizationSettings, SettingsChange, typed_value
from shared.models import SETTLEMENT_PROVIDERS
from shared.platform.errors import ValidationFailed, validate_input
from shared.providers.accounts import (
    FEE_SCHEDULE,
    PAYOUT_ARRIVAL_DAYS,
    AccountChange,
    NewAccount,
    options_read,
)

# The settings form's fields read as JSON values (numbers; auto_fix: true, false or null).
TYPED_SETTINGS = (
    "grace_period_seconds",
    "amount_tolerance_minor",
    "amount_tolerance_percent",
    "heuristic_window_seconds",
    "duplicate_window_seconds",
    "auto_fix",
    "daily_hour",
)
DELAY_FIELD = "settlement_delay_days.{}"  # one field per settlement provider
# The fee schedule's columns: one row per settlement currency, each column a repeated field.
FEE_COLUMNS = ("fee_currency", "fee_percent", "fee_fixed_minor", "fee_tolerance_minor")
CHANGE_INVALID = "the change is invalid"


class VersionForm(Form):
    """The settings version the form was read at."""

    version: int = Field(ge=1)


class SettingsQuery(Form):
    """The settings page's history cursor, and what the last change did (for its notice)."""

    cursor: Annotated[str, Field(max_length=512)] | None = None
    done: Literal["saved", "unchanged"] | None = None


class AccountQuery(Form):
    """What the last change of an account did (for its notice)."""

    done: Literal["saved", "retired"] | None = None


class PersonForm(Form):
    """A person to add; ``add_user`` checks each field (the CLI's messages)."""

    email: Annotated[str, Field(max_length=1_024)] = ""
    name: Annotated[str, Field(max_length=1_024)] = ""
    role: Annotated[str, Field(max_length=64)] = ""


class EmailForm(Form):
    """The person a reset link or a disabling is for."""

    email: Annotated[str, Field(min_length=1, max_length=1_024)]


class RetireForm(Form):
    """The secret to retire, by fingerprint (``AccountChange`` checks its form)."""

    fingerprint: Annotated[str, Field(max_length=64)] = ""


def _text(form: MultiDict, name: str) -> str:
    return form.get(name, "").strip()


def _given(form: MultiDict, names: tuple[str, ...]) -> dict[str, str]:
    """The text fields of ``names`` that were filled in, as typed."""
    return {name: form[name] for name in names if _text(form, name)}


def _shown(value: object) -> str:
    """A setting as its field shows it: text as is, a percentage without trailing zeros,
    anything else as JSON (``true``, ``null``, ``600``)."""
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    return value if isinstance(value, str) else json.dumps(value)


def settings_form_values(settings: OrganizationSettings, version: int) -> dict[str, str]:
    """The settings as the form shows them (the field names it submits)."""
    values = settings.model_dump()
    delays = values.pop("settlement_delay_days")
    shown = {name: _shown(value) for name, value in values.items()}
    shown |= {DELAY_FIELD.format(provider): str(days) for provider, days in delays.items()}
    return shown | {"version": str(version)}


def submitted_settings(form: MultiDict) -> dict[str, str]:
    """The settings form as submitted, to show it again with its error."""
    return form.to_dict() | {"paused": json.dumps("paused" in form)}


def parse_settings_form(form: MultiDict) -> tuple[int, SettingsChange]:
    """The version the form was read at and the change it makes (every setting it shows;
    an empty delay: the provider's default), or ValidationFailed as the API words it."""
    version = validate_input(VersionForm, form.to_dict(), "the form is incomplete").version
    values: dict[str, Any] = {name: typed_value(_text(form, name)) for name in TYPED_SETTINGS}
    values["timezone"] = _text(form, "timezone")
    values["paused"] = "paused" in form
    values["settlement_delay_days"] = {
        provider: typed_value(text)
        for provider in SETTLEMENT_PROVIDERS
        if (text := _text(form, DELAY_FIELD.format(provider)))
    }
    return version, validate_input(SettingsChange, values, "the settings are invalid")


def fee_rows(schedule: dict[str, Any] | None) -> list[dict[str, str]]:
    """A stored fee schedule as the form's rows (currency, percent, fixed, tolerance)."""
    return [
        dict(zip(FEE_COLUMNS, (currency, str(rate["percent"]), str(rate["fixed_minor"]),
                               str(rate["tolerance_minor"])), strict=True))
        for currency, rate in (schedule or {}).items()
    ]  # fmt: skip


def submitted_fee_rows(form: MultiDict) -> list[dict[str, str]]:
    """The fee rows as submitted (to show them again with an error)."""
    columns = [form.getlist(column) for column in FEE_COLUMNS]
    return [dict(zip(FEE_COLUMNS, row, strict=True))
            for row in zip_longest(*columns, fillvalue="")]  # fmt: skip


def _fee_schedule(form: MultiDict) -> dict[str, Any] | None:
    """The fee rows filled in, by currency (None when none is: no schedule)."""
    schedule: dict[str, Any] = {}
    for row in submitted_fee_rows(form):
        if not any(text.strip() for text in row.values()):
            continue
        currency = row["fee_currency"].strip().upper()
        if not currency or currency in schedule:
            why = "a row has no currency" if not currency else f"{currency} has two rows"
            raise ValidationFailed(
                f"{CHANGE_INVALID}: {FEE_SCHEDULE}: {why}",
                errors=[{"field": FEE_SCHEDULE, "message": why}],
            )
        rate = {"percent": typed_value(row["fee_percent"].strip())}
        for name in ("fixed_minor", "tolerance_minor"):
            if text := row[f"fee_{name}"].strip():
                rate[name] = typed_value(text)
        schedule[currency] = rate
    return schedule or None


def parse_new_account(form: MultiDict) -> NewAccount:
    """The register form as the account to create; the options of another provider, left
    empty, are not given (one filled in is refused as the API refuses it)."""
    values: dict[str, Any] = _given(form, ("provider", "name", "secret", "merchant_reference_key"))
    values["active"] = "active" in form
    if "manual_capture" in form:
        values["manual_capture"] = True
    if text := _text(form, PAYOUT_ARRIVAL_DAYS):
        values[PAYOUT_ARRIVAL_DAYS] = typed_value(text)
    return validate_input(NewAccount, values, "the account is invalid")


def parse_account_change(form: MultiDict, provider: str) -> AccountChange:
    """The account form as a change: its label (empty: kept), whether it is active, and
    the options ``provider`` reads (an empty fee table: no schedule)."""
    read = options_read(provider)
    values: dict[str, Any] = _given(form, ("name",))
    values["active"] = "active" in form
    if "merchant_reference_key" in read and _text(form, "merchant_reference_key"):
        values["merchant_reference_key"] = form["merchant_reference_key"]
    if "manual_capture" in read:
        values["manual_capture"] = "manual_capture" in form
    if PAYOUT_ARRIVAL_DAYS in read and (text := _text(form, PAYOUT_ARRIVAL_DAYS)):
        values[PAYOUT_ARRIVAL_DAYS] = typed_value(text)
    if FEE_SCHEDULE in read:
        values[FEE_SCHEDULE] = _fee_schedule(form)
    return validate_input(AccountChange, values, CHANGE_INVALID)


def parse_new_secret(form: MultiDict) -> AccountChange:
    """The secret to add: the one typed in, or (left empty) one to generate."""
    secret = form.get("secret", "")
    change = {"add_secret": secret if secret.strip() else True}
    return validate_input(AccountChange, change, "the secret is invalid")


def parse_retirement(form: MultiDict) -> AccountChange:
    """The secret to retire, by its fingerprint."""
    fingerprint = validate_input(RetireForm, form.to_dict(), "the form is incomplete").fingerprint
    return validate_input(AccountChange, {"retire_secret": fingerprint}, "the secret is invalid")
