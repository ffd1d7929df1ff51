"""No secret in any log line of the suite: every line is kept, and scanned at the end.

A pytest plugin (tests/conftest.py registers it):
- In-process: a root logging handler, installed for the whole session, appends every
  record (structlog's too: :func:`shared.platform.logs.configure_logging` routes it through the
  standard library) as one line, prefixed with the running test's id, to ``captured.log``
  in this worker's session temp directory. :func:`record_output` adds what a helper
  captured from a subprocess (``run_cli``) the same way.
- Subprocesses started by fixtures write ``*.log`` files under the same directory (every
  ``tmp_path`` lives there).
- At the end of the session every ``*.log`` file under it is scanned for the registered
  secrets (:func:`register_secret`: webhook secrets, signatures, tokens, passwords) and
  for anything shaped like an API key (``rk_`` + 43 characters: every key, also those
  made in subprocesses). A find fails the run, naming the file, line and test; under
  xdist each worker sends its finds to the controller, which fails the run.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pytest

from shared.access.api_keys import KEY_PREFIX

CAPTURED = "captured.log"
MIN_SECRET_LENGTH = 8  # shorter values would match innocent text
WORKER_OUTPUT_KEY = "recon_log_leaks"
API_KEY_SHAPE = re.compile(
    r"(?<![A-Za-z0-9_-])" + re.escape(KEY_PREFIX) + r"[A-Za-z0-9_-]{43}(?![A-Za-z0-9_-])"
)

_registered: set[str] = set()


def register_secret(value: str) -> str:
    """Remember ``value`` as a secret no log line may contain; returns it unchanged."""
    if len(value) >= MIN_SECRET_LENGTH:
        _registered.add(value)
    return value


def registered_secrets() -> frozenset[str]:
    """Every secret registered in this process so far."""
    return frozenset(_registered)


@dataclass(frozen=True)
class LogLine:
    """One captured line: where it is (``file:line``), the test that logged it, its text."""

    where: str
    test: str
    text: str


@dataclass(frozen=True)
class Leak:
    """A secret found in a log line; ``secret`` and ``excerpt`` are masked."""

    where: str
    test: str
    secret: str
    excerpt: str

    def describe(self) -> str:
        """One line for the failure report."""
        test = f" (test {self.test})" if self.test else ""
        return f"{self.where}{test}: {self.secret} in: {self.excerpt}"


def _mask(secret: str) -> str:
    return f"{secret[:4]}…({len(secret)} characters)"


def find_leaks(lines: Iterable[LogLine], secrets: Iterable[str]) -> list[Leak]:
    """Every line holding one of ``secrets`` (raw or JSON-escaped) or an API-key-shaped string."""
    needles: dict[str, str] = {}
    for secret in secrets:
        needles[secret] = secret
        needles[json.dumps(secret)[1:-1]] = secret
    leaks = []
    for line in lines:
        found = [secret for needle, secret in needles.items() if needle in line.text]
        found += API_KEY_SHAPE.findall(line.text)
        for secret in dict.fromkeys(found):
            excerpt = line.text
            for shown in (*needles, *found):
                excerpt = excerpt.replace(shown, "[secret]")
            leaks.append(Leak(line.where, line.test, _mask(secret), excerpt[:300]))
    return leaks


def read_log_lines(directory: Path) -> Iterator[LogLine]:
    """Every line of every ``*.log`` file under ``directory`` (``captured.log`` with its test)."""
    for path in sorted(directory.rglob("*.log")):
        with path.open(encoding="utf-8", errors="replace") as lines:
            for number, text in enumerate(lines, start=1):
                test = ""
                if path.name == CAPTURED:
                    test, _, text = text.partition("\t")
                yield LogLine(f"{path}:{number}", test, text.rstrip("\n"))


def scan_directory(directory: Path, secrets: Iterable[str]) -> list[Leak]:
    """:func:`find_leaks` over :func:`read_log_lines` of ``directory``."""
    return find_leaks(read_log_lines(directory), secrets)


class CaptureFile:
    """Appends lines, each prefixed with a test id, to one file (thread-safe)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.current_test = ""
        self._lock = threading.Lock()

    def write(self, text: str, test: str | None = None) -> None:
        """Append ``text`` as one line (its own line breaks escaped)."""
        line = text.replace("\r", "\\r").replace("\n", "\\n")
        with self._lock, self.path.open("a", encoding="utf-8") as file:
            file.write(f"{self.current_test if test is None else test}\t{line}\n")


class CaptureHandler(logging.Handler):
    """A logging handler writing each record's message, fields and traceback to a file."""

    def __init__(self, capture: CaptureFile) -> None:
        super().__init__(level=logging.NOTSET)
        self.capture = capture
        self._formatter = logging.Formatter()

    def emit(self, record: logging.LogRecord) -> None:
        """Write the whole record: structlog's event dict is its message."""
        try:
            text = record.getMessage()
            if record.exc_info:
                text += " " + self._formatter.formatException(record.exc_info)
            if record.stack_info:
                text += " " + record.stack_info
            self.capture.write(f"{record.name} {record.levelname} {text}")
        except Exception:  # noqa: BLE001 - the standard library handlers' contract: never raise
            self.handleError(record)


@dataclass
class _Session:
    directory: Path | None = None
    capture: CaptureFile | None = None
    current_test: str = ""
    leaks: list[Leak] = field(default_factory=list)


_session = _Session()


def record_output(label: str, text: str) -> None:
    """Keep ``text`` (a subprocess's stderr, say) for the end-of-session scan."""
    if _session.capture is not None:
        for line in text.splitlines():
            _session.capture.write(f"{label}: {line}")


@pytest.fixture(scope="session", autouse=True)
def captured_log_lines(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CaptureFile]:
    """Capture every in-process log line of the session under its temp directory."""
    from shared.platform.logs import configure_logging

    directory = tmp_path_factory.getbasetemp()
    capture = CaptureFile(directory / CAPTURED)
    capture.current_test = _session.current_test
    _session.directory, _session.capture = directory, capture
    configure_logging()  # structlog through the standard library, so the handler sees it
    handler = CaptureHandler(capture)
    logging.getLogger().addHandler(handler)
    yield capture
    logging.getLogger().removeHandler(handler)


def pytest_runtest_logstart(nodeid: str) -> None:
    """Lines captured from now on belong to ``nodeid``."""
    _session.current_test = nodeid
    if _session.capture is not None:
        _session.capture.current_test = nodeid


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error) -> None:
    """xdist controller: collect what a worker found."""
    found = getattr(node, "workeroutput", {}).get(WORKER_OUTPUT_KEY, [])
    _session.leaks.extend(Leak(**leak) for leak in found)


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Scan this process's lines; a worker hands its finds over, the others fail the run."""
    if _session.directory is not None:
        leaks = scan_directory(_session.directory, registered_secrets())
        workeroutput = getattr(session.config, "workeroutput", None)
        if workeroutput is not None:
            workeroutput[WORKER_OUTPUT_KEY] = [asdict(leak) for leak in leaks]
            return
        _session.leaks.extend(leaks)
    if not _session.leaks:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    lines = [leak.describe() for leak in _session.leaks]
    if reporter is not None:
        reporter.write_sep("=", f"{len(lines)} secret(s) in log lines", red=True)
        for line in lines:
            reporter.write_line(line)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
