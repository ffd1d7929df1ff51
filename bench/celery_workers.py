"""The Celery workers of the event-processing bench, as child processes."""

from __future__ import annotations

import contextlib
from pathlib import Path

from environment import LoggedProcess

QUEUES = "webhooks,matching"


class CeleryWorker(LoggedProcess):
    """``celery worker`` (the argv ``recon worker`` runs) as a child; output to a log file."""

    def __init__(
        self, name: str, concurrency: int, log_path: Path, prefetch: int | None = None
    ) -> None:
        from cli.processes import worker_argv

        options = ["--hostname", f"{name}@%h"]
        if prefetch is not None:
            options += ["--prefetch-multiplier", str(prefetch)]
        super().__init__([*worker_argv(QUEUES, concurrency), *options], log_path)

    def pool_pids(self) -> list[int]:
        """The pids of its prefork pool processes."""
        import psutil

        with contextlib.suppress(psutil.Error):
            return [child.pid for child in psutil.Process(self.process.pid).children()]
        return []

    def problems(self) -> int:
        """Lines the worker logged at ERROR or above (or a traceback)."""
        self._log.flush()
        text = self.log_path.read_text(errors="replace")
        return sum(
            1
            for line in text.splitlines()
            if '"level": "error"' in line or '"level": "critical"' in line or "Traceback" in line
        )


def start_workers(layout: str, workdir: Path, prefetch: int | None) -> list[CeleryWorker]:
    """The two pool processes as one worker of two (``one-worker``) or two workers of one."""
    if layout == "one-worker":
        return [CeleryWorker("bench", 2, workdir / "worker.log", prefetch)]
    return [CeleryWorker(f"bench{n}", 1, workdir / f"worker{n}.log", prefetch) for n in (1, 2)]
