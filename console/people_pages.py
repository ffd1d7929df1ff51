"""The organisation's people (owners): who they are, adding one (their one-time link is
shown once, as ``recon user add`` prints it), a new link for someone, and disabling
someone (not yourself). A refusal is a message on the page, nothing changed."""

from __future__ import annotations

from flask import render_template, request
from sqlalchemy.orm import Session

from console.forms import parse_form
from console.owner_forms import EmailForm, PersonForm
from console.web import blueprint, page
from shared.access.api_keys import OWNER_ROLES, Caller
from shared.access.console_sessions import person_id
from shared.access.users import (
    PasswordLink,
    add_user,
    disable_user,
    issue_password_link,
    list_users,
)
from shared.models import ROLES
from shared.platform.errors import Conflict, NotFound, ValidationFailed

REFUSED = (ValidationFailed, Conflict, NotFound)


def render_people(
    session: Session,
    caller: Caller,
    *,
    link: PasswordLink | None = None,
    notice: str | None = None,
    error: str | None = None,
    values: dict[str, str] | None = None,
    status: int = 200,
) -> tuple[str, int]:
    """The people page: ``link`` (shown this once), ``notice`` or ``error`` on top, the
    people, and the add form holding ``values``."""
    html = render_template(
        "console/people.html",
        caller=caller,
        people=list_users(session=session, org_id=caller.org_id, include_disabled=True),
        me=person_id(caller),
        roles=ROLES,
        link=link,
        notice=notice,
        error=error,
        values=values or {},
    )
    return html, status


@blueprint.get("/people")
@page(roles=OWNER_ROLES)
def people(session: Session, caller: Caller) -> tuple[str, int]:
    """The organisation's people, disabled ones included, and the form that adds one."""
    return render_people(session, caller)


@blueprint.post("/people")
@page(roles=OWNER_ROLES)
def add_person(session: Session, caller: Caller) -> tuple[str, int]:
    """Add a person without a password; the page shows their one-time link once (201)."""
    try:
        with session.begin_nested():
            form = parse_form(PersonForm)
            link = add_user(
                session=session,
                org_id=caller.org_id,
                email=form.email,
                name=form.name,
                role=form.role,
            )
    except REFUSED as refused:
        values = request.form.to_dict()
        return render_people(
            session, caller, error=refused.detail, values=values, status=refused.status
        )
    return render_people(session, caller, link=link, status=201)


@blueprint.post("/people/password-link")
@page(roles=OWNER_ROLES)
def reset_link(session: Session, caller: Caller) -> tuple[str, int]:
    """A new one-time link for the person (older ones stop working), shown once."""
    try:
        with session.begin_nested():
            email = parse_form(EmailForm).email
            link = issue_password_link(session=session, org_id=caller.org_id, email=email)
    except REFUSED as refused:
        return render_people(session, caller, error=refused.detail, status=refused.status)
    return render_people(session, caller, link=link)


@blueprint.post("/people/disable")
@page(roles=OWNER_ROLES)
def disable_person(session: Session, caller: Caller) -> tuple[str, int]:
    """Stop the person signing in (their sessions end at their next request); nobody
    disables themselves."""
    try:
        with session.begin_nested():
            email = parse_form(EmailForm).email
            user = disable_user(
                session=session, org_id=caller.org_id, email=email, by_user_id=person_id(caller)
            )
    except REFUSED as refused:
        return render_people(session, caller, error=refused.detail, status=refused.status)
    return render_people(session, caller, notice=f"{user.name} can no longer sign in.")
