"""The daily endpoint's token: only the exact token, once, and guessing it is rate limited."""

from __future__ import annotations

import itertools

import pytest
from sqlalchemy import func, select

from shared.models import ReconciliationRun
from shared.platform.rate_limits import KEY_PREFIX
from tests.conftest import wait_until
from tests.support.checksums import database_checksum
from tests.support.factories import make_org
from tests.support.smtp import free_port

DAILY = "/billing/reconciliation/runs/daily"
TOKEN = "daily-token-for-the-tests-0123456789"
_addresses = (f"198.51.100.{number}" for number in itertools.count(1))


@pytest.fixture
def daily(session, override_settings, redis_client):
    """The token configured, two organisations, and no failure counted for anyone."""

    def forget_failures() -> None:
        for key in redis_client.scan_iter(f"{KEY_PREFIX}:*"):
            redis_client.delete(key)

    override_settings(RECONCILIATION_DAILY_TOKEN=TOKEN)
    make_org(session)
    make_org(session, timezone="Asia/Tokyo")
    forget_failures()
    yield
    forget_failures()


def call(client, *headers: tuple[str, str], address: str):
    """POST the daily endpoint from ``address`` with ``headers`` (a name may repeat)."""
    return client.post(DAILY, headers=list(headers), environ_base={"REMOTE_ADDR": address})


def token(value: str) -> tuple[str, str]:
    return ("x-reconciliation-token", value)


def assert_problem(response, status: int) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    assert response.json["status"] == status
    assert len(response.json["detail"]) >= 10
    return response.json


def runs(session) -> int:
    return session.scalar(select(func.count()).select_from(ReconciliationRun))


WRONG_TOKENS = {
    "missing": (),
    "empty": (token(""),),
    "wrong": (token("not-the-token"),),
    "one-character-more": (token(TOKEN + "0"),),
    "one-character-less": (token(TOKEN[:-1]),),
    "other-case": (token(TOKEN.upper()),),
    "padded": (token(f" {TOKEN} "),),
    "non-ascii": (token(TOKEN + "\u00e9"),),
    "sent-twice": (token(TOKEN), token(TOKEN)),
    "right-then-wrong": (token(TOKEN), token("nope")),
    "in-another-header": (("Authorization", f"Bearer {TOKEN}"),),
}


@pytest.mark.parametrize("case", WRONG_TOKENS)
def test_anything_but_the_token_sent_once_is_401_and_starts_nothing(
    client, session, daily, published_tasks, case
):
    session.flush()
    before = database_checksum(session)
    response = call(client, *WRONG_TOKENS[case], address=next(_addresses))
    assert_problem(response, 401)
    assert database_checksum(session) == before
    assert published_tasks == []


def test_the_right_token_twice_in_a_row_starts_the_runs_once(
    client, session, daily, published_tasks
):
    address = next(_addresses)
    first = call(client, token(TOKEN), address=address)
    assert first.status_code == 202, first.json
    assert first.json["started"] == runs(session) == 2
    queued = list(published_tasks)
    assert len(queued) == 2
    second = call(client, token(TOKEN), address=address)
    assert second.status_code == 200, second.json
    assert second.json["started"] == 0
    assert {run["id"] for run in second.json["runs"]} == {run["id"] for run in first.json["runs"]}
    assert runs(session) == 2
    assert published_tasks == queued


def block(client, override_settings, address: str, *, failures: int, window: int) -> None:
    """Set the limit, then send ``failures`` wrong tokens from ``address`` (each a 401)."""
    override_settings(
        DAILY_TOKEN_MAX_FAILURES=str(failures), DAILY_TOKEN_WINDOW_SECONDS=str(window)
    )
    for _ in range(failures):
        assert_problem(call(client, token("guess"), address=address), 401)


def test_after_too_many_wrong_tokens_even_the_right_one_is_429_until_the_window_ends(
    client, session, daily, override_settings, published_tasks
):
    address = next(_addresses)
    block(client, override_settings, address, failures=3, window=60)
    session.flush()
    before = database_checksum(session)
    for sent in ("guess", TOKEN):
        response = call(client, token(sent), address=address)
        problem = assert_problem(response, 429)
        assert problem["title"] == "Too many requests"
        assert 1 <= int(response.headers["Retry-After"]) <= 60
    assert database_checksum(session) == before
    assert published_tasks == []
    # Another client is not affected.
    assert call(client, token(TOKEN), address=next(_addresses)).status_code == 202


def test_a_blocked_client_is_let_in_again_once_the_window_has_passed(
    client, daily, override_settings
):
    address = next(_addresses)
    block(client, override_settings, address, failures=2, window=1)
    assert_problem(call(client, token(TOKEN), address=address), 429)
    wait_until(lambda: call(client, token(TOKEN), address=address).status_code == 202, timeout=5)


def test_the_counters_live_in_redis_shared_by_every_api_process(
    client, daily, override_settings, redis_client
):
    """Nothing is kept in the process: the count is Redis's, and without it the block is gone."""
    address = next(_addresses)
    block(client, override_settings, address, failures=2, window=60)
    [key] = redis_client.keys(f"{KEY_PREFIX}:*")
    assert key.decode().endswith(address)
    assert int(redis_client.get(key)) == 2
    assert 0 < redis_client.ttl(key) <= 60
    assert_problem(call(client, token(TOKEN), address=address), 429)
    redis_client.delete(key)
    assert call(client, token(TOKEN), address=address).status_code == 202


def test_with_redis_down_the_endpoint_fails_closed_with_503(
    client, session, daily, override_settings, published_tasks
):
    override_settings(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    session.flush()
    before = database_checksum(session)
    for sent in (TOKEN, "guess"):
        response = call(client, token(sent), address=next(_addresses))
        assert_problem(response, 503)
        assert response.headers["Retry-After"] == "5"
    assert database_checksum(session) == before
    assert published_tasks == []
