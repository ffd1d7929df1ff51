"""``recon demo``: the whole product on this machine, from nothing, in one command.

Services (the machine's or embedded), migrations, a demo organisation with an owner key
and Stripe, Adyen and Standard accounts; then, over real HTTP to the running stack:
yesterday's internal payments imported, the providers' signed webhooks sent (with a few
deliberate discrepancies of every type), the worker drained, yesterday's run triggered
and awaited, its Markdown report and a triage walk-through printed.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import click

from cli.demo_client import ApiClient, WebhookSender
from cli.demo_data import DemoData, build_demo_data
from cli.processes import Stack, foreground
from cli.services import ensure_services, port_open
from shared.access.api_keys import create_api_key
from shared.access.organizations import create_organization
from shared.access.users import add_user, set_password
from shared.payments.imports import MAX_BATCH
from shared.platform import migrations
from shared.platform.db import unit_of_work
from shared.providers.accounts import add_provider_account, webhook_path
from shared.providers.registry import REGISTRY

READY_TIMEOUT_SECONDS = 60
DRAIN_TIMEOUT_SECONDS = 180
RUN_TIMEOUT_SECONDS = 120
PROGRESS_SECONDS = 10
PAYMENTS = 3_000
SENDERS = 8
# The default grace period (1 h) holds back Missing*/Status verdicts while webhooks may
# still be in flight. The demo keeps it while sending, then shortens it so that
# yesterday's run can judge everything now instead of an hour from now.
DEMO_GRACE_SECONDS = 3
EVENTS = "/billing/webhooks/events"
RUNS = "/billing/reconciliation/runs"
DISCREPANCIES = "/billing/reconciliation/discrepancies"
SETTINGS = "/billing/settings"
DEMO_PERSON_EMAIL = "dana@demo.example"


@dataclass(frozen=True)
class DemoOrganisation:
    """What the demo created: the organisation, its owner key, its provider accounts, and
    a manager who signs in to the console."""

    org_id: uuid.UUID
    key: str
    paths: dict[str, str]  # provider -> webhook path
    secrets: dict[str, str]  # provider -> signing secret
    person_email: str
    person_password: str


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


def create_demo_organisation() -> DemoOrganisation:
    """Demo Ltd (UTC) with an owner key, one account per provider and a manager with a
    fresh password, committed."""
    provider_secrets = {name: provider.new_secret() for name, provider in REGISTRY.items()}
    with unit_of_work() as session:
        organization = create_organization(session=session, name="Demo Ltd", timezone="UTC")
        owner = create_api_key(
            session=session, org_id=organization.id, role="owner", name="demo owner"
        )
        accounts = [
            add_provider_account(
                session=session,
                org_id=organization.id,
                provider=provider,
                secret=secret,
                name=f"demo {provider}",
            )
            for provider, secret in provider_secrets.items()
        ]
        paths = {account.provider: webhook_path(account) for account in accounts}
        link = add_user(
            session=session,
            org_id=organization.id,
            email=DEMO_PERSON_EMAIL,
            name="Dana Demo",
            role="manager",
        )
        password = secrets.token_urlsafe(12)
        set_password(session=session, token=link.token, password=password)
    return DemoOrganisation(
        organization.id, owner.secret, paths, provider_secrets, DEMO_PERSON_EMAIL, password
    )


def set_grace_period(client: ApiClient, seconds: int) -> None:
    """Set the organisation's grace period through the settings API, as finance would:
    read the settings' version, then change them with it in If-Match."""
    version = client.json("GET", SETTINGS)["settings_version"]
    client.json(
        "PATCH", SETTINGS, {"grace_period_seconds": seconds}, headers={"If-Match": f'"{version}"'}
    )


@contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Within the block, file descriptor 1 is stderr: children started here log there.

    The API, worker and beat print banners and logs; on stderr they stay out of the
    demo's own transcript on stdout.
    """
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def elapsed(started: float) -> str:
    """Seconds since ``started``, for progress lines."""
    return f"{time.monotonic() - started:.1f} s"


def import_payments(client: ApiClient, payments: list[dict[str, Any]]) -> None:
    """POST the payments in batches of MAX_BATCH; any rejected item stops the demo."""
    started = time.monotonic()
    for offset in range(0, len(payments), MAX_BATCH):
        batch = payments[offset : offset + MAX_BATCH]
        result = client.json("POST", "/billing/payments", {"payments": batch})
        if result["rejected"]:
            raise click.ClickException(f"import rejected items: {result['rejected'][:3]}")
        click.echo(
            f"  batch {offset // MAX_BATCH + 1}: {result['created']:,} created "
            f"({offset + len(batch):,}/{len(payments):,})"
        )
    click.echo(f"  imported {len(payments):,} payments in {elapsed(started)}")


def send_webhooks(sender: WebhookSender, data: DemoData) -> None:
    """Send every sequence from SENDERS threads; any refused webhook stops the demo."""
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=SENDERS) as pool:
        statuses = Counter(
            status
            for answers in pool.map(sender.send_sequence, data.sequences)
            for status in answers
        )
    by_provider = Counter(event.provider for sequence in data.sequences for event in sequence)
    click.echo(
        "  sent "
        + ", ".join(f"{count:,} {provider}" for provider, count in sorted(by_provider.items()))
        + f" in {elapsed(started)}"
    )
    refused = {status: count for status, count in statuses.items() if status >= 300}
    if refused:
        raise click.ClickException(f"webhooks refused: {refused} (HTTP status: count)")


def wait_for_worker(client: ApiClient) -> None:
    """Poll until no webhook event is pending (progress every 10 s); report failed ones."""
    started = time.monotonic()
    deadline = started + DRAIN_TIMEOUT_SECONDS
    next_report = started + PROGRESS_SECONDS
    while pending := len(client.json("GET", f"{EVENTS}?state=pending&limit=500")["items"]):
        now = time.monotonic()
        if now > deadline:
            raise click.ClickException(
                f"webhook events still pending after {DRAIN_TIMEOUT_SECONDS}s: "
                "is the worker running? (its log is on stderr)"
            )
        if now >= next_report:
            shown = "500+" if pending == 500 else str(pending)
            click.echo(f"  {shown} events pending after {elapsed(started)}")
            next_report += PROGRESS_SECONDS
        time.sleep(0.5)
    failed = client.json("GET", f"{EVENTS}?state=failed&limit=500")["items"]
    click.echo(f"  all events processed in {elapsed(started)}, {len(failed)} failed")
    if failed:
        raise click.ClickException(f"the worker failed events, e.g. {failed[0]['last_error']}")


def run_period(client: ApiClient, day: date) -> dict[str, Any]:
    """Trigger the run of ``day`` and poll the run list until it has finished."""
    started = time.monotonic()
    run = client.json("POST", f"{RUNS}/trigger", {"date": day.isoformat()})
    click.echo(f"  run {run['id']} {run['status']}")
    while time.monotonic() < started + RUN_TIMEOUT_SECONDS:
        listed = {item["id"]: item for item in client.json("GET", f"{RUNS}?limit=20")["items"]}
        run = listed.get(run["id"], run)
        if run["status"] == "completed":
            click.echo(f"  completed in {elapsed(started)}: {json.dumps(run['counts'])}")
            return run
        if run["status"] == "failed":
            raise click.ClickException(f"the run failed: {run['error']}")
        time.sleep(0.5)
    raise click.ClickException(f"the run is still {run['status']} after {RUN_TIMEOUT_SECONDS}s")


def triage_lines(base_url: str, key: str, discrepancy_id: str) -> list[str]:
    """Ready-to-paste curl lines working one discrepancy through its life."""
    one = f"$RECON_URL{DISCREPANCIES}/{discrepancy_id}"
    auth = '-H "Authorization: Bearer $RECON_KEY"'
    body = "-H 'Content-Type: application/json' -d"
    resolve = (
        '{"resolution": "duplicate_refunded", "reason": "second charge refunded to the '
        'customer", "adjustment_reference": "ADJ-1"}'
    )
    return [
        f"export RECON_URL={base_url}",
        f"export RECON_KEY={key}",
        f'curl -s {auth} "$RECON_URL{DISCREPANCIES}?status=open&limit=5"',
        f"curl -s {auth} {one}",
        f"curl -s -X PATCH {auth} {one}/acknowledge",
        f"""curl -s -X POST {auth} {body} '{{"note": "customer confirms two charges"}}' """
        f"{one}/notes",
        f"curl -s -X PATCH {auth} {body} '{resolve}' {one}/resolve",
    ]


def print_triage(client: ApiClient, base_url: str) -> None:
    """A walk-through on a real open discrepancy (a suspected duplicate charge)."""
    found = client.json("GET", f"{DISCREPANCIES}?type=DuplicateChargeSuspected&limit=1")["items"]
    if not found:
        raise click.ClickException("no DuplicateChargeSuspected discrepancy to walk through")
    target = found[0]
    click.echo(
        f"\nTriage walk-through: discrepancy {target['id']} ({target['type']}, "
        f"payment {(target['payment'] or {}).get('external_id')}). Paste these lines:\n"
    )
    for line in triage_lines(base_url, client.key, target["id"]):
        click.echo(f"  {line}")


def walk_through(base_url: str, organisation: DemoOrganisation) -> None:
    """Import, webhooks, drain, yesterday's run, report and triage, with progress lines."""
    client = ApiClient(base_url, organisation.key)
    sender = WebhookSender(base_url, organisation.paths, organisation.secrets)
    day = datetime.now(UTC).date() - timedelta(days=1)
    data = build_demo_data(day, PAYMENTS)
    click.echo(f"\n[1/5] importing {len(data.payments):,} internal payments of {day} (UTC)")
    import_payments(client, data.payments)
    click.echo(f"[2/5] sending {data.event_count:,} signed webhooks ({SENDERS} senders)")
    send_webhooks(sender, data)
    click.echo("[3/5] waiting for the worker to process every event")
    wait_for_worker(client)
    click.echo(f"[4/5] grace period set to {DEMO_GRACE_SECONDS} s; running {day}")
    set_grace_period(client, DEMO_GRACE_SECONDS)
    time.sleep(DEMO_GRACE_SECONDS + 1)
    run = run_period(client, day)
    click.echo("[5/5] report\n")
    click.echo(client.text(f"{RUNS}/{run['id']}/report?format=markdown"))
    print_triage(client, base_url)


@click.command()
@click.option("--port", default=8000, show_default=True, envvar="DEMO_PORT", help="API port.")
@click.option(
    "--once",
    is_flag=True,
    envvar="DEMO_ONCE",
    help="Exit when the walk-through is done instead of keeping the stack up.",
)
def demo(port: int, once: bool) -> None:
    """Bring the stack up, fill a demo organisation with a day of data, reconcile it."""
    started = time.monotonic()
    base_url = f"http://127.0.0.1:{port}"
    if port_open(base_url):
        raise click.ClickException(f"port {port} is in use: set DEMO_PORT to a free port")
    services = ensure_services()
    click.echo(f"database: {services.database_url}")
    click.echo(f"redis:    {services.redis_url}")
    if services.embedded:
        click.echo(f"embedded: {', '.join(services.embedded)} (data in ./.recon/)")
    migrations.upgrade()
    organisation = create_demo_organisation()
    with stdout_to_stderr():
        stack = Stack(services.environment(), port)
    with foreground(stack):
        checks = wait_until_ready(base_url)
        click.echo(f"\n{'organisation:':<18}{organisation.org_id} (Demo Ltd)")
        click.echo(f"{'owner key:':<18}{organisation.key}")
        click.echo(f"{'console:':<18}{base_url}/console/")
        click.echo(
            f"{'sign in as:':<18}{organisation.person_email} "
            f"(password {organisation.person_password})"
        )
        for provider, path in organisation.paths.items():
            click.echo(f"{provider + ' webhook:':<18}{base_url}{path}")
        click.echo(f"\nready: {json.dumps(checks['checks'])}")
        walk_through(base_url, organisation)
        click.echo(f"\ndemo done in {elapsed(started)}")
        click.echo(f"API on {base_url}")
        if once or os.environ.get("DEMO_ONCE") == "1":
            return
        click.echo("API, worker and beat keep running: Ctrl-C to stop")
        stack.wait()
