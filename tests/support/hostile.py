"""What the hostile-input suites share: the problem every refusal must be, and the owner's
bearer header their requests carry."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func

from shared.access.api_keys import create_api_key
from shared.models import ProviderAccount, ReconciliationDiscrepancy, ReconciliationRun

TRACEBACK_MARKERS = ("Traceback", 'File "', "sqlalchemy", "psycopg", "werkzeug")


def assert_problem(response, status: int) -> dict:
    """A 4xx problem+json with a useful detail and nothing of the implementation in it."""
    text = response.get_data(as_text=True)
    assert response.status_code == status, text[:500]
    assert 400 <= status < 500
    assert response.mimetype == "application/problem+json", text[:500]
    problem = response.get_json()
    assert problem["status"] == status
    assert problem["type"].startswith("https://")
    assert problem["title"]
    detail = problem["detail"]
    assert isinstance(detail, str)
    assert len(detail) >= 10, problem
    assert detail != "an unexpected error occurred"
    for marker in TRACEBACK_MARKERS:
        assert marker not in text, (marker, text[:500])
    return problem


@dataclass
class World:
    headers: dict[str, str]
    accounts: dict[str, ProviderAccount]
    discrepancy: ReconciliationDiscrepancy
    other_discrepancy: ReconciliationDiscrepancy
    run: ReconciliationRun


def bearer(session, org) -> dict[str, str]:
    issued = create_api_key(session=session, org_id=org.id, role="owner")
    # Used just now: authenticating does not rewrite last_used_at (kept to the minute).
    issued.api_key.last_used_at = func.now()
    return {"Authorization": f"Bearer {issued.secret}"}
