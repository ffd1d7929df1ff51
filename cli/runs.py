"""``recon run``: reconcile a period from the command line, optionally waiting for it."""

from __future__ import annotations

import time
import uuid
from datetime import date

import click

from shared.db import unit_of_work
from shared.errors import DomainError
from shared.runs import get_run, trigger_run

POLL_SECONDS = 1.0


@click.command("run")
@click.option("--org", "org_id", type=click.UUID, required=True, help="Organisation id.")
@click.option("--date", "day", type=click.DateTime(["%Y-%m-%d"]), help="One day to reconcile.")
@click.option("--from", "first", type=click.DateTime(["%Y-%m-%d"]), help="First day of the period.")
@click.option("--to", "last", type=click.DateTime(["%Y-%m-%d"]), help="Last day of the period.")
@click.option("--wait", is_flag=True, help="Wait for the run, showing progress, then summarise.")
def run(org_id: uuid.UUID, day, first, last, wait: bool) -> None:
    """Queue a reconciliation run of a day (--date) or a period (--from/--to).

    A worker executes it; with --wait the command follows it until it completes or
    fails and prints a summary (exit status 1 if it failed).
    """
    if day is not None and (first or last):
        raise click.UsageError("give --date, or --from and --to, not both")
    if day is None and not (first and last):
        raise click.UsageError("give --date, or both --from and --to")
    start: date = (day or first).date()
    end: date = (day or last).date()
    try:
        with unit_of_work() as session:
            triggered = trigger_run(
                session=session, org_id=org_id, period_start=start, period_end=end,
                triggered_by="cli",
            )  # fmt: skip
            run_id = triggered.run.id
    except DomainError as error:
        raise click.ClickException(error.detail) from None
    verb = "queued" if triggered.created else "already active"
    click.echo(f"run {run_id} {verb} for {start} → {end}")
    if not wait:
        return
    status = "queued"
    with click.progressbar(
        length=2, label="reconciling", file=click.get_text_stream("stderr")
    ) as bar:
        while status in ("queued", "running"):
            time.sleep(POLL_SECONDS)
            with unit_of_work() as session:
                current = get_run(session=session, org_id=org_id, run_id=run_id)
                if current.status != status:
                    bar.update(1)
                status = current.status
                counts = (
                    current.payments_checked, current.provider_records_checked, current.matched,
                    current.discrepancies_opened, current.error,
                )  # fmt: skip
    payments, records, matched, opened, error = counts
    click.echo(
        f"{status}: {payments} payments and {records} provider records checked, "
        f"{matched} matched, {opened} discrepancies opened"
    )
    if status == "failed":
        raise click.ClickException(f"run failed: {error}")
