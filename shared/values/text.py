"""What text the service stores from outside: no control characters.

Identifiers (external ids, references, assignees) are one line; free text (notes,
reasons) may also hold line breaks and tabs. Every other control character (C0, DEL,
C1) and the bidirectional overrides are refused: they rewrite terminals and CSV viewers
(``ESC [2J``), hide text, or reorder what a reviewer reads. PostgreSQL cannot store NUL.
"""

from __future__ import annotations

import re

from shared.platform.errors import ValidationFailed

# The longest identifier accepted from outside: a reference of thousands of characters
# would not fit PostgreSQL's index rows (an error the worker would retry).
MAX_TEXT_LENGTH = 255

_BIDI_CONTROLS = "\u202a-\u202e\u2066-\u2069"
# The characters an identifier must not hold, as the ranges of a bracket expression
# (shared/settlements/cell_sql.py asks PostgreSQL the same).
IDENTIFIER_REFUSED_RANGES = f"\x00-\x1f\x7f-\x9f{_BIDI_CONTROLS}"
_IDENTIFIER_REFUSED = re.compile(f"[{IDENTIFIER_REFUSED_RANGES}]")
_FREE_TEXT_REFUSED = re.compile(f"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f{_BIDI_CONTROLS}]")


class UnstorableText(ValidationFailed, ValueError):
    """Text holding a refused character (a ValueError too, for pydantic)."""


def _check(value: str, refused: re.Pattern[str], field: str | None, what: str) -> str:
    if refused.search(value):
        what = "the NUL character" if "\x00" in value else what
        rule = f"must not contain {what}"
        raise UnstorableText(f"{field} {rule}" if field else rule)
    return value


def check_identifier(value: str, *, field: str | None = None) -> str:
    """``value`` unchanged if it is one line without control characters, else refused.

    The message starts with ``field`` when given (pydantic adds the field itself).
    """
    return _check(value, _IDENTIFIER_REFUSED, field, "control characters or line breaks")


def check_free_text(value: str, *, field: str | None = None) -> str:
    """``value`` unchanged if its only control characters are line breaks and tabs."""
    return _check(
        value, _FREE_TEXT_REFUSED, field, "control characters other than line breaks and tabs"
    )


_LINE_BREAKERS = re.compile(f"[\\s\x00-\x1f\x7f-\x9f{_BIDI_CONTROLS}]+")


def one_line(value: str | None) -> str | None:
    """Text from a file as one storable line: every run of whitespace or control characters
    becomes one space, ends trimmed; None for None or nothing left (bank text wraps lines)."""
    if value is None:
        return None
    return _LINE_BREAKERS.sub(" ", value).strip() or None
