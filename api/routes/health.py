"""Liveness and readiness probes."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from api.openapi import documented
from api.problems import problem
from shared.platform.health import readiness

blueprint = Blueprint("health", __name__)
STATUS_SCHEMA = {
    "type": "object",
    "required": ["status"],
    "properties": {"status": {"const": "ok"}, "checks": {"type": "object"}},
}


@blueprint.get("/healthz")
@documented(responses={200: {"application/json": STATUS_SCHEMA}}, uses_database=False)
def healthz() -> Response:
    """The process is alive (no dependency is touched)."""
    return jsonify(status="ok")


@blueprint.get("/readyz")
@documented(responses={200: {"application/json": STATUS_SCHEMA}})
def readyz() -> Response:
    """Database and Redis both answer; otherwise 503 naming the one that failed."""
    checks = readiness()
    failed = sorted(name for name, state in checks.items() if state != "ok")
    if failed:
        return problem(
            503,
            "Service unavailable",
            f"unreachable: {', '.join(failed)}",
            "service-unavailable",
            checks=checks,
        )
    return jsonify(status="ok", checks=checks)
