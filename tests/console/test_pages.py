"""The console's pages through the test client: sign-in, the queue, a discrepancy's page
and its actions, CSRF, roles, other organisations, and the security headers."""

from __future__ import annotations

import csv
import io
import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from shared.access.console_sessions import SESSION_COOKIE
from shared.access.users import add_user
from shared.models import (
    DISCREPANCY_PROVIDERS,
    ReconciliationActionLog,
    ReconciliationDiscrepancy,
)
from tests.console.conftest import csrf_of, session_cookie, sign_in
from tests.discrepancies.factories import make_discrepancy, make_record
from tests.discrepancies.providers import discrepancies_by_provider
from tests.support.factories import make_account, make_event, make_org, make_payment
from tests.support.people import link_token

QUEUE = "/console/"


def detail_path(discrepancy) -> str:
    return f"/console/discrepancies/{discrepancy.id}"


def test_signed_out_pages_lead_to_the_sign_in_page(client, session):
    response = client.get(QUEUE + "?severity=high")
    assert response.status_code == 303
    assert response.location.startswith("/console/login?next=")


def test_signing_in_gives_a_new_session_id_and_goes_where_asked(client, session, org):
    from tests.support.people import make_person

    person = make_person(session, org)
    client.set_cookie(SESSION_COOKIE, "planted-by-an-attacker", path="/")
    page = client.get("/console/login")
    response = client.post(
        "/console/login",
        data={"email": person.email, "password": "correct horse battery",
              "csrf_token": csrf_of(page.text), "next": "/console/?severity=high"},
    )  # fmt: skip
    assert response.status_code == 303
    assert response.location == "/console/?severity=high"
    cookie = response.headers.getlist("Set-Cookie")[0]
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert "Secure" not in cookie
    assert session_cookie(client) not in (None, "planted-by-an-attacker")


def test_the_session_cookie_is_secure_when_the_setting_says_so(
    client, session, org, override_settings
):
    from tests.support.people import make_person

    override_settings(CONSOLE_SECURE_COOKIES="true")
    response = sign_in(client, make_person(session, org).email)
    assert "Secure" in response.headers.getlist("Set-Cookie")[0]


def test_an_outside_next_address_is_ignored(client, session, org):
    from tests.support.people import make_person

    person = make_person(session, org)
    page = client.get("/console/login")
    response = client.post(
        "/console/login",
        data={"email": person.email, "password": "correct horse battery",
              "csrf_token": csrf_of(page.text), "next": "https://evil.example/console/"},
    )  # fmt: skip
    assert response.location == "/console/"


def test_a_wrong_password_and_an_unknown_email_get_the_same_page(client, session, org):
    from tests.support.people import make_person

    person = make_person(session, org)
    wrong = sign_in(client, person.email, password="not the password")
    unknown = sign_in(client, "nobody@example.com")
    assert wrong.status_code == unknown.status_code == 401
    assert "Wrong email or password." in wrong.text
    assert wrong.text.replace(person.email, "") == unknown.text.replace("nobody@example.com", "")


def test_sign_in_without_its_csrf_token_is_refused(client, session, org):
    from tests.support.people import make_person

    person = make_person(session, org)
    client.get("/console/login")
    response = client.post(
        "/console/login", data={"email": person.email, "password": "correct horse battery"}
    )
    assert response.status_code == 403
    assert session_cookie(client) is None


def test_the_set_password_link_sets_it_once(client, session, org):
    link = add_user(
        session=session, org_id=org.id, email="bo@example.com", name="Bo", role="viewer"
    )
    path = f"/console/set-password?token={link_token(link.url)}"
    page = client.get(path)
    assert "Welcome, Bo" in page.text
    data = {"token": link_token(link.url), "password": "a long new password",
            "confirm": "a long new password", "csrf_token": csrf_of(page.text)}  # fmt: skip
    assert client.post("/console/set-password", data=data).status_code == 303
    assert sign_in(client, "bo@example.com", password="a long new password").status_code == 303
    again = client.get(path)
    assert again.status_code == 400
    assert "used or has expired" in again.text


def test_the_queue_lists_unresolved_discrepancies_with_filters(client, session, org, signed_in):
    signed_in()
    high = make_discrepancy(session, org, severity="high", amount_minor=12_345)
    make_discrepancy(session, org, severity="low")
    make_discrepancy(session, org, status="resolved", resolution="other", resolution_reason="x")
    page = client.get(QUEUE)
    assert page.status_code == 200
    assert page.text.count("/console/discrepancies/") == 2
    filtered = client.get(QUEUE + "?severity=high&currency=eur&min_amount=100&max_amount=123.45")
    assert filtered.text.count("/console/discrepancies/") == 1
    assert f"/console/discrepancies/{high.id}" in filtered.text
    assert "123.45 EUR" in filtered.text


def test_an_amount_filter_without_a_currency_is_a_message_not_an_error(client, session, signed_in):
    signed_in()
    page = client.get(QUEUE + "?min_amount=10")
    assert page.status_code == 422
    assert "choose a currency to filter by amount" in page.text


@pytest.mark.parametrize("provider", DISCREPANCY_PROVIDERS)
def test_the_queue_its_ageing_and_its_export_filter_by_provider(
    client, session, org, signed_in, provider
):
    signed_in()
    wanted = {str(key) for key in discrepancies_by_provider(session, org).get(provider, ())}
    page = client.get(QUEUE + f"?provider={provider}&size=500")
    assert set(re.findall(r"/console/discrepancies/([0-9a-f-]{36})", page.text)) == wanted
    assert f'<option value="{provider}" selected>' in page.text
    ageing = section(page.text, "ageing-title")
    assert sum(bucket_count(ageing, label) for label in ("0-1", "2-7", "8-30", "31+")) == len(
        wanted
    )
    exported = client.get(f"/console/queue.csv?provider={provider}")
    assert {row["id"] for row in csv.DictReader(io.StringIO(exported.text))} == wanted


def test_an_unknown_provider_is_a_message_not_an_error(client, session, signed_in):
    signed_in()
    page = client.get(QUEUE + "?provider=visa")
    assert page.status_code == 422
    assert 'role="alert"' in page.text
    assert "the filters are invalid: provider:" in page.text


def test_the_queue_pages_with_a_cursor(client, session, org, signed_in):
    signed_in()
    for _ in range(51):
        make_discrepancy(session, org)
    first = client.get(QUEUE)
    assert first.text.count("/console/discrepancies/") == 50
    assert 'rel="next"' in first.text
    next_link = first.text.split('rel="next"')[0].rsplit('href="', 1)[1].split('"')[0]
    second = client.get(next_link.replace("&amp;", "&"))
    assert second.text.count("/console/discrepancies/") == 1


def test_the_export_is_the_current_filter_as_csv(client, session, org, signed_in):
    signed_in()
    make_discrepancy(session, org, severity="high")
    low = make_discrepancy(session, org, severity="low")
    make_discrepancy(session, make_org(session), severity="low")  # another organisation's
    response = client.get("/console/queue.csv?severity=low")
    assert response.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [row["id"] for row in rows] == [str(low.id)]


def test_the_detail_compares_both_sides_and_masks_event_secrets(client, session, org, signed_in):
    signed_in()
    record = make_record(session, org, amount_minor=2_400)
    payment = make_payment(session, org, amount_minor=2_500, currency="EUR",
                           provider_reference=record.provider_reference)  # fmt: skip
    account = make_account(session, org)
    make_event(session, account, payload={"data": {"object": {
        "id": record.provider_reference, "client_secret": "pi_secret_do_not_show"}}})  # fmt: skip
    discrepancy = make_discrepancy(
        session, org, payment_id=payment.id, provider_record_id=record.id
    )
    page = client.get(detail_path(discrepancy))
    assert page.status_code == 200
    amount_row = page.text.split("Amount <span")[0].rsplit("<tr", 1)[1]
    assert 'class="differs"' in amount_row
    assert "payment_intent.succeeded" in page.text
    assert "pi_secret_do_not_show" not in page.text
    assert "[hidden]" in page.text


def act(client, discrepancy, action: str, **fields):
    page = client.get(detail_path(discrepancy))
    data = {"csrf_token": csrf_of(page.text), "version": discrepancy.version, **fields}
    return client.post(f"{detail_path(discrepancy)}/{action}", data=data)


def test_a_manager_acts_and_the_log_names_the_person(client, session, org, signed_in):
    person = signed_in(name="Ana Lima")
    colleague = signed_in(name="Bo Chen")  # now Bo is the one signed in
    discrepancy = make_discrepancy(session, org)
    assert act(client, discrepancy, "acknowledge").status_code == 303
    session.refresh(discrepancy)
    assert act(client, discrepancy, "assign", email=person.email).status_code == 303
    session.refresh(discrepancy)
    assert act(client, discrepancy, "notes", note="Asked the bank.").status_code == 303
    session.refresh(discrepancy)
    resolved = act(client, discrepancy, "resolve", resolution="timing_difference",
                   reason="Settled next day")  # fmt: skip
    assert resolved.status_code == 303
    entries = session.scalars(
        select(ReconciliationActionLog)
        .where(ReconciliationActionLog.discrepancy_id == discrepancy.id)
        .order_by(ReconciliationActionLog.created_at)
    ).all()
    assert [e.action for e in entries] == [
        "opened", "acknowledged", "assigned", "note_added", "resolved",
    ]  # fmt: skip
    assert {(e.actor, e.actor_name) for e in entries[1:]} == {(f"user:{colleague.id}", "Bo Chen")}
    page = client.get(detail_path(discrepancy))
    assert "Bo Chen" in page.text
    assert "Asked the bank." in page.text


def test_a_stale_version_is_a_clear_message(client, session, org, signed_in):
    signed_in()
    discrepancy = make_discrepancy(session, org)
    page = client.get(detail_path(discrepancy))
    token = csrf_of(page.text)
    first = client.post(f"{detail_path(discrepancy)}/notes",
                        data={"csrf_token": token, "version": 1, "note": "one"})  # fmt: skip
    assert first.status_code == 303
    stale = client.post(f"{detail_path(discrepancy)}/notes",
                        data={"csrf_token": token, "version": 1, "note": "two"})  # fmt: skip
    assert stale.status_code == 412
    assert "Someone changed this discrepancy while you were reading it" in stale.text
    notes = session.scalars(
        select(ReconciliationActionLog).where(ReconciliationActionLog.action == "note_added")
    ).all()
    assert len(notes) == 1


def test_assigning_to_someone_outside_the_organisation_is_refused(client, session, org, signed_in):
    signed_in()
    discrepancy = make_discrepancy(session, org)
    response = act(client, discrepancy, "assign", email="stranger@example.com")
    assert response.status_code == 422
    assert "assign to a person of your organisation" in response.text


def test_a_post_without_its_csrf_token_is_refused(client, session, org, signed_in):
    signed_in()
    discrepancy = make_discrepancy(session, org)
    for data in ({"version": 1}, {"version": 1, "csrf_token": "forged"}):
        response = client.post(f"{detail_path(discrepancy)}/acknowledge", data=data)
        assert response.status_code == 403
    assert session.get(ReconciliationDiscrepancy, discrepancy.id).status == "open"


def test_a_viewer_sees_no_action_and_a_forged_post_is_a_403_page(client, session, org, signed_in):
    signed_in(role="viewer")
    discrepancy = make_discrepancy(session, org)
    page = client.get(detail_path(discrepancy))
    assert page.status_code == 200
    assert "/acknowledge" not in page.text
    assert "Actions" not in page.text
    forged = client.post(
        f"{detail_path(discrepancy)}/acknowledge",
        data={"csrf_token": csrf_of(page.text), "version": 1},
    )
    assert forged.status_code == 403
    assert forged.mimetype == "text/html"
    assert session.get(ReconciliationDiscrepancy, discrepancy.id).status == "open"


def test_another_organisation_s_discrepancy_is_a_404_page(client, session, org, signed_in):
    signed_in()
    foreign = make_discrepancy(session, make_org(session))
    for path in (detail_path(foreign), f"/console/discrepancies/{uuid.uuid4()}"):
        response = client.get(path)
        assert response.status_code == 404
        assert response.mimetype == "text/html"
    page = client.get(QUEUE)
    response = client.post(
        f"{detail_path(foreign)}/acknowledge", data={"csrf_token": csrf_of(page.text), "version": 1}
    )
    assert response.status_code == 404
    assert session.get(ReconciliationDiscrepancy, foreign.id).status == "open"


def test_signing_out_ends_the_session(client, session, signed_in):
    signed_in()
    before = session_cookie(client)
    page = client.get(QUEUE)
    response = client.post("/console/logout", data={"csrf_token": csrf_of(page.text)})
    assert response.status_code == 303
    client.set_cookie(SESSION_COOKIE, before, path="/")
    assert client.get(QUEUE).status_code == 303  # the old id no longer works


@pytest.mark.parametrize("path", ["/console/login", "/console/static/console.css"])
def test_every_console_response_forbids_framing_and_inline_code(client, session, path):
    response = client.get(path)
    response.close()  # a static file is sent from an open file
    policy = response.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy
    assert "script-src" not in policy  # default-src 'none': no script at all
    assert response.headers["X-Frame-Options"] == "DENY"


# --- the queue's ageing summary and bulk actions ------------------------------------------


def test_the_queue_shows_the_ageing_of_its_filter_and_each_bucket_lists_what_it_counts(
    client, session, org, signed_in
):
    signed_in()
    now = datetime.now(UTC)
    young = make_discrepancy(session, org, opened_at=now - timedelta(minutes=5), amount_minor=1_050)
    make_discrepancy(session, org, opened_at=now - timedelta(days=4), amount_minor=700,
                     currency="USD", severity="low")  # fmt: skip
    old = make_discrepancy(session, org, opened_at=now - timedelta(days=90), amount_minor=99)
    page = client.get(QUEUE)
    ageing = section(page.text, "ageing-title")
    assert [bucket_count(ageing, label) for label in ("0-1", "2-7", "8-30", "31+")] == [1, 1, 0, 1]
    assert "10.50 EUR" in ageing
    assert "7.00 USD" in ageing
    high = section(client.get(QUEUE + "?severity=high").text, "ageing-title")
    assert [bucket_count(high, label) for label in ("0-1", "2-7", "8-30", "31+")] == [1, 0, 0, 1]
    assert "USD" not in high
    youngest = client.get(QUEUE + "?age=0-1")
    assert youngest.text.count("/console/discrepancies/") == 1
    assert f"/console/discrepancies/{young.id}" in youngest.text
    oldest = client.get(QUEUE + "?age=31%2B")
    assert f"/console/discrepancies/{old.id}" in oldest.text
    assert oldest.text.count("/console/discrepancies/") == 1


def section(html: str, heading_id: str) -> str:
    return html.split(f'id="{heading_id}"')[1].split("</section>")[0]


def bucket_count(ageing: str, label: str) -> int:
    after = ageing.split(f'<span class="bucket">{label} days</span>')[1]
    return int(after.split('<span class="count">')[1].split("<")[0])


def bulk_post(client, rows, **fields):
    """Tick ``rows`` (at the versions they have now) on the queue and apply ``fields``."""
    page = client.get(QUEUE)
    data = {"csrf_token": csrf_of(page.text), "back": "/console/?severity=high", **fields,
            "selected": [f"{row.id}:{row.version}" for row in rows]}  # fmt: skip
    return client.post("/console/bulk", data=data)


def test_a_manager_bulk_resolves_the_ticked_rows_and_sees_those_refused(
    client, session, org, signed_in
):
    person = signed_in(name="Ana Lima")
    first, second, stale = (make_discrepancy(session, org) for _ in range(3))
    foreign = make_discrepancy(session, make_org(session))
    page = client.get(QUEUE)
    assert f'value="{first.id}:{first.version}"' in page.text
    stale_seen = f"{stale.id}:{stale.version}"
    stale.assignee = "someone"
    stale.version += 1
    session.flush()
    ticked = [f"{first.id}:1", f"{second.id}:1", stale_seen, f"{foreign.id}:1"]
    data = {"csrf_token": csrf_of(page.text), "action": "resolve", "reason": "Bank confirmed",
            "resolution": "timing_difference", "back": "/console/?severity=high",
            "selected": ticked}  # fmt: skip
    response = client.post("/console/bulk", data=data)
    assert response.status_code == 200
    assert "Resolve: 2 changed, 2 refused." in response.text
    assert "precondition-failed" in response.text
    assert "not-found" in response.text
    assert 'href="/console/?severity=high"' in response.text
    for row, status in ((first, "resolved"), (second, "resolved"), (stale, "open"),
                        (foreign, "open")):  # fmt: skip
        session.refresh(row)
        assert row.status == status
    entry = session.scalars(
        select(ReconciliationActionLog).where(
            ReconciliationActionLog.discrepancy_id == first.id,
            ReconciliationActionLog.action == "resolved",
        )
    ).one()
    assert (entry.actor, entry.actor_name) == (f"user:{person.id}", "Ana Lima")
    assert entry.payload["reason"] == "Bank confirmed"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"action": "acknowledge", "reason": ""}, "reason"),
        ({"action": "assign", "reason": "Mine"}, "assign needs an assignee"),
        ({"action": "launch", "reason": "x"}, "action"),
    ],
)
def test_a_bulk_form_wrong_for_every_row_changes_nothing(
    client, session, org, signed_in, fields, message
):
    signed_in()
    row = make_discrepancy(session, org)
    response = bulk_post(client, [row], **fields)
    assert response.status_code == 422
    assert "Nothing was changed" in response.text
    assert message in response.text
    session.refresh(row)
    assert (row.status, row.assignee, row.version) == ("open", None, 1)


def test_a_malformed_ticked_row_is_a_message(client, session, org, signed_in):
    signed_in()
    page = client.get(QUEUE)
    for bad in ("-" * 36, "not-a-row", f"{uuid.uuid4()}:v2"):
        response = client.post("/console/bulk", data={
            "csrf_token": csrf_of(page.text), "action": "acknowledge", "reason": "x",
            "selected": [bad]})  # fmt: skip
        assert response.status_code == 422, bad
        assert "Nothing was changed" in response.text


def test_no_ticked_row_is_a_message(client, session, org, signed_in):
    signed_in()
    response = bulk_post(client, [], action="acknowledge", reason="x")
    assert response.status_code == 422
    assert "name at least one discrepancy" in response.text


def test_bulk_assign_to_a_colleague(client, session, org, signed_in):
    colleague = signed_in(name="Bo Chen")
    signed_in(name="Ana Lima")
    rows = [make_discrepancy(session, org) for _ in range(2)]
    response = bulk_post(client, rows, action="assign", reason="Hers", assignee=colleague.email)
    assert "Assign: 2 changed, 0 refused." in response.text
    for row in rows:
        session.refresh(row)
        assert row.assignee == colleague.email


def test_a_viewer_sees_no_bulk_form_and_a_forged_bulk_post_is_a_403_page(
    client, session, org, signed_in
):
    signed_in(role="viewer")
    row = make_discrepancy(session, org)
    page = client.get(QUEUE)
    assert page.status_code == 200
    assert "/console/bulk" not in page.text
    assert 'name="selected"' not in page.text
    response = client.post("/console/bulk", data={
        "csrf_token": csrf_of(page.text), "action": "acknowledge", "reason": "x",
        "selected": [f"{row.id}:1"]})  # fmt: skip
    assert response.status_code == 403
    session.refresh(row)
    assert row.status == "open"


def test_a_bulk_post_without_its_csrf_token_is_refused(client, session, org, signed_in):
    signed_in()
    row = make_discrepancy(session, org)
    response = client.post("/console/bulk", data={"action": "acknowledge", "reason": "x",
                                                  "selected": [f"{row.id}:1"]})  # fmt: skip
    assert response.status_code == 403
    session.refresh(row)
    assert row.status == "open"
