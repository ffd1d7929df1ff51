"""The console through Flask's test client: people who sign in the way a browser does."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page

from shared.access.console_sessions import SESSION_COOKIE
from tests.console.browser import DESKTOP, launch
from tests.support.factories import make_org
from tests.support.people import PASSWORD, make_person

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    """The CSRF token a page's forms carry."""
    match = _CSRF.search(html)
    assert match, "the page has no form with a CSRF token"
    return match.group(1)


def sign_in(client, email: str, password: str = PASSWORD, address: str | None = None):
    """Post the sign-in form as a browser would (its token from the page); the response."""
    page = client.get("/console/login")
    environ = {"REMOTE_ADDR": address or f"203.0.113.{uuid.uuid4().int % 250}"}
    return client.post(
        "/console/login",
        data={"email": email, "password": password, "csrf_token": csrf_of(page.text)},
        environ_base=environ,
    )


def post(client, path: str, data: dict, page: str | None = None):
    """Post ``data`` with the CSRF token of ``page`` (by default the page posted to)."""
    token = csrf_of(client.get(page or path).text)
    return client.post(path, data={"csrf_token": token, **data})


def session_cookie(client) -> str | None:
    cookie = client.get_cookie(SESSION_COOKIE, path="/")
    return cookie.value if cookie else None


@pytest.fixture
def org(session):
    return make_org(session)


@pytest.fixture
def signed_in(client, session, org):
    """``signed_in(role, name)``: a person of ``org`` signed in on ``client``; the person."""

    def sign(role: str = "manager", name: str = "Ana Lima"):
        person = make_person(session, org, role=role, name=name)
        response = sign_in(client, person.email)
        assert response.status_code == 303, response.text
        return person

    return sign


@pytest.fixture
def owner(signed_in):
    """An owner of ``org``, Olga Owner, signed in on ``client``."""
    return signed_in(role="owner", name="Olga Owner")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Chromium for one browser-test module."""
    yield from launch()


@pytest.fixture
def page(browser) -> Iterator[Page]:
    """A desktop-sized page in a fresh context."""
    context = browser.new_context(viewport=DESKTOP)
    yield context.new_page()
    context.close()
