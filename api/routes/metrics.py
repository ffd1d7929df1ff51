"""Prometheus metrics of the whole deployment (``shared.platform.metrics``)."""

from __future__ import annotations

import hmac

from flask import Blueprint, Response, request
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from api.openapi import documented
from shared.ingest.events import oldest_pending_event_age
from shared.platform.errors import Unauthenticated
from shared.platform.metrics import render_metrics
from shared.platform.settings import get_settings

blueprint = Blueprint("metrics", __name__)
BEARER_PREFIX = "Bearer "


@blueprint.get("/metrics")
@documented(responses={200: {"text/plain": {"type": "string"}}}, errors=(401,), uses_database=False)
def metrics() -> Response:
    """Counters, histograms and gauges in the Prometheus text format (version 0.0.4).

    Open like ``/healthz`` unless METRICS_TOKEN is set; then it requires
    ``Authorization: Bearer <METRICS_TOKEN>`` (401 otherwise). Always 200 once allowed:
    a dependency that cannot be read shows as ``recon_up{dependency=…} 0``.
    """
    token = get_settings().metrics_token
    if token is not None:
        expected = BEARER_PREFIX + token.get_secret_value()
        sent = request.headers.get("Authorization", "")
        if not hmac.compare_digest(sent.encode(), expected.encode()):
            raise Unauthenticated("send Authorization: Bearer <METRICS_TOKEN>")
    return Response(render_metrics(oldest_pending_event_age), content_type=CONTENT_TYPE_PLAIN_0_0_4)
