"""The OpenAPI 3.1 document, built from the routes and their pydantic models, and its docs page.

Each view declares what it reads and answers with ``@documented(...)``, which only records
that on the function (like ``endpoint`` records ``required_roles``): validation stays in
``api.requests`` and errors in ``api.problems``. The document is assembled by apispec from
the Flask URL map, the declared models' JSON Schemas (pydantic, one shared set of
definitions) and what each route implies: a key means 401/403 and the bearer scheme, a
path parameter 404, a JSON body 400/413/415/422, a query model 422, a database 503.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from importlib.metadata import version
from typing import Any, TypeVar

from apispec import APISpec
from flask import Blueprint, Flask, Response, current_app, jsonify
from pydantic import BaseModel, ConfigDict
from pydantic.json_schema import models_json_schema

from api.problems import PROBLEM_JSON
from shared.access.console_sessions import CSRF_HEADER, SESSION_COOKIE

OPENAPI_PATH = "/openapi.json"
DOCS_PATH = "/docs"
OPENAPI_VERSION = "3.1.0"
BEARER = "bearerAuth"
CONSOLE_SESSION = "consoleSession"
# The console's pages are HTML for people, not API operations (docs/design.md, "Console").
CONSOLE_ENDPOINTS = "console."
JSON = "application/json"

View = TypeVar("View", bound=Callable[..., Any])


class FieldProblem(BaseModel):
    """One invalid input field, named by its dotted path (``payments.0.amount_minor``)."""

    field: str
    message: str


class Problem(BaseModel):
    """An RFC 9457 problem document (``api.problems.problem``); some add members."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str
    errors: list[FieldProblem] | None = None


# Every error status the API documents, with its meaning (component responses).
ERRORS: dict[int, tuple[str, str]] = {
    400: ("BadRequest", "The request cannot be read (malformed JSON, header or signature)."),
    401: ("Unauthenticated", "No credential, or an unknown or revoked one."),
    403: ("Forbidden", "The API key's role may not use this endpoint."),
    404: ("NotFound", "No such object in the caller's organisation (or no such route)."),
    409: ("Conflict", "The request clashes with the object's current state."),
    412: ("PreconditionFailed", "If-Match names a version that is no longer current."),
    413: ("PayloadTooLarge", "The body is larger than the service accepts."),
    415: ("UnsupportedMediaType", "The body is not sent as application/json."),
    422: ("ValidationFailed", "The input parses but breaks a rule; ``errors`` names fields."),
    428: ("PreconditionRequired", "The change must name its base version in If-Match."),
    429: ("TooManyRequests", "Too many failed attempts from this client; see Retry-After."),
    503: ("ServiceUnavailable", "A dependency or a required setting is missing; retry later."),
}


@dataclass(frozen=True)
class Header:
    """A request header an operation reads."""

    name: str
    description: str
    required: bool = False


@dataclass(frozen=True)
class Operation:
    """What a view reads and answers, for the document only (nothing here validates).

    ``responses`` maps a status to a pydantic model (JSON) or to a mapping of media type
    to a model or a raw JSON Schema. ``errors`` adds statuses to those the route implies.
    """

    responses: Mapping[int, Any]
    query: type[BaseModel] | None = None
    body: type[BaseModel] | None = None
    body_schema: Mapping[str, Any] | None = None
    body_media: str = JSON
    headers: tuple[Header, ...] = ()
    errors: tuple[int, ...] = ()
    tag: str | None = None
    uses_database: bool = True


def documented(**declaration: Any) -> Callable[[View], View]:
    """Record an ``Operation`` on the view as ``view.openapi``; the view is unchanged."""
    operation = Operation(**declaration)

    def decorator(view: View) -> View:
        view.openapi = operation  # type: ignore[attr-defined]
        return view

    return decorator


def register_openapi(app: Flask) -> None:
    """Serve ``GET /openapi.json`` (built once, on first use); ``api.docs_page`` shows it."""
    blueprint = Blueprint("openapi", __name__)

    @blueprint.get(OPENAPI_PATH)
    def openapi_document() -> Response:
        """The OpenAPI 3.1 document of this API."""
        document = current_app.extensions.get("openapi")
        if document is None:
            document = current_app.extensions["openapi"] = build_document(current_app)
        return jsonify(document)

    app.register_blueprint(blueprint)


def documented_rules(app: Flask) -> Iterable[tuple[Any, Callable[..., Any]]]:
    """(URL rule, view) of every route the document covers (not itself, /docs and its
    files, or static)."""
    for rule in sorted(app.url_map.iter_rules(), key=lambda rule: rule.rule):
        if (
            rule.endpoint == "static"
            or rule.endpoint.startswith(CONSOLE_ENDPOINTS)
            or rule.rule == OPENAPI_PATH
            or _is_docs_page(rule.rule)
        ):
            continue
        yield rule, app.view_functions[rule.endpoint]


def _is_docs_page(rule: str) -> bool:
    return rule == DOCS_PATH or rule.startswith(f"{DOCS_PATH}/")


def build_document(app: Flask) -> dict[str, Any]:
    """The OpenAPI 3.1 document of every route of ``app`` except the document's own."""
    routes = list(documented_rules(app))
    spec = APISpec(
        title="recon: billing reconciliation API",
        version=_service_version(),
        openapi_version=OPENAPI_VERSION,
        info={
            "description": (
                "Provider webhooks, internal payments, reconciliation runs and the triage of "
                "discrepancies. Every error is application/problem+json (RFC 9457)."
            )
        },
    )
    spec.components.security_scheme(
        BEARER,
        {
            "type": "http",
            "scheme": "bearer",
            "description": "An API key of the organisation (`Authorization: Bearer <key>`).",
        },
    )
    spec.components.security_scheme(
        CONSOLE_SESSION,
        {
            "type": "apiKey",
            "in": "cookie",
            "name": SESSION_COOKIE,
            "description": (
                "A person's console session (same roles as keys); a state-changing request "
                f"also sends the session's CSRF token in `{CSRF_HEADER}`."
            ),
        },
    )
    refs = _register_models(spec, routes)
    for name, description in ERRORS.values():
        spec.components.response(
            name, {"description": description, "content": {PROBLEM_JSON: {"schema": refs[Problem]}}}
        )
    for rule, view in routes:
        path, path_parameters = openapi_path(rule.rule)
        operations = {
            method.lower(): _operation(view, rule, path_parameters, refs)
            for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"})
        }
        spec.path(path=path, operations=operations)
    return spec.to_dict()


_RULE_ARGUMENT = re.compile(r"<(?:(?P<converter>\w+)(?:\([^)]*\))?:)?(?P<name>\w+)>")
_CONVERTER_SCHEMAS = {
    "uuid": {"type": "string", "format": "uuid"},
    "int": {"type": "integer", "minimum": 0},
    "string": {"type": "string", "minLength": 1, "pattern": "^[^/]+$"},
    "default": {"type": "string", "minLength": 1, "pattern": "^[^/]+$"},
}


def openapi_path(rule: str) -> tuple[str, list[dict[str, Any]]]:
    """A Flask rule as an OpenAPI path (``<uuid:id>`` → ``{id}``) and its path parameters."""
    parameters = [
        {
            "name": match["name"],
            "in": "path",
            "required": True,
            "schema": _CONVERTER_SCHEMAS[match["converter"] or "default"],
        }
        for match in _RULE_ARGUMENT.finditer(rule)
    ]
    return _RULE_ARGUMENT.sub(lambda match: "{" + match["name"] + "}", rule), parameters


def _service_version() -> str:
    return version("recon")


def _register_models(spec: APISpec, routes: list[tuple[Any, Callable]]) -> dict[type, dict]:
    """Add every declared model's JSON Schema as a component; a ``$ref`` for each model."""
    inputs: set[type[BaseModel]] = set()
    outputs: set[type[BaseModel]] = {Problem}
    for _, view in routes:
        operation: Operation | None = getattr(view, "openapi", None)
        if operation is None:
            continue
        if operation.body is not None:
            inputs.add(operation.body)  # query models become parameters, not components
        for answer in operation.responses.values():
            outputs.update(model for model in _media(answer).values() if isinstance(model, type))
    # One shared set of definitions: a model used in several places is one component.
    keyed, top = models_json_schema(
        [(model, "validation") for model in sorted(inputs, key=lambda m: m.__name__)]
        + [(model, "serialization") for model in sorted(outputs, key=lambda m: m.__name__)],
        ref_template="#/components/schemas/{model}",
    )
    for name, schema in top.get("$defs", {}).items():
        spec.components.schema(name, schema)
    return {model: reference for (model, _mode), reference in keyed.items()}


def _media(answer: Any) -> Mapping[str, Any]:
    """A declared response as {media type: model or schema}."""
    if isinstance(answer, Mapping):
        return answer
    return {JSON: answer}


def _schema(model_or_schema: Any, refs: dict[type, dict]) -> dict[str, Any]:
    if isinstance(model_or_schema, type):
        return refs[model_or_schema]
    return dict(model_or_schema)


def _operation(
    view: Callable[..., Any], rule: Any, path_parameters: list[dict], refs: dict[type, dict]
) -> dict[str, Any]:
    operation: Operation | None = getattr(view, "openapi", None)
    if operation is None:
        raise LookupError(f"{rule.rule} has no @documented declaration")
    roles: tuple[str, ...] | None = getattr(view, "required_roles", None)
    summary, _, description = (view.__doc__ or rule.endpoint).strip().partition("\n")
    if roles:
        description += f"\n\nRequires an API key of role {' or '.join(roles)}."
    document: dict[str, Any] = {
        "operationId": rule.endpoint.replace(".", "_"),
        "summary": summary.strip(),
        "description": _dedent(description),
        "tags": [operation.tag or rule.endpoint.partition(".")[0]],
        "parameters": path_parameters
        + _query_parameters(operation.query)
        + [
            {
                "name": header.name,
                "in": "header",
                "required": header.required,
                "description": header.description,
                "schema": {"type": "string"},
            }
            for header in operation.headers
        ],
        "responses": {
            str(status): {
                "description": _status_description(status),
                "content": {
                    media: {"schema": _schema(model, refs)}
                    for media, model in _media(answer).items()
                },
            }
            for status, answer in sorted(operation.responses.items())
        },
    }
    if operation.body is not None or operation.body_schema is not None:
        body = refs[operation.body] if operation.body else dict(operation.body_schema or {})
        media = {operation.body_media: {"schema": body}}
        document["requestBody"] = {"required": True, "content": media}
    if roles is not None:
        document["security"] = [{BEARER: []}, {CONSOLE_SESSION: []}]
    for status in sorted(_error_statuses(operation, roles, path_parameters)):
        document["responses"][str(status)] = ERRORS[status][0]
    return document


def _error_statuses(
    operation: Operation, roles: tuple[str, ...] | None, path_parameters: list
) -> set[int]:
    """The error statuses a route can answer, implied by what it reads, plus declared ones."""
    statuses = set(operation.errors)
    if roles is not None:
        statuses |= {401, 403}
    if path_parameters:
        statuses.add(404)
    if operation.body is not None or operation.body_schema is not None:
        statuses |= {400, 413, 415, 422}
    if operation.query is not None:
        statuses.add(422)
    if operation.uses_database:
        statuses.add(503)
    return statuses


def _query_parameters(model: type[BaseModel] | None) -> list[dict[str, Any]]:
    """One query parameter per field of ``model``, with the field's own JSON Schema."""
    if model is None:
        return []
    schema = model.model_json_schema()
    if "$defs" in schema:
        raise TypeError(f"{model.__name__}: a query model has flat fields only")
    required = set(schema.get("required", ()))
    parameters = []
    for name, property_schema in schema["properties"].items():
        property_schema = dict(property_schema)
        parameter: dict[str, Any] = {"name": name, "in": "query", "required": name in required}
        if "description" in property_schema:
            parameter["description"] = property_schema.pop("description")
        property_schema.pop("title", None)
        parameter["schema"] = _without_null(property_schema)
        parameters.append(parameter)
    return parameters


def _without_null(schema: dict[str, Any]) -> dict[str, Any]:
    """An optional query parameter's schema: absent means None, so null is not a value."""
    branches = [branch for branch in schema.get("anyOf", ()) if branch != {"type": "null"}]
    rest = {key: value for key, value in schema.items() if (key, value) != ("default", None)}
    if len(branches) != 1 or len(branches) == len(schema.get("anyOf", ())):
        return rest
    del rest["anyOf"]
    return {**branches[0], **rest}


_STATUS_DESCRIPTIONS = {
    200: "OK",
    201: "Created",
    202: "Accepted: the work is queued",
}


def _status_description(status: int) -> str:
    return _STATUS_DESCRIPTIONS.get(status, str(status))


def _dedent(text: str) -> str:
    lines = text.strip("\n").splitlines()
    indents = [len(line) - len(line.lstrip()) for line in lines if line.strip()]
    margin = min(indents, default=0)
    return "\n".join(line[margin:] for line in lines).strip()
