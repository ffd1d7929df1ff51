"""The Flask application factory."""

from __future__ import annotations

from flask import Flask

from api.docs_page import register_docs_page
from api.observability import register_observability
from api.openapi import register_openapi
from api.problems import register_problem_handlers
from api.routes import (
    bank,
    discrepancies,
    events,
    health,
    metrics,
    organization_settings,
    payments,
    provider_accounts,
    runs,
    settlements,
    webhooks,
)
from console import register_console
from shared.platform.logs import configure_logging
from shared.platform.settings import get_settings


def create_app() -> Flask:
    """Build the API: settings checked, JSON logs with request ids, problem+json, every route,
    and the console's pages (``/console``).

    ``/openapi.json`` and ``/docs`` describe every route registered before them.
    """
    settings = get_settings()
    configure_logging()
    app = Flask("recon")
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.sort_keys = False
    register_observability(app)
    register_problem_handlers(app)
    for blueprint in (
        health.blueprint,
        metrics.blueprint,
        webhooks.blueprint,
        events.blueprint,
        payments.blueprint,
        runs.blueprint,
        discrepancies.blueprint,
        organization_settings.blueprint,
        provider_accounts.blueprint,
        settlements.blueprint,
        bank.blueprint,
    ):
        app.register_blueprint(blueprint)
    register_openapi(app)
    register_docs_page(app)
    register_console(app)
    return app
