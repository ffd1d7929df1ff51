"""Queue names and task routing, importable without building the Celery app."""

QUEUES = ("webhooks", "matching", "runs", "maintenance")

TASK_ROUTES = {
    "worker.tasks.process_event": {"queue": "webhooks"},
    "worker.tasks.match_payment": {"queue": "matching"},
    "worker.tasks.run_period": {"queue": "runs"},
    "worker.tasks.*": {"queue": "maintenance"},
}
