"""What every part of the web app shares: the site (config, database, clock, key), the headers every answer
carries, the error pages, and what every template may use."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cached_property

from flask import Flask, Response, current_app, g, render_template, request
from flask_wtf.csrf import CSRFError
from sqlalchemy.engine import Engine

from distributor import operations, words
from distributor.clock import Clock, iso_z
from distributor.config import Config
from distributor.render import Renderer, when

log = logging.getLogger("distributor.web")


@dataclass
class Site:
    config: Config
    engine: Engine
    clock: Clock
    key: str

    @property
    def ops(self) -> operations.App:
        return operations.App(self.config, self.engine, self.clock)

    @cached_property
    def renderer(self) -> Renderer:
        """The office's templates, compiled once for the life of the app, not at every page."""
        return Renderer(self.config.paths.templates, self.config.office)


def site() -> Site:
    return current_app.extensions["distributor"]


def register_errors(app: Flask) -> None:
    @app.errorhandler(CSRFError)
    def csrf_failed(error):
        return render_template("error.html", code=400, message="The form had expired or was not ours; try again."), 400

    for code, message in ((403, "Only an editor may do that."), (404, "There is nothing here."),
                          (405, "That address does not take that kind of request.")):
        app.register_error_handler(code, lambda e, c=code, m=message: (render_template(
            "error.html", code=c, message=m), c))

    @app.errorhandler(500)
    def failed(error):  # a fault of ours: said plainly, the traceback only in the log
        log.error("%s %s failed", request.method, request.path,
                  exc_info=getattr(error, "original_exception", None) or error)
        return render_template("error.html", code=500, message="Something went wrong on our side, and the error is "
                               "in the server's log. Nothing you asked for was half done: try again, or tell "
                               "whoever runs distributor."), 500


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


def common() -> dict:
    s = site()
    zone = s.config.office.timezone
    return {"user": g.get("user"), "office": s.config.office, "iso_z": iso_z,
            "local": lambda t: when(t, zone) if t else "-",
            "both": lambda t: f"{when(t, zone)} ({when(t)})" if t else "-",  # the office's time, UTC beside it
            "say": lambda e: words.timeline_event(e, zone),
            "said": lambda r: words.event(r["action"], r["actor"], r["detail"], r["revision"], zone),
            "details": words.details, "plural": plural}


def plural(count: int, one: str, many: str | None = None) -> str:
    return f"{count} {one if count == 1 else (many or one + 's')}"
