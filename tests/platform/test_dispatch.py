"""Task messages: Celery's own protocol, on the list the worker consumes, after commit."""

from __future__ import annotations

import base64
import json
import uuid

from shared.platform.dispatch import queue_of, send_now, task_message


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
