"""The editors' actions: import, approve, schedule, move the embargo, withdraw, correct, retract, retry, test
copies and a revision's photos and documents, each through the same operations and workflow as the command line,
with the logged-in user as the actor."""

from __future__ import annotations

import os
import re
from datetime import datetime
from pathlib import Path
from tempfile import TemporaryDirectory

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for

from distributor import channels as channel_registry
from distributor import consequences, deliveries, media, operations, recipients, words, workflow
from distributor.errors import InputError, StateError, UserError, checked_text
from distributor.render import when
from distributor.statements import parse_file
from distributor.statements.times import parse_instant
from distributor.web.auth import editor, require_login
from distributor.web.site import site

actions = Blueprint("actions", __name__)
actions.before_request(require_login)  # staff only, every one of them


def offered(row: dict, failed: int) -> list[str]:
    """The editor's actions that fit the statement's state, in the order the page shows them."""
    status = row["status"]
    newer = row["published_revision"] is not None and row["revision"] != row["published_revision"]
    unapproved = row["approved_revision"] != row["revision"]
    found = {
        "draft": ["approve", "upload", "media", "preview", "test", "withdraw"],
        "approved": ["schedule", "upload", "media", "preview", "test", "withdraw"],
        "scheduled": ["reschedule", "upload", "media", "withdraw", "preview", "test", "retry"],
        "released": ["approve", "correct", "upload", "media", "retract", "retry"],
        "withdrawn": ["approve", "upload", "media"],
    }.get(status, [])
    if status == "released":
        found = [a for a in found if (a != "approve" or (newer and unapproved))
                 and (a != "correct" or (newer and not unapproved))]
    if status == "draft" and not unapproved:
        found.remove("approve")
    return [a for a in found if a != "retry" or failed]


def say(message: str, kind: str) -> None:
    """A message on the next page, in the web app's words (the button or field, never a command or an option)."""
    flash(words.for_the_web(message), kind)


def text(name: str, required: bool = False) -> str | None:
    value = checked_text((request.form.get(name) or "").strip(), name, 1000)
    if required and not value:
        raise InputError(f"{name} is required", where=name)
    return value or None


def instant(name: str, required: bool = False) -> datetime | None:
    """A time from a field: typed with its zone or offset, or picked (a local date and time) with the zone chosen
    beside it in ``<name>_zone``."""
    value = text(name, required)
    if value is None:
        return None
    try:
        return parse_instant(value)
    except ValueError as exc:
        zone = text(f"{name}_zone")
        if zone:
            try:
                return parse_instant(f"{value.replace('T', ' ')} {zone}")
            except ValueError as inner:
                raise InputError(str(inner), where=name) from None
        raise InputError(str(exc), where=name) from None


def back(statement_id: str):
    return redirect(url_for("pages.statement_page", statement_id=statement_id))


def act(statement_id: str, what, done, confirm: str | None = None):
    """Run an action in one transaction; a refusal is shown on the statement page, as the CLI's one line. ``done``
    says what happened: a text, or a function of what the action returned.

    With ``confirm`` (the action's name) the first POST only shows what would happen; the action runs on a POST
    with ``confirm=1`` and the summary's fingerprint, and only if the statement is still as the summary saw it
    (409 otherwise)."""
    s = site()
    if confirm and request.form.get("confirm") != "1":
        try:
            summary = consequences.summarise(s.ops, statement_id, confirm,
                                             lambda conn: what(conn, g.user.name, s.clock.now()))
        except UserError as exc:
            summary = None
            say(str(exc), "error")
        if summary is not None and summary.refusal:
            say(summary.refusal, "error")
        if summary is None or summary.refusal:
            return back(statement_id)
        fields = [(k, v) for k, v in request.form.items(multi=True) if k not in ("csrf_token", "confirm", "fingerprint")]
        return render_template("confirm.html", summary=summary, fields=fields,
                               action_url=request.script_root + request.path)
    try:
        with s.engine.begin() as conn:
            if confirm:
                consequences.check(conn, statement_id, request.form.get("fingerprint"))
            result = what(conn, g.user.name, s.clock.now())
    except consequences.Changed as exc:
        return render_template("error.html", code=409, message=words.for_the_web(str(exc))), 409
    except UserError as exc:
        say(str(exc), "error")
    else:
        say(done(result) if callable(done) else done, "ok")
    return back(statement_id)


@actions.route("/statements/<statement_id>/approve", methods=["POST"])
@editor
def approve(statement_id: str):
    four_eyes = site().config.office.four_eyes
    return act(statement_id, lambda conn, by, at: workflow.approve(conn, statement_id, by, at, four_eyes=four_eyes),
               "approved")


@actions.route("/statements/<statement_id>/schedule", methods=["POST"])
@editor
def schedule(statement_id: str):
    chosen = request.form.getlist("lists") or None  # the ticked lists; none ticked: the default
    if chosen is not None:
        try:
            with site().engine.connect() as conn:
                operations.known_lists(conn, recipients.chosen_lists(chosen, LISTS_WHERE["lists"]),
                                       LISTS_WHERE["lists"], LISTS_WHERE["see"])
        except UserError as exc:  # a list gone since the page was shown, or a forged name: the form's words
            return render_template("error.html", code=400, message=words.for_the_web(str(exc))), 400

    def run(conn, by, at):
        operations.schedule(site().ops, conn, statement_id, by, embargo=instant("embargo"),
                            send_embargoed_at=instant("send_embargoed_at"), channels=text("channels"),
                            override_embargo=bool(request.form.get("override_embargo")), reason=text("reason"),
                            lists=chosen, where=LISTS_WHERE)
    return act(statement_id, run, "scheduled", confirm="schedule" if request.form.get("override_embargo") else None)


LISTS_WHERE = {"lists": "Lists", "add": "Lists", "front": "the statement's lists", "see": "see the Lists page",
               "grow": "tick every list chosen before, and any more"}


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
    return act(statement_id, run, lambda said: said, confirm="reschedule")


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
            say(str(exc), "error")
        else:
            for address, sent, what in results:
                say(f"{address}: test copy {what}", "ok" if sent else "error")
        return back(statement_id)
    if action not in calls:
        abort(404)
    return act(statement_id, calls[action], {"withdraw": workflow.withdrawn_said, "correct": "correction published",
                                             "retract": "retracted", "retry": workflow.retried_said}[action],
               confirm=action if action in consequences.CONFIRMED else None)


def uploaded_name(upload, default: str) -> str:
    """An uploaded file's name as the browser gave it (its last part only), for messages and the record."""
    name = (upload.filename or "").replace("\x00", "").replace("\\", "/")
    name = Path(name).name[-100:]
    return default if name in ("", ".", "..") else name


def revised(result: workflow.ImportResult) -> str:
    """What else a new revision did, in the command line's words."""
    return (("; the approval is revoked, approve it again" if result.approval_revoked else "")
            + (f"; {result.cancelled} unsent deliveries of the old revision cancelled" if result.cancelled else ""))


MEDIA_FIELDS = {"--alt": "the Alt text field", "--title": "the Title field", "--caption": "the Caption field",
                "--credit": "the Credit field", "--licence": "the Licence field"}


def media_words(message: str) -> str:
    """A refusal of the media commands' with each option named as the form's field."""
    for option, field in MEDIA_FIELDS.items():
        message = re.sub(rf"(?<![\w-]){re.escape(option)}(?![\w-])", field, message)
    return message


def refused(page, message: str, code: int):
    """A refused form: the page it came from again, with the refusal on it, and a status that says so."""
    say(media_words(message), "error")
    return page(), code


def statement_again(statement_id: str):
    from distributor.web.pages import statement_page  # the page imports this module
    return lambda: statement_page(statement_id)


@actions.route("/statements/<statement_id>/media", methods=["POST"])
@editor
def add_media(statement_id: str):
    """A photo or a document added to the working revision: a new revision, as ``media add`` makes."""
    s = site()
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        return refused(statement_again(statement_id), "choose a photo (JPEG, PNG, WebP) or a PDF document", 400)
    name = uploaded_name(upload, "file")
    data = upload.read()
    library = media.Library.of(s.config)
    described = {key: request.form.get(key) for key in media.TEXT_LIMITS}

    def add(items):
        item = library.take(data, name, name, described, items)
        return items + (item,), item
    try:
        with s.engine.begin() as conn:
            result, item = workflow.change_media(conn, statement_id, add, g.user.name, s.clock.now(),
                                                 note=text("note"))
    except UserError as exc:
        return refused(statement_again(statement_id), str(exc), 409 if isinstance(exc, StateError) else 400)
    say(f"revision {result.revision}: added {item.name} ({'photo' if item.is_image else 'document'}, "
        f"{media.megabytes(item.size)})" + revised(result), "ok")
    return back(statement_id)


@actions.route("/statements/<statement_id>/media/<name>/remove", methods=["POST"])
@editor
def remove_media(statement_id: str, name: str):
    """A photo or a document taken out of the working revision: a new revision, as ``media remove`` makes."""
    def run(conn, by, at):
        def remove(items):
            item = media.find(items, name, where=statement_id)
            return tuple(i for i in items if i is not item), item
        return workflow.change_media(conn, statement_id, remove, by, at, note=text("note"))
    return act(statement_id, run, lambda done: f"revision {done[0].revision}: removed {done[1].name}" + revised(done[0]))


def uploaded_files(uploads) -> dict[str, bytes]:
    """The files uploaded with a statement, by their names as given, in memory: a photo as uploaded, with its
    metadata, never reaches the disk. Its front matter finds them by name."""
    found: dict[str, bytes] = {}
    for upload in uploads:
        if not upload.filename:
            continue
        name = uploaded_name(upload, "")
        if not name or len(name.encode("utf-8")) > 200:
            raise InputError("expected a file's name of at most 200 bytes", where=name[:50] or "a photo or document")
        if name in found:
            raise InputError("two files uploaded with the statement have this name", where=name)
        found[name] = upload.read()
    return found


@actions.route("/import", methods=["POST"])
@editor
def import_file():
    s = site()
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        say("choose a .txt or .md file", "error")
        return redirect(url_for("pages.statements_page"))
    name = Path(upload.filename.replace("\x00", "")).name[-100:] or "statement"
    suffix = Path(name).suffix.lower()
    if suffix not in (".txt", ".md"):
        say(f"{name}: expected a .txt or .md file", "error")
        return redirect(url_for("pages.statements_page"))
    of = request.form.get("revision_of")
    with TemporaryDirectory() as folder:
        path = Path(folder) / f"upload{suffix}"  # the name as given is for messages and the record only
        try:
            uploaded = uploaded_files(request.files.getlist("media"))
            upload.save(path)  # the statement's own text; its media stay in memory
            statement = parse_file(path, media.Library.of(s.config), uploads=uploaded)
            with s.engine.begin() as conn:
                result = workflow.import_statement(conn, statement, name, g.user.name, s.clock.now(),
                                                   revision_of=text("revision_of"), note=text("note"),
                                                   keep_media=statement.source_format == "text")
        except UserError as exc:
            message = str(exc).replace(str(path), name).replace(path.name, name).replace(folder + os.sep, "")
            message = message.replace(folder, "the statement's folder")
            if exc.where is not None and not exc.where.startswith(str(path)):  # a photo or document, named as given
                from distributor.web.pages import statements_page
                return refused(statement_again(of) if of else statements_page, message,
                               409 if isinstance(exc, StateError) else 400)
            say(message, "error")
            return back(of) if of else redirect(url_for("pages.statements_page"))
    unused = len(uploaded) - len(statement.media)
    say((f"imported as {result.id} revision {result.revision}" if result.changed else "unchanged: nothing imported")
        + (f"; {unused} of the files uploaded with it left out: its front matter does not list them" if unused > 0
           else ""), "ok")
    return redirect(url_for("pages.statement_page", statement_id=result.id))
