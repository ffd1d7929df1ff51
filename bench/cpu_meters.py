"""CPU seconds of the process groups a bench exercises, and how busy they kept the cores.

PostgreSQL counts only the bench database's backends and the server's own processes
(WAL writing, checkpoints: the bench's work too), not other databases' backends: the
server may be shared with other benches and test runs.
"""

from __future__ import annotations

import contextlib
import os
import resource
import time
from collections.abc import Iterator

# PostgreSQL's own processes: their work (WAL writing, checkpoints) is the bench's too.
POSTGRES_SERVER_PROCESSES = ("checkpointer", "background writer", "walwriter", "autovacuum")


def serves_database(cmdline: list[str] | None, database: str | None) -> bool:
    """A process to count: not a postgres backend of a database other than ``database``
    (every process when ``database`` is None)."""
    title = " ".join(cmdline or [])
    if database is None or not title.startswith("postgres:"):
        return True  # every process, or the postmaster
    return f" {database} " in title or any(name in title for name in POSTGRES_SERVER_PROCESSES)


class CpuMeter:
    """CPU seconds used by the client, the gunicorn processes, PostgreSQL and Redis.

    The client is this process and the children it has waited for (wrk). With
    ``database``, PostgreSQL counts only that database's backends and the server's own
    processes.
    """

    def __init__(self, server_pid: int, database: str | None = None) -> None:
        self.database = database
        try:
            import psutil
        except ImportError:  # psutil is a dev dependency; without it, no CPU line
            self.psutil = None
            return
        self.psutil = psutil
        self.server = psutil.Process(server_pid)

    def _seconds(self, processes: Iterator) -> float:
        total = 0.0
        for process in processes:
            with contextlib.suppress(self.psutil.Error):
                times = process.cpu_times()
                total += times.user + times.system
        return total

    def _database_and_redis(self) -> dict[str, float]:
        by_name: dict[str, list] = {"postgres": [], "redis-server": []}
        for process in self.psutil.process_iter(["name", "cmdline"]):
            name = process.info["name"] or ""
            if name == "postgres" and not serves_database(process.info["cmdline"], self.database):
                continue
            if name in by_name:
                by_name[name].append(process)
        return {
            "postgres": self._seconds(iter(by_name["postgres"])),
            "redis": self._seconds(iter(by_name["redis-server"])),
        }

    def snapshot(self) -> dict[str, float] | None:
        """CPU seconds so far by group; None without psutil."""
        if self.psutil is None:
            return None
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        return {
            "client": time.process_time() + children.ru_utime + children.ru_stime,
            "gunicorn": self._seconds(iter([self.server, *self.server.children(recursive=True)])),
            **self._database_and_redis(),
        }

    @staticmethod
    def describe(before: dict | None, after: dict | None, elapsed: float, requests: int) -> str:
        """Cores busy and CPU ms per request of each group between two snapshots."""
        if before is None or after is None or elapsed <= 0 or requests <= 0:
            return ""
        busy = ", ".join(f"{name} {(after[name] - before[name]) / elapsed:.2f}" for name in before)
        per_request = ", ".join(
            f"{name} {(after[name] - before[name]) / requests * 1000:.3f}" for name in before
        )
        return f"  cores busy: {busy} (of {os.cpu_count()})\n  CPU ms per request: {per_request}"


class GroupMeter(CpuMeter):
    """CPU seconds of named process groups, PostgreSQL, Redis and this client process."""

    def __init__(self, database: str) -> None:
        self.groups: dict[str, tuple[list, str]] = {}
        self.database = database
        try:
            import psutil
        except ImportError:
            self.psutil = None
            return
        self.psutil = psutil

    def watch(self, name: str, pids: list[int], part: str = "tree") -> None:
        """Count ``pids`` as ``name``: each with its descendants (``tree``), alone
        (``root``), or only their descendants (``children``)."""
        if self.psutil is not None:
            self.groups[name] = ([self.psutil.Process(pid) for pid in pids], part)

    def _members(self, roots: list, part: str) -> list:
        members = []
        for root in roots:
            if part != "children":
                members.append(root)
            if part != "root":
                with contextlib.suppress(self.psutil.Error):
                    members += root.children(recursive=True)
        return members

    def snapshot(self) -> dict[str, float] | None:
        """CPU seconds so far: this process, each watched group, PostgreSQL and Redis."""
        if self.psutil is None:
            return None
        seconds = {"client": time.process_time()}
        for name, (roots, part) in self.groups.items():
            seconds[name] = self._seconds(iter(self._members(roots, part)))
        return seconds | self._database_and_redis()

    @staticmethod
    def describe(
        before: dict | None, after: dict | None, elapsed: float, events: int, unit: str = "event"
    ) -> str:
        """Cores busy, and CPU ms per ``unit`` of each group but the client."""
        if before is None or after is None or elapsed <= 0 or events <= 0:
            return ""
        busy = ", ".join(f"{name} {(after[name] - before[name]) / elapsed:.2f}" for name in before)
        per_event = ", ".join(
            f"{name} {(after[name] - before[name]) / events * 1000:.2f}"
            for name in before
            if name != "client"
        )
        return f"  cores busy: {busy} (of {os.cpu_count()})\n  CPU ms per {unit}: {per_event}"
