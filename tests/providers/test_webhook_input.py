"""Reading webhook bodies defensively (shared/providers/webhook_input.py): every
unreadable or unstorable body is a MalformedPayload (400), whoever the provider."""

from __future__ import annotations

import pytest

from shared.providers.webhook_input import (
    MAX_JSON_DEPTH,
    MalformedPayload,
    parse_json_object,
)

# --- Reading JSON bodies ------------------------------------------------------------


def _nested_objects(levels: int) -> bytes:
    return ('{"a": ' * levels + "1" + "}" * levels).encode()


@pytest.mark.parametrize(
    "raw",
    [
        b"\xff\xfe\x00{",
        '{"name": "café"}'.encode("latin-1"),
        b'{"id": "evt_1", "type": "charge.succeeded"',
        b"",
        b'[{"id": "evt_1"}]',
        b"42",
        b"[" * 10_000 + b"]" * 10_000,
        b'{"a": ' + b"[" * 10_000 + b"]" * 10_000 + b"}",
        _nested_objects(MAX_JSON_DEPTH + 1),
        b'{"amount": ' + b"9" * 5_000 + b"}",
    ],
    ids=[
        "not-utf8",
        "latin-1",
        "truncated",
        "empty",
        "array",
        "number",
        "array-nested-10000-deep",
        "object-holding-10000-deep-array",
        "objects-nested-beyond-limit",
        "integer-with-5000-digits",
    ],
)
def test_unreadable_json_is_malformed_payload(raw):
    with pytest.raises(MalformedPayload):
        parse_json_object(raw)


def test_json_object_within_the_depth_limit_is_read():
    document = parse_json_object(_nested_objects(MAX_JSON_DEPTH - 1))

    assert isinstance(document["a"], dict)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"amount": NaN}',
        b'{"amount": -Infinity}',
        b'{"note": "a\\u0000b"}',
        b'{"a\\u0000": 1}',
        b'{"note": "\\ud800"}',
        b'{"items": [{"note": "\\udfff"}]}',
    ],
    ids=["nan", "infinity", "nul-in-value", "nul-in-key", "lone-surrogate", "nested-surrogate"],
)
def test_json_that_postgresql_cannot_store_is_malformed_payload(raw):
    with pytest.raises(MalformedPayload):
        parse_json_object(raw)
