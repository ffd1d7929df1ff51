"""Task messages: Celery's own protocol, on the list the worker consumes, after commit."""

from __future__ import annotations

import base64
import json
import uuid

from celery import Celery
from kombu import Queue

from shared.platform.dispatch import queue_of, send_messages, send_now, task_message
from shared.platform.tasks import PROCESS_EVENT, routing_configuration
from tests.conftest import TEST_REDIS_URL


def test_messages_carry_celery_protocol_2_in_kombus_redis_envelope():
    payload, headers, body = task_message("worker.tasks.process_event", ["abc"])
    envelope = json.loads(payload)
    assert envelope["content-type"] == "application/json"
    assert envelope["properties"]["delivery_info"] == {"exchange": "", "routing_key": "webhooks"}
    assert envelope["properties"]["body_encoding"] == "base64"
    assert envelope["headers"]["task"] == "worker.tasks.process_event"
    assert envelope["headers"]["id"] == headers["id"]
    assert json.loads(base64.b64decode(envelope["body"]))[0] == ["abc"]
    assert body[0] == ["abc"]


def test_tasks_go_to_their_routed_queue():
    assert queue_of("worker.tasks.process_event") == "webhooks"
    assert queue_of("worker.tasks.sweep_pending_events") == "maintenance"


def test_a_batch_is_pushed_in_one_go_and_reported(redis_client, published_tasks):
    ids = [str(uuid.uuid4()) for _ in range(3)]
    assert send_now("worker.tasks.sweep_pending_events", ids) == 3
    assert [args for _, args in published_tasks] == [[identifier] for identifier in ids]


def test_a_broker_outage_is_reported_not_raised(override_settings, published_tasks):
    override_settings(REDIS_URL="redis://127.0.0.1:1/0")
    assert send_now("worker.tasks.process_event", ["abc"]) == 0
    assert published_tasks == []


# Per message (task id, kombu's delivery tag) or per publishing app (the reply queue of
# RPC results, which this service does not use): never the same twice, so not compared.
VARYING = {
    ("headers", "id"),
    ("headers", "root_id"),
    ("properties", "correlation_id"),
    ("properties", "delivery_tag"),
    ("properties", "reply_to"),
}


def fields_of(payload: bytes, queue: str) -> dict[tuple[str, ...], object]:
    """Every leaf of a Redis envelope by its path, the body decoded, the queue named QUEUE."""
    envelope = json.loads(payload)
    envelope["body"] = json.loads(base64.b64decode(envelope["body"]))
    info = envelope["properties"]["delivery_info"]
    assert info["routing_key"] == queue
    info["routing_key"] = "QUEUE"

    def leaves(value, path: tuple[str, ...]):
        if isinstance(value, dict) and value:
            for key, item in value.items():
                yield from leaves(item, (*path, key))
        else:
            yield path, value

    return {path: value for path, value in leaves(envelope, ()) if path not in VARYING}


def test_our_envelope_is_field_by_field_what_send_task_publishes(redis_client):
    """Pins the hand-built message to the installed Celery and kombu: an upgrade that
    changes the envelope or the protocol fails here (bench/dispatch.py says what it buys)."""
    # What the core would publish through Celery: an app with the service's routing and no
    # tasks (were the worker's tasks registered, Celery 5.7 would add their time limits,
    # which the worker applies anyway).
    app = Celery("recon", broker=TEST_REDIS_URL, set_as_current=False)
    app.conf.update(routing_configuration())
    capture = f"envelope-{uuid.uuid4().hex}"  # a queue no worker consumes
    app.send_task(PROCESS_EVENT, args=["abc"], queue=Queue(capture))
    theirs = redis_client.rpop(capture)
    ours, _, _ = task_message(PROCESS_EVENT, ["abc"], request_id=None)
    assert fields_of(ours, queue_of(PROCESS_EVENT)) == fields_of(theirs, capture)


def test_a_request_id_is_the_one_header_we_add(redis_client):
    plain, _, _ = task_message(PROCESS_EVENT, ["abc"])
    tagged, headers, _ = task_message(PROCESS_EVENT, ["abc"], request_id="req-1")
    queue = queue_of(PROCESS_EVENT)
    extra = set(fields_of(tagged, queue)) - set(fields_of(plain, queue))
    assert extra == {("headers", "request_id")}
    assert headers["request_id"] == "req-1"


def test_a_real_worker_runs_the_messages_we_push(committed, celery_worker):
    messages = [task_message("worker.tasks.ping_database", []) for _ in range(2)]
    assert send_messages("worker.tasks.ping_database", messages) == 2
    for _, headers, _ in messages:
        celery_worker.wait_for_log(f"Task worker.tasks.ping_database[{headers['id']}] succeeded")
