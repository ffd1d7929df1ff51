"""Fixtures of the CLI tests, which run ``recon`` in real processes."""

from __future__ import annotations

import json

import pytest

from tests.conftest import run_cli


@pytest.fixture
def org_id(committed) -> str:
    """A committed organisation, created through ``recon org create``; its id."""
    created = run_cli("org", "create", "Acme", "--timezone", "UTC", "--json")
    assert created.returncode == 0, created.stderr
    return json.loads(created.stdout)["id"]
