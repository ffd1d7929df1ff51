"""Signed Stripe webhooks as Stripe sends them, and the account that receives them."""

from __future__ import annotations

import json
import os
import random
import time
import uuid

STRIPE_SECRET = "whsec_bench_5f1c2a9e7d4b8c3a6e0f1d2c3b4a5968"  # noqa: S105 - bench-only


def prepare_account() -> str:
    """Migrate the bench database, add an organisation and its Stripe account; return its id.

    ``DATABASE_URL`` and ``REDIS_URL`` are set before ``shared`` is first imported, so the
    service's own settings, engine and domain functions are the ones used.
    """
    from shared.access.organizations import create_organization
    from shared.platform import migrations
    from shared.platform.db import get_engine, unit_of_work
    from shared.providers.accounts import add_provider_account

    migrations.upgrade(database_url=os.environ["DATABASE_URL"])
    with unit_of_work() as session:
        organization = create_organization(session=session, name="Bench Ltd")
        account = add_provider_account(
            session=session,
            org_id=organization.id,
            provider="stripe",
            secret=STRIPE_SECRET,
            name="bench",
        )
    get_engine().dispose()
    return str(account.id)


def _hex(length: int) -> str:
    return uuid.uuid4().hex[:length]


def stripe_event(event_id: str, created: int) -> dict:
    """A payment_intent.succeeded event with the fields Stripe really sends (API 2024-06-20)."""
    intent = f"pi_3{_hex(23)}"
    amount = random.randrange(100, 500_000)
    return {
        "id": event_id,
        "object": "event",
        "api_version": "2024-06-20",
        "created": created,
        "data": {
            "object": {
                "id": intent,
                "object": "payment_intent",
                "amount": amount,
                "amount_capturable": 0,
                "amount_details": {"tip": {}},
                "amount_received": amount,
                "application": None,
                "application_fee_amount": None,
                "automatic_payment_methods": {"allow_redirects": "always", "enabled": True},
                "canceled_at": None,
                "cancellation_reason": None,
                "capture_method": "automatic_async",
                "client_secret": f"{intent}_secret_{_hex(25)}",
                "confirmation_method": "automatic",
                "created": created - 3,
                "currency": random.choice(["eur", "usd", "gbp"]),
                "customer": f"cus_{_hex(14)}",
                "description": f"Invoice INV-{random.randrange(10**6):06d}",
                "invoice": None,
                "last_payment_error": None,
                "latest_charge": f"ch_3{_hex(23)}",
                "livemode": False,
                "metadata": {"external_id": f"inv_{_hex(12)}", "order_id": str(uuid.uuid4())},
                "next_action": None,
                "on_behalf_of": None,
                "payment_method": f"pm_1{_hex(23)}",
                "payment_method_configuration_details": None,
                "payment_method_options": {
                    "card": {
                        "installments": None,
                        "mandate_options": None,
                        "network": None,
                        "request_three_d_secure": "automatic",
                    }
                },
                "payment_method_types": ["card"],
                "processing": None,
                "receipt_email": "billing@example.com",
                "review": None,
                "setup_future_usage": None,
                "shipping": None,
                "source": None,
                "statement_descriptor": None,
                "statement_descriptor_suffix": None,
                "status": "succeeded",
                "transfer_data": None,
                "transfer_group": None,
            }
        },
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": f"req_{_hex(14)}", "idempotency_key": str(uuid.uuid4())},
        "type": "payment_intent.succeeded",
    }


def event_id(phase: str, number: int) -> str:
    """A unique ``evt_…`` id whose letter after ``evt_`` names the bench phase."""
    return f"evt_{phase}{number:08d}{_hex(12)}"


def signed_request(account_id: str, port: int, event: dict, signed_at: int) -> bytes:
    """The complete HTTP request delivering ``event`` to the account's webhook route.

    Signed with the service's own ``stripe_signature`` (the tests prove Stripe's library
    accepts it).
    """
    from shared.providers.stripe import stripe_signature

    body = json.dumps(event, indent=2).encode()
    signature = stripe_signature(STRIPE_SECRET, signed_at, body)
    return (
        f"POST /webhooks/stripe/{account_id} HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{port}\r\n"
        "User-Agent: Stripe/1.0 (+https://stripe.com/docs/webhooks)\r\n"
        "Accept: */*; q=0.5, application/json\r\n"
        "Content-Type: application/json; charset=utf-8\r\n"
        f"Stripe-Signature: t={signed_at},v1={signature}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def stripe_requests(phase: str, count: int, account_id: str, port: int) -> list[bytes]:
    """``count`` complete HTTP requests, each a uniquely identified, freshly signed event;
    the event id starts ``evt_<phase>`` so stored rows can be told apart."""
    created = int(time.time())
    return [
        signed_request(account_id, port, stripe_event(event_id(phase, number), created), created)
        for number in range(count)
    ]
