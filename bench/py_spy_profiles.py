"""py-spy profiles of the benches' processes, and where their wall time went.

py-spy samples at a fixed rate with idle samples included, so samples count wall time.
Its raw format is one line per distinct stack: ``frame;frame;… count``, each frame
``function (file:line)``.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path


def py_spy_record(output: Path, hz: int, *target: str) -> list[str]:
    """The argv of ``py-spy record`` into ``output`` at ``hz``, idle samples included;
    ``target`` is ``--pid N`` or ``-- command…``."""
    py_spy = Path(sys.executable).with_name("py-spy")
    return [str(py_spy), "record", "--idle", "--rate", str(hz), "--format", "raw",
            "--output", str(output), *target]  # fmt: skip


def split_frame(raw: str) -> tuple[str, str]:
    """(function, file) of one raw frame ``function (file:line)``."""
    name, _, where = raw.rpartition(" (")
    return name, where.rstrip(")").rsplit(":", 1)[0]


def _frame(raw: str) -> str:
    """``name (file:line)`` without the line: a function, whatever line was running."""
    name, where = split_frame(raw)
    return f"{name} ({where})" if name else raw


class Profiler:
    """py-spy sampling processes at ``hz``, idle samples included (so wall time)."""

    def __init__(self, pids: dict[str, list[int]], directory: Path, hz: int) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.outputs: dict[str, list[Path]] = {}
        self.processes = []
        for label, group in pids.items():
            for pid in group:
                output = directory / f"{label}-{pid}.txt"
                self.outputs.setdefault(label, []).append(output)
                argv = py_spy_record(output, hz, "--pid", str(pid), "--nonblocking")
                self.processes.append(
                    subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                )

    def stop(self) -> None:
        """Stop recording (py-spy writes its file on SIGINT)."""
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _where(frames: list[str]) -> str:
    """What a sample was doing, by the innermost frame."""
    leaf = frames[-1]
    if "billiard/queues.py" in leaf or "_recv (billiard" in leaf or "get_payload" in leaf:
        return "waiting for the next task (pipe from the consumer)"
    if "kombu/utils/eventio.py" in leaf:
        return "idle in the event loop (epoll)"
    if leaf.startswith(("Connection.wait (psycopg", "BaseCursor._send_query_prepared (psycopg")):
        return "waiting on PostgreSQL (query round trip)"
    for marker, label in (
        ("psycopg/", "psycopg (Python side)"),
        ("sqlalchemy/", "SQLAlchemy (Python side)"),
        ("structlog/", "logging"),
        ("logging/", "logging"),
        ("kombu/", "kombu / redis client"),
        ("redis/", "kombu / redis client"),
        ("celery/", "celery / billiard"),
        ("billiard/", "celery / billiard"),
        ("shared/", "project code (shared/)"),
        ("json/", "json"),
    ):
        if marker in leaf:
            return label
    return "other"


PROJECT_FILES = ("(shared/", "(worker/", "(api/")


def summarise_by_kind_of_work(
    label: str, paths: list[Path], events: int, hz: int, top: int = 15
) -> None:
    """Print where a group of processes spent its wall time, in ms per event: by kind of
    work (innermost frame); by the innermost project function (the query or ORM call it
    made included), with how much of it was waiting on PostgreSQL; and by function,
    inclusive (project functions when there are any, else every frame not common to all).
    Only main threads count: helper threads (the metrics flusher) sleep most of the time."""
    inclusive: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    sites: Counter[str] = Counter()
    site_waits: Counter[str] = Counter()
    total = 0
    background = 0
    for path in paths:
        if not path.exists():
            continue
        for line in path.read_text(errors="replace").splitlines():
            stack, _, count = line.rpartition(" ")
            if not stack or not count.isdigit():
                continue
            samples = int(count)
            frames = [_frame(raw) for raw in stack.split(";")]
            if frames[0].startswith("Thread._bootstrap "):
                background += samples  # a helper thread (metrics flush...): mostly asleep
                continue
            total += samples
            kind = _where(frames)
            kinds[kind] += samples
            for frame in set(frames):
                inclusive[frame] += samples
            own = [frame for frame in frames if any(part in frame for part in PROJECT_FILES)]
            if own:
                sites[own[-1]] += samples
                if kind.startswith("waiting on PostgreSQL"):
                    site_waits[own[-1]] += samples
    if not total or not events:
        print(f"  ({label}: py-spy recorded nothing)")
        return
    per_event = 1000 / hz / events  # ms of wall per sample, per event
    print(
        f"  py-spy, {label} ({len(paths)} processes, {total} samples of their main threads; "
        f"wall ms per event; {background} samples of helper threads left out):"
    )
    for kind, samples in kinds.most_common():
        print(f"    {samples * per_event:7.2f} ms  {samples / total:6.1%}  {kind}")
    if sites:
        print("    by the innermost project function (its SQL and ORM calls included):")
        for site, samples in sites.most_common(top):
            print(
                f"    {samples * per_event:7.2f} ms  {samples / total:6.1%}  {site}"
                f"  (waiting on PostgreSQL {site_waits[site] * per_event:.2f} ms)"
            )
    print("    by function, inclusive:")
    if sites:
        chosen = [(f, n) for f, n in inclusive.most_common() if any(p in f for p in PROJECT_FILES)]
    else:
        chosen = [(f, n) for f, n in inclusive.most_common() if n < 0.97 * total]
    for frame, samples in chosen[:top]:
        print(f"    {samples * per_event:7.2f} ms  {samples / total:6.1%}  {frame}")


def summarise_by_project_function(path: Path, hz: int, top: int = 12) -> list[str]:
    """Where the run's wall time went, by the project function nearest each sample's leaf,
    split into waiting on PostgreSQL (psycopg's ``wait``) and everything else (Python)."""
    waiting: Counter[str] = Counter()
    python: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        samples = int(count)
        total += samples
        frames = [split_frame(frame) for frame in stack.split(";")]
        ours = [f"{name} ({where})" for name, where in frames if where.startswith("shared/")]
        for key in set(ours):
            inclusive[key] += samples
        owner = ours[-1] if ours else "(outside shared/)"
        leaf_name, leaf_file = frames[-1]
        if "psycopg" in leaf_file and "wait" in leaf_name:
            waiting[owner] += samples
        else:
            python[owner] += samples
    if not total:
        return ["  (no samples)"]
    lines = [
        f"  {total} samples at {hz} Hz, idle included; share of the run's wall time:",
        "    inclusive  function",
    ]
    for key, samples in inclusive.most_common(top):
        lines.append(f"    {100 * samples / total:7.1f} %  {key}")
    lines.append("    by the project function nearest the leaf:   PostgreSQL  Python")
    for key in sorted(set(waiting) | set(python), key=lambda k: -(waiting[k] + python[k]))[:top]:
        lines.append(
            f"      {key[:44]:<44} {100 * waiting[key] / total:6.1f} %"
            f" {100 * python[key] / total:6.1f} %"
        )
    return lines
