"""The console: finance staff's pages, served by the API's Flask application at /console.

An edge like ``api/``: pages parse their form (pydantic), call one function of
``shared/``, and render a Jinja template. docs/design.md, "Console".
"""

from __future__ import annotations

from flask import Flask


def register_console(app: Flask) -> None:
    """Serve the console's pages and assets from ``app``."""
    from console import (  # noqa: F401 - their routes join the blueprint
        auth_pages,
        bank_pages,
        event_pages,
        payout_pages,
        people_pages,
        provider_pages,
        queue_pages,
        run_pages,
        settings_pages,
        settlement_pages,
    )
    from console.web import blueprint

    app.register_blueprint(blueprint)
