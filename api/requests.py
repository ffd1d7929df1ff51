"""Reading request input into pydantic models; every failure is a clear 4xx."""

from __future__ import annotations

from typing import TypeVar

from flask import request
from pydantic import BaseModel, ValidationError
from werkzeug.exceptions import UnsupportedMediaType

from shared.platform.errors import ValidationFailed, describe_validation_errors
from shared.providers.webhook_input import parse_json_document

Model = TypeVar("Model", bound=BaseModel)


def require_json() -> None:
    """415 unless the request says its body is JSON."""
    if request.mimetype != "application/json":
        raise UnsupportedMediaType("send the body as application/json")


def parse_query(model: type[Model]) -> Model:
    """The query string as ``model`` (unknown parameters refused), or 422 naming the field."""
    values = {key: request.args.getlist(key) for key in request.args}
    flat = {key: items[0] if len(items) == 1 else items for key, items in values.items()}
    return _validate(model, flat, "query parameters are invalid")


def parse_json_body(model: type[Model]) -> Model:
    """The JSON body as ``model``: 415 if not JSON, 400 if malformed, 422 if the wrong shape."""
    require_json()
    return _validate(model, parse_json_document(request.get_data()), "request body is invalid")


def _validate(model: type[Model], data: object, summary: str) -> Model:
    try:
        return model.model_validate(data)
    except ValidationError as error:
        errors = describe_validation_errors(error)
        detail = "; ".join(f"{item['field']}: {item['message']}" for item in errors)
        raise ValidationFailed(f"{summary}: {detail}", errors=errors) from None
