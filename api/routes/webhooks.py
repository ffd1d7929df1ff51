"""Provider webhooks: the signature is the authentication; nothing here waits for matching."""

from __future__ import annotations

import uuid

from flask import Blueprint, Response, jsonify, request

from api.requests import require_json
from api.schemas import WebhookReceipt
from shared.ingestion import IngestResult, ingest_webhook
from shared.providers.adyen import ACCEPTED

blueprint = Blueprint("webhooks", __name__)


def receive(provider: str, account_id: uuid.UUID) -> IngestResult:
    """Verify and store one delivery; it is committed before the answer is sent."""
    require_json()
    return ingest_webhook(
        provider=provider,
        account_id=account_id,
        body=request.get_data(cache=False),
        headers=request.headers,
    )


def receipt(result: IngestResult) -> Response:
    body = WebhookReceipt(
        received=result.received, stored=result.stored, duplicate=result.stored == 0
    )
    return jsonify(body.model_dump())


@blueprint.post("/webhooks/stripe/<uuid:account_id>")
def stripe_webhook(account_id: uuid.UUID) -> Response:
    """Stripe events, signed with ``Stripe-Signature``."""
    return receipt(receive("stripe", account_id))


@blueprint.post("/webhooks/standard/<uuid:account_id>")
def standard_webhook(account_id: uuid.UUID) -> Response:
    """Standard Webhooks messages (``webhook-id``/``-timestamp``/``-signature``)."""
    return receipt(receive("standard", account_id))


@blueprint.post("/webhooks/adyen/<uuid:account_id>")
def adyen_webhook(account_id: uuid.UUID) -> Response:
    """Adyen notifications; Adyen expects the literal body ``[accepted]``."""
    receive("adyen", account_id)
    return Response(ACCEPTED, mimetype="text/plain")
