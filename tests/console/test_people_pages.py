"""The People page through the test client: the organisation's people, adding one whose
one-time link is shown once and works, a new link, disabling someone (not oneself); each
refusal a message on the page with nothing changed."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from shared.access.users import add_user
from shared.models import User
from tests.console.conftest import csrf_of, post, sign_in
from tests.support.checksums import database_checksum
from tests.support.factories import make_org
from tests.support.people import link_token, make_person

PEOPLE = "/console/people"


def test_the_people_page_lists_everyone_with_their_state(client, session, org, owner):
    colleague = make_person(session, org, role="viewer", name="Vic Viewer")
    add_user(session=session, org_id=org.id, email="nia@example.com", name="Nia New",
             role="manager")  # fmt: skip
    gone = make_person(session, org, name="Gus Gone")
    gone.disabled_at = gone.created_at
    make_person(session, make_org(session), name="Stranger Somewhere")
    session.flush()
    page = client.get(PEOPLE).text
    rows = {row.split("<td>")[1].split("<")[0].strip(): row for row in page.split("<tr")[2:]}
    assert set(rows) == {"Olga Owner", "Vic Viewer", "Nia New", "Gus Gone"}
    assert "(you)" in rows["Olga Owner"]
    assert "Disable Olga Owner" not in rows["Olga Owner"]  # nobody disables themselves here
    assert colleague.email in rows["Vic Viewer"]
    assert ">active<" in rows["Vic Viewer"]
    assert "no password yet" in rows["Nia New"]
    assert "disabled" in rows["Gus Gone"]
    assert "<form" not in rows["Gus Gone"]


def test_an_owner_adds_a_person_whose_link_sets_their_password(client, session, org, owner):
    response = post(client, PEOPLE, {"email": "Bo@Example.com", "name": "Bo Chen",
                                     "role": "manager"})  # fmt: skip
    assert response.status_code == 201
    person = session.scalars(select(User).where(User.email == "bo@example.com")).one()
    assert (person.org_id, person.name, person.role, person.password_hash) == (
        org.id, "Bo Chen", "manager", None,
    )  # fmt: skip
    section = response.text.split('id="link-title"')[1].split("</section>")[0]
    url = section.split('<code class="long">')[1].split("<")[0].replace("&amp;", "&")
    assert url.startswith("http://127.0.0.1:8000/console/set-password?token=")
    assert "Send it to bo@example.com" in section
    assert "shown this once" in section
    assert "set-password?token=" not in client.get(PEOPLE).text  # once only
    link = client.get(url.removeprefix("http://127.0.0.1:8000"))
    assert "Welcome, Bo Chen" in link.text
    data = {"token": link_token(url), "password": "bo's long password", "confirm":
            "bo's long password", "csrf_token": csrf_of(link.text)}  # fmt: skip
    assert client.post("/console/set-password", data=data).status_code == 303
    assert sign_in(client, "bo@example.com", password="bo's long password").status_code == 303


@pytest.mark.parametrize(
    ("fields", "status", "message"),
    [
        ({"email": "OLGA", "name": "Olga", "role": "viewer"}, 422, "email must be an e-mail"),
        ({"email": "x@example.com", "name": "", "role": "viewer"}, 422, "name must be 1 to 200"),
        ({"email": "x@example.com", "name": "X", "role": "admin"}, 422, "role must be one of"),
        ({"email": "x@example.com", "name": "X\x1b[2J", "role": "viewer"}, 422,
         "must not contain control characters"),
        ({"email": "DUP", "name": "Twin", "role": "viewer"}, 409,
         "already has a person with email"),
    ],
)  # fmt: skip
def test_a_refused_person_is_a_message_and_nobody_is_added(
    client, session, org, owner, fields, status, message
):
    fields = fields | {"email": owner.email.upper()} if fields["email"] == "DUP" else fields
    before = database_checksum(session)
    response = post(client, PEOPLE, fields)
    assert response.status_code == status
    assert "Nothing was changed:" in response.text
    assert message in response.text
    assert database_checksum(session) == before


def test_a_new_link_replaces_the_old_one(client, session, org, owner):
    first = add_user(session=session, org_id=org.id, email="nia@example.com", name="Nia New",
                     role="viewer")  # fmt: skip
    response = post(client, "/console/people/password-link", {"email": "nia@example.com"},
                    page=PEOPLE)  # fmt: skip
    assert response.status_code == 200
    assert "The one-time link for Nia New" in response.text
    assert client.get(f"/console/set-password?token={link_token(first.url)}").status_code == 400


def test_an_owner_disables_a_person_who_is_signed_out_at_once(app, client, session, org, owner):
    colleague = make_person(session, org, name="Vic Viewer", role="viewer")
    theirs = app.test_client()
    assert sign_in(theirs, colleague.email).status_code == 303
    assert theirs.get("/console/").status_code == 200
    response = post(client, "/console/people/disable", {"email": colleague.email}, page=PEOPLE)
    assert response.status_code == 200
    assert "Vic Viewer can no longer sign in." in response.text
    session.refresh(colleague)
    assert colleague.disabled_at is not None
    assert theirs.get("/console/").status_code == 303  # back to the sign-in page
    assert sign_in(theirs, colleague.email).status_code == 401


@pytest.mark.parametrize(
    ("path", "email", "status", "message"),
    [
        ("/console/people/disable", "ME", 409, "you cannot disable yourself"),
        ("/console/people/disable", "nobody@example.com", 404, "no person with email"),
        ("/console/people/disable", "FOREIGN", 404, "no person with email"),
        ("/console/people/disable", "", 422, "email: Field required"),
        ("/console/people/password-link", "FOREIGN", 404, "no person with email"),
        ("/console/people/password-link", "GONE", 409, "is disabled"),
    ],
)
def test_a_refused_people_action_is_a_message_and_changes_nothing(
    client, session, org, owner, path, email, status, message
):
    gone = make_person(session, org, name="Gus Gone")
    gone.disabled_at = gone.created_at
    foreign = make_person(session, make_org(session), name="Stranger")
    email = {"ME": owner.email, "FOREIGN": foreign.email, "GONE": gone.email}.get(email, email)
    before = database_checksum(session)
    response = post(client, path, {"email": email}, page=PEOPLE)
    assert response.status_code == status
    assert "Nothing was changed:" in response.text
    assert message in response.text
    assert database_checksum(session) == before
    session.refresh(owner)
    assert owner.disabled_at is None
