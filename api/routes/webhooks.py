"""Provider webhooks: the signature is the authentication; nothing here waits for matching."""

from __future__ import annotations

import uuid

from flask import Blueprint, Response, request
from werkzeug.exceptions import HTTPException

from api.observability import add_access_fields
from api.openapi import Header, documented
from api.problems import problem_slug
from api.requests import require_json
from api.responses import json_response
from api.schemas import WebhookReceipt
from shared.ingest.events import IngestResult, ingest_webhook
from shared.platform.errors import DomainError
from shared.platform.metrics import record_webhook
from shared.providers.adyen import ACCEPTED

blueprint = Blueprint("webhooks", __name__)
# The provider's own JSON, verified byte for byte against its signature.
PROVIDER_EVENT = {"type": "object", "description": "The provider's event, unchanged."}


def receive(provider: str, account_id: uuid.UUID) -> IngestResult:
    """Verify and store one delivery; it is committed before the answer is sent.

    Each delivery is counted: accepted (new or duplicate), or rejected with the problem
    type it is answered with. The access line of an accepted one names its provider,
    account and counts: one line per webhook.
    """
    try:
        require_json()
        result = ingest_webhook(
            provider=provider,
            account_id=account_id,
            body=request.get_data(cache=False),
            headers=request.headers,
        )
    except (DomainError, HTTPException) as error:
        record_webhook(provider, "rejected", problem_slug(error))
        raise
    record_webhook(provider, "accepted", "new" if result.stored else "duplicate")
    add_access_fields(
        provider=provider,
        account_id=str(account_id),
        received=result.received,
        stored=result.stored,
    )
    return result


def receipt(result: IngestResult) -> Response:
    body = WebhookReceipt(
        received=result.received, stored=result.stored, duplicate=result.stored == 0
    )
    return json_response(body)


@blueprint.post("/webhooks/stripe/<uuid:account_id>")
@documented(
    body_schema=PROVIDER_EVENT,
    responses={200: WebhookReceipt},
    headers=(Header("Stripe-Signature", "t=<unix time>,v1=<HMAC-SHA256>", required=True),),
)
def stripe_webhook(account_id: uuid.UUID) -> Response:
    """Stripe events, signed with ``Stripe-Signature``."""
    return receipt(receive("stripe", account_id))


@blueprint.post("/webhooks/standard/<uuid:account_id>")
@documented(
    body_schema=PROVIDER_EVENT,
    responses={200: WebhookReceipt},
    headers=(
        Header("webhook-id", "The message id", required=True),
        Header("webhook-timestamp", "Unix time in seconds", required=True),
        Header("webhook-signature", "v1,<base64 HMAC-SHA256>, space-separated", required=True),
    ),
)
def standard_webhook(account_id: uuid.UUID) -> Response:
    """Standard Webhooks messages (``webhook-id``/``-timestamp``/``-signature``)."""
    return receipt(receive("standard", account_id))


@blueprint.post("/webhooks/adyen/<uuid:account_id>")
@documented(
    body_schema=PROVIDER_EVENT,
    responses={200: {"text/plain": {"const": ACCEPTED}}},
)
def adyen_webhook(account_id: uuid.UUID) -> Response:
    """Adyen notifications; Adyen expects the literal body ``[accepted]``."""
    receive("adyen", account_id)
    return Response(ACCEPTED, mimetype="text/plain")
