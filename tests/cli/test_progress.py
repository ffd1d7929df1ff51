"""Progress and summaries of the long commands: ``recon run --wait`` and ``payments import``.

On a terminal progress is drawn in place on stderr; elsewhere (logs, CI) it is plain
lines. Both are checked with real processes: stderr on a pseudo-terminal, or a pipe.
"""

from __future__ import annotations

import io
import json
import os
import pty
import re
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis
from sqlalchemy import text

from cli.runs import PROGRESS_SECONDS, RunProgress
from tests.conftest import (
    REPO_ROOT,
    TEST_DATABASE_URL,
    TEST_REDIS_URL,
    WORKER_NUMBER,
    redis_url_numbered,
    run_cli,
)

CLEAR_LINE = "\r\x1b[K"
YESTERDAY = (datetime.now(UTC).date() - timedelta(days=1)).isoformat()


def run_cli_on_terminal(
    *args: str, redis_url: str = TEST_REDIS_URL, timeout: float = 120
) -> tuple[int, str, str]:
    """Run ``recon ARGS`` with stderr on a pseudo-terminal: (exit code, stdout, terminal)."""
    primary, secondary = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "cli", *args],
        cwd=REPO_ROOT,
        env={**os.environ, "DATABASE_URL": TEST_DATABASE_URL, "REDIS_URL": redis_url},
        stdout=subprocess.PIPE,
        stderr=secondary,
    )
    os.close(secondary)
    shown = bytearray()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([primary], [], [], 0.5)
            if not ready:
                continue
            try:
                chunk = os.read(primary, 4096)
            except OSError:  # EIO: the process closed its end of the terminal
                break
            if not chunk:
                break
            shown += chunk
        stdout = process.stdout.read().decode()
        process.wait(timeout=10)
    finally:
        process.stdout.close()
        os.close(primary)
    return process.returncode, stdout, shown.decode()


def plain_lines(stderr: str) -> list[str]:
    """Progress lines of a piped stderr (the JSON log lines left out)."""
    return [line for line in stderr.splitlines() if not line.startswith("{")]


def assert_summary(stdout: str) -> None:
    queued, completed, report = stdout.splitlines()
    run_id = re.fullmatch(rf"run (\S+) queued for {YESTERDAY} → {YESTERDAY}", queued)[1]
    assert re.fullmatch(
        r"completed in \d+\.\d s: 0 payments and 0 provider records checked, 0 matched, "
        r"0 discrepancies opened, 0 auto-resolved",
        completed,
    )
    assert report == (
        f"report: GET /billing/reconciliation/runs/{run_id}/report (?format=markdown for Markdown)"
    )


def test_run_wait_writes_plain_status_lines_when_not_on_a_terminal(org_id, celery_worker):
    result = run_cli("run", "--org", org_id, "--date", YESTERDAY, "--wait")
    assert result.returncode == 0, result.stderr
    assert_summary(result.stdout)
    progress = plain_lines(result.stderr)
    assert progress[0] == "run is queued (0 s)"
    assert re.fullmatch(r"run is completed \(\d+ s\)", progress[-1])
    assert "\r" not in result.stderr


def test_run_wait_redraws_one_status_line_on_a_terminal(org_id, celery_worker):
    code, stdout, terminal = run_cli_on_terminal(
        "run", "--org", org_id, "--date", YESTERDAY, "--wait"
    )
    assert code == 0, terminal
    assert_summary(stdout)
    redraws = re.findall(r"\r\x1b\[K(run is \w+ \(\d+ s\))", terminal)
    assert redraws[0] == "run is queued (0 s)"
    assert redraws[-1].startswith("run is completed")
    assert terminal.endswith(CLEAR_LINE)  # the summary starts on a clean line


def test_plain_progress_writes_a_line_per_change_and_every_interval_otherwise():
    stream = io.StringIO()
    progress = RunProgress(stream, interactive=False)
    for status, elapsed in [
        ("queued", 0),
        ("queued", 1),
        ("running", 2),
        ("running", 1 + PROGRESS_SECONDS),
        ("running", 2 + PROGRESS_SECONDS),
        ("running", 11 + PROGRESS_SECONDS),
        ("completed", 13 + PROGRESS_SECONDS),
    ]:
        progress.show(status, elapsed)
    progress.close()
    assert stream.getvalue().splitlines() == [
        "run is queued (0 s)",
        "run is running (2 s)",  # a change
        "run is running (12 s)",  # PROGRESS_SECONDS after the last line
        "run is completed (23 s)",
    ]


def test_interactive_progress_rewrites_the_line_and_clears_it_at_the_end():
    stream = io.StringIO()
    progress = RunProgress(stream, interactive=True)
    progress.show("queued", 0)
    progress.show("running", 1.4)
    progress.close()
    assert stream.getvalue() == (
        f"{CLEAR_LINE}run is queued (0 s){CLEAR_LINE}run is running (1 s){CLEAR_LINE}"
    )


def payments_file(path: Path, count: int) -> Path:
    header = "external_id,provider,provider_reference,amount_minor,currency,status,occurred_at"
    rows = [
        f"inv_{number},stripe,pi_{number},1000,USD,succeeded,2026-03-01T12:00:00Z"
        for number in range(count)
    ]
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


@pytest.fixture
def idle_broker() -> Iterator[str]:
    """A Redis database no test worker consumes, so queued match tasks stay put.

    Consumed, the import's 2,500 tasks would race the table truncation after the test.
    """
    url = redis_url_numbered(1 + (WORKER_NUMBER + 7) % 15)
    client = redis.Redis.from_url(url)
    yield url
    client.delete("matching")
    client.close()


def test_payments_import_draws_a_progress_bar_on_a_terminal_and_summarises(
    org_id, idle_broker, tmp_path
):
    path = payments_file(tmp_path / "payments.csv", 2500)
    code, stdout, terminal = run_cli_on_terminal(
        "payments", "import", str(path), "--org", org_id, redis_url=idle_broker
    )
    assert code == 0, terminal
    assert stdout == "created 2500, updated 0, unchanged 0, rejected 0\n"
    assert "importing" in terminal
    assert "100%" in terminal


def test_settlements_import_draws_a_progress_bar_and_prints_the_summary_once(
    org_id, idle_broker, tmp_path
):
    source = REPO_ROOT / "tests" / "settlements" / "fixtures" / "adyen"
    lines = (source / "settlement_details_every_type.csv").read_bytes().splitlines(True)
    rows = [lines[16].replace(b"PSP0005", f"PSP{n:07d}".encode()) for n in range(20_000)]
    path = tmp_path / "batch.csv"
    path.write_bytes(lines[0] + b"".join(rows))
    arguments = ("settlements", "import", str(path), "--org", org_id)
    code, stdout, terminal = run_cli_on_terminal(*arguments, redis_url=idle_broker)
    assert code == 0, terminal
    summary = json.loads(stdout)
    assert (summary["created"], summary["layout"], summary["lines"]) == (
        True, "adyen_settlement_details", 20_000,
    )  # fmt: skip
    assert "importing" in terminal
    assert "100%" in terminal
    again = run_cli("settlements", "import", str(path), "--org", org_id)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout) | {"created": True} == summary


def test_a_settlement_file_the_cli_imports_is_recorded_as_the_operator_s(
    org_id, committed, tmp_path
):
    path = tmp_path / "batch.csv"
    path.write_bytes((REPO_ROOT / "tests" / "settlements" / "fixtures" / "adyen" /
                      "settlement_details_every_type.csv").read_bytes())  # fmt: skip
    assert run_cli("settlements", "import", str(path), "--org", org_id).returncode == 0
    with committed.connect() as connection:
        importer = connection.execute(
            text("SELECT imported_by, imported_by_name FROM settlement_files")
        ).one()
    assert tuple(importer) == ("cli", "recon CLI")


def test_settlements_import_of_a_bad_file_exits_1_naming_row_and_column(org_id, tmp_path):
    path = tmp_path / "bad.csv"
    source = REPO_ROOT / "tests" / "settlements" / "fixtures" / "adyen"
    path.write_bytes(
        (source / "settlement_details_every_type.csv").read_bytes().replace(b",98.10,", b",9.8.1,")
    )
    result = run_cli("settlements", "import", str(path), "--org", org_id)
    assert result.returncode == 1
    assert "row 2, column 'Net Credit (NC)'" in result.stderr
