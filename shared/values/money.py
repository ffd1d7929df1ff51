"""Money: integer minor units plus an ISO 4217 code; exponents from the maintained table."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Annotated

from iso4217 import Currency
from pydantic import AfterValidator, Field

from shared.platform.errors import ValidationFailed

# The largest amount accepted from outside, in minor units (ten trillion in a two-decimal
# currency): far beyond any payment, far below bigint's limit.
MAX_AMOUNT_MINOR = 10**15
# A pydantic field holding an amount in minor units: an integer from 0 to MAX_AMOUNT_MINOR.
AmountMinor = Annotated[int, Field(ge=0, le=MAX_AMOUNT_MINOR, strict=True)]


class UnknownCurrency(ValidationFailed, ValueError):
    """Not an ISO 4217 currency with a minor unit (a ValueError too, for pydantic)."""


def normalise_currency(code: str) -> str:
    """Upper-case ``code`` and check it is an active ISO 4217 currency with minor units."""
    upper = code.strip().upper()
    try:
        currency = Currency(upper)
    except ValueError:
        raise UnknownCurrency("not an ISO 4217 currency code") from None
    if currency.exponent is None:
        raise UnknownCurrency(f"currency {upper} has no minor unit and cannot be reconciled")
    return upper


# A pydantic field holding a currency code: stored as :func:`normalise_currency` returns it.
CurrencyCode = Annotated[str, AfterValidator(normalise_currency)]


def currency_exponent(code: str) -> int:
    """Number of decimals of ``code`` (JPY 0, USD 2, KWD 3), from the ISO 4217 table."""
    exponent = Currency(code.upper()).exponent
    if exponent is None:
        raise ValidationFailed(f"currency {code} has no minor unit")
    return exponent


class InvalidAmount(ValidationFailed, ValueError):
    """Decimal text that is not an exact amount of its currency (a ValueError too)."""


# Plain decimal text: digits with an optional point and fraction, an optional sign. No
# exponent, no thousands separator, no NaN or infinity: what banks write. Groups: sign,
# whole digits, fraction digits (after a whole part, or alone as in ``.91``).
_DECIMAL_TEXT = re.compile(r"([+-]?)(?:([0-9]+)(?:\.([0-9]*))?|\.([0-9]+))")
# More whole digits than this is beyond MAX_AMOUNT_MINOR in any currency.
_MAX_WHOLE_DIGITS = len(str(MAX_AMOUNT_MINOR))
# A pure look-up of the ISO table, asked once per amount: cached (failures are not).
_exponent = lru_cache(maxsize=512)(currency_exponent)


def minor_units(amount: str, currency: str) -> int:
    """Exact minor units of decimal text in ``currency``: ``("12.3", "EUR")`` → 1230.

    Never a float: integer arithmetic on the digits. Refuses anything but plain decimal
    text, more decimals than the currency has (``"1.005"`` in EUR; trailing zeros are
    fine), and amounts beyond ±MAX_AMOUNT_MINOR.
    """
    text = amount.strip()
    match = _DECIMAL_TEXT.fullmatch(text)
    if match is None:
        raise InvalidAmount(f"{amount[:40]!r} is not a decimal amount")
    sign, whole, fraction, bare_fraction = match.groups()
    fraction = fraction or bare_fraction or ""
    exponent = _exponent(currency)
    if fraction[exponent:].strip("0"):
        raise InvalidAmount(f"{text} has more decimals than {currency.upper()} allows")
    whole = (whole or "").lstrip("0")
    minor = 0
    if len(whole) <= _MAX_WHOLE_DIGITS:
        kept = fraction[:exponent].ljust(exponent, "0")
        minor = int(whole or "0") * 10**exponent + int(kept or "0")
    if len(whole) > _MAX_WHOLE_DIGITS or minor > MAX_AMOUNT_MINOR:
        raise InvalidAmount(f"{text} {currency.upper()} is beyond the largest amount accepted")
    return -minor if sign == "-" else minor


def format_minor(amount_minor: int, currency: str) -> str:
    """Human form of an amount for reports and CSV: ``(123456, "USD")`` → ``1,234.56``."""
    exponent = currency_exponent(currency)
    sign = "-" if amount_minor < 0 else ""
    whole, fraction = divmod(abs(amount_minor), 10**exponent)
    if exponent == 0:
        return f"{sign}{whole:,}"
    return f"{sign}{whole:,}.{fraction:0{exponent}d}"
