"""Names of the Celery tasks that ``shared`` queues (the worker defines them)."""

PROCESS_EVENT = "worker.tasks.process_event"
MATCH_PAYMENT = "worker.tasks.match_payment"
RUN_PERIOD = "worker.tasks.run_period"
