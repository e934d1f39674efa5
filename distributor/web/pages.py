"""The staff's pages, for reading: statements, one statement with its deliveries and timeline, a recipient's
history, the audit trail and the alerts. Every query goes through ``web.queries``."""

from __future__ import annotations

import io
import re
from datetime import datetime, timedelta
from urllib.parse import urlencode

from flask import Blueprint, Response, abort, render_template, request
from markupsafe import Markup
from sqlalchemy import select

from distributor import csvout, deliveries, media, operations, portal, recipients, status, words, workflow
from distributor.channels import social
from distributor.clock import iso_z
from distributor.errors import UserError
from distributor.render import when
from distributor.statements.model import StatementStatus
from distributor.statements.times import parse_instant
from distributor.store import reading as reading_connection
from distributor.store.schema import recipients as recipients_table
from distributor.web import actions, pictures, queries
from distributor.web.auth import require_login
from distributor.web.site import site

pages = Blueprint("pages", __name__)
pages.before_request(require_login)  # staff only, every one of them
ID = re.compile(r"[a-z0-9][a-z0-9-]{0,79}")


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
    search = (request.args.get("q") or "").replace("\x00", "").strip()[:200]
    with reading_connection(s.engine) as conn:
        rows, total = queries.statements_page(conn, wanted, since, until + timedelta(days=1) if until else None,
                                              page_number(), search or None)
    return render_template("statements.html", rows=rows, total=total, page=page_number(), pages=queries.PAGE,
                           statuses=[st.value for st in StatementStatus], wanted=wanted,
                           statuses_of_deliveries=queries.STATUSES, search=search,
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
    with reading_connection(s.engine) as conn:
        row = statement_or_404(conn, statement_id)
        chosen = tuple(row["lists"] or ()) or ((email.list,) if email else ())  # the statement's lists
        lists = tuple(dict.fromkeys((*chosen, *email.release_lists))) if email else ()
        all_lists: list[str] = list(conn.execute(select(recipients_table.c.list_name).distinct().order_by(
            recipients_table.c.list_name)).scalars()) if email and row["status"] == "approved" else []  # the form's
        shown = row["published_revision"] or row["revision"]
        document = workflow.content(conn, statement_id, shown)
        working = document if shown == row["revision"] else workflow.content(conn, statement_id, row["revision"])
        counts = queries.channel_counts(conn, [statement_id]).get(statement_id, {})
        events = queries.timeline(conn, statement_id)
        failed = queries.failures(conn, statement_id)
        people, total = queries.recipient_rows(conn, statement_id, wanted, search, page_number())
        missing = queries.left_out(conn, statement_id, lists, row["status"], chosen=chosen) if lists else []
        revision_list = queries.revision_list(conn, statement_id)
        compared = compared_revisions(conn, statement_id, revision_list)
        now = s.clock.now()
        live = queries.busy(conn, statement_id, now) or (
            row["status"] == "scheduled" and row["embargo"] is not None and row["embargo"] - now <= REFRESH_AHEAD)
        over_time = queries.sent_over_time(conn, statement_id)
        opened = portal.opened_by(conn, statement_id) if s.config.portal is not None else None
    refresh = live and request.args.get("refresh") != "off"  # a reader may stop it (WCAG 2.2.1)
    previews = social_previews(statement_id)
    failed_count = sum(c.get("failed", 0) for c in counts.values())
    office = s.config.office
    renderer = s.renderer
    text = Markup(renderer.render("shared/body.html.j2", **renderer.context(
        document, statement_id, row["embargo"] or document.embargo, embargoed=False)))
    return render_template("statement.html", row=row, document=document, counts=counts, events=events,
                           text=text, revisions=revision_list, compared=compared, refresh=refresh, live=live,
                           bars={c: pictures.progress(n) for c, n in counts.items()},
                           chart=pictures.chart(over_time, row["embargo"], lambda t: when(t, office.timezone)),
                           offered=actions.offered(row, failed_count),
                           zones=[office.timezone.key, *[z.key for z in office.also_show], "UTC"],
                           failed=failed, people=people, total=total, page=page_number(), pages=queries.PAGE,
                           wanted=wanted, search=search or "", missing=missing, previews=previews,
                           statuses=queries.STATUSES, channels=list(s.config.channels),
                           all_lists=all_lists, chosen_lists=chosen, media=working.media,
                           megabytes=media.megabytes, media_fields=MEDIA_FIELDS, media_max=s.config.media.max_bytes,
                           typed=request.form if request.endpoint == "actions.add_media" else {}, opened=opened)


MEDIA_FIELDS = (("alt", "Alt text (required for a photo: what it shows)"), ("title", "Title (for a document)"),
                ("caption", "Caption"), ("credit", "Credit"), ("licence", "Licence"))
MEDIA_FILES = {"thumb": "inline", media.ORIGINAL: "attachment"}  # what the staff's page shows, what they download


@pages.route("/statements/<statement_id>/media/<name>/<rendition>")
def media_file(statement_id: str, name: str, rendition: str):
    """A photo's thumbnail, or a photo or document as it leaves distributor (its metadata stripped), of the working
    revision: for the staff only, who have logged in (the statement may be under embargo), never kept by a cache."""
    if rendition not in MEDIA_FILES:
        abort(404)
    s = site()
    with reading_connection(s.engine) as conn:
        row = statement_or_404(conn, statement_id)
        items = workflow.content(conn, statement_id, row["revision"]).media
    item = next((i for i in items if i.name == name), None)
    if item is None:
        abort(404)
    try:
        data = media.store_of(s.config).read(item, rendition)
    except (KeyError, OSError):  # a document has no thumbnail; a store moved by hand has no file
        abort(404)
    return Response(data, mimetype=item.content_type, headers={
        "Content-Disposition": f'{MEDIA_FILES[rendition]}; filename="{item.name}"'})


REFRESH_AHEAD = timedelta(seconds=60)


def social_previews(statement_id: str) -> dict[str, tuple[str, str]]:
    """Each social post as its network would show it, with its length as the network counts it."""
    s = site()
    found = {}
    for name, limit in (("mastodon", 500), ("bluesky", 300)):
        if name not in s.config.channels:
            continue
        try:
            text = operations.preview(s.ops, statement_id, name, "released")[0]
        except (UserError, ValueError) as exc:  # ValueError: a link longer than the network's limit
            found[name] = (f"(no preview: {words.for_the_web(str(exc))})", "")
            continue
        length = social.count_mastodon(text) if name == "mastodon" else social.count_graphemes(text)
        found[name] = (text, f"{length} of {limit} characters, as {name.capitalize()} counts them")
    return found


def compared_revisions(conn, statement_id: str, revision_list: list[dict]) -> dict | None:
    """The differences between two revisions (``?from=1&to=2``; by default the last two), or None with one."""
    numbers = [r["number"] for r in revision_list]
    if len(numbers) < 2:
        return None
    try:
        newer = int(request.args.get("to", numbers[0]))
        older = int(request.args.get("from", numbers[1]))
    except ValueError:
        abort(404)
    if older not in numbers or newer not in numbers:
        abort(404)
    return {"from": older, "to": newer, "numbers": numbers, "text": pictures.differences(
        workflow.content(conn, statement_id, older), workflow.content(conn, statement_id, newer))}


@pages.route("/statements/<statement_id>/email.html")
def email_preview(statement_id: str):
    """The HTML part of the email, for the sandboxed frame on the statement page: no script, no network."""
    s = site()
    with reading_connection(s.engine) as conn:
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
    with reading_connection(s.engine) as conn:
        row = statement_or_404(conn, statement_id)
        email = s.config.channels.get("email")
        lists = ", ".join(row["lists"] or ([email.list] if email else []))  # as 'log --format csv' names them
        csvout.write(out, [*operations.LOG_FIELDS, "after_lift", "lists"],
                     ({**r, "lists": lists if r["channel"] == "email" else ""}
                      for r in map(operations.log_record, deliveries.log_rows(conn, statement_id))))
    return Response(out.getvalue(), mimetype="text/csv", headers={
        "Content-Disposition": f'attachment; filename="{statement_id}-deliveries.csv"'})


@pages.route("/statements/<statement_id>/views.csv")
def views_csv(statement_id: str):
    """Who opened it in the journalists' portal, as 'distributor log ID --views --format csv' says it."""
    s = site()
    out = io.StringIO()
    with reading_connection(s.engine) as conn:
        statement_or_404(conn, statement_id)
        csvout.write(out, list(portal.VIEW_COLUMNS), ({**r, "first_view": iso_z(r["first_view"]),
                                                        "last_view": iso_z(r["last_view"])}
                                                       for r in portal.opened_by(conn, statement_id)))
    return Response(out.getvalue(), mimetype="text/csv", headers={
        "Content-Disposition": f'attachment; filename="{statement_id}-views.csv"'})


@pages.route("/recipients/<path:address>")
def recipient_page(address: str):
    s = site()
    if "\x00" in address or len(address) > 320:
        abort(404)
    with reading_connection(s.engine) as conn:
        history = queries.recipient_history(conn, address)
        lists = queries.memberships(conn, address)
        suppressed = bool(recipients.is_suppressed(conn, [address]))
        door = portal.activity(conn, recipients.key(address)) if s.config.portal is not None else None
        revoked = portal.revoked_at(conn, recipients.key(address)) if door is not None else None
    if not history and not lists:
        abort(404)
    return render_template("recipient.html", address=address, history=history, lists=lists, suppressed=suppressed,
                           door=door, revoked=revoked)


@pages.route("/audit")
def audit_page():
    s = site()
    wanted = {key: (request.args.get(key) or "").replace("\x00", "").strip()[:200]
              for key in ("statement", "actor", "action", "from", "to")}
    since, until = day(wanted["from"], "from"), day(wanted["to"], "to")
    with reading_connection(s.engine) as conn:
        actors, action_names = queries.audit_choices(conn)
        rows, total = queries.audit_page(conn, page_number(), wanted["statement"] or None, wanted["actor"] or None,
                                         wanted["action"] or None, since, until + timedelta(days=1) if until else None)

    def query(page: int) -> str:
        return urlencode({**{k: v for k, v in wanted.items() if v}, "page": page})
    return render_template("audit.html", rows=rows, total=total, page=page_number(), pages=queries.PAGE * 2,
                           wanted=wanted, actors=actors, actions=action_names, filtered=any(wanted.values()),
                           query=query)


@pages.route("/status")
def status_page():
    s = site()
    with reading_connection(s.engine) as conn:
        found = status.report(conn, s.clock.now(), s.config.delivery)
    found["reasons"] = [words.for_the_web(reason) for reason in found["reasons"]]
    for alert in found["alerts"]:
        alert["text"] = words.for_the_web(alert["text"])
    return render_template("status.html", found=found), 200
