"""The documentation holds together: every relative link and anchor in README.md and docs/*.md resolves, every key
of config/distributor.toml (commented-out ones too) is documented in docs/configuration.md, and README.md stays
short."""

import re
import tomllib
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
CONFIG = ROOT / "config" / "distributor.toml"
CONFIG_DOC = ROOT / "docs" / "configuration.md"
README_LIMIT = 15_000

FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
ATX_HEADING = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
SETEXT_UNDERLINE = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
CODE_SPAN = re.compile(r"(?<!`)(`+)(?!`)(.+?)(?<!`)\1(?!`)")
INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*(<[^>\n]*>|[^\s)]+)(?:\s+(?:\"[^\"]*\"|'[^']*'))?\s*\)")
REFERENCE_DEFINITION = re.compile(r"^ {0,3}\[[^\]]+\]:\s*(<[^>\n]*>|\S+)")
HTML_LINK = re.compile(r"""<(?:a|img)\b[^>]*?\b(?:href|src)\s*=\s*["']([^"']+)["']""", re.IGNORECASE)
SCHEME = re.compile(r"^(?:[A-Za-z][A-Za-z0-9+.-]*:|//)")

TOML_HEADER = re.compile(r"^\s*(?:#\s*)?\[\[?\s*([A-Za-z0-9_.-]+)\s*\]\]?\s*(?:#.*)?$")
COMMENTED_KEY = re.compile(r"^\s*#\s*([A-Za-z0-9_-]+)\s*=\s*\S")


def prose_lines(text: str) -> list[str]:
    """The page's lines with fenced code blocks blanked out (line numbers kept)."""
    lines, fence = [], None
    for line in text.splitlines():
        match = FENCE.match(line)
        if fence is None and match:
            fence = match.group(1)
            lines.append("")
        elif fence is not None:
            if match and match.group(1)[0] == fence[0] and len(match.group(1)) >= len(fence) \
                    and not line.strip().lstrip(fence[0]):
                fence = None
            lines.append("")
        else:
            lines.append(line)
    return lines


def plain_heading_text(markdown: str) -> str:
    """What GitHub shows of a heading: links and images by their text, code spans by their content, no markup."""
    spans: list[str] = []

    def keep_code(match: re.Match) -> str:
        spans.append(match.group(2).strip())
        return f"\x00{len(spans) - 1}\x00"

    text = CODE_SPAN.sub(keep_code, markdown)
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"<[^>]+>", "", text)
    text = re.sub(r"(?<!\w)_+|_+(?!\w)", "", text)  # emphasis with underscores; snake_case stays
    return re.sub(r"\x00(\d+)\x00", lambda m: spans[int(m.group(1))], text)


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation other than - and _ dropped, each space a hyphen."""
    text = plain_heading_text(heading).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def headings(lines: list[str]) -> list[tuple[int, str]]:
    """(level, markdown text) of each heading, in order: ATX (# Title) and setext (Title over === or ---)."""
    found = []
    for i, line in enumerate(lines):
        atx = ATX_HEADING.match(line)
        if atx:
            found.append((len(atx.group(1)), atx.group(2) or ""))
            continue
        underline = SETEXT_UNDERLINE.match(line)
        previous = lines[i - 1] if i else ""
        if underline and previous.strip() and not ATX_HEADING.match(previous) \
                and not re.match(r"^\s*(?:[-*+]|\d+[.)]|>|\|)", previous) and not line.startswith("    "):
            found.append((1 if underline.group(1)[0] == "=" else 2, previous.strip()))
    return found


def anchors(lines: list[str]) -> set[str]:
    """Every heading's anchor; a repeated heading gets -1, -2, ... as on GitHub."""
    occurrences: dict[str, int] = {}
    result = set()
    for _, text in headings(lines):
        original = candidate = slug(text)
        while candidate in occurrences:
            occurrences[original] += 1
            candidate = f"{original}-{occurrences[original]}"
        occurrences[candidate] = 0
        result.add(candidate)
    return result


def links(lines: list[str]) -> list[tuple[int, str]]:
    """(line number, destination) of every inline link, image, reference definition and HTML href or src."""
    found = []
    for number, line in enumerate(lines, start=1):
        outside_code = CODE_SPAN.sub(lambda m: " " * len(m.group(0)), line)
        for pattern in (INLINE_LINK, REFERENCE_DEFINITION, HTML_LINK):
            for match in pattern.finditer(outside_code):
                found.append((number, match.group(1).strip("<>")))
    return found


def broken_links(page: Path) -> list[str]:
    lines = prose_lines(page.read_text(encoding="utf-8"))
    problems = []
    for number, destination in links(lines):
        if SCHEME.match(destination):
            continue
        path_part, _, fragment = destination.partition("#")
        target = (page.parent / unquote(path_part)).resolve() if path_part else page
        where = f"{page.relative_to(ROOT)}:{number}: ({destination})"
        if not target.exists():
            problems.append(f"{where} no such file {target.relative_to(ROOT) if target.is_relative_to(ROOT) else target}")
            continue
        if fragment and target.suffix == ".md":
            known = anchors(prose_lines(target.read_text(encoding="utf-8")))
            if unquote(fragment) not in known:
                problems.append(f"{where} no heading with anchor #{fragment} in {target.relative_to(ROOT)}")
    return problems


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_and_anchors_resolve(page):
    problems = broken_links(page)
    assert not problems, "broken links:\n" + "\n".join(problems)


def config_keys(text: str) -> tuple[set[str], set[str]]:
    """(dotted keys, dotted tables) of a TOML file: its real keys and tables, and keys and tables written commented
    out (``# key = value`` under the table above it, ``# [table]``)."""
    keys: set[str] = set()
    tables: set[str] = set()

    def walk(table: dict, prefix: str) -> None:
        for name, value in table.items():
            dotted = f"{prefix}{name}"
            if isinstance(value, dict):
                tables.add(dotted)
                walk(value, dotted + ".")
            elif isinstance(value, list) and value and all(isinstance(item, dict) for item in value):
                tables.add(dotted)
                for item in value:
                    walk(item, dotted + ".")
            else:
                keys.add(dotted)

    walk(tomllib.loads(text), "")
    table = ""
    for line in text.splitlines():
        header = TOML_HEADER.match(line)
        if header:
            table = header.group(1)
            tables.add(table)
            continue
        commented = COMMENTED_KEY.match(line)
        if commented:
            keys.add(f"{table}.{commented.group(1)}" if table else commented.group(1))
    return keys, tables


def section(doc_lines: list[str], table: str) -> str | None:
    """The part of the page under the heading that names ``[table]`` or ``[[table]]``, up to the next heading of
    the same or a higher level; None if no heading names it."""
    names = (f"[{table}]", f"[[{table}]]")
    found = [(i, ATX_HEADING.match(line)) for i, line in enumerate(doc_lines)]
    heads = [(i, len(m.group(1)), m.group(2) or "") for i, m in found if m]
    for position, (start, level, text) in enumerate(heads):
        if any(re.search(rf"(?<![\w\[.]){re.escape(name)}(?![\w\].])", text) for name in names):
            end = next((i for i, other, _ in heads[position + 1:] if other <= level), len(doc_lines))
            return "\n".join(doc_lines[start:end])
    return None


def undocumented(keys: set[str], doc: str) -> list[str]:
    """Keys neither named in full (``channels.email.smtp.host``) anywhere on the page nor written as `key` in the
    section of their table."""
    doc_lines = prose_lines(doc)
    missing = []
    for dotted in sorted(keys):
        table, _, key = dotted.rpartition(".")
        if re.search(rf"(?<![\w.]){re.escape(dotted)}(?![\w])", doc):
            continue
        part = section(doc_lines, table) if table else doc
        if part is None:
            missing.append(f"{dotted} (no heading names [{table}])")
        elif f"`{key}`" not in part:
            missing.append(f"{dotted} (no `{key}` under [{table}])")
    return missing


def test_every_config_key_is_documented():
    keys, _ = config_keys(CONFIG.read_text(encoding="utf-8"))
    missing = undocumented(keys, CONFIG_DOC.read_text(encoding="utf-8"))
    assert not missing, (f"not documented in {CONFIG_DOC.relative_to(ROOT)} ({len(missing)} of "
                         f"{len(keys)} keys of {CONFIG.relative_to(ROOT)}):\n" + "\n".join(missing))


def test_readme_stays_short():
    size = (ROOT / "README.md").stat().st_size
    assert size <= README_LIMIT, f"README.md is {size:,} bytes, more than {README_LIMIT:,}: move detail into docs/"


# The helpers above, on small examples, so that a check cannot pass by finding nothing.

def test_anchors_follow_githubs_rules():
    page = ["# The web app's pages", "## `[channels.email.smtp]`", "## Notes", "```", "## not a heading", "```",
            "## Notes", "### Notes", "## Run `make demo` & _see_ [it](x.md)", "Setext title", "---"]
    assert anchors(prose_lines("\n".join(page))) == {
        "the-web-apps-pages", "channelsemailsmtp", "notes", "notes-1", "notes-2", "run-make-demo--see-it", "setext-title"}
    assert slug("`web.session_max_days`") == "websession_max_days"
    assert slug("Lift latency, p99 (ms)") == "lift-latency-p99-ms"


def test_links_are_found_outside_code_only():
    text = "\n".join([
        "See [a](a.md#x), ![b](img/b.png \"title\") and [c](https://example.org/c.md).",
        "Not `[d](d.md)`, but [e **e**](<e f.md>).",
        "```md", "[g](g.md)", "```",
        "[ref]: docs/h.md#y",
        '<a href="i.md">i</a>',
    ])
    assert [d for _, d in links(prose_lines(text))] == [
        "a.md#x", "img/b.png", "https://example.org/c.md", "e f.md", "docs/h.md#y", "i.md"]


def test_commented_keys_belong_to_the_table_above_them():
    text = "\n".join([
        "top = 1",
        "[office]", "name = \"x\"", "# Prose with = in it is not a key.", "# four_eyes = true",
        "# [channels.email.dkim]", "# selector = \"s\"",
        "[channels.email.smtp]", "host = \"h\"", "#   port = 25",
        "[[channels.wire]]", "name = \"w\"", "[[channels.wire]]", "name = \"v\"", "url = \"u\"",
    ])
    keys, tables = config_keys(text)
    assert keys == {"top", "office.name", "office.four_eyes", "channels.email.dkim.selector",
                    "channels.email.smtp.host", "channels.email.smtp.port", "channels.wire.name", "channels.wire.url"}
    assert {"office", "channels.email.dkim", "channels.email.smtp", "channels.wire"} <= tables


def test_a_key_counts_as_documented_only_under_its_own_table():
    doc = "\n".join([
        "## `[office]`", "| `name` | the name |", "Needs `web.secret_env`.",
        "## `[channels.email]`", "| `list` | |", "### `[channels.email.smtp]`", "| `host` | |",
        "## `[[channels.wire]]`", "| `url` | |",
    ])
    keys = {"office.name", "web.secret_env", "channels.email.list", "channels.email.smtp.host",
            "channels.email.smtp.port", "channels.wire.url", "channels.wire.name", "paths.templates"}
    assert undocumented(keys, doc) == [
        "channels.email.smtp.port (no `port` under [channels.email.smtp])",
        "channels.wire.name (no `name` under [channels.wire])",
        "paths.templates (no heading names [paths])",
    ]
