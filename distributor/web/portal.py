"""The journalists' portal: their own link (``/j/<token>``), redeemed by a POST for a session of their own, never
a staff session; the statements they may see (``/portal/``), each with its text and media; every view recorded.

No GET grants anything: a mail scanner that opens the link sees one button and uses nothing up. Every request
reads the journalist's standing and the statement's state from the database, against the embargo guard's clock.
"""

from __future__ import annotations

from datetime import datetime

from flask import Blueprint, Response, abort, current_app, g, redirect, render_template, request, url_for
from markupsafe import Markup

from distributor import media, portal, recipients, workflow
from distributor.errors import InputError
from distributor.portal import Event
from distributor.store import reading
from distributor.web.site import site
from distributor.workers import database_clock

journalists = Blueprint("portal", __name__)

COOKIE = "distributor_portal"


def settings():
    found = site().config.portal
    if found is None:
        abort(404)
    return found


def install(app) -> None:
    """The portal's routes, and the thread that writes its views in batches."""
    s = app.extensions["distributor"]
    app.extensions["portal_recorder"] = portal.Recorder(s.engine, portal_settings=s.config.portal, clock=s.clock)
    app.extensions["portal_database_clock"] = database_clock(s.engine)
    app.register_blueprint(journalists)


def now() -> datetime:
    """The embargo guard's clock: the earlier of this process's and the database's."""
    instant = site().clock.now()
    database = current_app.extensions.get("portal_database_clock")
    return min(instant, database.now()) if database is not None else instant


def visitor() -> tuple[str, str]:
    return request.remote_addr or "-", request.headers.get("User-Agent", "")[:300]


def recorder() -> portal.Recorder:
    return current_app.extensions["portal_recorder"]


def no_access(status: int = 403):
    """The one page for every link or session that opens nothing now: unknown, expired or revoked alike."""
    response = Response(render_template("portal_expired.html"), status)
    response.delete_cookie(COOKIE, path=current_app.config["APPLICATION_ROOT"])
    return response


def too_many():
    """The 429 page once this address has had too many failed or unknown tokens within the window; else None."""
    portal_settings = settings()
    with reading(site().engine) as conn:
        if not portal.refused_recently(conn, visitor()[0], site().clock.now(), portal_settings):
            return None
    return render_template("error.html", code=429, message="Too many attempts from this address; try again in "
                           f"{portal_settings.window_minutes:g} minutes."), 429


@journalists.route("/j/<token>", methods=["GET"])
def link_page(token: str):
    """One button and nothing else, whatever the token: the same page for a good one and a forged one."""
    refused = too_many()
    if refused is not None:
        return refused
    s = site()
    delivery_id = portal.delivery_of(s.key, token)
    address, agent = visitor()
    with s.engine.begin() as conn:
        portal.record(conn, Event.LINK_CHECKED if delivery_id else Event.REFUSED, s.clock.now(), address, agent,
                      delivery_id=delivery_id)
    return render_template("portal_link.html")


@journalists.route("/j/<token>", methods=["POST"])
def redeem(token: str):
    portal_settings = settings()
    too = too_many()
    if too is not None:
        return too
    s = site()
    address, agent = visitor()
    at = s.clock.now()
    delivery_id = portal.delivery_of(s.key, token)
    with s.engine.begin() as conn:
        link = portal.redeemable(conn, delivery_id, now(), portal_settings) if delivery_id else None
        if link is None:
            portal.record(conn, Event.REFUSED, at, address, agent, delivery_id=delivery_id)
        else:
            cookie, agreed = portal.start_session(conn, link, at, portal_settings)
            portal.record(conn, Event.REDEEMED, at, address, agent, email_key=link.email_key,
                          statement_id=link.statement_id, delivery_id=link.delivery_id)
    if link is None:
        return no_access()
    response = redirect(url_for("portal.statement_page", statement_id=link.statement_id) if agreed
                        else url_for("portal.terms", next=link.statement_id))
    response.set_cookie(COOKIE, cookie, max_age=int(portal_settings.session_hours * 3600),
                        path=current_app.config["APPLICATION_ROOT"], secure=current_app.config["SESSION_COOKIE_SECURE"],
                        httponly=True, samesite="Lax")
    return response


@journalists.before_request
def load_journalist():
    """Every portal page: the journalist whose session this is, checked afresh; the terms agreed first."""
    if request.endpoint in ("portal.link_page", "portal.redeem"):
        return None
    settings()
    s = site()
    with reading(s.engine) as conn:
        g.journalist = portal.journalist(conn, request.cookies.get(COOKIE), s.clock.now())
    if g.journalist is None:
        return no_access()
    if not g.journalist.agreed and request.endpoint != "portal.terms":
        return redirect(url_for("portal.terms"))
    return None


@journalists.route("/portal/terms", methods=["GET", "POST"])
def terms():
    s = site()
    if request.method == "POST":
        if request.form.get("agree") != "yes":
            return render_template("portal_terms.html", terms=settings().terms, missing=True), 400
        address, agent = visitor()
        with s.engine.begin() as conn:
            portal.agree(conn, g.journalist, s.clock.now())
            portal.record(conn, Event.AGREED, s.clock.now(), address, agent, email_key=g.journalist.email_key,
                          delivery_id=g.journalist.delivery_id)
        target = request.args.get("next")
        if target and workflow.ID_PATTERN.fullmatch(target):
            return redirect(url_for("portal.statement_page", statement_id=target))
        return redirect(url_for("portal.index"))
    return render_template("portal_terms.html", terms=settings().terms, missing=False)


@journalists.route("/portal/")
def index():
    s = site()
    with reading(s.engine) as conn:
        found = [item for item in portal.entitled(conn, g.journalist, None, now(), s.config) if not item.withdrawn]
        titles = {item.id: workflow.content(conn, item.id, item.revision).title for item in found}
    return render_template("portal_index.html", items=found, titles=titles)


def one(statement_id: str):
    s = site()
    if not workflow.ID_PATTERN.fullmatch(statement_id):
        abort(404)
    with reading(s.engine) as conn:
        found = portal.entitled(conn, g.journalist, statement_id, now(), s.config)
        if not found:
            abort(404)
        item = found[0]
        document = workflow.content(conn, statement_id, item.revision)
        note = portal.withdrawal_note(conn, statement_id) if item.withdrawn else None
        notes = portal.notices_of(conn, statement_id)
    return item, document, note, notes


@journalists.route("/portal/<statement_id>/")
def statement_page(statement_id: str):
    s = site()
    item, document, note, notes = one(statement_id)
    if item.withdrawn:
        return render_template("portal_withdrawn.html", statement_id=statement_id, note=note)
    renderer = s.renderer
    context = renderer.context(document, statement_id, item.embargo, embargoed=item.embargoed)
    text = Markup(renderer.render("shared/body.html.j2", **context))
    address, agent = visitor()
    recorder().add(Event.VIEW, s.clock.now(), address, agent, email_key=g.journalist.email_key,
                   statement_id=statement_id, revision=item.revision, delivery_id=g.journalist.delivery_id)
    store = media.store_of(s.config)
    items = [(m, store.renditions(m)) for m in document.media]
    return render_template("portal_statement.html", item=item, document=document, text=text, items=items,
                           embargo_lines=context["embargo_lines"], notes=notes, megabytes=media.megabytes)


@journalists.route("/portal/<statement_id>/media/<name>/<rendition>")
def download(statement_id: str, name: str, rendition: str):
    s = site()
    item, document, _, _ = one(statement_id)
    if item.withdrawn:
        abort(404)
    found = next((m for m in document.media if m.name == name), None)
    if found is None:
        abort(404)
    try:
        file = media.store_of(s.config).rendition(found, rendition)
    except (KeyError, OSError):
        abort(404)
    if rendition != "thumb":  # a thumbnail is part of the page's view, not a download
        address, agent = visitor()
        recorder().add(Event.DOWNLOAD, s.clock.now(), address, agent, email_key=g.journalist.email_key,
                       statement_id=statement_id, revision=item.revision, delivery_id=g.journalist.delivery_id,
                       item=f"{name}/{rendition}")
    response = Response(file.path.read_bytes(), mimetype=file.content_type)
    filename = name if rendition == media.ORIGINAL else f"{rendition}-{name}"
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@journalists.route("/portal/settings", methods=["GET", "POST"])
def own_settings():
    """The journalist's language, the self-service lists they are on, and their email subscription: each change
    audited, the journalist the actor."""
    s = site()
    portal_settings = settings()
    who = g.journalist
    said, status = None, 200
    if request.method == "POST":
        change = request.form.get("change", "")
        at = s.clock.now()
        try:
            with s.engine.begin() as conn:
                if change == "language":
                    tag = portal.choose_language(conn, who, request.form.get("language", ""), at)
                    workflow.record(conn, workflow.Action.LANGUAGE_CHOSEN, recipients.PORTAL_ACTOR, at,
                                    email=who.address, language=tag)
                    said = f"Your language is {tag} now."
                elif change in ("join", "leave"):
                    name = request.form.get("list", "")
                    act = portal.join(conn, who, name, at, portal_settings) if change == "join" else \
                        portal.leave(conn, who, name, portal_settings)
                    if act:
                        workflow.record(conn, workflow.Action.LIST_JOINED if change == "join"
                                        else workflow.Action.LIST_LEFT, recipients.PORTAL_ACTOR, at,
                                        email=who.address, list=name)
                    said = (f"You are on the list {name} now." if change == "join" else
                            f"You are off the list {name} now.")
                elif change == "unsubscribe":
                    if recipients.unsubscribe(conn, who.address, recipients.PORTAL_ACTOR, at):
                        workflow.record(conn, workflow.Action.UNSUBSCRIBED, recipients.PORTAL_ACTOR, at,
                                        email=who.address)
                    return render_template("unsubscribe.html", address=who.address, done=True)
                else:
                    raise InputError("expected language, join, leave or unsubscribe", where="change")
        except InputError as exc:
            said, status = str(exc), 400
    with reading(s.engine) as conn:
        current = portal.own_settings(conn, who, portal_settings)
    return render_template("portal_settings.html", current=current, said=said, failed=status != 200), status


@journalists.route("/portal/logout", methods=["POST"])
def logout():
    s = site()
    with s.engine.begin() as conn:
        portal.end_session(conn, g.journalist, s.clock.now())
    response = redirect(url_for("portal.index"))
    response.delete_cookie(COOKIE, path=current_app.config["APPLICATION_ROOT"])
    return response
