"""Pages anyone may open, without a login: the one-click unsubscribe (RFC 8058), whose signed token is the only
credential."""

from __future__ import annotations

from flask import Blueprint, abort, render_template

from distributor import recipients, unsubscribe, workflow
from distributor.web.site import site

public = Blueprint("public", __name__)


def token_address(token: str) -> str:
    found = unsubscribe.address_of(site().key, token)
    if found is None:
        abort(404)
        raise AssertionError(token)
    return found


@public.route("/u/<token>", methods=["GET"])
def unsubscribe_page(token: str):
    return render_template("unsubscribe.html", address=token_address(token), done=False)


@public.route("/u/<token>", methods=["POST"])
def unsubscribe_post(token: str):
    s = site()
    address = token_address(token)
    with s.engine.begin() as conn:
        if recipients.unsubscribe(conn, address, "one-click unsubscribe", s.clock.now()):
            workflow.record(conn, workflow.Action.UNSUBSCRIBED, "one-click unsubscribe", s.clock.now(), email=address)
    return render_template("unsubscribe.html", address=address, done=True)
