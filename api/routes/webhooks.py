"""Provider webhooks: the signature is the authentication; nothing here waits for matching."""

from __future__ import annotations

import uuid

from flask import Blueprint, Response, jsonify, request
from sqlalchemy.orm import Session

from api.endpoint import endpoint
from api.requests import require_json
from api.schemas import WebhookReceipt
from shared.ingestion import ingest_webhook
from shared.providers.adyen import ACCEPTED

blueprint = Blueprint("webhooks", __name__)


def receive(session: Session, provider: str, account_id: uuid.UUID):
    """Verify and store one delivery; the transaction commits before the answer is sent."""
    require_json()
    return ingest_webhook(
        session=session,
        provider=provider,
        account_id=account_id,
        body=request.get_data(cache=False),
        headers=request.headers,
    )


def receipt(result) -> Response:
    body = WebhookReceipt(
        received=result.received, stored=result.stored, duplicate=result.stored == 0
    )
    return jsonify(body.model_dump())


@blueprint.post("/webhooks/stripe/<uuid:account_id>")
@endpoint()
def stripe_webhook(session: Session, account_id: uuid.UUID) -> Response:
    """Stripe events, signed with ``Stripe-Signature``."""
    return receipt(receive(session, "stripe", account_id))


@blueprint.post("/webhooks/standard/<uuid:account_id>")
@endpoint()
def standard_webhook(session: Session, account_id: uuid.UUID) -> Response:
    """Standard Webhooks messages (``webhook-id``/``-timestamp``/``-signature``)."""
    return receipt(receive(session, "standard", account_id))


@blueprint.post("/webhooks/adyen/<uuid:account_id>")
@endpoint()
def adyen_webhook(session: Session, account_id: uuid.UUID) -> Response:
    """Adyen notifications; Adyen expects the literal body ``[accepted]``."""
    receive(session, "adyen", account_id)
    return Response(ACCEPTED, mimetype="text/plain")
