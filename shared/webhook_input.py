"""Reading webhook bodies and signature headers defensively: every failure is a 400."""

from __future__ import annotations

import hmac
import json
from typing import Any

from shared.errors import BadRequest

MAX_JSON_DEPTH = 64


class InvalidSignature(BadRequest):
    """A missing, malformed, stale or non-matching webhook signature."""

    title = "Invalid signature"
    type_slug = "invalid-signature"


class MalformedPayload(BadRequest):
    """A body that is not the JSON document the provider's scheme promises."""

    title = "Malformed payload"
    type_slug = "malformed-payload"


def _depth(value: Any, limit: int) -> int:
    stack = [(value, 1)]
    deepest = 0
    while stack:
        current, depth = stack.pop()
        deepest = max(deepest, depth)
        if deepest > limit:
            return deepest
        if isinstance(current, dict):
            stack.extend((child, depth + 1) for child in current.values())
        elif isinstance(current, list):
            stack.extend((child, depth + 1) for child in current)
    return deepest


def parse_json_object(raw: bytes) -> dict[str, Any]:
    """Decode a UTF-8 JSON object; malformed, non-UTF-8, too deep or huge-number input → 400."""
    try:
        document = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise MalformedPayload("body is not valid UTF-8") from None
    except RecursionError:
        raise MalformedPayload(f"JSON nested deeper than {MAX_JSON_DEPTH} levels") from None
    except ValueError as error:
        # json.JSONDecodeError, and the int-size limit of Python's parser.
        raise MalformedPayload(f"body is not valid JSON: {error}") from None
    if not isinstance(document, dict):
        raise MalformedPayload("body must be a JSON object")
    if _depth(document, MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
        raise MalformedPayload(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
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
