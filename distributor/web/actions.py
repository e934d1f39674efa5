"""The editors' actions: import, approve, schedule, move the embargo, withdraw, correct, retract, retry and test
copies, each through the same operations and workflow as the command line, with the logged-in user as the actor."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from tempfile import TemporaryDirectory

from flask import Blueprint, abort, flash, g, redirect, request, url_for

from distributor import channels as channel_registry
from distributor import deliveries, operations, workflow
from distributor.errors import InputError, UserError, checked_text
from distributor.render import when
from distributor.statements import parse_file
from distributor.statements.times import parse_instant
from distributor.web.auth import editor, require_login
from distributor.web.site import site

actions = Blueprint("actions", __name__)
actions.before_request(require_login)  # staff only, every one of them


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


@actions.route("/statements/<statement_id>/approve", methods=["POST"])
@editor
def approve(statement_id: str):
    four_eyes = site().config.office.four_eyes
    return act(statement_id, lambda conn, by, at: workflow.approve(conn, statement_id, by, at, four_eyes=four_eyes),
               "approved")


@actions.route("/statements/<statement_id>/schedule", methods=["POST"])
@editor
def schedule(statement_id: str):
    def run(conn, by, at):
        operations.schedule(site().ops, conn, statement_id, by, embargo=instant("embargo"),
                            send_embargoed_at=instant("send_embargoed_at"), channels=text("channels"),
                            override_embargo=bool(request.form.get("override_embargo")), reason=text("reason"))
    return act(statement_id, run, "scheduled")


@actions.route("/statements/<statement_id>/reschedule", methods=["POST"])
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


@actions.route("/statements/<statement_id>/<action>", methods=["POST"])
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


@actions.route("/import", methods=["POST"])
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
