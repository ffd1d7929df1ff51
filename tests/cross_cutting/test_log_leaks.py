"""The end-of-session scan for secrets in log lines finds them, wherever they were logged.

The secrets here are never registered with the session's own scan (only with local
sets), so proving the scanner right does not fail the suite.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
import uuid

import pytest
import structlog

from shared.access.api_keys import KEY_PREFIX
from tests.conftest import REPO_ROOT
from tests.support.log_leaks import (
    CaptureFile,
    LogLine,
    find_leaks,
    read_log_lines,
    record_output,
    scan_directory,
)


def local_secret() -> str:
    """A secret only this test knows (so the session's own scan never looks for it)."""
    return f"local-secret-{uuid.uuid4().hex}"


def test_the_scanner_finds_secrets_raw_or_json_escaped_and_anything_shaped_like_an_api_key():
    secret = 'tok"en-with-quote-123'
    api_key = KEY_PREFIX + "A" * 43
    lines = [
        LogLine("a.log:1", "t::one", f"header was {secret}"),
        LogLine("a.log:2", "t::two", json.dumps({"token": secret})),
        LogLine("a.log:3", "t::three", f'{{"authorization": "Bearer {api_key}"}}'),
        LogLine("a.log:4", "t::four", "nothing here, not even rk_short or " + "rk_" + "A" * 44),
    ]
    leaks = find_leaks(lines, {secret})
    assert [(leak.where, leak.test) for leak in leaks] == [
        ("a.log:1", "t::one"),
        ("a.log:2", "t::two"),
        ("a.log:3", "t::three"),
    ]
    for leak in leaks:
        assert secret not in leak.describe()
        assert api_key not in leak.describe()
        assert "[secret]" in leak.excerpt


def test_in_process_log_lines_of_structlog_and_logging_are_captured_with_their_test(
    request, captured_log_lines: CaptureFile
):
    secret, other = local_secret(), local_secret()
    structlog.get_logger("recon.test").warning("leak.structlog", detail=secret)
    logging.getLogger("recon.test").error("leak %s", other)
    leaks = scan_directory(captured_log_lines.path.parent, {secret, other})
    assert {leak.test for leak in leaks} == {request.node.nodeid}
    assert len(leaks) == 2
    assert all(leak.where.startswith(str(captured_log_lines.path)) for leak in leaks)


def test_a_subprocess_log_file_under_the_session_directory_is_scanned(tmp_path):
    secret = local_secret()
    script = (
        "import structlog; from shared.platform.logs import configure_logging; "
        "configure_logging(); "
        f"structlog.get_logger('child').warning('child.leak', detail={secret!r})"
    )
    log_path = tmp_path / "child.log"
    with log_path.open("w") as log:
        subprocess.run(
            [sys.executable, "-c", script], cwd=REPO_ROOT, stderr=log, check=True, timeout=60
        )
    [leak] = scan_directory(tmp_path, {secret})
    assert leak.where == f"{log_path}:1"
    assert next(read_log_lines(tmp_path)).text.startswith("{")


def test_output_recorded_from_a_helper_is_scanned_with_its_test(
    request, captured_log_lines: CaptureFile
):
    secret = local_secret()
    record_output("recon key", f"Traceback: something printed {secret}\nsecond line")
    [leak] = scan_directory(captured_log_lines.path.parent, {secret})
    assert leak.test == request.node.nodeid


INNER_CONFTEST = """
def pytest_configure(config):
    from tests.support import log_leaks

    config.pluginmanager.register(log_leaks, "recon-log-leaks")
"""
INNER_TESTS = """
import logging

from tests.support.log_leaks import register_secret


def test_logs_a_registered_secret():
    secret = register_secret("inner-secret-value-0123456789")
    logging.getLogger("inner").warning("calling with token %s", secret)


def test_logs_nothing_secret():
    logging.getLogger("inner").warning("nothing to see")
"""


@pytest.mark.parametrize("xdist", [[], ["-n", "1"]], ids=["one-process", "xdist"])
def test_a_session_whose_logs_hold_a_secret_fails_naming_the_test(tmp_path, xdist):
    project = tmp_path / "inner"
    project.mkdir()
    (project / "conftest.py").write_text(textwrap.dedent(INNER_CONFTEST))
    (project / "test_inner.py").write_text(textwrap.dedent(INNER_TESTS))
    environment = {
        key: value for key, value in os.environ.items() if not key.startswith("PYTEST_")
    } | {"PYTHONPATH": str(REPO_ROOT)}
    argv = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--rootdir"]
    argv += [str(project), "--basetemp", str(tmp_path / "basetemp"), *xdist, str(project)]
    result = subprocess.run(
        argv,
        cwd=project,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == pytest.ExitCode.TESTS_FAILED, output
    assert "2 passed" in output
    assert "1 secret(s) in log lines" in output
    assert "test_inner.py::test_logs_a_registered_secret" in output
    assert "inner-secret-value-0123456789" not in output
