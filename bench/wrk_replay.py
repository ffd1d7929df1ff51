"""wrk (C, one thread) as the closed-loop client: the same phase as the asyncio client's,
at a few percent of a core instead of most of one, which on 2 cores leaves the server its
share. ``replay.lua`` hands the requests out once each, in order, over the connections.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from collections import Counter
from pathlib import Path

from http_load import Outcome, closed_loop

REPLAY_SCRIPT = Path(__file__).resolve().with_name("replay.lua")


def wrk_available() -> bool:
    """True when the wrk command is installed."""
    return shutil.which("wrk") is not None


def wrk_replay(port: int, requests: list[bytes], concurrency: int, workdir: Path) -> Outcome:
    """Send every request once through ``concurrency`` wrk connections (one wrk thread).

    The requests are written to a file that ``bench/replay.lua`` hands out in order; the
    script ends the run when the last one is answered and reports the time from the first
    send to the last answer, the status codes and wrk's own latency percentiles.
    """
    path = workdir / "requests.bin"
    with path.open("wb") as file:
        for raw in requests:
            file.write(b"%d\n" % len(raw))
            file.write(raw)
    # --duration only bounds a run that never completes; the script stops it before.
    bound = max(120, len(requests) // 10)
    completed = subprocess.run(
        [
            "wrk", "--threads", "1", "--connections", str(concurrency),
            "--duration", f"{bound}s", "--timeout", "10s", "--script", str(REPLAY_SCRIPT),
            f"http://127.0.0.1:{port}/", "--", str(path),
        ],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    path.unlink()
    report = next(
        (line for line in completed.stdout.splitlines() if line.startswith("REPLAY ")), None
    )
    if report is None:
        raise RuntimeError(f"wrk failed:\n{completed.stdout}\n{completed.stderr}")
    figures = json.loads(report.removeprefix("REPLAY "))
    statuses = Counter({int(status): count for status, count in figures["statuses"].items()})
    unanswered = figures["requests"] - figures["answered"]
    if unanswered:
        statuses[0] += unanswered  # counted as connection errors, like the asyncio client
    # An unfinished run has no last answer: its rate is over wrk's whole --duration.
    elapsed = figures["elapsed"] if not unanswered else float(bound)
    return Outcome(
        "",
        len(requests),
        elapsed,
        [],
        statuses,
        percentiles={0.50: figures["p50_us"] / 1000, 0.99: figures["p99_us"] / 1000},
    )


def closed_loop_phase(
    client: str, port: int, requests: list[bytes], concurrency: int, workdir: Path
):
    """A closed-loop phase with ``client`` (``wrk`` or ``asyncio``), for :func:`measure`."""
    if client == "wrk":

        async def replay() -> Outcome:
            return await asyncio.to_thread(wrk_replay, port, requests, concurrency, workdir)

        return replay()
    return closed_loop(port, requests, concurrency)


def choose_client(requested: str) -> str:
    """``wrk`` when asked for or (``auto``) installed, else ``asyncio``."""
    if requested == "wrk" and not wrk_available():
        raise SystemExit("--client wrk: wrk is not installed (apt-get install -y wrk)")
    if requested == "auto":
        return "wrk" if wrk_available() else "asyncio"
    return requested
