"""``recon demo``: the whole product on this machine, from nothing, in one command."""

from __future__ import annotations

import base64
import json
import os
import secrets
import time
import urllib.error
import urllib.request

import click

from cli.processes import Stack
from cli.services import ensure_services, port_open
from shared import migrations
from shared.api_keys import create_api_key
from shared.db import unit_of_work
from shared.models import PROVIDERS
from shared.organizations import create_organization
from shared.provider_accounts import add_provider_account, webhook_path

READY_TIMEOUT_SECONDS = 60


def demo_secret(provider: str) -> str:
    """A fresh signing secret in the form the provider uses."""
    if provider == "adyen":
        return secrets.token_hex(32).upper()
    if provider == "standard":
        return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
    return "whsec_" + secrets.token_urlsafe(24)


def wait_until_ready(base_url: str) -> dict:
    """Poll ``/readyz`` until it answers 200; raise ClickException after the timeout."""
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{base_url}/readyz", timeout=2) as response:  # noqa: S310
                return json.load(response)
        except urllib.error.HTTPError as error:
            last = error.read().decode(errors="replace")
        except OSError as error:
            last = str(error)
        time.sleep(0.5)
    raise click.ClickException(f"API not ready after {READY_TIMEOUT_SECONDS}s: {last}")


@click.command()
@click.option("--port", default=8000, show_default=True, envvar="DEMO_PORT", help="API port.")
@click.option(
    "--once",
    is_flag=True,
    envvar="DEMO_ONCE",
    help="Exit when the walk-through is done instead of keeping the stack up.",
)
def demo(port: int, once: bool) -> None:
    """Bring the stack up, create a demo organisation with keys and providers, show them."""
    base_url = f"http://127.0.0.1:{port}"
    if port_open(base_url):
        raise click.ClickException(f"port {port} is in use: set DEMO_PORT to a free port")
    services = ensure_services()
    click.echo(f"database: {services.database_url}")
    click.echo(f"redis:    {services.redis_url}")
    if services.embedded:
        click.echo(f"embedded: {', '.join(services.embedded)} (data in ./.recon/)")
    migrations.upgrade()
    with unit_of_work() as session:
        organization = create_organization(session=session, name="Demo Ltd")
        owner = create_api_key(
            session=session, org_id=organization.id, role="owner", name="demo owner"
        )
        accounts = [
            add_provider_account(
                session=session,
                org_id=organization.id,
                provider=provider,
                secret=demo_secret(provider),
                name=f"demo {provider}",
            )
            for provider in PROVIDERS
        ]
    stack = Stack(services.environment(), port)
    try:
        checks = wait_until_ready(base_url)
        click.echo(f"\n{'organisation:':<18}{organization.id} (Demo Ltd)")
        click.echo(f"{'owner key:':<18}{owner.secret}")
        for account in accounts:
            click.echo(f"{account.provider + ' webhook:':<18}{base_url}{webhook_path(account)}")
        click.echo(f"\nready: {json.dumps(checks['checks'])}")
        click.echo(f"API on {base_url}")
        if once or os.environ.get("DEMO_ONCE") == "1":
            return
        click.echo("Ctrl-C to stop")
        while stack.poll() is None:
            time.sleep(0.5)
    except KeyboardInterrupt:
        click.echo("stopping...")
    finally:
        stack.stop()
