"""Lists per statement: `schedule --lists`, `--add-lists` and the front matter's `lists:` choose the recipient lists
of a statement's email. One copy per person however many of the lists they are on; vetting per membership; notices
to the holders whichever list brought them the copy. Through the real loopback SMTP server and the whole pipeline."""

import csv
import email
import email.policy
import io
import json
from collections import Counter
from functools import partial

import pytest
from sqlalchemy import insert

from distributor import deliveries as d
from distributor import recipients as members
from distributor.clock import FixedClock
from distributor.store.schema import recipients, suppressions
from tests.conftest import utc
from tests.test_rules_deliveries import NOW, add_statement

SID = "tro-01-001-2026"
START = utc(2027, 3, 1, 9, 0)
SEND = utc(2027, 3, 1, 10, 0)
EMBARGO = utc(2027, 3, 2, 0, 1)

# ana: vetted on both lists (written in another case on the second); bob: vetted on europe only; cy: health only;
# dee: europe, not vetted; zed: only on the default list, which is not chosen.
LISTS = {
    "health": "email,name,embargo_ok\nana@paper.example.com,Ana Lima,yes\nbob@wire.example.net,Bob Ng,no\n"
              "cy@radio.example.org,Cy Doe,yes\n",
    "europe": "email,name,embargo_ok\nAna@paper.example.com,Ana Lima,yes\nbob@wire.example.net,Bob Ng,yes\n"
              "dee@daily.example.com,Dee Roe,no\n",
    "embargo": "email,name,embargo_ok\nzed@weekly.example.com,Zed Poe,yes\n",
}


def messages(sink) -> list[email.message.EmailMessage]:
    return [email.message_from_bytes(m.data, policy=email.policy.default) for m in sink.messages]


def to(sink) -> list[str]:
    return [m["To"].addresses[0].addr_spec.lower() for m in messages(sink)]


def rows(system) -> list[tuple]:
    return sorted((r["kind"], r["target"].lower(), r["status"], r["error"])
                  for r in json.loads(system.cli("log", SID, "--format", "json").out))


def tick(system) -> None:
    system.dispatcher.advance()
    for name in system.channels:
        system.dispatcher.deliver(name)


@pytest.fixture
def lists(make_system, smtp_sink, statement_file, tmp_path):
    """The three lists on file; the statement imported and approved, not yet scheduled."""
    clock = FixedClock(START)
    system = make_system(clock=clock, transport="smtp", smtp_port=smtp_sink.port)
    for name, text in LISTS.items():
        path = tmp_path / f"{name}.csv"
        path.write_text(text, encoding="utf-8")
        assert system.cli("recipients", "import", path, "--list", name).code == 0
    assert system.cli("import", statement_file()).code == 0
    assert system.cli("approve", SID, "--by", "Maya").code == 0
    return system, clock


def schedule(system, *args, send=START):
    return system.cli("schedule", SID, "--embargo", EMBARGO.isoformat(), "--send-embargoed-at", send.isoformat(),
                      "--channels", "email", *args)


def test_two_lists_that_overlap_give_each_person_one_copy_vetted_on_either(lists, smtp_sink):
    system, clock = lists
    result = schedule(system, "--lists", "health,europe")
    assert result.code == 0, result.err
    assert "lists health, europe" in result.out
    tick(system)
    # ana once (on both lists), bob embargoed (vetted on europe though not on health), cy; zed is not chosen
    assert sorted(to(smtp_sink)) == ["ana@paper.example.com", "bob@wire.example.net", "cy@radio.example.org"]
    assert all(m["Subject"].startswith("EMBARGOED") or "EMBARGO" in m.get_body(("plain",)).get_content()
               for m in messages(smtp_sink))
    clock.set(EMBARGO)
    tick(system)
    assert Counter(to(smtp_sink)) == Counter({"ana@paper.example.com": 1, "bob@wire.example.net": 1,
                                              "cy@radio.example.org": 1, "dee@daily.example.com": 1})
    log = json.loads(system.cli("log", SID, "--format", "json").out)
    assert {(r["target"].lower(), r["variant"]) for r in log} == {
        ("ana@paper.example.com", "embargoed"), ("bob@wire.example.net", "embargoed"),
        ("cy@radio.example.org", "embargoed"), ("dee@daily.example.com", "released")}
    assert all(r["lists"] == ["health", "europe"] for r in log)


def test_vetting_on_one_list_is_enough_and_is_checked_again_at_send_time(lists, smtp_sink, tmp_path):
    system, clock = lists
    assert schedule(system, "--lists", "health,europe", send=SEND).code == 0
    # bob is no longer vetted on europe, and unvetted on health: the released version is his, at the lift
    (tmp_path / "europe.csv").write_text(LISTS["europe"].replace("Bob Ng,yes", "Bob Ng,no"), encoding="utf-8")
    assert system.cli("recipients", "import", tmp_path / "europe.csv", "--list", "europe").code == 0
    clock.set(SEND)
    tick(system)
    assert sorted(to(smtp_sink)) == ["ana@paper.example.com", "cy@radio.example.org"]
    clock.set(EMBARGO)
    tick(system)
    assert sorted(to(smtp_sink)) == ["ana@paper.example.com", "bob@wire.example.net", "cy@radio.example.org",
                                     "dee@daily.example.com"]


def test_a_member_removed_from_every_chosen_list_before_the_send_gets_none(lists, smtp_sink):
    system, clock = lists
    assert schedule(system, "--lists", "health,europe", send=SEND).code == 0
    clock.set(SEND)
    system.dispatcher.advance()  # planned; nothing sent yet
    assert system.cli("recipients", "remove", "cy@radio.example.org", "--list", "health").code == 0
    assert system.cli("recipients", "remove", "bob@wire.example.net", "--list", "health").code == 0  # still on europe
    for name in system.channels:
        system.dispatcher.deliver(name)
    assert sorted(to(smtp_sink)) == ["ana@paper.example.com", "bob@wire.example.net"]
    assert ("statement", "cy@radio.example.org", "cancelled",
            "no longer on any of the lists 'health', 'europe'") in rows(system)


def test_an_unknown_list_is_refused_naming_it(lists):
    system, _ = lists
    result = schedule(system, "--lists", "health,nowhere")
    assert result.code == 2
    assert result.err.strip().endswith("--lists: no list named 'nowhere' (see 'distributor recipients list')")
    assert json.loads(system.cli("show", SID, "--format", "json").out)["status"] == "approved"
    assert schedule(system, "--lists", "health").code == 0
    result = system.cli("schedule", SID, "--add-lists", "europe,nowhere")
    assert result.code == 2 and "--add-lists: no list named 'nowhere'" in result.err
    result = system.cli("schedule", SID, "--add-lists", "health")
    assert result.code == 0 and result.out.strip() == f"{SID}: already goes to health; nothing added"
    assert json.loads(system.cli("show", SID, "--format", "json").out)["lists"] == ["health"]
    result = system.cli("schedule", SID, "--lists", ",")
    assert result.code == 2 and "--lists: " in result.err


def test_without_lists_the_statement_goes_to_the_configured_list(lists, smtp_sink):
    system, _ = lists
    assert schedule(system).code == 0
    tick(system)
    assert to(smtp_sink) == ["zed@weekly.example.com"]
    assert json.loads(system.cli("show", SID, "--format", "json").out)["lists"] == ["embargo"]


def test_lists_may_change_before_any_copy_is_held_and_the_dropped_copies_are_cancelled(lists, smtp_sink):
    system, clock = lists
    assert schedule(system, "--lists", "health,europe", send=SEND).code == 0
    clock.set(SEND)
    system.dispatcher.advance()  # planned, not sent
    result = schedule(system, "--lists", "europe", send=SEND)
    assert result.code == 0, result.err
    tick(system)
    assert sorted(to(smtp_sink)) == ["ana@paper.example.com", "bob@wire.example.net"]
    assert ("statement", "cy@radio.example.org", "cancelled", "not on the lists chosen now (europe)") in rows(system)
    trail = [e for e in json.loads(system.cli("audit", SID, "--format", "json").out) if e["action"] == "scheduled"]
    assert trail[-1]["detail"]["lists"] == ["europe"] and trail[-1]["detail"]["lists_before"] == ["health", "europe"]
    assert trail[-1]["detail"]["cancelled"] == 1


def test_once_copies_are_held_the_lists_only_grow_and_nobody_gets_two(lists, smtp_sink):
    system, clock = lists
    assert schedule(system, "--lists", "health").code == 0
    tick(system)
    assert sorted(to(smtp_sink)) == ["ana@paper.example.com", "cy@radio.example.org"]
    result = schedule(system, "--lists", "europe")
    assert result.code == 2 and "--lists:" in result.err and "--add-lists" in result.err
    assert "health would leave" in result.err
    result = system.cli("schedule", SID, "--add-lists", "europe", "--by", "Maya")
    assert result.code == 0, result.err
    assert "now goes to health, europe" in result.out
    clock.advance(60)
    tick(system)
    # ana (on europe too) gets nothing more; bob, vetted on europe, the embargoed copy now instead of the released
    # version at the lift; dee, new and unvetted, the released version at the lift
    assert sorted(to(smtp_sink)) == ["ana@paper.example.com", "bob@wire.example.net", "cy@radio.example.org"]
    clock.set(EMBARGO)
    tick(system)
    assert Counter(to(smtp_sink)) == Counter({"ana@paper.example.com": 1, "bob@wire.example.net": 1,
                                              "cy@radio.example.org": 1, "dee@daily.example.com": 1})
    assert system.cli("schedule", SID, "--add-lists", "europe").code == 2  # released: a new statement then
    refused = system.cli("schedule", SID, "--add-lists", "embargo")
    assert refused.code == 2 and "released" in refused.err and "new statement" in refused.err
    trail = [e for e in json.loads(system.cli("audit", SID, "--format", "json").out) if e["action"] == "scheduled"]
    assert [(e["actor"], e["detail"]["lists_added"], e["detail"]["lists"], e["detail"]["embargo"])
            for e in trail[1:]] == [("Maya", ["europe"], ["health", "europe"], str(EMBARGO))]


def test_a_new_vetted_member_added_with_a_list_gets_the_embargoed_copy(lists, smtp_sink, tmp_path):
    system, clock = lists
    assert schedule(system, "--lists", "health").code == 0
    tick(system)
    path = tmp_path / "asia.csv"
    path.write_text("email,embargo_ok\nyan@asia.example.com,yes\nana@paper.example.com,yes\n", encoding="utf-8")
    assert system.cli("recipients", "import", path, "--list", "asia").code == 0
    assert system.cli("schedule", SID, "--add-lists", "asia").code == 0
    clock.advance(60)
    tick(system)
    assert sorted(to(smtp_sink)) == ["ana@paper.example.com", "cy@radio.example.org", "yan@asia.example.com"]


def test_notices_go_to_the_holders_from_either_list_once_each(lists, smtp_sink):
    system, clock = lists
    assert schedule(system, "--lists", "health,europe").code == 0
    tick(system)
    copies = {m["To"].addresses[0].addr_spec.lower(): m["Message-ID"] for m in messages(smtp_sink)}
    assert sorted(copies) == ["ana@paper.example.com", "bob@wire.example.net", "cy@radio.example.org"]
    clock.advance(60)
    result = system.cli("withdraw", SID, "--by", "Maya", "--reason", "legal advice")
    assert result.code == 0 and "3 journalists" in result.out
    tick(system)
    notices = messages(smtp_sink)[3:]
    assert sorted(m["To"].addresses[0].addr_spec.lower() for m in notices) == sorted(copies)
    for notice in notices:
        assert notice["Subject"].startswith("WITHDRAWN: ")
        assert notice["In-Reply-To"] == copies[notice["To"].addresses[0].addr_spec.lower()]


def test_show_log_and_report_name_the_lists(lists):
    system, _ = lists
    assert schedule(system, "--lists", "health,europe").code == 0
    tick(system)
    assert "Lists: health, europe" in system.cli("show", SID).out
    assert json.loads(system.cli("show", SID, "--format", "json").out)["lists"] == ["health", "europe"]
    table = list(csv.DictReader(io.StringIO(system.cli("log", SID, "--format", "csv").out)))
    assert table and all(r["lists"] == "health, europe" for r in table)
    assert "lists: health, europe" in system.cli("report", SID).out


MARKDOWN = """---
title: Riverland must publish its flood maps
date: 2026-10-14
reference: "Index: TRO 01/001/2026"
lists: {lists}
---
The Test Rights Office said today that a fictional river authority must publish its flood maps.
"""


def test_front_matter_lists_choose_the_lists_and_an_unknown_one_is_refused(lists, smtp_sink, tmp_path):
    system, _ = lists
    path = tmp_path / "other.md"
    path.write_text(MARKDOWN.format(lists="[europe, nowhere]"), encoding="utf-8")
    assert system.cli("import", path, "--id", "md-1").code == 0
    assert system.cli("approve", "md-1", "--by", "Maya").code == 0
    result = system.cli("schedule", "md-1", "--embargo", EMBARGO.isoformat(), "--override-embargo",
                        "--channels", "email")
    assert result.code == 2 and "lists: no list named 'nowhere'" in result.err
    path.write_text(MARKDOWN.format(lists="europe").replace("Riverland", "Riverland now"), encoding="utf-8")
    path2 = tmp_path / "good.md"
    path2.write_text(MARKDOWN.format(lists="[europe]").replace("TRO 01/001/2026", "TRO 02/001/2026"),
                     encoding="utf-8")
    assert system.cli("import", path2).code == 0
    assert system.cli("approve", "tro-02-001-2026", "--by", "Maya").code == 0
    result = system.cli("schedule", "tro-02-001-2026", "--embargo", EMBARGO.isoformat(), "--send-embargoed-at",
                        START.isoformat(), "--channels", "email")
    assert result.code == 0, result.err
    tick(system)
    assert sorted(to(smtp_sink)) == ["ana@paper.example.com", "bob@wire.example.net"]


def test_the_database_gives_each_person_once_across_the_chosen_lists(engine):
    with engine.begin() as conn:
        add_statement(conn)
        conn.execute(insert(recipients), [
            {"list_name": name, "email": address, "email_key": address.lower(), "embargo_ok": vetted,
             "created_at": NOW, "updated_at": NOW} for name, address, vetted in (
                ("a", "one@x", True), ("a", "two@x", False), ("a", "held@x", True), ("a", "gone@x", True),
                ("b", "ONE@x", True), ("b", "Two@x", True), ("b", "three@x", False), ("b", "four@x", True),
                ("c", "three@x", False), ("c", "five@x", False), ("c", "four@x", False))])
        conn.execute(insert(suppressions).values(email_key="gone@x", reason="unsubscribed", actor="a",
                                                 created_at=NOW))
        d.plan(conn, "s1", 1, "email", ["held@x"], NOW, NOW)
        unless = partial(d.holds_revision, statement_id="s1", revision=1, generation=1)
        assert list(members.eligible(conn, ("a", "b"), embargoed=True, unless=unless)) == [
            "one@x", "Two@x", "four@x"]
        assert list(members.release_members(conn, ("a", "b"), ("c",), unless)) == ["three@x", "five@x"]
        standing = members.standing(conn, ("a", "b"), ["two@x", "three@x", "five@x", "nobody@x"], ("c",))
        assert standing["two@x"].embargo_ok and not standing["three@x"].embargo_ok
        assert standing["five@x"].awaits_release and not standing["nobody@x"].member
        assert members.unknown_list(conn, ("a", "zz", "c")) == "zz"


def test_a_dry_run_names_nothing_done_and_an_unknown_list_is_its_refusal(lists):
    system, _ = lists
    result = schedule(system, "--lists", "health,europe", "--dry-run")
    assert result.code == 0, result.err
    assert json.loads(system.cli("show", SID, "--format", "json").out)["status"] == "approved"
    result = schedule(system, "--lists", "nowhere", "--dry-run")
    assert result.code == 2 and "--lists: no list named 'nowhere'" in result.err


def test_add_lists_takes_no_other_option_and_needs_a_scheduled_statement(lists):
    system, _ = lists
    result = system.cli("schedule", SID, "--add-lists", "europe")
    assert result.code == 2 and "--add-lists: " in result.err and "--lists" in result.err  # approved: not yet
    assert schedule(system, "--lists", "health").code == 0
    result = system.cli("schedule", SID, "--add-lists", "europe", "--embargo", EMBARGO.isoformat())
    assert result.code == 2 and "--add-lists: only adds lists" in result.err and "--embargo" in result.err


def test_a_document_without_lists_keeps_its_content_hash(tmp_path):
    from distributor.statements.markdown import parse

    plain = parse(MARKDOWN.replace("lists: {lists}\n", "").encode(), "a.md")
    chosen = parse(MARKDOWN.format(lists="[health, europe, health]").encode(), "b.md")
    assert "lists" not in plain.to_dict()  # the hash of every statement imported before lists stays the same
    assert chosen.lists == ("health", "europe") and chosen.to_dict()["lists"] == ["health", "europe"]
    assert type(chosen).from_dict(chosen.to_dict()) == chosen
    assert chosen.content_hash() != plain.content_hash()


def test_lists_added_while_the_plan_is_written_are_planned_at_the_next_sweep(lists, smtp_sink):
    system, clock = lists
    assert schedule(system, "--lists", "health", send=SEND).code == 0
    clock.set(SEND)
    email = system.channels["email"]
    plain = email.release_targets

    def meanwhile(conn, job):  # an editor adds a list while this worker streams the old lists' members
        assert system.cli("schedule", SID, "--add-lists", "europe").code == 0
        email.release_targets = plain
        return plain(conn, job)

    email.release_targets = meanwhile
    system.dispatcher.advance()
    tick(system)
    clock.set(EMBARGO)
    tick(system)
    assert Counter(to(smtp_sink)) == Counter({"ana@paper.example.com": 1, "bob@wire.example.net": 1,
                                              "cy@radio.example.org": 1, "dee@daily.example.com": 1})


def test_lists_grown_before_the_send_bring_the_embargoed_copy_to_the_newly_vetted(lists, smtp_sink):
    system, clock = lists
    assert schedule(system, "--lists", "health", send=SEND).code == 0
    clock.set(SEND)
    system.dispatcher.advance()  # bob planned for the released version, at the lift
    assert schedule(system, "--lists", "health,europe", send=SEND).code == 0
    tick(system)
    assert sorted(to(smtp_sink)) == ["ana@paper.example.com", "bob@wire.example.net", "cy@radio.example.org"]
    clock.set(EMBARGO)
    tick(system)
    assert Counter(to(smtp_sink))["dee@daily.example.com"] == 1 and len(to(smtp_sink)) == 4


def test_a_corrected_revision_keeps_the_lists_chosen_before_and_adds_its_own(lists, smtp_sink, tmp_path):
    system, clock = lists
    path = tmp_path / "c.md"
    path.write_text(MARKDOWN.format(lists="[health]"), encoding="utf-8")
    assert system.cli("import", path, "--id", "md-2").code == 0
    assert system.cli("approve", "md-2", "--by", "Maya").code == 0
    assert system.cli("schedule", "md-2", "--embargo", EMBARGO.isoformat(), "--override-embargo",
                      "--send-embargoed-at", START.isoformat(), "--channels", "email").code == 0
    assert system.cli("schedule", "md-2", "--add-lists", "europe").code == 0
    tick(system)
    assert sorted(to(smtp_sink)) == ["ana@paper.example.com", "bob@wire.example.net", "cy@radio.example.org"]
    path.write_text(MARKDOWN.format(lists="[health, embargo]").replace("flood maps.", "flood maps now."),
                    encoding="utf-8")
    assert system.cli("import", path, "--revision-of", "md-2").code == 0
    assert system.cli("approve", "md-2", "--by", "Maya").code == 0
    clock.advance(60)
    result = system.at("schedule", "md-2", "--channels", "email", "--reason", "a word")
    assert result.code == 0, result.err
    assert json.loads(system.cli("show", "md-2", "--format", "json").out)["lists"] == ["health", "europe", "embargo"]
    tick(system)
    sent = to(smtp_sink)[3:]
    assert sorted(sent) == ["ana@paper.example.com", "bob@wire.example.net", "cy@radio.example.org",
                            "zed@weekly.example.com"]  # the holders corrected, zed (embargo) the copy
