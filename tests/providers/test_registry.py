"""The one registry of providers: what it lists is what the routes, the database and the
rest of the service accept."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from api.app import create_app
from shared.models import PROVIDERS, ProviderAccount
from shared.platform.errors import ValidationFailed
from shared.providers.accounts import add_provider_account
from shared.providers.registry import PROVIDER_NAMES, REGISTRY, provider_named
from tests.support.factories import make_org


def test_each_provider_is_registered_under_its_own_name():
    for name, provider in REGISTRY.items():
        assert provider.name == name
        assert provider_named(name) is provider


def test_unknown_provider_fails():
    with pytest.raises(ValidationFailed, match="provider") as raised:
        provider_named("paypal")
    assert raised.value.detail == "provider must be one of stripe, adyen, standard"


def test_the_data_model_accepts_exactly_the_registered_providers():
    # models.PROVIDERS feeds the check constraints; the data model may not import the
    # providers (import contract), so this test holds the two lists together.
    assert PROVIDER_NAMES == PROVIDERS
    assert all(len(name) <= ProviderAccount.provider.type.length for name in PROVIDER_NAMES)


def test_the_database_stores_an_account_of_every_registered_provider(session):
    org = make_org(session)
    for name, provider in REGISTRY.items():
        account = add_provider_account(
            session=session, org_id=org.id, provider=name, secret=provider.new_secret()
        )
        session.flush()
        assert account.provider == name


def test_every_provider_check_constraint_of_the_database_lists_every_registered_provider(session):
    # The migrations, not the models, made these: a provider added without its migration
    # fails here rather than at its first webhook.
    definitions = dict(
        session.execute(
            text(
                "SELECT conrelid::regclass::text, pg_get_constraintdef(oid) FROM pg_constraint "
                "WHERE conname LIKE 'ck_%_provider_known'"
            )
        ).all()
    )
    assert set(definitions) == {
        "provider_accounts",
        "payments",
        "provider_events",
        "provider_records",
        "reconciliation_discrepancies",  # and the settlement providers (migration 0020)
    }
    for table, definition in definitions.items():
        for name in REGISTRY:
            assert f"'{name}'" in definition, (table, name)


def test_every_registered_provider_has_its_webhook_route_and_no_other():
    app = create_app()
    routes = {
        rule.rule: rule.endpoint
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith("/webhooks/") and "POST" in (rule.methods or ())
    }
    assert routes == {
        f"/webhooks/{name}/<uuid:account_id>": f"webhooks.{name}_webhook" for name in REGISTRY
    }
