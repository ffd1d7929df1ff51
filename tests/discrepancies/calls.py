"""The triage API's workflow routes, and a call of each as the tests make it."""

from __future__ import annotations

BASE = "/billing/reconciliation/discrepancies"
RESOLVE_BODY = {"resolution": "timing_difference", "reason": "settled the next day"}

# action → (method, path suffix, default body, logged action, payload it logs)
ACTIONS = {
    "acknowledge": ("patch", "acknowledge", None, "acknowledged", {}),
    "assign": ("patch", "assign", {"assignee": "bo"}, "assigned", {"assignee": "bo"}),
    "note": ("post", "notes", {"note": "called Stripe"}, "note_added", {"note": "called Stripe"}),
    "resolve": (
        "patch",
        "resolve",
        {**RESOLVE_BODY, "adjustment_reference": "ADJ-7"},
        "resolved",
        {**RESOLVE_BODY, "adjustment_reference": "ADJ-7"},
    ),
}


def auth(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def act(client, discrepancy_id, action: str, headers: dict, body=None):
    method, suffix, default_body, _, _ = ACTIONS[action]
    return getattr(client, method)(
        f"{BASE}/{discrepancy_id}/{suffix}",
        json=default_body if body is None else body,
        headers=headers,
    )
