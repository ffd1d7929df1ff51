"""``GET /metrics``: what the API and the worker record reaches one scrape, in Prometheus text.

Counters live in this test session's Redis database and accumulate across tests, so each
test compares a scrape after the action with one before it.
"""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import redis
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text
from sqlalchemy.dialects import postgresql

from shared.ingest.events import OLDEST_PENDING_AGE
from shared.platform import metrics
from shared.platform.db import unit_of_work
from shared.platform.dispatch import send_now
from shared.platform.metrics import FAMILIES, record_events
from shared.platform.tasks import RUN_PERIOD
from shared.runs.lifecycle import execute_run, trigger_run
from tests.conftest import TEST_REDIS_URL, WORKER_NUMBER, redis_url_numbered, wait_until
from tests.platform.test_health import unreachable_database  # noqa: F401 - fixture
from tests.support.factories import make_account, make_event, make_org, make_payment
from tests.support.signing import stripe_event, stripe_request

EXPOSITION_0_0_4 = "text/plain; version=0.0.4; charset=utf-8"
SCRAPE_GAUGES = ("recon_queue_depth", "recon_oldest_pending_event_age_seconds", "recon_up")


class Scrape:
    """One parsed ``GET /metrics``: every sample by name and labels."""

    def __init__(self, body: str) -> None:
        self.families = {family.name: family for family in text_string_to_metric_families(body)}
        self.samples = {
            (sample.name, frozenset(sample.labels.items())): sample.value
            for family in self.families.values()
            for sample in family.samples
        }

    def value(self, name: str, **labels: str) -> float:
        """The sample's value, 0 when the series does not exist yet."""
        return self.samples.get((name, frozenset(labels.items())), 0.0)


def scrape(client) -> Scrape:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == EXPOSITION_0_0_4
    return Scrape(response.get_data(as_text=True))


def post_stripe(client, account_id, body: bytes, headers: dict[str, str], **options):
    return client.post(
        f"/webhooks/stripe/{account_id}",
        data=body,
        headers=headers,
        content_type=options.pop("content_type", "application/json"),
    )


@pytest.fixture
def stripe_account(session):
    return make_account(session, make_org(session), "stripe")


def test_the_scrape_lists_every_family_and_both_dependencies_up(client, redis_client):
    result = scrape(client)
    # Counter families are named without their _total suffix by the parser.
    assert {family.name for family in FAMILIES} | set(SCRAPE_GAUGES) <= set(result.families)
    assert result.families["recon_webhook_deliveries"].type == "counter"
    assert result.families["recon_http_request_duration_seconds"].type == "histogram"
    assert result.value("recon_up", dependency="redis") == 1
    assert result.value("recon_up", dependency="database") == 1


def test_webhooks_are_counted_by_provider_outcome_and_reason(client, stripe_account):
    before = scrape(client)
    body, headers = stripe_request(stripe_event())
    assert post_stripe(client, stripe_account.id, body, headers).status_code == 200
    assert post_stripe(client, stripe_account.id, body, headers).status_code == 200
    forged = {"Stripe-Signature": headers["Stripe-Signature"].replace("v1=", "v1=00")}
    assert post_stripe(client, stripe_account.id, body, forged).status_code == 400
    assert post_stripe(client, uuid.uuid4(), body, headers).status_code == 404
    as_text = post_stripe(client, stripe_account.id, body, headers, content_type="text/plain")
    assert as_text.status_code == 415
    too_large = b"{" + b" " * 1_100_000 + b"}"
    assert post_stripe(client, stripe_account.id, too_large, headers).status_code == 413
    after = scrape(client)

    name = "recon_webhook_deliveries_total"
    expected = {
        ("accepted", "new"): 1,
        ("accepted", "duplicate"): 1,
        ("rejected", "invalid-signature"): 1,
        ("rejected", "not-found"): 1,
        ("rejected", "unsupported-media-type"): 1,
        ("rejected", "request-entity-too-large"): 1,
    }
    for (outcome, reason), count in expected.items():
        labels = {"provider": "stripe", "outcome": outcome, "reason": reason}
        assert after.value(name, **labels) - before.value(name, **labels) == count, labels


def test_request_latency_is_a_histogram_by_route_template_method_and_status(client):
    run_id = uuid.uuid4()
    before = scrape(client)
    for _ in range(3):
        assert client.get(f"/billing/reconciliation/runs/{run_id}/report").status_code == 401
    assert client.get(f"/nowhere/{run_id}").status_code == 404
    after = scrape(client)

    name = "recon_http_request_duration_seconds"
    labels = {
        "method": "GET",
        "route": "/billing/reconciliation/runs/<uuid:run_id>/report",
        "status": "401",
    }
    count = after.value(f"{name}_count", **labels) - before.value(f"{name}_count", **labels)
    assert count == 3
    buckets = [
        (sample.labels["le"], sample.value)
        for sample in after.families[name].samples
        if sample.name == f"{name}_bucket" and {key: sample.labels[key] for key in labels} == labels
    ]
    assert [le for le, _ in buckets][-1] == "+Inf"
    assert len(buckets) == 12
    assert [value for _, value in buckets] == sorted(value for _, value in buckets)
    assert buckets[-1][1] == after.value(f"{name}_count", **labels)
    assert after.value(f"{name}_sum", **labels) > 0
    # Concrete paths never become label values: unknown routes share one series.
    unmatched = {"method": "GET", "route": "unmatched", "status": "404"}
    assert after.value(f"{name}_count", **unmatched) - before.value(f"{name}_count", **unmatched)
    assert str(run_id) not in client.get("/metrics").get_data(as_text=True)


@pytest.fixture
def idle_broker(override_settings):
    """REDIS_URL on a database no test worker consumes, so queued messages stay put."""
    url = redis_url_numbered(1 + (WORKER_NUMBER + 7) % 15)
    client = redis.Redis.from_url(url)
    client.delete("runs")
    override_settings(REDIS_URL=url)
    yield client
    client.delete("runs")
    client.close()


def test_queue_depth_counts_the_messages_waiting_on_each_queue(client, idle_broker):
    before = scrape(client).value("recon_queue_depth", queue="runs")
    assert send_now(RUN_PERIOD, [str(uuid.uuid4()) for _ in range(3)]) == 3
    after = scrape(client)
    assert after.value("recon_queue_depth", queue="runs") - before == 3
    assert after.value("recon_queue_depth", queue="webhooks") == idle_broker.llen("webhooks")


def test_oldest_pending_event_age_is_the_age_of_the_oldest_pending_event(client, session):
    account = make_account(session, make_org(session))
    make_event(
        session, account, state="processed", received_at=datetime.now(UTC) - timedelta(hours=5)
    )
    make_event(
        session, account, state="pending", received_at=datetime.now(UTC) - timedelta(seconds=90)
    )
    make_event(
        session, account, state="pending", received_at=datetime.now(UTC) - timedelta(seconds=5)
    )
    age = scrape(client).value("recon_oldest_pending_event_age_seconds")
    assert 90 <= age < 150


def test_with_no_pending_event_the_age_is_zero(client, session):
    account = make_account(session, make_org(session))
    make_event(session, account, state="processed")
    assert scrape(client).value("recon_oldest_pending_event_age_seconds") == 0


def test_the_oldest_pending_query_reads_the_partial_index_not_the_table(session):
    """The age comes from the partial index of pending events, never from a table scan.

    The index holds pending events only; with statistics PostgreSQL reads its first entry
    (0.07 ms on 1,000,000 events, docs/decisions.md).
    """
    query = OLDEST_PENDING_AGE.compile(
        dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}
    )
    session.execute(text("SET LOCAL enable_seqscan = off"))
    plan = "\n".join(session.scalars(text(f"EXPLAIN {query}")))
    assert "Index Only Scan using ix_provider_events_pending" in plan
    assert "Seq Scan" not in plan
    assert "Sort" not in plan


def test_a_completed_run_reports_its_duration_and_the_discrepancies_it_opened(client, session):
    org = make_org(session, timezone="UTC")
    make_payment(session, org)  # succeeded, no provider record: MissingProviderRecord
    before = scrape(client)
    with unit_of_work() as work:
        yesterday = datetime.now(UTC).date() - timedelta(days=1)
        run = trigger_run(
            session=work, org_id=org.id, period_start=yesterday,
            period_end=datetime.now(UTC).date(), triggered_by="api",
        ).run  # fmt: skip
    later = datetime.now(UTC) + timedelta(hours=3)  # past the grace period
    with unit_of_work() as work:
        assert execute_run(session=work, run_id=run.id, now=later) == "completed"
    after = scrape(client)

    duration = "recon_run_duration_seconds"
    completed = {"status": "completed"}
    assert (
        after.value(f"{duration}_count", **completed)
        - before.value(f"{duration}_count", **completed)
        == 1
    )
    assert after.value(f"{duration}_bucket", le="1.0", **completed) >= 1
    opened = "recon_discrepancies_opened_total"
    kind = {"type": "MissingProviderRecord"}
    assert after.value(opened, **kind) - before.value(opened, **kind) == 1


def test_a_rolled_back_transaction_counts_nothing(client):
    before = scrape(client).value("recon_events_total", provider="adyen", outcome="ignored")
    with pytest.raises(RuntimeError), unit_of_work() as work:
        record_events("ignored", "adyen", session=work)
        raise RuntimeError("rolled back")
    with unit_of_work() as work:
        record_events("ignored", "adyen", 2, session=work)
    after = scrape(client).value("recon_events_total", provider="adyen", outcome="ignored")
    assert after - before == 2


def test_the_scrape_answers_while_redis_is_unreachable(client, override_settings):
    override_settings(REDIS_URL="redis://127.0.0.1:1/0")
    result = scrape(client)
    assert result.value("recon_up", dependency="redis") == 0
    assert result.value("recon_up", dependency="database") == 1
    assert "recon_oldest_pending_event_age_seconds" in result.families


def test_the_scrape_answers_while_the_database_is_unreachable(
    client,
    redis_client,
    unreachable_database,  # noqa: F811 - the imported fixture
):
    result = scrape(client)
    assert result.value("recon_up", dependency="database") == 0
    assert result.value("recon_up", dependency="redis") == 1


def test_counts_made_while_redis_is_down_are_kept_and_sent_later(
    client, stripe_account, override_settings, redis_client
):
    before = scrape(client)
    labels = {"provider": "stripe", "outcome": "rejected", "reason": "invalid-signature"}
    override_settings(REDIS_URL="redis://127.0.0.1:1/0")
    body, headers = stripe_request(stripe_event())
    forged = {"Stripe-Signature": headers["Stripe-Signature"].replace("v1=", "v1=00")}
    assert post_stripe(client, stripe_account.id, body, forged).status_code == 400
    metrics.flush()  # fails (or the background flush is failing at this very moment)
    override_settings(REDIS_URL=TEST_REDIS_URL)
    after = scrape(client)
    name = "recon_webhook_deliveries_total"
    assert after.value(name, **labels) - before.value(name, **labels) == 1


@pytest.fixture
def token(override_settings):
    override_settings(METRICS_TOKEN="scrape-token")
    return "scrape-token"


def test_a_flush_thread_that_died_is_started_again_by_the_next_recording(monkeypatch):
    buffer = metrics._Buffer()
    monkeypatch.setattr(metrics, "_buffer", buffer)
    dead = threading.Thread(target=lambda: None)
    dead.start()
    dead.join()
    buffer.thread = dead
    # A label set of its own, so that no other test's before/after scrape sees these.
    metrics.record_webhook("flush-thread-test", "accepted", "new")
    assert buffer.thread is not dead
    assert buffer.thread.is_alive()
    started = buffer.thread
    metrics.record_webhook("flush-thread-test", "accepted", "new")  # within the interval
    assert buffer.thread is started
    assert buffer.flush()


@pytest.mark.parametrize("authorization", [None, "Bearer wrong", "scrape-token"])
def test_with_a_metrics_token_other_callers_get_401(client, token, authorization):
    headers = {"Authorization": authorization} if authorization else {}
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 401
    assert response.mimetype == "application/problem+json"


def test_with_a_metrics_token_the_bearer_gets_the_metrics(client, token, redis_client):
    response = client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert response.headers["Content-Type"] == EXPOSITION_0_0_4


def test_the_route_is_documented_as_text_without_a_key(client):
    operation = client.get("/openapi.json").json["paths"]["/metrics"]["get"]
    assert set(operation["responses"]["200"]["content"]) == {"text/plain"}
    assert "401" in operation["responses"]  # with METRICS_TOKEN set
    assert "security" not in operation  # no API key: Prometheus has none


def test_what_the_real_worker_records_reaches_the_scrape(
    committed, committed_client, celery_worker
):
    with unit_of_work() as session:
        org = make_org(session)
        account = make_account(session, org, "stripe")
        make_payment(session, org, external_id="inv_metrics", amount_minor=3000)
    before = scrape(committed_client)
    event = stripe_event(metadata={"external_id": "inv_metrics"})  # charges 2500
    body, headers = stripe_request(event)
    assert post_stripe(committed_client, account.id, body, headers).status_code == 200

    processed = {"provider": "stripe", "outcome": "processed"}

    def worker_counted() -> Scrape | None:
        result = scrape(committed_client)
        done = result.value("recon_events_total", **processed) > before.value(
            "recon_events_total", **processed
        )
        return result if done else None

    after = wait_until(worker_counted, timeout=30, interval=0.5)
    assert (
        after.value("recon_events_total", **processed)
        - before.value("recon_events_total", **processed)
        == 1
    )
    opened = "recon_discrepancies_opened_total"
    mismatch = {"type": "AmountMismatch"}
    assert after.value(opened, **mismatch) - before.value(opened, **mismatch) == 1


def library_scrape(record) -> Scrape:
    """What prometheus_client's own Counter and Histogram expose for the same recordings
    (``_created`` left out: it is the time a series was created in one process)."""
    registry = CollectorRegistry()
    webhooks = Counter(
        metrics.WEBHOOKS.name, metrics.WEBHOOKS.documentation, metrics.WEBHOOKS.labels,
        registry=registry,
    )  # fmt: skip
    durations = Histogram(
        metrics.REQUEST_DURATION.name, metrics.REQUEST_DURATION.documentation,
        metrics.REQUEST_DURATION.labels, buckets=metrics.REQUEST_DURATION.buckets,
        registry=registry,
    )  # fmt: skip
    record(
        lambda *labels: webhooks.labels(*labels).inc(),
        lambda method, route, status, seconds: durations.labels(method, route, str(status)).observe(
            seconds
        ),
    )
    return Scrape(generate_latest(registry).decode())


def test_the_scrape_is_what_prometheus_clients_own_metrics_expose(client):
    """Pins our Redis aggregation to the library: the same recordings give the same
    families (name, type, help) and the same samples, bucket bounds and sums included."""
    reason, route = f"pin-{uuid.uuid4().hex}", f"/pin/{uuid.uuid4().hex}"

    def record(count, observe) -> None:
        for _ in range(3):
            count("stripe", "accepted", reason)
        count("adyen", "rejected", reason)
        for seconds in (0.001, 0.005, 0.0051, 0.25, 9.99, 10.0, 42.0):  # bounds, +Inf
            observe("POST", route, 200, seconds)

    record(metrics.record_webhook, metrics.observe_request_duration)
    ours = scrape(client)
    theirs = library_scrape(record)

    def pinned(result: Scrape) -> dict:
        return {
            key: value
            for key, value in result.samples.items()
            if not key[0].endswith("_created")
            and (("reason", reason) in key[1] or ("route", route) in key[1])
        }

    assert pinned(ours) == pinned(theirs)
    assert len(pinned(theirs)) == 2 + 12 + 2  # two counters, 12 buckets, _count and _sum
    for family in (metrics.WEBHOOKS, metrics.REQUEST_DURATION):
        mine, library = ours.families[family.name], theirs.families[family.name]
        assert (mine.type, mine.documentation) == (library.type, library.documentation)
