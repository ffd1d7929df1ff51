"""People who can sign in to the console, made the way the CLI makes them."""

from __future__ import annotations

import uuid
from urllib.parse import parse_qs, urlsplit

from sqlalchemy.orm import Session

from shared.access.users import add_user, set_password
from shared.models import Organization, User

PASSWORD = "correct horse battery"


def link_token(url: str) -> str:
    """The token of a one-time password link."""
    return parse_qs(urlsplit(url).query)["token"][0]


def make_person(
    session: Session,
    org: Organization,
    *,
    role: str = "manager",
    name: str = "Ana Lima",
    email: str | None = None,
    password: str = PASSWORD,
) -> User:
    """A person of ``org`` with ``password`` set through their one-time link."""
    email = email or f"{role}-{uuid.uuid4().hex[:8]}@example.com"
    link = add_user(session=session, org_id=org.id, email=email, name=name, role=role)
    return set_password(session=session, token=link_token(link.url), password=password)
