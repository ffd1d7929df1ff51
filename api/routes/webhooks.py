"""Provider webhooks: the signature is the authentication; nothing here waits for matching."""

from __future__ import annotations

import uuid
from collections.abc import Callable

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
from shared.providers.interface import WebhookProvider
from shared.providers.registry import REGISTRY

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


def webhook_view(provider: WebhookProvider) -> Callable[[uuid.UUID], Response]:
    """The route of ``provider``'s deliveries, answered as it expects, and its documentation."""

    def view(account_id: uuid.UUID) -> Response:
        result = receive(provider.name, account_id)
        if provider.acknowledgement is not None:
            return Response(provider.acknowledgement, mimetype="text/plain")
        return receipt(result)

    view.__name__ = f"{provider.name}_webhook"
    view.__doc__ = provider.summary
    answer = (
        {"text/plain": {"const": provider.acknowledgement}}
        if provider.acknowledgement is not None
        else WebhookReceipt
    )
    headers = tuple(
        Header(header.name, header.description, required=True)
        for header in provider.signature_headers
    )
    return documented(body_schema=PROVIDER_EVENT, responses={200: answer}, headers=headers)(view)


for registered in REGISTRY.values():
    blueprint.add_url_rule(
        f"/webhooks/{registered.name}/<uuid:account_id>",
        view_func=webhook_view(registered),
        methods=["POST"],
    )
