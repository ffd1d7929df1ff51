"""Internal payments from the billing side: batch upsert by ``external_id``; a payment's
matches (its binding and its verdicts)."""

from __future__ import annotations

import uuid

from flask import Blueprint, Response, jsonify
from sqlalchemy.orm import Session

from api.endpoint import endpoint
from api.openapi import documented
from api.requests import parse_json_body
from api.responses import json_response
from api.run_schemas import PaymentMatchesOut
from api.schemas import PaymentBatchIn, PaymentImportResult
from shared.access.api_keys import READ_ROLES, TRIAGE_ROLES, Caller
from shared.payments.imports import upsert_payments
from shared.runs.evidence import payment_matches

blueprint = Blueprint("payments", __name__)


@blueprint.post("/billing/payments")
@documented(body=PaymentBatchIn, responses={200: PaymentImportResult})
@endpoint(roles=TRIAGE_ROLES)
def import_payments(session: Session, caller: Caller) -> Response:
    """Create or update up to 1,000 of the caller's payments; 200 with exact counts.

    Items are judged one by one: the good ones are written and queued for matching, the
    bad ones are listed in ``rejected`` by index. The answer is 200 even when every item
    is rejected: the request itself was well formed and fully processed, its outcome is
    per item, and a client reads the same body in every case (retrying the whole batch
    unchanged would not help). 4xx is kept for a request that was not processed at all:
    no or wrong key, not JSON, not ``{"payments": [...]}``, more than 1,000 items.
    """
    body = parse_json_body(PaymentBatchIn)
    result = upsert_payments(session=session, org_id=caller.org_id, items=body.payments)
    return jsonify(PaymentImportResult.model_validate(result).model_dump(mode="json"))


@blueprint.get("/billing/payments/<uuid:payment_id>/matches")
@documented(responses={200: PaymentMatchesOut})
@endpoint(roles=READ_ROLES)
def matches(session: Session, caller: Caller, payment_id: uuid.UUID) -> Response:
    """The payment's binding (the provider records matched to it, and how) and every
    verdict recorded on it, oldest first, from the incremental path and from runs."""
    found = payment_matches(session=session, org_id=caller.org_id, payment_id=payment_id)
    return json_response(PaymentMatchesOut.model_validate(found, from_attributes=True))
