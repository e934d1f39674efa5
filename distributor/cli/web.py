"""The web app's command: serve, and the options it gives waitress. The app itself is distributor.web, imported only
when it is served."""

from __future__ import annotations

import argparse
import gc
import logging
import signal
import sys
from pathlib import Path

from distributor.cli.common import Parser, add_examples, open_app

log = logging.getLogger("distributor.web")


def serve_options(args, config) -> dict:
    """waitress's settings: many idle or slow connections may wait without keeping anyone else out, and a request
    still unfinished after 30 s is dropped; the app lives at the path of ``office.base_url``."""
    from distributor.web import root_path, upload_limit

    prefix = root_path(config)
    return {"host": args.host, "port": args.port, "threads": args.threads, "ident": "distributor",
            "connection_limit": 1000, "channel_timeout": 30, "url_prefix": "" if prefix == "/" else prefix,
            # a request body up to the upload limit stays in memory: a photo as uploaded, with its metadata, is never
            # buffered to a temporary file (waitress's default spills past 512 KB)
            "inbuf_overflow": upload_limit(config)}


def overridden_pages(config) -> list[Path]:
    """The office's copies of the web app's own templates: they hide the program's pages, which change with it."""
    from distributor.render import DEFAULT_TEMPLATES

    ours = DEFAULT_TEMPLATES / "web"
    theirs = Path(config.paths.templates) / "web"
    if not theirs.is_dir():
        return []
    return sorted(path for path in theirs.rglob("*") if path.is_file() and (ours / path.relative_to(theirs)).exists())


def cmd_serve(args) -> int:
    from waitress import serve

    from distributor.web import create_app

    app = open_app(args)
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)  # a rush is measured, not logged per request
    for path in overridden_pages(app.config):
        log.warning("%s overrides the web app's own page of that name; remove it to get the page as this version "
                    "of distributor makes it", path)
    web = create_app(app.config, app.engine, app.clock)
    gc.collect()
    gc.freeze()  # what start-up made lives as long as the server: full collections need not walk it, mid-request
    options = serve_options(args, app.config)
    print(f"serving on http://{args.host}:{args.port}{options['url_prefix']}/ "
          f"(office.base_url: {app.config.office.base_url or 'not set'})", file=sys.stderr)
    signal.signal(signal.SIGTERM, _stop)  # a stop by the service manager ends as Ctrl-C does: the views are written
    try:
        serve(web, **options)
    except KeyboardInterrupt:
        pass
    finally:
        recorder = web.extensions.get("portal_recorder")
        if recorder is not None:
            recorder.close()  # the last second's views
    return 0


def _stop(signum, frame) -> None:
    raise KeyboardInterrupt


def add_parsers(sub: argparse._SubParsersAction[Parser]) -> None:
    p = sub.add_parser("serve", help="serve the web app (waitress); it does not deliver: run 'distributor run' beside it")
    p.add_argument("--host", default="127.0.0.1", help="the address to listen on (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, help="the port (default: 8080)")
    p.add_argument("--threads", type=int, default=8, help="worker threads (default: 8)")
    p.set_defaults(func=cmd_serve)

    add_examples(sub, EXAMPLES)


EXAMPLES: dict[str, tuple[str, ...]] = {
    "serve": ("distributor serve", "distributor serve --host 0.0.0.0 --port 8080"),
}
