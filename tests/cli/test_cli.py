"""The ``recon`` command line: admin commands, --json output for scripts, help for newcomers."""

from __future__ import annotations

import json
import uuid

import click
import pytest
from click.testing import CliRunner
from sqlalchemy import select

from cli.main import cli
from shared.access.api_keys import find_active_key
from shared.models import ApiKey, Organization, ProviderAccount
from shared.providers.accounts import secret_fingerprint as fingerprint
from tests.conftest import run_cli
from tests.support.log_leaks import register_secret


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def create_org(*extra: str) -> str:
    result = invoke("org", "create", "Acme", "--json", *extra)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["id"]


def test_org_create_prints_the_id(session):
    result = invoke("org", "create", "Acme", "--timezone", "Europe/Berlin", "--daily-hour", "6")
    assert result.exit_code == 0, result.output
    org_id = uuid.UUID(result.stdout.strip())
    organization = session.get(Organization, org_id)
    assert (organization.name, organization.timezone, organization.daily_hour) == (
        "Acme",
        "Europe/Berlin",
        6,
    )


def test_org_create_defaults_come_from_settings(session, override_settings):
    override_settings(RECONCILIATION_TIMEZONE="Asia/Tokyo", RECONCILIATION_HOUR="4")
    organization = session.get(Organization, uuid.UUID(create_org()))
    assert (organization.timezone, organization.daily_hour) == ("Asia/Tokyo", 4)


def test_org_create_refuses_an_unknown_time_zone(session):
    result = CliRunner().invoke(cli, ["org", "create", "Acme", "--timezone", "Nowhere/City"])
    assert result.exit_code == 1
    assert "not an IANA time zone" in result.output
    assert session.scalars(select(Organization)).all() == []


def test_key_create_prints_the_key_once_and_stores_only_its_hash(session):
    org_id = create_org()
    result = invoke("key", "create", "--org", org_id, "--role", "manager", "--json")
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert set(printed) == {"id", "key"}
    stored = session.get(ApiKey, uuid.UUID(printed["id"]))
    assert printed["key"] not in {stored.key_hash, stored.prefix, stored.name}
    assert printed["key"].startswith(stored.prefix)
    assert find_active_key(session=session, secret=printed["key"]).id == stored.id


def test_key_revoke_makes_the_key_useless(session):
    org_id = create_org()
    printed = json.loads(
        invoke("key", "create", "--org", org_id, "--role", "owner", "--json").stdout
    )
    result = invoke("key", "revoke", printed["id"])
    assert result.exit_code == 0, result.output
    assert find_active_key(session=session, secret=printed["key"]) is None
    assert session.get(ApiKey, uuid.UUID(printed["id"])).revoked_at is not None


def test_key_create_for_an_unknown_org_is_a_clear_error(session):
    result = CliRunner().invoke(
        cli, ["key", "create", "--org", str(uuid.uuid4()), "--role", "owner"]
    )
    assert result.exit_code == 1
    assert "does not exist" in result.output
    assert "Traceback" not in result.output


def test_provider_add_prints_id_and_webhook_path(session):
    org_id = create_org()
    result = invoke(
        "provider", "add", "--org", org_id, "--provider", "stripe", "--secret", "whsec_x", "--json"
    )
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert printed["webhook_path"] == f"/webhooks/stripe/{printed['id']}"
    account = session.get(ProviderAccount, uuid.UUID(printed["id"]))
    assert account.signing_secrets == ["whsec_x"]


def test_provider_secrets_rotate_without_a_gap(session):
    org_id = create_org()
    account_id = json.loads(
        invoke(
            "provider", "add", "--org", org_id, "--provider", "adyen", "--secret", "AA", "--json"
        ).stdout
    )["id"]
    rotated = invoke("provider", "rotate-secret", account_id, "--secret", "BB", "--json")
    assert rotated.exit_code == 0, rotated.output
    assert "new_secret" not in json.loads(rotated.stdout)  # given, not generated
    assert session.get(ProviderAccount, uuid.UUID(account_id)).signing_secrets == ["AA", "BB"]
    old, new = (fingerprint(secret) for secret in ("AA", "BB"))
    assert invoke("provider", "retire-secret", account_id, old).exit_code == 0
    session.expire_all()
    assert session.get(ProviderAccount, uuid.UUID(account_id)).signing_secrets == ["BB"]
    last = CliRunner().invoke(cli, ["provider", "retire-secret", account_id, new])
    assert last.exit_code == 1
    assert "only secret" in last.output


def test_provider_add_without_a_secret_prints_a_generated_one_once(session):
    org_id = create_org()
    result = invoke("provider", "add", "--org", org_id, "--provider", "standard", "--json")
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    secret = register_secret(printed["new_secret"])
    assert [s["fingerprint"] for s in printed["secrets"]] == [fingerprint(secret)]
    listed = invoke("provider", "list", "--org", org_id, "--json")
    assert secret not in listed.stdout
    assert json.loads(listed.stdout)["items"][0]["secrets"] == printed["secrets"]


def test_provider_set_validates_as_the_api_does(session):
    org_id = create_org()
    add = ["provider", "add", "--org", org_id, "--provider", "stripe", "--json"]
    account_id = json.loads(invoke(*add).stdout)["id"]
    changed = invoke("provider", "set", account_id, "--merchant-reference-key", "order", "--json")
    assert changed.exit_code == 0, changed.output
    assert json.loads(changed.stdout)["merchant_reference_key"] == "order"
    refused = CliRunner().invoke(cli, ["provider", "set", account_id, "--manual-capture"])
    assert refused.exit_code == 1
    assert "stripe accounts do not read manual_capture" in refused.output
    assert session.get(ProviderAccount, uuid.UUID(account_id)).manual_capture is False


def test_settings_set_show_and_history(session):
    org_id = create_org()
    result = invoke(
        "settings", "set", "--org", org_id, "grace_period_seconds=600", "timezone=Europe/Paris",
        "amount_tolerance_percent=0.5", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    shown = json.loads(invoke("settings", "show", "--org", org_id, "--json").stdout)
    assert shown | json.loads(result.stdout) == shown
    assert (shown["grace_period_seconds"], shown["timezone"]) == (600, "Europe/Paris")
    assert (shown["amount_tolerance_percent"], shown["settings_version"]) == (0.5, 2)
    history = json.loads(invoke("settings", "history", "--org", org_id, "--json").stdout)
    assert {(e["field"], e["actor"]) for e in history["items"]} == {
        ("grace_period_seconds", "cli"),
        ("timezone", "cli"),
        ("amount_tolerance_percent", "cli"),
    }
    refused = CliRunner().invoke(cli, ["settings", "set", "--org", org_id, "daily_hour=24"])
    assert refused.exit_code == 1
    assert "daily_hour" in refused.output
    session.expire_all()
    assert session.get(Organization, uuid.UUID(org_id)).daily_hour == 2


def all_commands(group: click.Group, prefix: tuple[str, ...] = ()):
    for name, command in group.commands.items():
        yield (*prefix, name), command
        if isinstance(command, click.Group):
            yield from all_commands(command, (*prefix, name))


@pytest.mark.parametrize(
    ("path", "command"),
    [pytest.param(path, command, id=" ".join(path)) for path, command in all_commands(cli)],
)
def test_every_command_explains_itself(path, command):
    assert command.help
    assert len(command.help.split()) >= 4
    result = CliRunner().invoke(cli, [*path, "--help"])
    assert result.exit_code == 0
    for parameter in command.params:
        if isinstance(parameter, click.Option) and parameter.name != "help":
            assert parameter.help, f"option {parameter.opts} of {' '.join(path)} has no help"


def test_json_output_is_exactly_one_object_from_a_real_process(committed):
    org = run_cli("org", "create", "Acme", "--json")
    assert org.returncode == 0, org.stderr
    org_id = json.loads(org.stdout)["id"]
    key = run_cli("key", "create", "--org", org_id, "--role", "owner", "--json")
    secret = "whsec_c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"
    account = run_cli(
        "provider", "add", "--org", org_id, "--provider", "standard", "--secret", secret, "--json"
    )  # fmt: skip
    for result, keys in ((key, {"id", "key"}), (account, {"id", "webhook_path", "secrets"})):
        assert result.returncode == 0, result.stderr
        assert len(result.stdout.strip().splitlines()) == 1
        assert set(json.loads(result.stdout)) >= keys
