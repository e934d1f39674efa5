"""Commands on a statement's photos and documents: media add and media remove. Each makes a new revision."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from distributor import media, workflow
from distributor.cli.common import Parser, actor, add_examples, open_app, optional_text


def revision_said(statement_id: str, result: workflow.ImportResult) -> str:
    return (f"{statement_id}: revision {result.revision}"
            + ("; the approval is revoked, approve it again" if result.approval_revoked else "")
            + (f"; {result.cancelled} unsent deliveries of the old revision cancelled" if result.cancelled else ""))


def cmd_media_add(args) -> int:
    app = open_app(args)
    library = media.Library.of(app.config)
    described = {key: getattr(args, key) for key in media.TEXT_LIMITS}
    with app.engine.begin() as conn:
        def add(items):
            item = library.load(Path(args.file), described, items)
            return items + (item,), item

        result, item = workflow.change_media(conn, args.id, add, actor(args), app.clock.now(),
                                             note=optional_text(args.note, "--note"))
    print(item.name)
    print(f"{revision_said(args.id, result)}: added {item.name} ({item.kind}, {media.megabytes(item.size)})",
          file=sys.stderr)
    return 0


def cmd_media_remove(args) -> int:
    app = open_app(args)
    with app.engine.begin() as conn:
        def remove(items):
            item = media.find(items, args.media)
            return tuple(i for i in items if i is not item), item

        result, item = workflow.change_media(conn, args.id, remove, actor(args), app.clock.now(),
                                             note=optional_text(args.note, "--note"))
    print(f"{revision_said(args.id, result)}: removed {item.name}", file=sys.stderr)
    return 0


def add_parsers(sub: argparse._SubParsersAction[Parser]) -> None:
    p = sub.add_parser("media", help="add or remove a statement's photos and documents (each makes a new revision)")
    media_sub = p.add_subparsers(dest="media_command", required=True, parser_class=Parser)
    a = media_sub.add_parser("add", help="add a photo (JPEG, PNG, WebP) or a document (PDF); prints its name")
    a.add_argument("id", help="the statement's id (see 'distributor list')")
    a.add_argument("file", metavar="FILE", help="the file; its type is read from its content")
    a.add_argument("--alt", metavar="TEXT", help="what the photo shows, for those who cannot see it (required for a "
                                                 "photo; at most 1,500 characters)")
    a.add_argument("--title", metavar="TEXT", help="a document's title")
    a.add_argument("--caption", metavar="TEXT", help="the caption shown with it")
    a.add_argument("--credit", metavar="TEXT", help="who holds the copyright, e.g. 'Photo: A. Reporter / NHRN'")
    a.add_argument("--licence", metavar="TEXT", help="the terms of reuse, e.g. 'CC BY 4.0'")
    a.add_argument("--note", metavar="TEXT", help="what changed, for journalists who hold an earlier revision")
    a.add_argument("--by", required=True, help="who adds it (required)")
    a.set_defaults(func=cmd_media_add)
    r = media_sub.add_parser("remove", help="remove a photo or document by the name 'show' lists")
    r.add_argument("id", help="the statement's id (see 'distributor list')")
    r.add_argument("media", metavar="MEDIA", help="the item's name, as 'distributor show ID' lists it")
    r.add_argument("--note", metavar="TEXT", help="what changed, for journalists who hold an earlier revision")
    r.add_argument("--by", required=True, help="who removes it (required)")
    r.set_defaults(func=cmd_media_remove)
    add_examples(media_sub, EXAMPLES)


EXAMPLES: dict[str, tuple[str, ...]] = {
    "media add": ("distributor media add tro-01-001-2026 field-visit.jpg --alt 'Volunteers sandbag a doorway in "
                  "Eastbrook' --credit 'Photo: NHRN' --licence 'CC BY 4.0' --by 'Sam Lee'",
                  "distributor media add tro-01-001-2026 report.pdf --title 'The full report' --by 'Sam Lee'"),
    "media remove": ("distributor media remove tro-01-001-2026 field-visit.jpg --by 'Sam Lee'",),
}
