"""The pages and the actions. Reading goes through ``web.queries``; acting through ``distributor.operations`` and the
workflow, exactly as the command line does, with the logged-in user as the actor."""

from __future__ import annotations

import io
import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import wraps
from pathlib import Path
from tempfile import TemporaryDirectory
from urllib.parse import urlsplit

from flask import Blueprint, Flask, Response, abort, current_app, flash, g, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_wtf.csrf import CSRFError
from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy.engine import Engine

from distributor import channels as channel_registry
from distributor import csvout, deliveries, operations, recipients, status, unsubscribe, users, workflow
from distributor.clock import Clock, iso_z
from distributor.config import Config
from distributor.errors import InputError, UserError, checked_text
from distributor.render import when
from distributor.statements import parse_file
from distributor.statements.model import StatementStatus
from distributor.statements.times import parse_instant
from distributor.store import reading
from distributor.web import queries

log = logging.getLogger("distributor.web")
pages = Blueprint("pages", __name__)
ID = re.compile(r"[a-z0-9][a-z0-9-]{0,79}")
PUBLIC = {"pages.login", "pages.unsubscribe_page", "pages.unsubscribe_post"}
EMBARGOED_STATES = {StatementStatus.DRAFT.value, StatementStatus.APPROVED.value, StatementStatus.SCHEDULED.value,
                    StatementStatus.WITHDRAWN.value}


@dataclass
class Site:
    config: Config
    engine: Engine
    clock: Clock
    key: str

    @property
    def ops(self) -> operations.App:
        return operations.App(self.config, self.engine, self.clock)


def site() -> Site:
    return current_app.extensions["distributor"]


# -- who is asking --------------------------------------------------------------------------------------------------
@pages.before_app_request
def load_user() -> ResponseReturnValue | None:
    g.user = None
    token = session.get("token")
    s = site()
    if token:
        with s.engine.begin() as conn:
            g.user = users.session_user(conn, token, s.clock.now(), s.config.web)
        if g.user is None:
            session.clear()
    if g.user is None and request.endpoint not in PUBLIC:
        return redirect(url_for("pages.login", next=request.script_root + request.full_path
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


def register_errors(app: Flask) -> None:
    @app.errorhandler(CSRFError)
    def csrf_failed(error):
        return render_template("error.html", code=400, message="The form had expired or was not ours; try again."), 400

    for code, message in ((403, "Only an editor may do that."), (404, "There is nothing here."),
                          (413, "That file is too large (at most 5 MB).")):
        app.register_error_handler(code, lambda e, c=code, m=message: (render_template(
            "error.html", code=c, message=m), c))


def protective_headers(response: Response) -> Response:
    """No page is framed by another site's (a decoy click would act here), sniffed, or kept by any cache; the
    email preview alone may be framed, by the statement page."""
    framed_here = request.endpoint == "pages.email_preview"
    policy = response.headers.get("Content-Security-Policy") or (
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; frame-src 'self'; form-action 'self'; "
        "base-uri 'none'")
    ancestors = "'self'" if framed_here else "'none'"
    response.headers["Content-Security-Policy"] = f"{policy}; frame-ancestors {ancestors}"
    response.headers["X-Frame-Options"] = "SAMEORIGIN" if framed_here else "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["Cache-Control"] = "no-store"
    return response


@pages.app_context_processor
def common() -> dict:
    s = site()
    return {"user": g.get("user"), "office": s.config.office, "iso_z": iso_z,
            "local": lambda t: when(t, s.config.office.timezone) if t else "-"}


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


@pages.route("/login", methods=["GET", "POST"])
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


@pages.route("/logout", methods=["POST"])
def logout():
    s = site()
    with s.engine.begin() as conn:
        users.end_session(conn, session.get("token", ""), s.clock.now())
    session.clear()
    return redirect(url_for("pages.login"))


# -- reading ---------------------------------------------------------------------------------------------------------
def day(value: str | None, field: str) -> datetime | None:
    if not value:
        return None
    try:
        return parse_instant(f"{value} 00:00 {site().config.office.timezone.key}")
    except ValueError:
        abort(404)
        raise AssertionError(field) from None


def page_number() -> int:
    try:
        return max(1, min(int(request.args.get("page", "1")), 100_000))
    except ValueError:
        return 1


@pages.route("/")
def statements_page():
    s = site()
    wanted = request.args.get("status") or None
    if wanted and wanted not in {st.value for st in StatementStatus}:
        wanted = None
    since, until = day(request.args.get("from"), "from"), day(request.args.get("to"), "to")
    with reading(s.engine) as conn:
        rows, total = queries.statements_page(conn, wanted, since, until + timedelta(days=1) if until else None,
                                              page_number())
    return render_template("statements.html", rows=rows, total=total, page=page_number(), pages=queries.PAGE,
                           statuses=[st.value for st in StatementStatus], wanted=wanted,
                           statuses_of_deliveries=queries.STATUSES,
                           since=request.args.get("from", ""), until=request.args.get("to", ""))


def statement_or_404(conn, statement_id: str) -> dict:
    if not ID.fullmatch(statement_id):
        abort(404)
    try:
        return workflow.get(conn, statement_id)
    except UserError:
        abort(404)
        raise


@pages.route("/statements/<statement_id>")
def statement_page(statement_id: str):
    s = site()
    wanted = request.args.get("status") or None
    if wanted not in (None, *queries.STATUSES):
        wanted = None
    search = (request.args.get("q") or "").replace("\x00", "").strip()[:200] or None
    email = s.config.channels.get("email")
    lists = (email.list, *email.release_lists) if email else ()
    with reading(s.engine) as conn:
        row = statement_or_404(conn, statement_id)
        shown = row["published_revision"] or row["revision"]
        document = workflow.content(conn, statement_id, shown)
        counts = queries.channel_counts(conn, [statement_id]).get(statement_id, {})
        events = queries.timeline(conn, statement_id)
        failed = queries.failures(conn, statement_id)
        people, total = queries.recipient_rows(conn, statement_id, wanted, search, page_number())
        missing = queries.left_out(conn, statement_id, lists, row["status"]) if lists else []
    previews = {}
    for name in ("mastodon", "bluesky"):
        if name in s.config.channels:
            try:
                previews[name] = operations.preview(s.ops, statement_id, name, "released")[0]
            except (UserError, ValueError) as exc:  # ValueError: a link longer than the network's limit
                previews[name] = f"(no preview: {exc})"
    return render_template("statement.html", row=row, document=document, counts=counts, events=events,
                           failed=failed, people=people, total=total, page=page_number(), pages=queries.PAGE,
                           wanted=wanted, search=search or "", missing=missing, previews=previews,
                           statuses=queries.STATUSES, channels=list(s.config.channels))


@pages.route("/statements/<statement_id>/email.html")
def email_preview(statement_id: str):
    """The HTML part of the email, for the sandboxed frame on the statement page: no script, no network."""
    s = site()
    with reading(s.engine) as conn:
        statement_or_404(conn, statement_id)
    try:
        html = operations.preview(s.ops, statement_id, "email", form="html")[0]
    except UserError as exc:
        html = f"<p>No preview: {exc}</p>"
    response = Response(html, mimetype="text/html")
    response.headers["Content-Security-Policy"] = "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:"
    return response


@pages.route("/statements/<statement_id>/deliveries.csv")
def deliveries_csv(statement_id: str):
    s = site()
    out = io.StringIO()
    with reading(s.engine) as conn:
        statement_or_404(conn, statement_id)
        csvout.write(out, [*operations.LOG_FIELDS, "after_lift"],
                     (operations.log_record(r) for r in deliveries.log_rows(conn, statement_id)))
    return Response(out.getvalue(), mimetype="text/csv", headers={
        "Content-Disposition": f'attachment; filename="{statement_id}-deliveries.csv"'})


@pages.route("/recipients/<path:address>")
def recipient_page(address: str):
    s = site()
    if "\x00" in address or len(address) > 320:
        abort(404)
    with reading(s.engine) as conn:
        history = queries.recipient_history(conn, address)
        lists = queries.memberships(conn, address)
        suppressed = bool(recipients.is_suppressed(conn, [address]))
    if not history and not lists:
        abort(404)
    return render_template("recipient.html", address=address, history=history, lists=lists, suppressed=suppressed)


@pages.route("/audit")
def audit_page():
    s = site()
    with reading(s.engine) as conn:
        rows, total = queries.audit_page(conn, page_number())
    return render_template("audit.html", rows=rows, total=total, page=page_number(), pages=queries.PAGE * 2)


@pages.route("/status")
def status_page():
    s = site()
    with reading(s.engine) as conn:
        found = status.report(conn, s.clock.now(), s.config.delivery)
    return render_template("status.html", found=found), 200


# -- acting (editors) ------------------------------------------------------------------------------------------------
def text(name: str, required: bool = False) -> str | None:
    value = checked_text((request.form.get(name) or "").strip(), name, 1000)
    if required and not value:
        raise InputError(f"{name} is required", where=name)
    return value or None


def instant(name: str, required: bool = False) -> datetime | None:
    value = text(name, required)
    if value is None:
        return None
    try:
        return parse_instant(value)
    except ValueError as exc:
        raise InputError(str(exc), where=name) from None


def act(statement_id: str, what, done):
    """Run an action in one transaction; a refusal is shown on the statement page, as the CLI's one line. ``done``
    says what happened: a text, or a function of what the action returned."""
    s = site()
    try:
        with s.engine.begin() as conn:
            result = what(conn, g.user.name, s.clock.now())
    except UserError as exc:
        flash(str(exc), "error")
    else:
        flash(done(result) if callable(done) else done, "ok")
    return redirect(url_for("pages.statement_page", statement_id=statement_id))


@pages.route("/statements/<statement_id>/approve", methods=["POST"])
@editor
def approve(statement_id: str):
    four_eyes = site().config.office.four_eyes
    return act(statement_id, lambda conn, by, at: workflow.approve(conn, statement_id, by, at, four_eyes=four_eyes),
               "approved")


@pages.route("/statements/<statement_id>/schedule", methods=["POST"])
@editor
def schedule(statement_id: str):
    def run(conn, by, at):
        operations.schedule(site().ops, conn, statement_id, by, embargo=instant("embargo"),
                            send_embargoed_at=instant("send_embargoed_at"), channels=text("channels"),
                            override_embargo=bool(request.form.get("override_embargo")), reason=text("reason"))
    return act(statement_id, run, "scheduled")


@pages.route("/statements/<statement_id>/reschedule", methods=["POST"])
@editor
def reschedule(statement_id: str):
    def run(conn, by, at):
        embargo = instant("embargo", required=True)
        assert embargo is not None
        row = operations.reschedule(site().ops, conn, statement_id, by, embargo=embargo,
                                    reason=text("reason", required=True) or "", note=text("note"))
        held = len(deliveries.holders(conn, statement_id, row["generation"]))
        return f"embargo moved to {when(row['embargo'])}; " + (
            f"{workflow.journalists(held)} holding the embargoed copy will be told" if held
            else "nobody holds the embargoed copy, so nobody is told")
    return act(statement_id, run, lambda said: said)


@pages.route("/statements/<statement_id>/<action>", methods=["POST"])
@editor
def notice_action(statement_id: str, action: str):
    calls = {"withdraw": lambda conn, by, at: workflow.withdraw(conn, statement_id, by, at,
                                                                text("reason", required=True) or "", text("note")),
             "correct": lambda conn, by, at: workflow.correct(conn, statement_id, by, at,
                                                              reason=text("reason", required=True) or "",
                                                              note=text("note")),
             "retract": lambda conn, by, at: workflow.retract(conn, statement_id, by, at,
                                                              reason=text("reason", required=True) or "",
                                                              note=text("note")),
             "retry": lambda conn, by, at: workflow.retry_failed(
                 conn, statement_id, by, at, channel_registry.expand(text("channel") or "", "channel")
                 if text("channel") else None)}
    if action == "send-test":
        try:
            results = operations.send_test(site().ops, statement_id, (text("to", required=True) or "").split(),
                                           g.user.name)
        except UserError as exc:
            flash(str(exc), "error")
        else:
            for address, sent, what in results:
                flash(f"{address}: test copy {what}", "ok" if sent else "error")
        return redirect(url_for("pages.statement_page", statement_id=statement_id))
    if action not in calls:
        abort(404)
    return act(statement_id, calls[action], {"withdraw": workflow.withdrawn_said, "correct": "correction published",
                                             "retract": "retracted", "retry": workflow.retried_said}[action])


@pages.route("/import", methods=["POST"])
@editor
def import_file():
    s = site()
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        flash("choose a .txt or .md file", "error")
        return redirect(url_for("pages.statements_page"))
    name = Path(upload.filename.replace("\x00", "")).name[-100:] or "statement"
    suffix = Path(name).suffix.lower()
    if suffix not in (".txt", ".md"):
        flash(f"{name}: expected a .txt or .md file", "error")
        return redirect(url_for("pages.statements_page"))
    with TemporaryDirectory() as folder:
        path = Path(folder) / f"upload{suffix}"  # the name as given is for messages and the record only
        upload.save(path)
        try:
            statement = parse_file(path)
            with s.engine.begin() as conn:
                result = workflow.import_statement(conn, statement, name, g.user.name, s.clock.now(),
                                                   note=text("note"))
        except UserError as exc:
            flash(str(exc).replace(str(path), name).replace(path.name, name), "error")
            return redirect(url_for("pages.statements_page"))
    flash(f"imported as {result.id} revision {result.revision}" if result.changed else "unchanged: nothing imported",
          "ok")
    return redirect(url_for("pages.statement_page", statement_id=result.id))


# -- one-click unsubscribe (RFC 8058) ---------------------------------------------------------------------------------
def token_address(token: str) -> str:
    found = unsubscribe.address_of(site().key, token)
    if found is None:
        abort(404)
        raise AssertionError(token)
    return found


@pages.route("/u/<token>", methods=["GET"])
def unsubscribe_page(token: str):
    return render_template("unsubscribe.html", address=token_address(token), done=False)


@pages.route("/u/<token>", methods=["POST"])
def unsubscribe_post(token: str):
    s = site()
    address = token_address(token)
    with s.engine.begin() as conn:
        if recipients.unsubscribe(conn, address, "one-click unsubscribe", s.clock.now()):
            workflow.record(conn, workflow.Action.UNSUBSCRIBED, "one-click unsubscribe", s.clock.now(), email=address)
    return render_template("unsubscribe.html", address=address, done=True)


__all__ = ["Site", "deliveries", "pages", "register_errors"]
