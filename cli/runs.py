"""``recon run``: reconcile a period from the command line, optionally waiting for it;
``recon run verify``: check that a run's matched set still holds."""

from __future__ import annotations

import time
import uuid
from datetime import date
from typing import IO

import click

from shared.models import ReconciliationRun
from shared.platform.db import unit_of_work
from shared.platform.errors import DomainError
from shared.runs.lifecycle import ACTIVE, get_run, trigger_run, verify_matched_set

POLL_SECONDS = 1.0
PROGRESS_SECONDS = 10.0
REPORT_PATH = "/billing/reconciliation/runs/{run_id}/report"


@click.group("run", invoke_without_command=True)
@click.option("--org", "org_id", type=click.UUID, help="Organisation id.")
@click.option("--date", "day", type=click.DateTime(["%Y-%m-%d"]), help="One day to reconcile.")
@click.option("--from", "first", type=click.DateTime(["%Y-%m-%d"]), help="First day of the period.")
@click.option("--to", "last", type=click.DateTime(["%Y-%m-%d"]), help="Last day of the period.")
@click.option("--wait", is_flag=True, help="Wait for the run, showing progress, then summarise.")
@click.pass_context
def run(context: click.Context, org_id: uuid.UUID | None, day, first, last, wait: bool) -> None:
    """Queue a reconciliation run of a day (--date) or a period (--from/--to).

    A worker executes it; with --wait the command follows it until it completes or
    fails (its status on stderr: one line updated in place on a terminal, a line per
    change and every 10 s otherwise) and prints a summary with the counts, the duration
    and where the report is (exit status 1 if it failed). ``recon run verify RUN_ID``
    checks a completed run's matched set instead.
    """
    if context.invoked_subcommand is not None:
        return
    if org_id is None:
        raise click.UsageError("give --org")
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
    stderr = click.get_text_stream("stderr")
    progress = RunProgress(stderr, interactive=stderr.isatty())
    began = time.monotonic()
    while True:
        with unit_of_work() as session:
            current = get_run(session=session, org_id=org_id, run_id=run_id)
        progress.show(current.status, time.monotonic() - began)
        if current.status not in ACTIVE:
            break
        time.sleep(POLL_SECONDS)
    progress.close()
    if current.status != "completed":
        raise click.ClickException(f"run {run_id} {current.status}: {current.error}")
    click.echo(summary(current))


@run.command("verify")
@click.argument("run_id", type=click.UUID)
def verify(run_id: uuid.UUID) -> None:
    """Check that a completed run's matched set still holds: recompute the fingerprint of
    its period's bindings and compare it with the one the run recorded (exit status 1
    when it does not hold)."""
    try:
        with unit_of_work() as session:
            checked = verify_matched_set(session=session, run_id=run_id)
    except DomainError as error:
        raise click.ClickException(error.detail) from None
    recorded, current = checked.recorded, checked.current
    click.echo(f"recorded: {recorded.pairs} pairs, digest {recorded.digest}")
    click.echo(f"now:      {current.pairs} pairs, digest {current.digest}")
    if not checked.holds:
        raise click.ClickException(f"run {run_id}: the matched set changed since the run")
    click.echo(f"run {run_id}: the matched set holds")


class RunProgress:
    """Where a waited-for run stands, on stderr.

    On a terminal one status line is rewritten in place at every poll; otherwise (a log
    file, CI) a plain line is written when the status changes and every
    PROGRESS_SECONDS while it does not.
    """

    def __init__(self, stream: IO[str], *, interactive: bool) -> None:
        self.stream = stream
        self.interactive = interactive
        self.status: str | None = None
        self.next_line_at = 0.0

    def show(self, status: str, elapsed: float) -> None:
        """Report ``status`` after ``elapsed`` seconds of waiting."""
        text = f"run is {status} ({elapsed:.0f} s)"
        if self.interactive:
            click.echo(f"\r\033[K{text}", nl=False, file=self.stream, color=True)
        elif status != self.status or elapsed >= self.next_line_at:
            click.echo(text, file=self.stream)
            self.next_line_at = elapsed + PROGRESS_SECONDS
        self.status = status

    def close(self) -> None:
        """Clear the status line, so the summary starts on a clean line."""
        if self.interactive and self.status is not None:
            click.echo("\r\033[K", nl=False, file=self.stream, color=True)


def summary(run: ReconciliationRun) -> str:
    """A completed run in two lines: duration and counts, then where its report is."""
    seconds = (run.finished_at - run.started_at).total_seconds()
    return (
        f"completed in {seconds:.1f} s: {run.payments_checked} payments and "
        f"{run.provider_records_checked} provider records checked, {run.matched} matched, "
        f"{run.discrepancies_opened} discrepancies opened, "
        f"{run.discrepancies_auto_resolved} auto-resolved\n"
        f"report: GET {REPORT_PATH.format(run_id=run.id)} (?format=markdown for Markdown)"
    )
