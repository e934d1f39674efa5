"""Who is asking: logging in and out, the staff's sessions, the device cookie, and the check that every staff
page and action makes before anything else."""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import wraps
from urllib.parse import urlsplit

from flask import Blueprint, abort, current_app, g, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from itsdangerous import BadSignature, URLSafeSerializer

from distributor import users
from distributor.web.site import site

auth = Blueprint("auth", __name__)


# -- who is asking --------------------------------------------------------------------------------------------------
def load_user() -> None:
    """Before every request: the staff member whose live session this is, or None."""
    g.user = None
    token = session.get("token")
    s = site()
    if token:
        with s.engine.begin() as conn:
            g.user = users.session_user(conn, token, s.clock.now(), s.config.web)
        if g.user is None:
            session.clear()


def require_login() -> ResponseReturnValue | None:
    """Before every staff page and action: a visitor who has not logged in is sent to the login page."""
    if g.user is None:
        return redirect(url_for("auth.login", next=request.script_root + request.full_path
                                if request.method == "GET" else None))
    return None


def editor(view):
    """Editors only: a manager's POST is refused (403)."""
    @wraps(view)
    def wrapped(*args, **kwargs):
        if not g.user.editor:
            abort(403)
        return view(*args, **kwargs)
    return wrapped


# -- logging in ------------------------------------------------------------------------------------------------------
DEVICE_COOKIE = "distributor_device"
DEVICE_DAYS = 30


def safe_next(target: str | None) -> str:
    """Only a path on this site: never an open redirect, never a header broken by a control character."""
    if (not target or not target.startswith("/") or target.startswith("//") or "\\" in target
            or any(ord(c) < 32 or ord(c) == 127 for c in target) or urlsplit(target).netloc):
        return url_for("pages.statements_page")
    return target


def devices() -> URLSafeSerializer:
    return URLSafeSerializer(site().key, salt="distributor-device")


def known_device(name: str) -> bool:
    """Whether this browser carries the device cookie that a login of this user set in the last 30 days."""
    try:
        found = devices().loads(request.cookies.get(DEVICE_COOKIE, ""))
        issued = datetime.fromisoformat(found["at"])
    except (BadSignature, KeyError, TypeError, ValueError):
        return False
    return found.get("user") == name and site().clock.now() - issued <= timedelta(days=DEVICE_DAYS)


@auth.route("/login", methods=["GET", "POST"])
def login():
    s = site()
    if request.method == "POST":
        name = request.form.get("username", "")
        user = users.authenticate(s.engine, name, request.form.get("password", ""), request.remote_addr or "-",
                                  s.clock.now(), s.config.web, known_device=known_device(name.strip()))
        if user is None:
            return render_template("login.html", failed=True), 401
        target = safe_next(request.args.get("next"))
        with s.engine.begin() as conn:
            token = users.start_session(conn, user, s.clock.now())
        session.clear()
        session["token"] = token
        session.permanent = True
        response = redirect(target)
        response.set_cookie(DEVICE_COOKIE, devices().dumps({"user": user.name, "at": s.clock.now().isoformat()}),
                            max_age=DEVICE_DAYS * 86400, path=current_app.config["APPLICATION_ROOT"],
                            secure=current_app.config["SESSION_COOKIE_SECURE"], httponly=True, samesite="Lax")
        return response
    return render_template("login.html", failed=False)


@auth.route("/logout", methods=["POST"])
def logout():
    s = site()
    with s.engine.begin() as conn:
        users.end_session(conn, session.get("token", ""), s.clock.now())
    session.clear()
    return redirect(url_for("auth.login"))
