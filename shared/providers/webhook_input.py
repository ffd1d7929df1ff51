"""Reading webhook bodies and signature headers defensively: every failure is a 400."""

from __future__ import annotations

import hmac
import json
import math
import re
from typing import Any

from shared.platform.errors import BadRequest

MAX_JSON_DEPTH = 64
# In valid JSON text a NUL or a lone surrogate can only come from one of these escapes
# (raw control characters are invalid JSON; UTF-8 cannot encode surrogates).
_ESCAPE_TO_CHECK = re.compile(rb"\\u(?:0000|[dD][89a-fA-F])")


class InvalidSignature(BadRequest, title="Invalid signature", type_slug="invalid-signature"):
    """A missing, malformed, stale or non-matching webhook signature."""


class MalformedPayload(BadRequest, title="Malformed payload", type_slug="malformed-payload"):
    """A body that is not the JSON document the provider's scheme promises."""


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    # 1e400 parses as infinity, which JSONB cannot store: refuse it like "Infinity".
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:20]} is too large for a JSON number")
    # 1e-400 parses as 0. The body is stored as sent, and PostgreSQL's numeric refuses
    # the smallest of these (1e-20000): refuse every one a float cannot hold.
    if value == 0 and text.lower().partition("e")[0].strip("-+.0"):
        raise ValueError(f"{text[:20]} is too small for a JSON number")
    return value


def _check_text(text: str) -> None:
    # PostgreSQL's JSONB stores neither NUL nor unpaired surrogates (\ud800 alone).
    if "\x00" in text:
        raise MalformedPayload("JSON strings may not contain \\u0000")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise MalformedPayload("JSON strings may not contain unpaired surrogates") from None


def _check_document(document: Any) -> None:
    """Refuse nesting deeper than MAX_JSON_DEPTH and strings PostgreSQL cannot store."""
    stack = [(document, 1)]
    while stack:
        current, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise MalformedPayload(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
        if isinstance(current, dict):
            for key, child in current.items():
                _check_text(key)
                stack.append((child, depth + 1))
        elif isinstance(current, list):
            stack.extend((child, depth + 1) for child in current)
        elif isinstance(current, str):
            _check_text(current)


def parse_json_document(raw: bytes) -> Any:
    """Decode UTF-8 JSON that PostgreSQL can store as JSONB, or raise a 400.

    Refused: invalid UTF-8 or JSON, NaN/Infinity (1e400 too), numbers so small that they
    read as 0 (1e-400), numbers too long to parse,
    nesting deeper than MAX_JSON_DEPTH, NUL characters and unpaired surrogates in strings.
    """
    try:
        document = json.loads(
            raw.decode("utf-8"), parse_constant=_refuse_constant, parse_float=_finite_float
        )
    except UnicodeDecodeError:
        raise MalformedPayload("body is not valid UTF-8") from None
    except RecursionError:
        raise MalformedPayload(f"JSON nested deeper than {MAX_JSON_DEPTH} levels") from None
    except ValueError as error:
        # json.JSONDecodeError, NaN/Infinity, and the int-size limit of Python's parser.
        raise MalformedPayload(f"body is not valid JSON: {error}") from None
    # Walking every string is most of the cost of reading a webhook; it is needed only if
    # the text has an escape that could decode to a refused character, or enough opening
    # brackets to nest deeper than allowed (each level needs one).
    if (
        _ESCAPE_TO_CHECK.search(raw) is not None
        or raw.count(b"{") + raw.count(b"[") > MAX_JSON_DEPTH
    ):
        _check_document(document)
    return document


def parse_json_object(raw: bytes) -> dict[str, Any]:
    """:func:`parse_json_document`, which must be an object (a webhook's scheme says so)."""
    document = parse_json_document(raw)
    if not isinstance(document, dict):
        raise MalformedPayload("body must be a JSON object")
    return document


def check_timestamp(timestamp: int, *, now: float, tolerance: int) -> None:
    """Refuse a signed timestamp older, or further in the future, than ``tolerance`` seconds."""
    if timestamp < now - tolerance:
        raise InvalidSignature("signature timestamp is older than the tolerance")
    if timestamp > now + tolerance:
        raise InvalidSignature("signature timestamp is in the future")


def parse_timestamp(text: str) -> int:
    """A Unix timestamp in whole seconds from a header value, or InvalidSignature."""
    if not text.isascii() or not text.isdigit() or len(text) > 12:
        raise InvalidSignature("signature timestamp is not a Unix time in seconds")
    return int(text)


def any_signature_matches(expected: list[bytes], received: list[bytes]) -> bool:
    """True if any received signature equals any expected one (each compare constant-time)."""
    matched = False
    for candidate in expected:
        for signature in received:
            matched |= hmac.compare_digest(candidate, signature)
    return matched
