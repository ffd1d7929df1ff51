"""Swagger UI at ``/docs``, every asset served by the app: it works without internet.

Swagger UI's own files come from the ``flask-swagger-ui`` package, which ships the
``swagger-ui-dist`` release as files (only those are used, not its blueprint, whose page
starts Swagger UI with an inline script); the few lines that start it are our own
``api/static/swagger-init.js``. The page therefore holds no inline script, and answers
with a Content-Security-Policy that allows scripts and styles from this origin only.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from flask import Blueprint, Flask, Response, send_from_directory
from werkzeug.exceptions import NotFound

from api.openapi import DOCS_PATH, OPENAPI_PATH

SWAGGER_UI_DIST = Path(str(files("flask_swagger_ui") / "dist"))
OWN_STATIC = Path(__file__).parent / "static"
# name → (folder, media type): the only files /docs/<name> serves.
ASSETS = {
    "swagger-ui.css": (SWAGGER_UI_DIST, "text/css"),
    "swagger-ui-bundle.js": (SWAGGER_UI_DIST, "text/javascript"),
    "swagger-init.js": (OWN_STATIC, "text/javascript"),
}
ASSET_MAX_AGE = 24 * 3600
# Swagger UI draws with React (styles through the CSSOM, which style-src does not
# govern), shows data: images from its stylesheet and calls the API on this origin.
DOCS_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)

_DOCS_HTML = f"""<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>recon API</title>
  <link rel="stylesheet" href="{DOCS_PATH}/swagger-ui.css">
</head>
<body>
  <main id="swagger-ui" data-openapi-url="{OPENAPI_PATH}"></main>
  <script src="{DOCS_PATH}/swagger-ui-bundle.js"></script>
  <script src="{DOCS_PATH}/swagger-init.js"></script>
</body>
</html>
"""


def register_docs_page(app: Flask) -> None:
    """Serve ``GET /docs`` and its assets ``GET /docs/<name>``."""
    blueprint = Blueprint("docs", __name__)

    @blueprint.get(DOCS_PATH)
    def docs_page() -> Response:
        """An interactive page (Swagger UI) over ``/openapi.json``."""
        response = Response(_DOCS_HTML, mimetype="text/html")
        response.headers["Content-Security-Policy"] = DOCS_CSP
        return response

    @blueprint.get(f"{DOCS_PATH}/<name>")
    def docs_asset(name: str) -> Response:
        """One of the page's files, cacheable for a day (revalidated by ETag after)."""
        if name not in ASSETS:
            raise NotFound(f"{DOCS_PATH} has no file {name!r}")
        folder, mimetype = ASSETS[name]
        response = send_from_directory(folder, name, max_age=ASSET_MAX_AGE)
        response.mimetype = mimetype
        return response

    app.register_blueprint(blueprint)
