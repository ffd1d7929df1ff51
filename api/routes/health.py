"""Liveness and readiness probes."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from api.problems import problem
from shared.health import readiness

blueprint = Blueprint("health", __name__)


@blueprint.get("/healthz")
def healthz() -> Response:
    """The process is alive (no dependency is touched)."""
    return jsonify(status="ok")


@blueprint.get("/readyz")
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
