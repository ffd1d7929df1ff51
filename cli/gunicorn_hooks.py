"""gunicorn server hooks, read by ``recon serve`` (``--config python:cli.gunicorn_hooks``).

Once a worker has loaded the app, everything it imported and built — Flask, SQLAlchemy,
Celery, pydantic: over 130,000 objects that live as long as the worker — is moved to the
garbage collector's permanent generation (``gc.freeze()``). A full collection then scans
only what requests have made since, where it walked them all: about 85 ms with the
worker serving nothing meanwhile, which an open-loop webhook load saw as latency spikes
of 100 ms every few seconds (docs/decisions.md, "Frozen start-up objects").
"""

from __future__ import annotations

import gc
from typing import Any


def post_worker_init(worker: Any) -> None:
    """After the worker loaded the app: leave its start-up objects out of collections."""
    gc.freeze()
