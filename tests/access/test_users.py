"""People of an organisation: adding, one-time password links, disabling, signing in."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from cli.main import cli
from shared.access.users import (
    InvalidCredentials,
    InvalidPasswordLink,
    add_user,
    check_password,
    disable_user,
    issue_password_link,
    list_users,
    set_password,
    token_digest,
)
from shared.models import PasswordToken, User
from shared.platform.errors import Conflict, NotFound, ValidationFailed
from tests.support.factories import make_org

PASSWORD = "correct horse battery"


def token_of(url: str) -> str:
    return parse_qs(urlsplit(url).query)["token"][0]


def test_a_person_is_added_without_a_password_and_the_link_stores_only_its_hash(session):
    org = make_org(session)
    link = add_user(
        session=session, org_id=org.id, email=" Ana@Example.COM ", name="Ana", role="manager"
    )
    assert link.url.startswith("http://127.0.0.1:8000/console/set-password?token=")
    user = session.get(User, link.user.id)
    assert (user.email, user.name, user.role, user.password_hash) == (
        "ana@example.com", "Ana", "manager", None,
    )  # fmt: skip
    stored = session.scalars(select(PasswordToken)).one()
    assert stored.token_hash == token_digest(token_of(link.url))
    assert token_of(link.url) not in stored.token_hash


def test_email_is_unique_per_organisation_whatever_its_case(session):
    org, other = make_org(session), make_org(session)
    add_user(session=session, org_id=org.id, email="ana@example.com", name="Ana", role="viewer")
    with pytest.raises(Conflict):
        add_user(session=session, org_id=org.id, email="ANA@example.com", name="A", role="viewer")
    add_user(session=session, org_id=other.id, email="ana@example.com", name="Ana", role="owner")
    assert session.scalars(select(User.org_id).where(User.email == "ana@example.com")).all()


@pytest.mark.parametrize(
    ("email", "name", "role"),
    [("not-an-email", "Ana", "viewer"), ("a@b.co", "", "viewer"), ("a@b.co", "Ana", "admin"),
     ("a@b.co", "Ana\nEvil", "viewer")],
)  # fmt: skip
def test_bad_people_are_refused(session, email, name, role):
    org = make_org(session)
    with pytest.raises(ValidationFailed):
        add_user(session=session, org_id=org.id, email=email, name=name, role=role)


def test_the_link_sets_the_password_once_and_the_person_can_sign_in(session):
    org = make_org(session)
    link = add_user(
        session=session, org_id=org.id, email="ana@example.com", name="Ana", role="owner"
    )
    with pytest.raises(InvalidCredentials):
        check_password(session=session, email="ana@example.com", password=PASSWORD)
    set_password(session=session, token=token_of(link.url), password=PASSWORD)
    assert session.get(User, link.user.id).password_hash.startswith("$argon2id$")
    assert check_password(session=session, email="ANA@example.com", password=PASSWORD).id == (
        link.user.id
    )
    with pytest.raises(InvalidPasswordLink):
        set_password(session=session, token=token_of(link.url), password="another long one")


def test_a_short_password_is_refused_and_the_link_still_works(session):
    org = make_org(session)
    link = add_user(
        session=session, org_id=org.id, email="ana@example.com", name="Ana", role="owner"
    )
    with pytest.raises(ValidationFailed, match="12 to"):
        set_password(session=session, token=token_of(link.url), password="short")
    set_password(session=session, token=token_of(link.url), password=PASSWORD)


def test_an_expired_or_unknown_link_is_refused(session):
    org = make_org(session)
    link = add_user(
        session=session, org_id=org.id, email="ana@example.com", name="Ana", role="owner"
    )
    stored = session.scalars(select(PasswordToken)).one()
    stored.expires_at = datetime.now(UTC) - timedelta(seconds=1)
    session.flush()
    for token in (token_of(link.url), "made-up"):
        with pytest.raises(InvalidPasswordLink):
            set_password(session=session, token=token, password=PASSWORD)


def test_a_reset_link_replaces_the_earlier_one(session):
    org = make_org(session)
    first = add_user(
        session=session, org_id=org.id, email="ana@example.com", name="Ana", role="owner"
    )
    second = issue_password_link(session=session, org_id=org.id, email="Ana@example.com")
    with pytest.raises(InvalidPasswordLink):
        set_password(session=session, token=token_of(first.url), password=PASSWORD)
    set_password(session=session, token=token_of(second.url), password=PASSWORD)


def test_a_wrong_password_an_unknown_email_and_a_disabled_person_get_one_answer(session):
    org = make_org(session)
    link = add_user(
        session=session, org_id=org.id, email="ana@example.com", name="Ana", role="owner"
    )
    set_password(session=session, token=token_of(link.url), password=PASSWORD)
    answers = []
    for email, password in (("ana@example.com", "wrong password!"), ("bob@example.com", PASSWORD)):
        with pytest.raises(InvalidCredentials) as refused:
            check_password(session=session, email=email, password=password)
        answers.append(refused.value.detail)
    disable_user(session=session, org_id=org.id, email="ana@example.com")
    with pytest.raises(InvalidCredentials) as refused:
        check_password(session=session, email="ana@example.com", password=PASSWORD)
    assert {*answers, refused.value.detail} == {"wrong email or password"}


def test_disabling_uses_up_the_person_s_links(session):
    org = make_org(session)
    link = add_user(
        session=session, org_id=org.id, email="ana@example.com", name="Ana", role="owner"
    )
    disable_user(session=session, org_id=org.id, email="ana@example.com")
    with pytest.raises(InvalidPasswordLink):
        set_password(session=session, token=token_of(link.url), password=PASSWORD)
    with pytest.raises(Conflict):
        issue_password_link(session=session, org_id=org.id, email="ana@example.com")


def test_another_organisation_s_person_is_not_found(session):
    org, other = make_org(session), make_org(session)
    add_user(session=session, org_id=org.id, email="ana@example.com", name="Ana", role="owner")
    with pytest.raises(NotFound):
        disable_user(session=session, org_id=other.id, email="ana@example.com")


def test_nobody_disables_themselves_but_may_disable_another(session):
    org = make_org(session)
    ana = add_user(session=session, org_id=org.id, email="ana@example.com", name="Ana",
                   role="owner").user  # fmt: skip
    bo = add_user(session=session, org_id=org.id, email="bo@example.com", name="Bo",
                  role="owner").user  # fmt: skip
    with pytest.raises(Conflict, match="you cannot disable yourself"):
        disable_user(session=session, org_id=org.id, email="ANA@example.com", by_user_id=ana.id)
    assert ana.disabled_at is None
    disable_user(session=session, org_id=org.id, email="bo@example.com", by_user_id=ana.id)
    assert bo.disabled_at is not None


def test_the_people_listed_are_those_who_may_sign_in_unless_the_disabled_are_asked_for(session):
    org = make_org(session)
    for email, name in (("bo@example.com", "Bo"), ("ana@example.com", "Ana")):
        add_user(session=session, org_id=org.id, email=email, name=name, role="viewer")
    disable_user(session=session, org_id=org.id, email="bo@example.com")
    add_user(session=session, org_id=make_org(session).id, email="cy@example.com", name="Cy",
             role="viewer")  # fmt: skip
    assert [user.name for user in list_users(session=session, org_id=org.id)] == ["Ana"]
    everyone = list_users(session=session, org_id=org.id, include_disabled=True)
    assert [user.name for user in everyone] == ["Ana", "Bo"]


# --- recon user ---------------------------------------------------------------------


def invoke(*args: str):
    return CliRunner().invoke(cli, ["user", *args], catch_exceptions=False)


def test_recon_user_add_prints_a_link_that_sets_the_password(session):
    org = make_org(session)
    result = invoke(
        "add", "--org", str(org.id), "--email", "ana@example.com", "--name", "Ana Lima",
        "--role", "manager", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    user = set_password(session=session, token=token_of(printed["link"]), password=PASSWORD)
    assert (str(user.id), user.name, user.role) == (printed["id"], "Ana Lima", "manager")


def test_recon_user_reset_password_and_disable(session):
    org = make_org(session)
    add_user(session=session, org_id=org.id, email="ana@example.com", name="Ana", role="owner")
    reset = invoke("reset-password", "--org", str(org.id), "--email", "ana@example.com")
    assert reset.exit_code == 0, reset.output
    assert "link: http://127.0.0.1:8000/console/set-password?token=" in reset.stdout
    disabled = invoke("disable", "--org", str(org.id), "--email", "ana@example.com")
    assert disabled.stdout.strip() == "disabled ana@example.com"
    assert session.scalars(select(User)).one().disabled_at is not None


def test_recon_user_add_reports_a_duplicate_in_one_line(session):
    org = make_org(session)
    add_user(session=session, org_id=org.id, email="ana@example.com", name="Ana", role="owner")
    result = CliRunner().invoke(
        cli,
        ["user", "add", "--org", str(org.id), "--email", "ANA@example.com", "--name", "A",
         "--role", "viewer"],
    )  # fmt: skip
    assert result.exit_code == 1
    assert "already has a person with email ana@example.com" in result.output


def test_an_unknown_email_costs_one_argon2_check_like_a_wrong_password(session, monkeypatch):
    import shared.access.users as users

    org = make_org(session)
    link = add_user(
        session=session, org_id=org.id, email="ana@example.com", name="Ana", role="owner"
    )
    set_password(session=session, token=token_of(link.url), password=PASSWORD)
    checked: list[str] = []
    real_verify = users._verify
    monkeypatch.setattr(
        users, "_verify", lambda hash_, pw: checked.append(hash_) or real_verify(hash_, pw)
    )
    for email in ("ana@example.com", "nobody@example.com", "not an email"):
        with pytest.raises(InvalidCredentials):
            check_password(session=session, email=email, password="wrong password!")
    assert len(checked) == 3
    assert all(hash_.startswith("$argon2id$") for hash_ in checked)
