"""Reading request input into pydantic models; every failure is a clear 4xx."""

from __future__ import annotations

import re
from typing import TypeVar

from flask import request
from pydantic import BaseModel
from werkzeug.exceptions import UnsupportedMediaType

from shared.platform.errors import BadRequest, PreconditionRequired, validate_input
from shared.providers.webhook_input import parse_json_document

Model = TypeVar("Model", bound=BaseModel)
_VERSION = re.compile(r'^(?:[0-9]{1,9}|"[0-9]{1,9}")$')


def require_json() -> None:
    """415 unless the request says its body is JSON."""
    if request.mimetype != "application/json":
        raise UnsupportedMediaType("send the body as application/json")


def parse_query(model: type[Model]) -> Model:
    """The query string as ``model`` (unknown parameters refused), or 422 naming the field."""
    values = {key: request.args.getlist(key) for key in request.args}
    flat = {key: items[0] if len(items) == 1 else items for key, items in values.items()}
    return validate_input(model, flat, "query parameters are invalid")


def parse_json_body(model: type[Model]) -> Model:
    """The JSON body as ``model``: 415 if not JSON, 400 if malformed, 422 if the wrong shape."""
    require_json()
    return validate_input(model, parse_json_document(request.get_data()), "request body is invalid")


def if_match_version(*, required: bool = False) -> int | None:
    """The version in ``If-Match`` (``3`` or ``"3"``), 400 if malformed.

    ``*`` or no header means any version (None), unless ``required``: then 428, so a
    change cannot be made without naming the version it was based on.
    """
    header = request.headers.get("If-Match")
    if header is None or header.strip() == "*":
        if required:
            raise PreconditionRequired('send the current version in If-Match, e.g. "3"')
        return None
    value = header.strip()
    if not _VERSION.match(value):
        raise BadRequest('If-Match must be a version, e.g. "3"')
    return int(value.strip('"'))
