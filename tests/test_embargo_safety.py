"""Embargo safety end to end: daylight-saving change days, and a scheduler that was down across the lift."""

import email
import email.policy
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from distributor import workflow
from distributor.clock import FixedClock
from distributor.errors import StateError
from tests.channels.conftest import feed, file_wire

SID = "tro-01-001-2026"
OFFLINE = file_wire() + feed()


def utc(*a):
    return datetime(*a, tzinfo=UTC)


@pytest.mark.parametrize("local, zone, instant, subject_time", [
    ("2027-03-28 09:00", "Europe/London", utc(2027, 3, 28, 8, 0), "09:00 BST 28 March 2027"),       # spring forward
    ("2027-03-28 00:30", "Europe/London", utc(2027, 3, 28, 0, 30), "00:30 GMT 28 March 2027"),      # before the change
    ("2027-10-31 09:00", "Europe/London", utc(2027, 10, 31, 9, 0), "09:00 GMT 31 October 2027"),    # fall back
    ("2027-10-31 00:30", "Europe/London", utc(2027, 10, 30, 23, 30), "00:30 BST 31 October 2027"),
    ("2027-03-14 09:00", "America/New_York", utc(2027, 3, 14, 13, 0), "13:00 GMT 14 March 2027"),
    ("2027-11-07 09:00", "America/New_York", utc(2027, 11, 7, 14, 0), "14:00 GMT 7 November 2027"),
])
def test_embargo_on_daylight_saving_days(make_system, statement_file, tmp_path, local, zone, instant, subject_time):
    clock = FixedClock(instant - timedelta(days=1))
    system = make_system(clock=clock, extra=OFFLINE)
    csv = tmp_path / "r.csv"
    csv.write_text("email,name,embargo_ok\nana@paper.example.com,Ana,yes\n")
    system.cli("recipients", "import", csv, "--list", "embargo")
    system.cli("import", statement_file())
    system.cli("approve", SID, "--by", "Maya")
    result = system.cli("schedule", SID, "--embargo", f"{local} {zone}", "--send-embargoed-at", clock.now().isoformat())
    assert result.code == 0, result.err
    assert json.loads(system.cli("show", SID, "--format", "json").out)["embargo"] == instant.strftime("%Y-%m-%dT%H:%M:%SZ")

    system.dispatcher.advance()
    system.dispatcher.deliver("email")
    [eml] = (system.config_path.parent / "outbox").rglob("*.eml")
    msg = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
    assert msg["Subject"].startswith(f"EMBARGOED UNTIL {subject_time}:")
    text = msg.get_body(("plain",)).get_content()
    assert instant.strftime("%H:%M UTC") in text
    if zone == "America/New_York":  # an extra zone of the office: shown with the abbreviation in force that day
        assert f"{local[-5:]} {'EDT' if instant.month == 3 else 'EST'}" in text

    wire_out = Path(system.config_path.parent / "out" / "wire")
    for early in (timedelta(hours=1), timedelta(seconds=1), timedelta(microseconds=1)):
        clock.set(instant - early)
        system.dispatcher.advance()
        system.dispatcher.deliver("wire")
        system.dispatcher.deliver("feed")
        assert not wire_out.exists() and not (wire_out.parent / "feed.atom").exists()
    clock.set(instant)
    system.dispatcher.advance()
    system.dispatcher.deliver("wire")
    system.dispatcher.deliver("feed")
    assert len(list(wire_out.glob("*.json"))) == 1 and (wire_out.parent / "feed.atom").exists()


@pytest.mark.parametrize("text, message", [
    ("2027-03-28 01:30 Europe/London", "does not exist"),
    ("2027-10-31 01:30 Europe/London", "happens twice"),
    ("2027-03-14 02:30 America/New_York", "does not exist"),
    ("2027-11-07 01:30 America/New_York", "happens twice"),
])
def test_ambiguous_or_missing_local_times_are_refused(make_system, statement_file, text, message):
    system = make_system(clock=FixedClock(utc(2027, 1, 1)))
    system.cli("import", statement_file())
    system.cli("approve", SID, "--by", "Maya")
    result = system.cli("schedule", SID, "--embargo", text)
    assert result.code == 2 and message in result.err


def test_scheduler_down_across_the_embargo_publishes_late_not_never(make_system, statement_file):
    start = datetime.now(UTC)
    clock = FixedClock(start)
    system = make_system(clock=clock, extra=OFFLINE)
    system.cli("import", statement_file())
    system.cli("approve", SID, "--by", "Maya")
    embargo = start + timedelta(minutes=30)
    system.cli("schedule", SID, "--embargo", embargo.isoformat(), "--send-embargoed-at", start.isoformat())
    clock.set(embargo + timedelta(hours=2))  # the scheduler comes back two hours after the embargo
    system.dispatcher.advance()
    for name in ("wire", "feed"):
        system.dispatcher.deliver(name)
    rows = {r["channel"]: r for r in json.loads(system.cli("log", "--format", "json").out)}
    for name in ("wire", "feed"):
        assert rows[name]["status"] == "sent"
        assert rows[name]["due_at"] == embargo.strftime("%Y-%m-%dT%H:%M:%SZ")
        assert rows[name]["late_seconds"] == pytest.approx(7200, abs=1)
    released = [e for e in json.loads(system.cli("audit", "--format", "json").out) if e["action"] == "released"]
    assert released[0]["detail"]["late_seconds"] == pytest.approx(7200, abs=1)


def test_channels_option_selects_and_social_means_every_account(make_system, statement_file, monkeypatch):
    from tests.channels.conftest import bluesky, mastodon
    monkeypatch.setenv("TEST_MASTODON_TOKEN", "t")
    monkeypatch.setenv("TEST_BLUESKY_PASSWORD", "p")
    system = make_system(extra=OFFLINE + mastodon("", transport="file") + bluesky("", transport="file"))
    system.cli("import", statement_file())
    system.cli("approve", SID, "--by", "Maya")
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert system.cli("schedule", SID, "--embargo", later, "--channels", "email,social").code == 0
    assert json.loads(system.cli("show", SID, "--format", "json").out)["channels"] == ["email", "mastodon", "bluesky"]
    assert system.cli("schedule", SID, "--embargo", later).code == 0
    assert json.loads(system.cli("show", SID, "--format", "json").out)["channels"] == [
        "email", "wire", "feed", "mastodon", "bluesky"]


def test_embargo_cannot_move_for_a_new_revision_once_journalists_hold_a_copy(make_system, statement_file, tmp_path):
    clock = FixedClock(utc(2027, 1, 4, 9, 0))
    system = make_system(clock=clock)
    csv = tmp_path / "r.csv"
    csv.write_text("email,name,embargo_ok\nana@paper.example.com,Ana,yes\n")
    system.cli("recipients", "import", csv, "--list", "embargo")
    system.cli("import", statement_file())
    system.cli("approve", SID, "--by", "Maya")
    held = utc(2027, 1, 6, 0, 1)
    result = system.cli("schedule", SID, "--embargo", held.isoformat(), "--send-embargoed-at", clock.now().isoformat())
    assert result.code == 0, result.err
    system.dispatcher.advance()
    system.dispatcher.deliver("email")
    [copy] = json.loads(system.cli("log", SID, "--format", "json").out)
    assert (copy["revision"], copy["status"], copy["variant"]) == (1, "sent", "embargoed")

    # A corrected file whose own embargo line is a day later is refused: the embargo was set when scheduling.
    result = system.cli("import", statement_file(embargo="EMBARGOED FOR: 00:01 GMT Thursday 7 January 2027",
                                                 body_extra="A correction."))
    assert result.code == 2 and "the embargo line says 2027-01-07 00:01 UTC" in result.err
    assert "distributor reschedule" in result.err and result.err.count("\n") == 1
    # Without the line it becomes revision 2, approved afresh.
    result = system.cli("import", statement_file(body_extra="A correction."))
    assert result.code == 0 and "approval is revoked" in result.err
    assert system.cli("approve", SID, "--by", "Maya").code == 0

    refusal = (f"1 journalist already holds {SID} under the embargo 2027-01-06 00:01 UTC; move it with "
               f"'distributor reschedule {SID} --embargo TIME --by NAME --reason TEXT', which tells them")
    for moved in (["--embargo", "2027-01-07 00:01 Europe/London", "--override-embargo"],
                  ["--embargo", "2027-01-05T12:00Z", "--override-embargo"]):
        result = system.cli("schedule", SID, *moved, "--send-embargoed-at", clock.now().isoformat())
        assert result.code == 2, (moved, result.out)
        assert refusal in result.err
        shown = json.loads(system.cli("show", SID, "--format", "json").out)
        assert (shown["revision"], shown["status"], shown["embargo"]) == (2, "approved", "2027-01-06T00:01:00Z")
    with system.engine.connect() as conn:
        with pytest.raises(StateError, match="already holds"):
            workflow.schedule(conn, SID, "test", clock.now(), embargo=utc(2027, 1, 7, 0, 1), send_embargoed_at=None,
                              channels={}, override_embargo=True)
    audit = json.loads(system.cli("audit", SID, "--format", "json").out)
    assert [(e["action"], e["revision"]) for e in audit if e["action"] == "scheduled"] == [("scheduled", 1)]

    # The same instant, however it is written, is no move: the corrected copy goes out under the same embargo.
    result = system.cli("schedule", SID, "--embargo", "2027-01-06T01:01+01:00", "--send-embargoed-at",
                        clock.now().isoformat())
    assert result.code == 0, result.err
    shown = json.loads(system.cli("show", SID, "--format", "json").out)
    assert (shown["revision"], shown["status"], shown["embargo"]) == (2, "scheduled", "2027-01-06T00:01:00Z")
    system.dispatcher.advance()
    system.dispatcher.deliver("email")
    rows = json.loads(system.cli("log", SID, "--format", "json").out)
    assert [(r["revision"], r["status"], r["variant"], r["kind"]) for r in rows] == [
        (1, "sent", "embargoed", "statement"), (2, "sent", "embargoed", "correction")]


def test_a_worker_whose_clock_runs_fast_lifts_nothing_until_it_agrees_with_the_database(
        make_system, statement_file, tmp_path, caplog):
    embargo = utc(2027, 1, 6, 0, 1)
    clock, database = FixedClock(embargo - timedelta(hours=1)), FixedClock(embargo - timedelta(hours=1))
    system = make_system(clock=clock, database_clock=database, extra=OFFLINE)
    system.cli("import", statement_file())
    system.cli("approve", SID, "--by", "Maya")
    assert system.cli("schedule", SID, "--embargo", embargo.isoformat(), "--channels", "wire,feed").code == 0
    wire_out = Path(system.config_path.parent / "out" / "wire")

    def sweep():
        system.dispatcher.advance()
        for name in ("wire", "feed"):
            system.dispatcher.deliver(name)
        return json.loads(system.cli("show", SID, "--format", "json").out)["status"]

    clock.set(embargo + timedelta(seconds=1.5))   # this worker's clock runs 2 s fast
    database.set(embargo - timedelta(seconds=0.5))
    with caplog.at_level("ERROR", logger="distributor.run"):
        assert sweep() == "scheduled"
    assert not wire_out.exists()
    assert any("clock is 2.000 s ahead of the database's" in r.getMessage() for r in caplog.records)

    # The guard in the channel judges by the earlier clock too: a send now is refused.
    channel = system.channels["wire"]
    assert channel.embargo_now() == embargo - timedelta(seconds=0.5)

    database.set(embargo + timedelta(seconds=0.5))  # 1 s apart: they agree, and both say the embargo has passed
    assert sweep() == "released"
    assert len(list(wire_out.glob("*.json"))) == 1


def test_a_worker_within_a_second_of_the_database_lifts_by_the_earlier_clock(make_system, statement_file):
    embargo = utc(2027, 1, 6, 0, 1)
    clock, database = FixedClock(embargo + timedelta(seconds=0.5)), FixedClock(embargo - timedelta(seconds=0.4))
    system = make_system(clock=clock, database_clock=database, extra=OFFLINE)
    system.cli("import", statement_file())
    system.cli("approve", SID, "--by", "Maya")
    clock.set(embargo - timedelta(hours=1))
    database.set(embargo - timedelta(hours=1))
    assert system.cli("schedule", SID, "--embargo", embargo.isoformat(), "--channels", "wire").code == 0
    clock.set(embargo + timedelta(seconds=0.5))
    database.set(embargo - timedelta(seconds=0.4))  # 0.9 s apart: they agree, but the database says not yet
    assert system.dispatcher.advance() == 0
    database.set(embargo)
    assert system.dispatcher.advance() == 1


def test_the_clock_check_runs_at_start_and_says_when_the_clocks_agree_again(make_system, caplog):
    at = utc(2027, 1, 6, 0, 1)
    clock, database = FixedClock(at + timedelta(seconds=3)), FixedClock(at)
    system = make_system(clock=clock, database_clock=database, extra=OFFLINE)
    with caplog.at_level("WARNING", logger="distributor.run"):
        system.dispatcher.open()  # at start, before any sweep
        assert [r.levelname for r in caplog.records if "clock" in r.getMessage()] == ["ERROR"]
        assert system.dispatcher.clock_agreed is False
        caplog.clear()
        clock.set(at)
        system.dispatcher.advance()
        assert [r.getMessage() for r in caplog.records if "clock" in r.getMessage()] == [
            "this worker's clock agrees with the database's again (0.000 s apart)"]
        caplog.clear()
        system.dispatcher.advance()
        assert not [r for r in caplog.records if "clock" in r.getMessage()]  # said once
