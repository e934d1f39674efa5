"""The statement page shows the statement itself, its revisions and what changed between them, each channel's progress,
a chart of the sending with the embargo marked, each social post as its network shows it, and refreshes itself while
copies go out."""

import html
import re

from sqlalchemy import update

from distributor.store.schema import deliveries
from tests.channels.conftest import mastodon
from tests.test_web_actions import scheduled_and_held
from tests.webapp import SID, login


def page_of(client, query: str = "") -> str:
    reply = client.get(f"/statements/{SID}{query}")
    assert reply.status_code == 200
    return reply.get_data(as_text=True)


def test_the_statement_is_shown_as_a_journalist_reads_it(web):
    system, clock, app = web()
    page = page_of(login(app))
    text = page.split('id="text"', 1)[1].split("<h2", 1)[0]
    assert "Riverland: Flood maps must be published" in text
    assert "must publish its flood maps" in text
    assert "“nobody listened”" in html.unescape(text)


def test_two_revisions_are_compared_word_by_word(web, statement_file):
    system, clock, app = web()
    newer = statement_file(name="v2.txt", body_extra="A figure was corrected.")
    newer.write_text(newer.read_text(encoding="utf-8").replace("flood maps.", "flood risk maps."), encoding="utf-8")
    assert system.at("import", newer, "--revision-of", SID, "--by", "sam", "--note", "risk maps").code == 0
    client = login(app)
    page = page_of(client)
    differences = page.split('id="differences"', 1)[1].split("</div>", 1)[0]
    body = differences.split("put in</ins>.</p>", 1)[1]
    assert "must publish its flood <ins>risk</ins> maps." in body
    assert "<p><ins>A figure was corrected.</ins></p>" in body
    assert "<del>" not in body  # nothing was taken out
    revisions = page.split('id="revisions"', 1)[1].split("</table>", 1)[0]
    assert "risk maps" in revisions and "v2.txt" in revisions
    same = page_of(client, "?from=2&to=2")
    assert "<ins>" not in same.split('id="differences"', 1)[1].split("</div>", 1)[0].split("put in", 1)[1]
    assert client.get(f"/statements/{SID}?from=9&to=1").status_code == 404
    assert client.get(f"/statements/{SID}?from=x").status_code == 404


def test_progress_chart_and_refresh_while_sending(web):
    system, clock, app = web()
    client = login(app)
    page = page_of(client)
    assert 'http-equiv="refresh"' not in page and "<svg" not in page  # nothing planned, nothing sent
    scheduled_and_held(system, clock)  # ana and bob hold the embargoed copy; tv's copy waits for the lift
    page = page_of(client)
    assert 'http-equiv="refresh"' not in page  # the lift is hours away: nothing to watch
    assert re.search(r'aria-label="email: 2 sent, 1 pending, 0 retrying, 0 failed"', page)
    timeline = page.split("<h2>Timeline</h2>", 1)[1]
    assert re.search(r"2 embargoed copies sent (at|between) \d\d:\d\d:\d\d GMT", timeline)
    svg = page.split("<svg", 1)[1].split("</svg>", 1)[0]
    assert 'aria-label="2 embargoed copies sent between' in svg and ">embargo</text>" in svg
    with system.engine.begin() as conn:
        conn.execute(update(deliveries).where(deliveries.c.target == "tv@tv.example.org").values(
            status="sending"))
    page = page_of(client)
    assert 'http-equiv="refresh" content="5"' in page and "Stop refreshing" in page
    stopped = page_of(client, "?refresh=off")  # a reader may stop it
    assert 'http-equiv="refresh"' not in stopped and "Refresh every 5 seconds" in stopped
    with system.engine.begin() as conn:
        conn.execute(update(deliveries).where(deliveries.c.target == "tv@tv.example.org").values(
            status="pending", next_attempt_at=clock.now()))
    assert 'http-equiv="refresh" content="5"' in page_of(client)  # due now


def test_a_social_post_is_shown_with_its_length_as_the_network_counts_it(web, monkeypatch):
    monkeypatch.setenv("DISTRIBUTOR_MASTODON_TOKEN", "a-token-for-the-test")
    system, clock, app = web(extra=mastodon("https://social.example.org", transport="file"))
    page = html.unescape(page_of(login(app)))
    post = page.split("post-mastodon", 1)[1].split("</div>", 1)[0]
    assert "Riverland: Flood maps must be published" in post
    assert re.search(r"\d+ of 500 characters, as Mastodon counts them", post)


def test_the_list_links_titles_shows_badges_and_finds_by_title_or_reference(web, statement_file):
    system, clock, app = web()
    other = statement_file(name="other.txt", title="Harbour dredging licence refused",
                           reference="Index: TRO 01/002/2026")
    assert system.at("import", other, "--by", "sam").code == 0
    client = login(app)
    page = html.unescape(client.get("/").get_data(as_text=True))
    assert f'<a href="/distributor/statements/{SID}">Riverland: Flood maps must be published</a>' in page
    assert '<span class="badge badge-draft">draft</span>' in page and "2 statements." in page
    found = html.unescape(client.get("/?q=harbour").get_data(as_text=True))
    assert "Harbour dredging" in found and "Riverland" not in found and "1 statement." in found
    by_reference = html.unescape(client.get("/?q=01/002").get_data(as_text=True))
    assert "Harbour dredging" in by_reference and "Riverland" not in by_reference
    none = client.get("/?q=nothing-like-this").get_data(as_text=True)
    assert "No statements match." in none and "0 statements." in none
