"""Every registered provider keeps the WebhookProvider contract (shared/providers/interface.py).

One table over the registry: a provider added to it is held to the same promises at once,
with no test to write first — only a sample delivery in tests/support/payloads.py.
"""

from __future__ import annotations

import time
from dataclasses import fields
from datetime import timedelta
from typing import Any

import pytest

from shared.platform.errors import ValidationFailed
from shared.providers import Ignored, RecordUpdate, VerifiedEvent
from shared.providers.interface import (
    AccountOptions,
    SignatureHeader,
    WebhookProvider,
    WebhookRequest,
)
from shared.providers.registry import REGISTRY
from shared.providers.webhook_input import InvalidSignature
from tests.support.payloads import datetimes_of, sample_deliveries

TOLERANCE = 300
UNKNOWN_EVENT_TYPE = "no.such_event.TYPE"


@pytest.fixture(params=list(REGISTRY.values()), ids=list(REGISTRY))
def provider(request) -> WebhookProvider:
    return request.param


def signed_sample(provider: WebhookProvider, secret: str) -> tuple[bytes, dict[str, str], int]:
    """The provider's sample delivery signed with ``secret`` now; body, headers and time."""
    now = int(time.time())
    body, headers = provider.sign(sample_deliveries()[provider.name], secret, now=now)
    return body, headers, now


def verified_sample(provider: WebhookProvider) -> list[VerifiedEvent]:
    secret = provider.new_secret()
    body, headers, now = signed_sample(provider, secret)
    return provider.verify(WebhookRequest(body, headers, now), [secret], tolerance=TOLERANCE)


def other_value(option: Any) -> Any:
    """A value of an account option other than its default."""
    return (not option) if isinstance(option, bool) else f"{option}_other"


def test_every_registered_provider_has_a_sample_delivery():
    assert set(sample_deliveries()) == set(REGISTRY)


def test_provider_satisfies_the_interface(provider):
    assert isinstance(provider, WebhookProvider)
    assert provider.name.isidentifier()
    assert provider.name.islower()
    assert provider.summary.strip()
    assert all(isinstance(header, SignatureHeader) for header in provider.signature_headers)
    assert provider.acknowledgement is None or provider.acknowledgement.strip()


def test_provider_names_only_options_an_account_has(provider):
    assert provider.account_options <= {option.name for option in fields(AccountOptions)}


def test_new_secret_passes_the_provider_secret_check(provider):
    provider.check_secret(provider.new_secret())
    assert provider.new_secret() != provider.new_secret()


@pytest.mark.parametrize("secret", ["", "not a secret", "whsec_"], ids=["empty", "words", "prefix"])
def test_malformed_secret_is_refused(provider, secret):
    with pytest.raises(ValidationFailed):
        provider.check_secret(secret)


def test_signed_sample_verifies_into_named_events(provider):
    events = verified_sample(provider)

    assert events
    for event in events:
        assert isinstance(event, VerifiedEvent)
        assert event.provider_event_id
        assert event.event_type
        assert isinstance(event.payload, dict)


def test_sample_signed_with_another_secret_is_refused(provider):
    body, headers, now = signed_sample(provider, provider.new_secret())

    with pytest.raises(InvalidSignature):
        provider.verify(
            WebhookRequest(body, headers, now), [provider.new_secret()], tolerance=TOLERANCE
        )


def test_tampered_sample_is_refused(provider):
    secret = provider.new_secret()
    body, headers, now = signed_sample(provider, secret)
    tampered = body.replace(b"0", b"9")  # amounts, references and dates: still JSON
    assert tampered != body

    with pytest.raises(InvalidSignature):
        provider.verify(WebhookRequest(tampered, headers, now), [secret], tolerance=TOLERANCE)


def test_verified_sample_normalises_into_utc_record_updates(provider):
    for event in verified_sample(provider):
        updates = provider.normalise(event.event_type, event.payload, AccountOptions())

        assert isinstance(updates, list)
        assert updates
        for update in updates:
            assert isinstance(update, RecordUpdate)
            assert update.provider_reference
            assert all(value.utcoffset() == timedelta(0) for value in datetimes_of(update))


def test_unknown_event_type_is_ignored_whatever_the_payload(provider):
    result = provider.normalise(UNKNOWN_EVENT_TYPE, {}, AccountOptions())

    assert isinstance(result, Ignored)
    assert UNKNOWN_EVENT_TYPE in result.reason


def test_the_options_a_provider_names_change_its_sample_and_no_other_does(provider):
    defaults = AccountOptions()
    events = verified_sample(provider)
    for option in fields(AccountOptions):
        changed = AccountOptions(**{option.name: other_value(getattr(defaults, option.name))})
        read = [provider.normalise(e.event_type, e.payload, defaults) for e in events]
        reread = [provider.normalise(e.event_type, e.payload, changed) for e in events]

        assert (read != reread) == (option.name in provider.account_options), option.name
