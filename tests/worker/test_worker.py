"""The Celery app: delivery guarantees, routing, and a real worker on real Redis."""

from __future__ import annotations

import gc
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine
from sqlalchemy.pool import Pool

from cli.processes import worker_argv
from shared.platform import db
from shared.platform.tasks import QUEUES, TASK_ROUTES
from worker.celery_app import (
    RUN_TIME_LIMIT_SECONDS,
    VISIBILITY_TIMEOUT_SECONDS,
    _fresh_pool_in_child,
    celery_app,
)


def test_tasks_are_acknowledged_late_and_requeued_if_the_worker_dies():
    conf = celery_app.conf
    assert conf.task_acks_late is True
    assert conf.task_reject_on_worker_lost is True
    assert conf.worker_prefetch_multiplier == 1
    assert conf.worker_cancel_long_running_tasks_on_connection_loss is True
    assert conf.worker_soft_shutdown_timeout > 0


def test_only_json_crosses_the_broker():
    conf = celery_app.conf
    assert conf.task_serializer == "json"
    assert list(conf.accept_content) == ["json"]


def test_visibility_timeout_outlasts_the_longest_task():
    transport = celery_app.conf.broker_transport_options
    assert transport["visibility_timeout"] == VISIBILITY_TIMEOUT_SECONDS
    assert VISIBILITY_TIMEOUT_SECONDS > RUN_TIME_LIMIT_SECONDS
    assert VISIBILITY_TIMEOUT_SECONDS > celery_app.conf.task_time_limit


def test_every_route_targets_a_declared_queue():
    declared = {queue.name for queue in celery_app.conf.task_queues}
    assert declared == set(QUEUES)
    assert {route["queue"] for route in TASK_ROUTES.values()} <= declared
    assert celery_app.conf.task_default_queue in declared


def test_every_registered_task_is_routed_to_a_declared_queue():
    celery_app.loader.import_default_modules()
    router = celery_app.amqp.router
    ours = [name for name in celery_app.tasks if name.startswith("worker.")]
    assert ours
    for name in ours:
        queue = router.route({}, name)["queue"].name
        assert queue in QUEUES, name


def test_every_queue_is_consumed_by_the_worker_command():
    argv = worker_argv(",".join(QUEUES), 1)
    consumed = set(argv[argv.index("--queues") + 1].split(","))
    assert consumed == set(QUEUES)


@contextmanager
def _as_a_forked_pool_process() -> Iterator[Pool]:
    """Run the pool process's start-up hook here; yield the pool it replaced, then undo."""
    inherited = db.get_engine().pool
    try:
        _fresh_pool_in_child()
        yield inherited
    finally:
        inherited.dispose()  # in a real child the parent owns these connections
        gc.unfreeze()


def test_forked_worker_processes_get_a_fresh_connection_pool(engine: Engine):
    with _as_a_forked_pool_process() as inherited:
        assert db.get_engine().pool is not inherited


def test_forked_worker_processes_freeze_what_they_inherited(engine: Engine):
    """No full collection in a pool process walks the objects loaded before the fork."""
    assert gc.get_freeze_count() == 0
    with _as_a_forked_pool_process():
        assert gc.get_freeze_count() > 10_000


def test_a_real_worker_runs_a_task_from_redis(committed, celery_worker):
    result = celery_app.send_task("worker.tasks.ping_database", task_id=str(uuid.uuid4()))
    celery_worker.wait_for_log(f"Task worker.tasks.ping_database[{result.id}] succeeded")
