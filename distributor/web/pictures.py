"""What the statement page draws instead of numbers alone: the deliveries over time as an SVG made here (no script,
nothing from another site), each channel's progress, and the differences between two revisions of the text."""

from __future__ import annotations

import difflib
from datetime import datetime

from markupsafe import Markup, escape

from distributor.statements.model import Statement

WIDTH, HEIGHT, PAD = 640, 180, 36


def progress(counts: dict[str, int]) -> list[tuple[str, int, float]]:
    """(status, count, share of the channel's deliveries) for the bar: sent, pending, retrying, failed."""
    shown = {"sent": counts.get("sent", 0), "pending": counts.get("pending", 0) + counts.get("sending", 0),
             "retrying": counts.get("retrying", 0), "failed": counts.get("failed", 0)}
    total = sum(shown.values()) or 1
    return [(status, n, round(100 * n / total, 2)) for status, n in shown.items()]


COLOURS = {"embargoed": "#7a4200", "released": "#1d5e2a"}


def chart(series: dict[str, list[tuple[datetime, int]]], embargo: datetime | None, label) -> Markup:
    """Email copies sent over time, one step line per version (the running total of embargoed copies, and of
    released ones), with the embargo marked. ``label`` says an instant in words (the office's zone)."""
    if not series:
        return Markup("")
    instants = [t for points in series.values() for t, _ in points] + ([embargo] if embargo else [])
    start, end = min(instants), max(instants)
    span = (end - start).total_seconds() or 1.0
    top = max(points[-1][1] for points in series.values()) or 1

    def x(t: datetime) -> float:
        return round(PAD + (WIDTH - 2 * PAD) * (t - start).total_seconds() / span, 1)

    def y(n: int) -> float:
        return round(HEIGHT - PAD - (HEIGHT - 2 * PAD) * n / top, 1)

    said = "; ".join(f"{points[-1][1]} {variant} copies sent between {label(points[0][0])} and {label(points[-1][0])}"
                     for variant, points in series.items())
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" class="chart" '
        f'aria-label="{escape(said)}">',
        f'<line x1="{PAD}" y1="{HEIGHT - PAD}" x2="{WIDTH - PAD}" y2="{HEIGHT - PAD}" stroke="#999"/>',
        f'<text x="{PAD}" y="{HEIGHT - 10}" font-size="11">{escape(label(start))}</text>',
        f'<text x="{WIDTH - PAD}" y="{HEIGHT - 10}" font-size="11" text-anchor="end">{escape(label(end))}</text>',
        f'<text x="{PAD - 4}" y="{y(top) + 4}" font-size="11" text-anchor="end">{top}</text>',
    ]
    for n, (variant, points) in enumerate(series.items()):
        path = [f"M{x(points[0][0])},{y(0)}"] + [f"H{x(t)}V{y(count)}" for t, count in points]
        parts.append(f'<path d="{"".join(path)}" fill="none" stroke="{COLOURS.get(variant, "#333")}" '
                     f'stroke-width="2"/>')
        parts.append(f'<text x="{PAD + 4}" y="{12 * (n + 1)}" font-size="11" '
                     f'fill="{COLOURS.get(variant, "#333")}">{escape(variant)}</text>')
    if embargo is not None:
        parts.append(f'<line x1="{x(embargo)}" y1="{PAD / 2}" x2="{x(embargo)}" y2="{HEIGHT - PAD}" '
                     f'stroke="#a00" stroke-dasharray="4 3"/>')
        right = x(embargo) > WIDTH * 0.7  # the label inside the picture, on whichever side has room
        anchor = "end" if right else "start"
        parts.append(f'<text x="{x(embargo) - 4 if right else x(embargo) + 4}" y="{PAD / 2 + 10}" font-size="11" '
                     f'fill="#a00" text-anchor="{anchor}">embargo</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def as_text(statement: Statement) -> list[str]:
    """The statement's words, a paragraph a line, as the differences compare them."""
    lines = [statement.title]
    if statement.summary:
        lines.append(statement.summary)
    lines.extend(statement.body)
    if statement.contacts:
        lines.extend(statement.contacts.split("\n"))
    return lines


def differences(old: Statement, new: Statement) -> Markup:
    """The new revision's text with what was taken out struck through (<del>) and what was put in marked (<ins>),
    word by word within changed paragraphs."""
    before, after = as_text(old), as_text(new)
    out: list[str] = []
    for op, a1, a2, b1, b2 in difflib.SequenceMatcher(a=before, b=after, autojunk=False).get_opcodes():
        if op == "equal":
            out.extend(f"<p>{escape(line)}</p>" for line in after[b1:b2])
        elif op == "replace" and a2 - a1 == b2 - b1:
            out.extend(f"<p>{_words(x, y)}</p>" for x, y in zip(before[a1:a2], after[b1:b2], strict=True))
        else:
            out.extend(f"<p><del>{escape(line)}</del></p>" for line in before[a1:a2])
            out.extend(f"<p><ins>{escape(line)}</ins></p>" for line in after[b1:b2])
    return Markup("\n".join(out))


def _words(old: str, new: str) -> str:
    a, b = old.split(" "), new.split(" ")
    out: list[str] = []
    for op, a1, a2, b1, b2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if op == "equal":
            out.append(str(escape(" ".join(b[b1:b2]))))
            continue
        if a2 > a1:
            out.append(f"<del>{escape(' '.join(a[a1:a2]))}</del>")
        if b2 > b1:
            out.append(f"<ins>{escape(' '.join(b[b1:b2]))}</ins>")
    return " ".join(out)
