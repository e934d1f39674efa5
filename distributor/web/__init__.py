"""The press office's web app: server-rendered pages over the delivery record and the audit trail, and the editors'
actions through the same operations as the command line. ``distributor serve`` runs it on waitress; it never
delivers (``distributor run`` does).

Security: every page needs a login (server-side sessions with an idle and an absolute lifetime, argon2 passwords, a
limit on failed logins that refused attempts cannot renew, and a signed device cookie that lets a locked-out user
back in from a browser they used before); every POST carries a CSRF token (Flask-WTF), except the one-click
unsubscribe, which its signed URL authenticates; managers read, editors act; nothing embargoed is ever shown to a
visitor who has not logged in, framed by another page, or kept in a cache.
"""

from __future__ import annotations

import io
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

from flask import Flask, Request, render_template
from flask_wtf.csrf import CSRFProtect
from jinja2 import ChoiceLoader, FileSystemLoader
from sqlalchemy.engine import Engine
from werkzeug.middleware.proxy_fix import ProxyFix

from distributor import users
from distributor.clock import Clock
from distributor.config import Config, secret
from distributor.errors import ConfigError
from distributor.media import megabytes
from distributor.render import DEFAULT_TEMPLATES, when

MAX_UPLOAD = 5 * 1024 * 1024
FORM_ROOM = 64 * 1024  # an upload's form beside its file: the alt text, caption and the rest, and the multipart frame


def upload_limit(config: Config) -> int:
    """The most one request may carry: a statement file (5 MB), or a photo or document of ``media.max_bytes`` with
    its form."""
    return max(MAX_UPLOAD, config.media.max_bytes + FORM_ROOM)


class InMemoryRequest(Request):
    """Uploads are read into memory, never spooled to a temporary file: a photo as uploaded, with its metadata
    (a GPS position, a camera's serial number), never reaches the disk. The upload limit bounds it."""

    def _get_file_stream(self, total_content_length, content_type, filename=None, content_length=None):
        return io.BytesIO()


def web_secret(config: Config) -> str:
    """The key that signs sessions, CSRF tokens and unsubscribe links, from the variable ``web.secret_env`` names."""
    if not config.web.secret_env:
        raise ConfigError("web.secret_env is required: the environment variable holding the key that signs sessions "
                          "and unsubscribe links", where=str(config.path))
    value = secret(config.web.secret_env, "web.secret_env")
    if len(value) < 32:
        raise ConfigError(f"web.secret_env: {config.web.secret_env} must hold at least 32 characters",
                          where=str(config.path))
    return value


def root_path(config: Config) -> str:
    """Where the app lives under ``office.base_url`` ("/" without one): its cookies' Path and waitress's prefix."""
    return urlsplit(config.office.base_url or "").path.rstrip("/") or "/"


def create_app(config: Config, engine: Engine, clock: Clock) -> Flask:
    from distributor.web import actions, auth, calendar, lists, newsroom, pages, public, site

    users.dummy_hash()  # made now: the first login with an unknown name costs what every other one does
    app = Flask(__name__, static_folder=None)
    key = web_secret(config)
    https = bool(config.office.base_url and config.office.base_url.startswith("https://"))
    app.config.update(
        SECRET_KEY=key,
        SESSION_COOKIE_NAME="distributor_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=https,
        APPLICATION_ROOT=root_path(config),  # the session cookie's Path
        PERMANENT_SESSION_LIFETIME=timedelta(hours=config.web.session_idle_hours),
        WTF_CSRF_TIME_LIMIT=None,  # the token lives as long as the session, which the server ends
        WTF_CSRF_SSL_STRICT=https,
        MAX_CONTENT_LENGTH=upload_limit(config),
    )
    app.request_class = InMemoryRequest
    app.jinja_loader = ChoiceLoader([FileSystemLoader(str(Path(config.paths.templates) / "web")),
                                     FileSystemLoader(str(DEFAULT_TEMPLATES / "web"))])
    app.jinja_env.filters["when"] = when
    app.extensions["distributor"] = site.Site(config, engine, clock, key)
    newsroom_settings = config.channels.get("newsroom")
    if newsroom_settings is not None:  # the public site at /news/, before any session or login
        app.extensions["newsroom"] = newsroom.NewsroomSite(app.wsgi_app, newsroom_settings.directory, engine, clock)
        app.wsgi_app = app.extensions["newsroom"]  # type: ignore[method-assign]
    if config.web.behind_proxy:  # only then are X-Forwarded-* headers believed (a client could forge them)
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1, x_prefix=1)  # type: ignore[method-assign]
    csrf = CSRFProtect(app)
    csrf.exempt(public.unsubscribe_post)  # a mail provider posts it with no cookie and no token: the URL is signed
    app.before_request(auth.load_user)
    for blueprint in (auth.auth, pages.pages, actions.actions, lists.lists, public.public, calendar.calendar, calendar.feed):
        app.register_blueprint(blueprint)
    if config.portal is not None:  # the journalists' own door: /j/<token> and /portal/
        from distributor.web import portal

        portal.install(app)
    app.after_request(site.protective_headers)
    app.context_processor(site.common)
    site.register_errors(app)
    too_large = (f"That upload is too large: a request carries at most {megabytes(upload_limit(config))}, and a "
                 f"photo or document at most {megabytes(config.media.max_bytes)} (media.max_bytes).")
    app.register_error_handler(413, lambda e: (render_template("error.html", code=413, message=too_large), 413))
    return app
