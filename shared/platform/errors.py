"""The typed exceptions domain code raises; the API turns each into problem+json."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

Model = TypeVar("Model", bound=BaseModel)


class DomainError(Exception):
    """Base of every expected failure. ``status`` and ``title`` feed the problem document."""

    status = 400
    title = "Bad request"
    type_slug = "bad-request"
    headers: dict[str, str] = {}  # noqa: RUF012 - read-only class data

    def __init_subclass__(
        cls, *, status: int | None = None, title: str | None = None, type_slug: str | None = None
    ) -> None:
        """A subclass names its problem in its class line (``status=404, title=…``)."""
        super().__init_subclass__()
        for name, value in (("status", status), ("title", title), ("type_slug", type_slug)):
            if value is not None:
                setattr(cls, name, value)

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class ValidationFailed(
    DomainError, status=422, title="Validation failed", type_slug="validation-failed"
):
    """Input that parses but breaks a rule."""


class BadRequest(DomainError):
    """Input that cannot be read (malformed JSON, bad signature, stale timestamp)."""


class Unauthenticated(
    DomainError, status=401, title="Unauthenticated", type_slug="unauthenticated"
):
    """No credential, or one that is unknown or revoked."""

    headers = {"WWW-Authenticate": 'Bearer realm="recon"'}  # noqa: RUF012


class Forbidden(DomainError, status=403, title="Forbidden", type_slug="forbidden"):
    """A valid credential whose role may not do this."""


class NotFound(DomainError, status=404, title="Not found", type_slug="not-found"):
    """No such object in the caller's organisation."""


class Conflict(DomainError, status=409, title="Conflict", type_slug="conflict"):
    """The request clashes with the current state of the object."""


class InvalidTransition(Conflict, title="Invalid transition", type_slug="invalid-transition"):
    """A triage action not allowed from the object's current status."""


class PreconditionFailed(
    DomainError, status=412, title="Precondition failed", type_slug="precondition-failed"
):
    """A stale ``If-Match`` version."""


class PreconditionRequired(
    DomainError, status=428, title="Precondition required", type_slug="precondition-required"
):
    """A change that must name the version it is based on (``If-Match``) did not."""


class ServiceUnavailable(
    DomainError, status=503, title="Service unavailable", type_slug="service-unavailable"
):
    """A dependency (database, broker) or a required setting is missing right now."""


def describe_validation_errors(error: ValidationError) -> list[dict[str, str]]:
    """Pydantic errors as ``[{"field": "data.amount", "message": …}]``, never echoing input."""
    return [
        {
            "field": ".".join(str(part) for part in item["loc"]) or "body",
            "message": item["msg"].removeprefix("Value error, "),
        }
        for item in error.errors(include_input=False, include_url=False)
    ]


def validate_input(model: type[Model], data: object, summary: str) -> Model:
    """``data`` as ``model``, or ValidationFailed: ``summary`` and each bad field named."""
    try:
        return model.model_validate(data)
    except ValidationError as error:
        errors = describe_validation_errors(error)
        detail = "; ".join(f"{item['field']}: {item['message']}" for item in errors)
        raise ValidationFailed(f"{summary}: {detail}", errors=errors) from None
