"""Per-request context: the request id, one access-log line and the latency metric.

Every request gets a request id (the caller's ``X-Request-ID`` when it is usable, else a
new one), bound into the log context so every line logged for the request carries it,
echoed on the response (errors included) and carried by the tasks the request queues.
A route may add fields of its outcome to the access line (:func:`add_access_fields`)
rather than log a line of its own.
"""

from __future__ import annotations

import time

import structlog
from flask import Flask, Response, g, request

from shared.platform.logs import REQUEST_ID_HEADER, get_logger, request_id_from
from shared.platform.metrics import observe_request_duration

UNMATCHED_ROUTE = "unmatched"

log = get_logger("recon.access")


def register_observability(app: Flask) -> None:
    """Bind a request id to each request, echo it, and log and time the request."""
    app.before_request(_begin)
    app.after_request(_finish)


def add_access_fields(**fields: object) -> None:
    """Fields for this request's ``http.request`` line, besides method, path and status."""
    g.setdefault("access_fields", {}).update(fields)


def _begin() -> None:
    g.started = time.perf_counter()
    # Cleared first: a worker thread serves many requests one after another.
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(
        request_id=request_id_from(request.headers.get(REQUEST_ID_HEADER))
    )


def _finish(response: Response) -> Response:
    request_id = structlog.contextvars.get_contextvars()["request_id"]
    response.headers[REQUEST_ID_HEADER] = request_id
    seconds = time.perf_counter() - g.started
    # The rule's template, never the concrete path or query string: no ids, no secrets,
    # and a bounded set of label values.
    route = request.url_rule.rule if request.url_rule is not None else UNMATCHED_ROUTE
    observe_request_duration(request.method, route, response.status_code, seconds)
    log.info(
        "http.request",
        method=request.method,
        path=route,
        status=response.status_code,
        duration_ms=round(seconds * 1000, 2),
        **g.get("access_fields", {}),
    )
    # Kept while a streamed body is sent, then dropped so that nothing logged between
    # requests (a worker exiting) names the last one.
    response.call_on_close(structlog.contextvars.clear_contextvars)
    return response
