"""Signing in and out, and setting a password from a one-time link."""

from __future__ import annotations

from flask import Response, redirect, render_template, request, url_for

from console.forms import LoginForm, SetPasswordForm, parse_form
from console.web import blueprint, current_session, safe_next, set_cookie
from shared.access.console_sessions import SESSION_COOKIE, end_session, sign_in
from shared.access.users import (
    InvalidCredentials,
    InvalidPasswordLink,
    person_of_link,
    set_password,
)
from shared.platform.db import unit_of_work
from shared.platform.errors import ValidationFailed
from shared.platform.rate_limits import TooManyAttempts


@blueprint.get("/login")
def login() -> str:
    """The sign-in form."""
    return render_template(
        "console/login.html",
        next=request.args.get("next"),
        notice=request.args.get("notice"),
    )


@blueprint.post("/login")
def login_submit() -> Response | tuple[str, int]:
    """Sign in: a new session id (a previous one ends), then the page asked for."""
    form = parse_form(LoginForm)
    try:
        with unit_of_work() as session:
            signed = sign_in(
                session=session,
                email=form.email,
                password=form.password,
                address=request.remote_addr or "unknown",
            )
    except (InvalidCredentials, TooManyAttempts) as refused:
        message = (
            "Wrong email or password."
            if isinstance(refused, InvalidCredentials)
            else "Too many failed sign-ins. Wait a few minutes, then try again."
        )
        page = render_template(
            "console/login.html", next=form.next, error=message, email=form.email
        )
        return page, refused.status
    end_session(request.cookies.get(SESSION_COOKIE))
    response = redirect(safe_next(form.next), code=303)
    set_cookie(response, SESSION_COOKIE, signed.session_id, path="/")
    return response


@blueprint.post("/logout")
def logout() -> Response:
    """End the session and forget its cookie."""
    end_session(request.cookies.get(SESSION_COOKIE) if current_session() else None)
    response = redirect(url_for("console.login", notice="You are signed out."), code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@blueprint.get("/set-password")
def set_password_page() -> tuple[str, int] | str:
    """The form a one-time link opens (or why the link no longer works)."""
    token = request.args.get("token", "")
    try:
        with unit_of_work() as session:
            user = person_of_link(session=session, token=token)
            name = user.name
    except InvalidPasswordLink as invalid:
        return render_template("console/set_password.html", invalid=invalid.detail), 400
    return render_template("console/set_password.html", token=token, name=name)


@blueprint.post("/set-password")
def set_password_submit() -> Response | tuple[str, int]:
    """Set the password (the link is then used up), then sign in with it."""
    form = parse_form(SetPasswordForm)
    try:
        if form.password != form.confirm:
            raise ValidationFailed("the two passwords differ")
        with unit_of_work() as session:
            set_password(session=session, token=form.token, password=form.password)
    except InvalidPasswordLink as invalid:
        return render_template("console/set_password.html", invalid=invalid.detail), 400
    except ValidationFailed as refused:
        page = render_template("console/set_password.html", token=form.token, error=refused.detail)
        return page, 422
    notice = "Your password is set. Sign in with it."
    return redirect(url_for("console.login", notice=notice), code=303)
