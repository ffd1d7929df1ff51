"""``recon demo`` (what ``make demo`` runs): the stack comes up and is ready, on any machine."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request

import psutil
import pytest

from cli.services import free_port
from tests.conftest import REPO_ROOT, TEST_DATABASE_URL, TEST_REDIS_URL

UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def assert_demo_output(output: str, port: int) -> None:
    assert re.search(rf"organisation:\s+{UUID} \(Demo Ltd\)", output), output
    assert re.search(r"owner key:\s+rk_\S{40,}", output), output
    for provider in ("stripe", "adyen", "standard"):
        pattern = rf"{provider} webhook:\s+http://127\.0\.0\.1:{port}/webhooks/{provider}/{UUID}"
        assert re.search(pattern, output), output
    assert 'ready: {"database": "ok", "redis": "ok"}' in output


def demo_environment(**variables: str) -> dict[str, str]:
    environment = {**os.environ, "DEMO_ONCE": "1", **variables}
    return environment


def test_demo_runs_on_the_machine_services(committed):
    port = free_port()
    result = subprocess.run(
        [sys.executable, "-m", "cli", "demo"],
        cwd=REPO_ROOT,
        env=demo_environment(
            DATABASE_URL=TEST_DATABASE_URL, REDIS_URL=TEST_REDIS_URL, DEMO_PORT=str(port)
        ),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert_demo_output(result.stdout, port)
    assert "embedded" not in result.stdout


@pytest.mark.slow
def test_demo_falls_back_to_embedded_servers_when_nothing_answers(tmp_path):
    """In a network namespace of its own nothing listens on 5432/6379: the embedded
    PostgreSQL and Redis must take over, with their data under ./.recon/."""
    environment = demo_environment(DEMO_PORT="8000")
    environment.pop("DATABASE_URL")
    environment.pop("REDIS_URL")
    script = f"ip link set lo up && exec {sys.executable} -m cli demo"
    # Root may open a network namespace directly; anyone else needs a user namespace too.
    isolate = ["unshare", "--net"] if os.geteuid() == 0 else ["unshare", "-U", "-c", "--net"]
    result = subprocess.run(
        [*isolate, "sh", "-c", script],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "embedded: postgresql, redis (data in ./.recon/)" in result.stdout
    assert_demo_output(result.stdout, 8000)
    assert (tmp_path / ".recon" / "postgres" / "PG_VERSION").exists()


def wait_for_ready(url: str, process: subprocess.Popen, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "recon up exited early"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return json.load(response)
        except OSError:
            time.sleep(0.3)
    pytest.fail(f"{url} never answered 200")


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # as a shell does for a background job


@pytest.mark.parametrize(
    ("stop_signal", "started_as"),
    [
        (signal.SIGINT, None),
        (signal.SIGINT, _ignore_sigint),
        (signal.SIGTERM, None),
    ],
    ids=["ctrl-c", "ctrl-c, started as a background job", "sigterm"],
)
def test_up_runs_api_worker_and_beat_until_interrupted(
    committed, tmp_path, stop_signal, started_as
):
    port = free_port()
    log = (tmp_path / "up.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "cli", "up", "--port", str(port)],
        cwd=REPO_ROOT,
        env={**os.environ, "DATABASE_URL": TEST_DATABASE_URL, "REDIS_URL": TEST_REDIS_URL},
        stdout=log,
        stderr=subprocess.STDOUT,
        preexec_fn=started_as,
    )
    try:
        ready = wait_for_ready(f"http://127.0.0.1:{port}/readyz", process)
        assert ready["checks"] == {"database": "ok", "redis": "ok"}
        children = psutil.Process(process.pid).children(recursive=True)
        commands = " ".join(" ".join(child.cmdline()) for child in children)
        assert "gunicorn" in commands
        assert "worker" in commands
        assert "beat" in commands
        process.send_signal(stop_signal)
        assert process.wait(timeout=60) == 0
        assert not [child for child in children if child.is_running()]
    finally:
        if process.poll() is None:
            process.kill()
        log.close()
