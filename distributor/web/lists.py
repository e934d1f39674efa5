"""The recipient lists: every list with its counts, one list's members 50 a page with a search, and the editors'
changes (a CSV import with the command line's report, adding, removing and unsubscribing a member, lifting a
suppression made by staff or by a bounce), each through ``recipients`` with the logged-in user in the audit trail."""

from __future__ import annotations

from pathlib import Path
from tempfile import TemporaryDirectory

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from distributor import portal, recipients, workflow
from distributor.errors import InputError, StateError, UserError
from distributor.store import reading
from distributor.web.auth import editor, require_login
from distributor.web.pages import page_number
from distributor.web.site import site

lists = Blueprint("lists", __name__)
lists.before_request(require_login)  # staff only, every one of them

PAGE = 50
# What each value is called on the forms, for the messages: the same words as the command line's, another name.
FIELDS = {"list": "List", "email": "Email", "name": "Name", "outlet": "Outlet", "language": "Language",
          "tags": "Tags"}
STRICT = '"Every row or none"'
REPLACE = '"Make the list exactly this file"'


def search_text() -> str:
    return (request.args.get("q") or "").replace("\x00", "").strip()[:200]


def valid_name(name: str) -> str | None:
    """The list's name if it is one the command line would take, else None."""
    try:
        return recipients.list_option(name)
    except InputError:
        return None


@lists.route("/lists")
def lists_page():
    return show_lists()


def show_lists(code: int = 200, error: str | None = None, report: list[str] | None = None) -> ResponseReturnValue:
    with reading(site().engine) as conn:
        rows = recipients.lists(conn)
    return render_template("lists.html", rows=rows, error=error, report=report), code


@lists.route("/lists/<path:name>")
def list_page(name: str):
    if valid_name(name) is None:
        abort(404)
    return show_list(name, search_text(), page_number())


def show_list(name: str, search: str = "", page: int = 1, code: int = 200, error: str | None = None,
              report: list[str] | None = None) -> ResponseReturnValue:
    """The list's page; the lists' page (with the error or report) once the list has no member left."""
    with reading(site().engine) as conn:
        found = recipients.lists(conn, name)
        if not found:
            if error is None and report is None:
                abort(404)
            return show_lists(code, error, report)
        members, total = recipients.members(conn, name, search or None, page, PAGE)
    return render_template("list.html", list=found[0], members=members, total=total, search=search, page=page,
                           pages=PAGE, error=error, report=report), code


def refused(exc: UserError, list_name: str, message: str | None = None) -> ResponseReturnValue:
    """A refusal as the command line's one line, on the page the form was on: 409 when the state forbids it, 400
    for a mistake in what was typed."""
    code = 409 if isinstance(exc, StateError) else 400
    name = valid_name(list_name)
    return (show_list(name, code=code, error=message or str(exc)) if name is not None
            else show_lists(code, message or str(exc)))


def back(list_name: str):
    """After a change: the list's page (searched as it was), or the lists' page if the list is gone or none."""
    name = valid_name(list_name)
    if name is not None:
        with reading(site().engine) as conn:
            if recipients.lists(conn, name):
                q = (request.form.get("q") or "").replace("\x00", "").strip()[:200]
                return redirect(url_for("lists.list_page", name=name, q=q or None))
    return redirect(url_for("lists.lists_page"))


def field(name: str) -> str:
    return request.form.get(name) or ""


@lists.route("/lists/import", methods=["POST"])
@editor
def import_csv():
    s = site()
    list_name = field("list")
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        return refused(InputError("choose a CSV file", where="File"), list_name)
    shown = Path(upload.filename.replace("\x00", "")).name[-100:] or "upload.csv"
    strict, replace = bool(request.form.get("strict")), bool(request.form.get("replace"))
    with TemporaryDirectory() as folder:
        path = Path(folder) / "upload.csv"  # the name as given is for messages and the record only
        upload.save(path)
        try:
            with s.engine.begin() as conn:
                report = recipients.import_csv(conn, path, list_name, s.clock.now(), strict=strict, replace=replace,
                                               names=(FIELDS["list"], STRICT, REPLACE))
                workflow.record(conn, workflow.Action.RECIPIENTS_IMPORTED, g.user.name, s.clock.now(), file=shown,
                                list=list_name, added=report.added, updated=report.updated, replace=replace,
                                removed=report.removed, rejected=len(report.rejected))
        except UserError as exc:
            return refused(exc, list_name, str(exc).replace(str(path), shown))
    lines = [shown + line.removeprefix(str(path)) for line in report.rejected]
    lines.append(report.summary(Path(shown), list_name))
    return show_list(list_name, report=lines)


@lists.route("/lists/add", methods=["POST"])
@editor
def add():
    s = site()
    list_name = field("list")
    try:
        with s.engine.begin() as conn:
            row = recipients.add(conn, list_name, field("email"), s.clock.now(), name=field("name"),
                                 outlet=field("outlet"), embargo_ok=bool(request.form.get("embargo_ok")),
                                 language=field("language"), tags=field("tags"), names=FIELDS)
            recipients.record_added(conn, row, g.user.name, s.clock.now())
            suppressed = recipients.suppression(conn, row["email"]) is not None
    except UserError as exc:
        return refused(exc, list_name)
    flash(recipients.added_said(row, suppressed), "ok")
    return back(list_name)


@lists.route("/lists/remove", methods=["POST"])
@editor
def remove():
    s = site()
    list_name, email = field("list"), field("email")
    try:
        with s.engine.begin() as conn:
            if not recipients.remove(conn, list_name, email, names=FIELDS):
                raise InputError(f"{email} is not on the list {list_name!r}", where=FIELDS["email"])
            workflow.record(conn, workflow.Action.RECIPIENT_REMOVED, g.user.name, s.clock.now(), email=email,
                            list=list_name)
    except UserError as exc:
        return refused(exc, list_name)
    flash(recipients.removed_said(email, list_name), "ok")
    return back(list_name)


@lists.route("/lists/unsubscribe", methods=["POST"])
@editor
def unsubscribe():
    s = site()
    email = field("email")
    try:
        with s.engine.begin() as conn:
            changed = recipients.unsubscribe(conn, email, g.user.name, s.clock.now(), where=FIELDS["email"])
            if changed:
                workflow.record(conn, workflow.Action.UNSUBSCRIBED, g.user.name, s.clock.now(), email=email)
    except UserError as exc:
        return refused(exc, field("list"))
    flash(recipients.unsubscribed_said(email, changed), "ok")
    return back(field("list"))


@lists.route("/lists/lift", methods=["POST"])
@editor
def lift():
    s = site()
    email = field("email")
    try:
        with s.engine.begin() as conn:
            lifted = recipients.lift(conn, email, where=FIELDS["email"])
            recipients.record_lifted(conn, email, lifted, g.user.name, s.clock.now())
    except UserError as exc:
        return refused(exc, field("list"))
    flash(recipients.lifted_said(email), "ok")
    return back(field("list"))


@lists.route("/lists/revoke", methods=["POST"])
@editor
def revoke_links():
    """As 'distributor recipients revoke': every portal link sent so far ends, and every open session."""
    s = site()
    email = field("email")
    if s.config.portal is None:
        abort(404)
    try:
        with s.engine.begin() as conn:
            ended = portal.revoke(conn, email, g.user.name, s.clock.now())
            workflow.record(conn, workflow.Action.PORTAL_REVOKED, g.user.name, s.clock.now(), email=email,
                            sessions=ended)
    except UserError as exc:
        return refused(exc, "", str(exc))
    flash(f"{email}: every portal link sent so far is revoked; {ended} open session{'' if ended == 1 else 's'} "
          f"ended.", "ok")
    return redirect(url_for("pages.recipient_page", address=email))
