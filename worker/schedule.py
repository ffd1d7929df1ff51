"""Celery beat's schedule: periodic sweeps (and, later, the daily runs)."""

from __future__ import annotations

BEAT_SCHEDULE = {
    "sweep-pending-events": {
        "task": "worker.tasks.sweep_pending_events",
        "schedule": 60.0,
    },
    "sweep-grace-periods": {
        "task": "worker.tasks.sweep_grace_periods",
        "schedule": 60.0,
    },
}
