"""Celery beat's schedule: the maintenance sweeps and, hourly, the daily runs that are due.

Every scheduled task is safe to fire twice (two beat processes): runs are guarded by
the one-active-run index and the "day already run" check, sweeps are idempotent.
"""

from __future__ import annotations

from celery.schedules import crontab

BEAT_SCHEDULE = {
    "sweep-pending-events": {
        "task": "worker.tasks.sweep_pending_events",
        "schedule": 60.0,
    },
    "sweep-pending-payment-matches": {
        "task": "worker.tasks.sweep_pending_payment_matches",
        "schedule": 60.0,
    },
    "sweep-grace-periods": {
        "task": "worker.tasks.sweep_grace_periods",
        "schedule": 60.0,
    },
    "bank-payouts": {
        "task": "worker.tasks.sweep_bank_payouts",
        "schedule": crontab(hour=6, minute=15),
    },
    "daily-runs": {
        "task": "worker.tasks.schedule_daily_runs",
        "schedule": crontab(minute=5),
    },
}
