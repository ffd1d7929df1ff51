"""Every payload the providers actually generated, delivered through the webhook route.

The files live beside the repository, in ``../shared/provider-fixtures/`` (with their
``SOURCES.md``); they are read in place, never copied. Only what a delivery today needs
is adapted: a fresh event id where the source zeroed them all, and a fresh signature
(the Adyen HMAC test vector goes untouched, with its published key; the Standard
Webhooks test vector is checked at its own timestamp). Each must be accepted, stored,
processed (never failed), and read as a finance person would read it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from shared.ingest.processing import process_provider_event
from shared.models import ProviderEvent
from shared.providers import Ignored
from shared.providers.accounts import add_provider_account
from shared.providers.interface import AccountOptions, WebhookRequest
from shared.providers.registry import provider_named
from tests.conftest import REPO_ROOT
from tests.support.factories import SECRETS, make_org

FIXTURES = REPO_ROOT.parent / "shared" / "provider-fixtures"
pytestmark = pytest.mark.skipif(
    not FIXTURES.is_dir(),
    reason=f"{FIXTURES} is absent on this machine: the providers' real payloads are not "
    "checked here (the suite's own fixtures in tests/providers still are)",
)
# The key and signature Adyen publishes with this item (adyen-python-api-library tests).
ADYEN_TEST_VECTOR = "hmac-test-vector-authorisation.json"
ADYEN_TEST_KEY = "44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056"

USD, EUR = "USD", "EUR"
# file → (stored event type, what it says: the first RecordUpdate's fields, or the words
# the reason it is ignored must contain)
EXPECTED: dict[str, tuple[str, dict[str, Any] | str]] = {
    "stripe/payment_intent.succeeded.json": (
        "payment_intent.succeeded",
        {"provider_reference": "pi_000000000000000000000000", "payment_status": "succeeded",
         "amount_minor": 2000, "currency": USD},
    ),
    "stripe/payment_intent.payment_failed.json": (
        "payment_intent.payment_failed",
        {"provider_reference": "pi_000000000000000000000000", "payment_status": "failed",
         "amount_minor": 2000, "currency": USD},
    ),
    "stripe/payment_intent.canceled.json": (
        "payment_intent.canceled",
        {"provider_reference": "pi_000000000000000000000000", "payment_status": "canceled",
         "amount_minor": 2000, "currency": USD},
    ),
    "stripe/charge.succeeded.json": (
        "charge.succeeded",  # its PaymentIntent is the payment
        {"provider_reference": "pi_000000000000000000000000", "payment_status": "succeeded",
         "amount_minor": 2000, "currency": USD},
    ),
    "stripe/charge.refunded.json": (
        "charge.refunded",  # a charge without an intent is its own payment
        {"provider_reference": "ch_000000000000000000000000", "payment_status": "succeeded",
         "amount_minor": 100, "currency": USD, "reported_refunded_minor": 100,
         "refunds": {"re_000000000000000000000000": 100}},
    ),
    "stripe/charge.refund.updated.json": (
        "charge.refund.updated",  # the refund's own amount and metadata stay off the payment
        {"provider_reference": "ch_000000000000000000000000", "payment_status": None,
         "amount_minor": None, "currency": USD,
         "refunds": {"re_000000000000000000000000": 100}},
    ),
    "stripe/refund.created.json": (
        "refund.created",
        {"provider_reference": "ch_1PgafuB7WZ01zgkWXYmPNZs8", "payment_status": None,
         "amount_minor": None, "currency": USD,
         "refunds": {"re_1Pgc72B7WZ01zgkWqPvrRrPE": 100}},
    ),
    "stripe/charge.dispute.created.json": (
        "charge.dispute.created",
        {"provider_reference": "ch_000000000000000000000000", "payment_status": None,
         "amount_minor": None, "currency": USD, "dispute_amount_minor": 100},
    ),
    "adyen/authorisation-true.json": (
        "AUTHORISATION",
        {"provider_reference": "123456789", "payment_status": "succeeded",
         "amount_minor": 10100, "currency": EUR, "merchant_reference": "8313842560770001"},
    ),
    "adyen/authorisation-openapi.json": (
        "AUTHORISATION",
        {"provider_reference": "QFQTPCQ8HXSKGK82", "payment_status": "succeeded",
         "amount_minor": 1000, "currency": EUR, "merchant_reference": "YOUR_MERCHANT_REFERENCE",
         "customer_ref": "YOUR_SHOPPER_REFERENCE"},  # tokenization.shopperReference
    ),
    "adyen/authorisation-true-paybylink.json": (
        "AUTHORISATION",
        {"provider_reference": "883594558993579B", "payment_status": "succeeded",
         "amount_minor": 4000, "currency": EUR, "merchant_reference": "vas3k_club3_1594558824",
         "customer_ref": "SHOPPER-0001"},  # recurring.shopperReference
    ),
    "adyen/authorisation-false-refused.json": (
        "AUTHORISATION",
        {"provider_reference": "test_AUTHORISATION_3", "payment_status": "failed",
         "amount_minor": 10150, "currency": EUR},
    ),
    f"adyen/{ADYEN_TEST_VECTOR}": (
        "AUTHORISATION",
        {"provider_reference": "7914073381342284", "payment_status": "succeeded",
         "amount_minor": 1130, "currency": EUR,
         "merchant_reference": "TestPayment-1407325143704"},
    ),
    "adyen/capture-openapi.json": (
        "CAPTURE",
        {"provider_reference": "9913140798220028", "payment_status": "succeeded",
         "amount_minor": None},
    ),
    "adyen/cancellation-true.json": (
        "CANCELLATION",
        {"provider_reference": "8313547924770610", "payment_status": "canceled"},
    ),
    "adyen/refund-true.json": (
        "REFUND",
        {"provider_reference": "ORIGINAL_PSP", "payment_status": None, "currency": EUR,
         "refunds": {"PSP_REFERENCE": 1500}},
    ),
    "adyen/refund-false.json": ("REFUND", "refused"),
    "adyen/chargeback-openapi.json": (
        "CHARGEBACK",
        {"provider_reference": "9913140798220028", "payment_status": None, "currency": EUR,
         "dispute_amount_minor": 1000},
    ),
    "standard/spec-example-contact-created.json": ("contact.created", "contact.created"),
}  # fmt: skip


def fixture_files() -> list[str]:
    if not FIXTURES.is_dir():
        return []
    return sorted(str(path.relative_to(FIXTURES)) for path in FIXTURES.glob("*/*.json"))


def test_every_file_beside_the_repository_has_an_expectation():
    """A file added to the folder must be read here too (the test vector is below)."""
    assert set(fixture_files()) == {*EXPECTED, "standard/spec-test-vector.json"}


def delivery(name: str, secret: str) -> tuple[bytes, dict[str, str]]:
    """The file as a delivery today: a fresh id where ids were zeroed, a fresh signature."""
    provider, file = name.split("/")
    if file == ADYEN_TEST_VECTOR:
        return (FIXTURES / name).read_bytes(), {}
    document = json.loads((FIXTURES / name).read_text())
    if provider == "stripe":
        document["id"] = f"evt_{Path(file).stem.replace('.', '_')}"
    return provider_named(provider).sign(document, secret, now=int(time.time()))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_a_real_payload_is_accepted_stored_and_read_as_finance_expects(client, session, name):
    provider = name.split("/")[0]
    secret = ADYEN_TEST_KEY if name.endswith(ADYEN_TEST_VECTOR) else SECRETS[provider]
    account = add_provider_account(
        session=session, org_id=make_org(session).id, provider=provider, secret=secret
    )
    body, headers = delivery(name, secret)

    response = client.post(
        f"/webhooks/{provider}/{account.id}",
        data=body,
        headers=headers,
        content_type="application/json",
    )

    assert 200 <= response.status_code < 300, response.get_data(as_text=True)
    [event] = session.scalars(
        select(ProviderEvent).where(ProviderEvent.provider_account_id == account.id)
    )
    event_type, expected = EXPECTED[name]
    assert event.event_type == event_type
    assert process_provider_event(session=session, event_id=event.id) == "processed"
    said = provider_named(provider).normalise(event.event_type, event.payload, AccountOptions())
    if isinstance(expected, str):
        assert isinstance(said, Ignored)
        assert expected in said.reason
        return
    first = said[0]
    assert {field: getattr(first, field) for field in expected} == expected


def test_the_standard_webhooks_test_vector_verifies_and_is_ignored():
    """The spec's own vector: signed ``{"test": …}`` with no type, at its own timestamp."""
    vector = json.loads((FIXTURES / "standard/spec-test-vector.json").read_text())
    request = WebhookRequest(
        body=vector["payload"].encode(),
        headers={
            "webhook-id": vector["msg_id"],
            "webhook-timestamp": str(vector["timestamp"]),
            "webhook-signature": vector["signature"],
        },
        received_at=vector["timestamp"],
    )
    standard = provider_named("standard")

    [event] = standard.verify(request, [vector["secret"]], tolerance=300)

    assert (event.provider_event_id, event.payload) == (vector["msg_id"], {"test": 2432232314})
    said = standard.normalise(event.event_type, event.payload, AccountOptions())
    assert isinstance(said, Ignored)
