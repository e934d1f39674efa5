"""The Atom feed, parsed with feedparser."""

from datetime import timedelta
from pathlib import Path

import feedparser

from distributor.clock import FixedClock, utcnow
from tests.channels.conftest import feed

IDS = [f"Index: TRO 01/00{i}/2026" for i in range(1, 5)]


def publish(system, clock, scheduled, reference, title, minutes):
    embargo = scheduled(system, channels="feed", statement_name=f"{minutes}.txt", title=title, reference=reference,
                        embargo=clock.now() + timedelta(minutes=minutes))
    return embargo


def lift_until(system, clock, instant):
    clock.set(instant)
    system.dispatcher.advance()
    system.dispatcher.deliver("feed")


def test_feed_holds_released_statements_only(make_system, scheduled):
    clock = FixedClock(utcnow())
    system = make_system(clock=clock, extra=feed(entries=2))
    path = Path(system.config_path.parent / "out" / "feed.atom")
    first = publish(system, clock, scheduled, IDS[0], "First: Zoë’s case", 10)
    second = publish(system, clock, scheduled, IDS[1], "Second statement", 20)
    third = publish(system, clock, scheduled, IDS[2], "Third, to be withdrawn", 25)
    fourth = publish(system, clock, scheduled, IDS[3], "Fourth statement", 40)
    assert system.cli("withdraw", "tro-01-003-2026", "--by", "Maya", "--reason", "facts changed").code == 0

    lift_until(system, clock, first - timedelta(seconds=1))
    assert not path.exists()  # nothing public a second early

    lift_until(system, clock, first)
    parsed = feedparser.parse(path.read_bytes())
    assert not parsed.bozo
    assert [e.title for e in parsed.entries] == ["First: Zoë’s case"]
    entry = parsed.entries[0]
    assert entry.id == "tag:office.example.org,2026-10-14:tro-01-001-2026"
    assert entry.link == "https://office.example.org/press/tro-01-001-2026"
    first_updated = entry.updated

    lift_until(system, clock, second)
    lift_until(system, clock, third)
    parsed = feedparser.parse(path.read_bytes())
    assert [e.title for e in parsed.entries] == ["Second statement", "First: Zoë’s case"]
    assert parsed.entries[1].id == entry.id and parsed.entries[1].updated == first_updated
    assert "withdrawn" not in path.read_text()

    lift_until(system, clock, fourth)
    parsed = feedparser.parse(path.read_bytes())
    assert [e.title for e in parsed.entries] == ["Fourth statement", "Second statement"]  # entries = 2
    rows = {r["target"] for r in __import__("json").loads(system.cli("log", "--format", "json").out)}
    assert rows == {str(path)}
    assert not list(path.parent.glob(".*tmp"))  # written atomically, nothing left behind


def test_feed_content_is_escaped(make_system, scheduled):
    clock = FixedClock(utcnow())
    system = make_system(clock=clock, extra=feed())
    embargo = scheduled(system, channels="feed", title="<script>alert(1)</script> & more")
    lift_until(system, clock, embargo)
    raw = (system.config_path.parent / "out" / "feed.atom").read_text()
    assert "<script>" not in raw
    parsed = feedparser.parse(raw)
    assert parsed.entries[0].title == "<script>alert(1)</script> & more"


def test_a_title_with_a_vertical_tab_from_word_becomes_a_space_and_the_feed_parses(make_system, scheduled):
    clock = FixedClock(utcnow())
    system = make_system(clock=clock, extra=feed())
    path = Path(system.config_path.parent / "out" / "feed.atom")
    first = publish(system, clock, scheduled, IDS[0], "Line one\x0bline two\x07 end", 10)
    lift_until(system, clock, first)
    parsed = feedparser.parse(path.read_bytes())
    assert not parsed.bozo
    assert [e.title for e in parsed.entries] == ["Line one line two  end"]


def test_a_feed_that_would_not_parse_is_never_published_nor_logged_as_sent(make_system, scheduled):
    import json

    from sqlalchemy import select, update

    from distributor.store.schema import revisions
    clock = FixedClock(utcnow())
    system = make_system(clock=clock, extra=feed())
    path = Path(system.config_path.parent / "out" / "feed.atom")
    first = publish(system, clock, scheduled, IDS[0], "Fine title", 10)
    with system.engine.begin() as conn:  # stored before control characters were cleaned at import
        content = conn.execute(select(revisions.c.content)).scalar_one()
        conn.execute(update(revisions).values(content={**content, "title": "Broken\x0btitle"}))
    lift_until(system, clock, first)
    assert not path.exists()
    [row] = json.loads(system.cli("log", "--format", "json").out)
    assert row["status"] == "failed" and "the feed would not be well-formed XML" in row["error"]


def test_a_feed_without_its_own_link_is_warned_about_once_at_start(make_system, caplog):
    system = make_system(extra=feed())
    with caplog.at_level("WARNING", logger="distributor.channels"):
        system.channels["feed"].open()
    assert [r.getMessage() for r in caplog.records if "channels.feed.link" in r.getMessage()] != []
    caplog.clear()
    linked = make_system(extra=feed() + 'link = "https://office.example.org/feed.atom"\n', name="b.toml")
    with caplog.at_level("WARNING", logger="distributor.channels"):
        linked.channels["feed"].open()
    assert not [r for r in caplog.records if "channels.feed.link" in r.getMessage()]
