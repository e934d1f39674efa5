"""After the first send: notices to the holders of an embargoed copy, a moved embargo, corrections before the
release. Through the real loopback SMTP server and the whole pipeline (plan, claim, send, record)."""

import email
import email.policy
import json
from datetime import datetime, timedelta

import pytest
from pytest_httpserver import HTTPServer
from sqlalchemy import update
from werkzeug import Response

from distributor import workflow
from distributor.clock import FixedClock
from distributor.errors import InputError
from distributor.outcomes import RECORDED
from distributor.store.schema import workers
from distributor.workers import db_now
from tests.channels.conftest import wire
from tests.conftest import soon, utc, wait_for

SID = "tro-01-001-2026"
LIST = """email,name,outlet,embargo_ok
ana@paper.example.com,Ana Lima,Paper,yes
bob@wire.example.net,Bob Ng,Wire,yes
"""
START = utc(2027, 3, 1, 9, 0)
EMBARGO = utc(2027, 3, 2, 0, 1)


def messages(sink) -> list[email.message.EmailMessage]:
    return [email.message_from_bytes(m.data, policy=email.policy.default) for m in sink.messages]


def rows(system, sid=SID) -> list[tuple]:
    return [(r["kind"], r["revision"], r["target"], r["status"])
            for r in json.loads(system.cli("log", sid, "--format", "json").out)]


def audit(system, sid=SID) -> list[tuple]:
    return [(e["action"], e["actor"], e["detail"]) for e in json.loads(system.cli("audit", sid, "--format", "json").out)]


def tick(system) -> None:
    system.dispatcher.advance()
    for name in system.channels:
        system.dispatcher.deliver(name)


def scheduled_for_the_list(system, tmp_path, statement_file) -> None:
    """Ana and Bob on the list; the statement approved and scheduled, its embargoed copies due now."""
    csv = tmp_path / "list.csv"
    csv.write_text(LIST, encoding="utf-8")
    assert system.cli("recipients", "import", csv, "--list", "embargo").code == 0
    assert system.cli("import", statement_file()).code == 0
    assert system.cli("approve", SID, "--by", "Maya").code == 0
    assert system.at("schedule", SID, "--embargo", EMBARGO.isoformat(), "--channels", "email").code == 0


@pytest.fixture
def held(make_system, smtp_sink, statement_file, tmp_path):
    """Ana and Bob hold the embargoed copy; Cy joins the list afterwards."""
    def make(extra: str = "", channels: str = "email"):
        clock = FixedClock(START)
        system = make_system(clock=clock, transport="smtp", smtp_port=smtp_sink.port, extra=extra)
        csv = tmp_path / "list.csv"
        csv.write_text(LIST, encoding="utf-8")
        assert system.cli("recipients", "import", csv, "--list", "embargo").code == 0
        assert system.cli("import", statement_file()).code == 0
        assert system.cli("approve", SID, "--by", "Maya").code == 0
        result = system.cli("schedule", SID, "--embargo", EMBARGO.isoformat(), "--send-embargoed-at",
                            START.isoformat(), "--channels", channels)
        assert result.code == 0, result.err
        tick(system)
        assert len(smtp_sink.messages) == 2
        csv.write_text(LIST + "cy@radio.example.org,Cy Doe,Radio,yes\n", encoding="utf-8")
        assert system.cli("recipients", "import", csv, "--list", "embargo").code == 0
        return system, clock
    return make


def test_a_withdrawal_tells_exactly_the_holders_threaded_under_their_copy(held, smtp_sink):
    system, clock = held()
    copies = {m["To"].addresses[0].addr_spec: m["Message-ID"] for m in messages(smtp_sink)}
    clock.advance(60)
    result = system.cli("withdraw", SID, "--by", "Maya", "--reason", "legal advice",
                        "--note", "A revised statement will follow.")
    assert result.code == 0 and "2 journalists holding the embargoed copy will be told" in result.out
    tick(system)
    notices = messages(smtp_sink)[2:]
    assert sorted(m["To"].addresses[0].addr_spec for m in notices) == sorted(copies)
    for notice in notices:
        to = notice["To"].addresses[0].addr_spec
        assert notice["Subject"] == "WITHDRAWN: Riverland: Flood maps must be published"
        assert notice["In-Reply-To"] == copies[to] and notice["References"] == copies[to]
        assert notice["Message-ID"] != copies[to] and ".withdrawal.g1.n1." in notice["Message-ID"]
        text = notice.get_body(("plain",)).get_content()
        assert "Index: TRO 01/001/2026" in text and "A revised statement will follow." in text
        assert "legal advice" not in text  # the reason is for the audit trail only
        assert "nobody listened" not in text  # a notice carries no statement text
    assert sorted(rows(system)) == [
        ("statement", 1, "ana@paper.example.com", "sent"), ("statement", 1, "bob@wire.example.net", "sent"),
        ("withdrawal", 1, "ana@paper.example.com", "sent"), ("withdrawal", 1, "bob@wire.example.net", "sent")]
    trail = audit(system)
    assert ("notified", "Maya", {"email_targets": 2, "kind": "withdrawal", "note": "A revised statement will follow.",
                                 "notice": 1}) in trail
    assert [t for t in trail if t[0] == "withdrawn"][0] == ("withdrawn", "Maya", {
        "cancelled": 0, "notified": 2, "reason": "legal advice",
                                               "note": "A revised statement will follow."})


def test_nothing_public_goes_out_for_a_withdrawn_statement(held, smtp_sink, httpserver):
    posted: list = []
    system, clock = held(extra=wire_server(httpserver, posted), channels="email,wire")
    assert system.cli("withdraw", SID, "--by", "Maya", "--reason", "legal advice").code == 0
    clock.set(EMBARGO + timedelta(hours=1))
    tick(system)
    assert posted == [] and json.loads(system.cli("show", SID, "--format", "json").out)["status"] == "withdrawn"
    assert {r[0] for r in rows(system)} == {"statement", "withdrawal"}
    assert all(r["channel"] == "email" for r in json.loads(system.cli("log", SID, "--format", "json").out))


def test_a_notice_without_a_note_states_the_facts_alone(held, smtp_sink):
    system, clock = held()
    assert system.cli("withdraw", SID, "--by", "Maya", "--reason", "legal advice").code == 0
    tick(system)
    text = messages(smtp_sink)[-1].get_body(("plain",)).get_content()
    assert "WITHDRAWN" in text and "Note from the press office" not in text


def test_a_withdrawn_statement_scheduled_again_is_a_new_schedule_with_its_own_message_ids(held, smtp_sink):
    system, clock = held()
    first = {m["Message-ID"] for m in messages(smtp_sink)}
    assert system.cli("withdraw", SID, "--by", "Maya", "--reason", "legal advice").code == 0
    tick(system)
    assert system.cli("approve", SID, "--by", "Maya").code == 0
    result = system.cli("schedule", SID, "--embargo", EMBARGO.isoformat(), "--channels", "email")
    assert result.code == 0, result.err
    tick(system)
    again = messages(smtp_sink)[4:]
    assert sorted(m["To"].addresses[0].addr_spec for m in again) == [
        "ana@paper.example.com", "bob@wire.example.net", "cy@radio.example.org"]
    assert not first & {m["Message-ID"] for m in again}
    assert all(".statement.g2." in m["Message-ID"] for m in again)
    generations = {(r["kind"], r["generation"]) for r in json.loads(system.cli("log", SID, "--format", "json").out)}
    assert generations == {("statement", 1), ("withdrawal", 1), ("statement", 2)}


def wire_server(httpserver: HTTPServer, posted: list):
    def handle(request):
        posted.append(request.get_json())
        return Response('{"id": "w1"}', content_type="application/json")
    httpserver.expect_request("/ninjs", method="POST").respond_with_handler(handle)
    return wire(httpserver.url_for("/ninjs"))


def test_moving_the_embargo_tells_the_holders_and_the_wire_goes_at_the_new_time_only(held, smtp_sink, httpserver):
    posted: list = []
    system, clock = held(extra=wire_server(httpserver, posted), channels="email,wire")
    later = EMBARGO + timedelta(days=1, seconds=30)
    result = system.cli("reschedule", SID, "--embargo", later.isoformat(), "--by", "Maya",
                        "--reason", "minister delayed", "--note", "The report is now out a day later.")
    assert result.code == 0, result.err
    tick(system)
    notices = messages(smtp_sink)[2:]
    subjects = {m["Subject"] for m in notices}
    assert subjects == {"EMBARGO CHANGED: now 00:01:30 GMT 3 March 2027: Riverland: Flood maps must be published"}
    text = notices[0].get_body(("plain",)).get_content()
    assert "00:01:30 UTC Wednesday 3 March 2027" in text and "00:01 UTC Tuesday 2 March 2027" in text
    assert "The report is now out a day later." in text
    assert len(notices) == 2  # the holders get the notice and nothing more
    # nothing public at the old time
    clock.set(EMBARGO + timedelta(seconds=5))
    tick(system)
    assert posted == [] and json.loads(system.cli("show", SID, "--format", "json").out)["status"] == "scheduled"
    clock.set(later)
    tick(system)
    assert len(posted) == 1
    trail = audit(system)
    assert [a for a, _, _ in trail].count("rescheduled") == 1
    [(_, actor, detail)] = [t for t in trail if t[0] == "rescheduled"]
    assert (actor, detail["reason"], detail["notified"]) == ("Maya", "minister delayed", 2)


def test_an_embargo_moved_earlier_must_leave_time_for_the_notices(held, smtp_sink):
    system, clock = held()  # the command line runs on the real clock
    result = system.cli("reschedule", SID, "--embargo", soon(540), "--by", "Maya", "--reason", "r")
    assert result.code == 2 and "too soon: 2 journalists hold the embargoed copy" in result.err
    assert "at least 600 s ahead (delivery.notice_lead_seconds)" in result.err and result.err.count("\n") == 1
    with system.engine.begin() as conn:
        with pytest.raises(InputError, match="too soon"):
            workflow.reschedule(conn, SID, "Maya", START, embargo=START + timedelta(seconds=599), reason="r",
                                note=None, channels={}, lead_seconds=600)
        row = workflow.reschedule(conn, SID, "Maya", START, embargo=START + timedelta(seconds=600), reason="r",
                                  note=None, channels={}, lead_seconds=600)
    assert row["embargo"] == START + timedelta(seconds=600)


def test_a_released_statement_cannot_be_rescheduled(held, smtp_sink):
    system, clock = held()
    clock.set(EMBARGO)
    tick(system)
    result = system.cli("reschedule", SID, "--embargo", (EMBARGO + timedelta(days=1)).isoformat(), "--by", "Maya",
                        "--reason", "r")
    assert result.code == 2 and "is released" in result.err and "cannot move" in result.err


def test_a_correction_before_the_release_goes_to_the_holders_and_the_copy_to_everyone_else(
        held, smtp_sink, statement_file):
    system, clock = held()
    result = system.cli("import", statement_file(body_extra="The maps cover 1,200 homes."),
                        "--note", "Adds the number of homes.")
    assert result.code == 0
    assert system.cli("approve", SID, "--by", "Maya").code == 0
    result = system.cli("schedule", SID)
    assert result.code == 0, result.err
    tick(system)
    later = messages(smtp_sink)[2:]
    by_address = {m["To"].addresses[0].addr_spec: m for m in later}
    assert sorted(by_address) == ["ana@paper.example.com", "bob@wire.example.net", "cy@radio.example.org"]
    corrected = by_address["ana@paper.example.com"]
    assert corrected["Subject"].startswith("CORRECTED: EMBARGOED UNTIL 00:01 GMT 2 March 2027: ")
    text = corrected.get_body(("plain",)).get_content()
    assert "What changed: Adds the number of homes." in text and "1,200 homes" in text
    assert corrected["In-Reply-To"] == messages(smtp_sink)[0]["Message-ID"] or \
        corrected["In-Reply-To"] == messages(smtp_sink)[1]["Message-ID"]
    fresh = by_address["cy@radio.example.org"]
    assert fresh["Subject"].startswith("EMBARGOED UNTIL") and "What changed" not in fresh.get_body(
        ("plain",)).get_content() and fresh["In-Reply-To"] is None
    assert sorted(r for r in rows(system) if r[1] == 2) == [
        ("correction", 2, "ana@paper.example.com", "sent"), ("correction", 2, "bob@wire.example.net", "sent"),
        ("statement", 2, "cy@radio.example.org", "sent")]


# -- the rest of the list, at the lift -----------------------------------------------------------------------------

def test_unvetted_members_and_release_lists_get_the_released_version_at_the_lift_and_only_then(
        make_system, smtp_sink, statement_file, tmp_path):
    clock = FixedClock(START)
    system = make_system(clock=clock, transport="smtp", smtp_port=smtp_sink.port,
                         email_extra='release_lists = ["newsdesks"]')
    lists = {"embargo": LIST + "tv@tv.example.org,Tess,TV,no\ngone@tv.example.org,Gone,TV,no\n",
             "newsdesks": "email,name\ndesk@daily.example.com,Desk\nANA@paper.example.com,Ana again\n"
                          "tv@tv.example.org,Tess again\n"}
    for name, text in lists.items():
        csv = tmp_path / f"{name}.csv"
        csv.write_text(text, encoding="utf-8")
        assert system.cli("recipients", "import", csv, "--list", name).code == 0
    assert system.cli("recipients", "unsubscribe", "gone@tv.example.org").code == 0
    assert system.cli("import", statement_file()).code == 0
    assert system.cli("approve", SID, "--by", "Maya").code == 0
    assert system.cli("schedule", SID, "--embargo", EMBARGO.isoformat(), "--send-embargoed-at", START.isoformat(),
                      "--channels", "email").code == 0
    tick(system)
    embargoed = messages(smtp_sink)
    assert sorted(m["To"].addresses[0].addr_spec for m in embargoed) == ["ana@paper.example.com",
                                                                          "bob@wire.example.net"]
    clock.set(EMBARGO - timedelta(seconds=1))
    tick(system)
    assert len(smtp_sink.messages) == 2  # nothing for the others before the lift
    clock.set(EMBARGO)
    tick(system)
    released = messages(smtp_sink)[2:]
    assert sorted(m["To"].addresses[0].addr_spec for m in released) == ["desk@daily.example.com",
                                                                         "tv@tv.example.org"]
    assert all(not m["Subject"].startswith("EMBARGOED") for m in released)
    assert all("EMBARGOED" not in m.get_body(("plain",)).get_content() for m in released)
    log = {(r["target"], r["variant"]) for r in json.loads(system.cli("log", SID, "--format", "json").out)}
    assert log == {("ana@paper.example.com", "embargoed"), ("bob@wire.example.net", "embargoed"),
                   ("desk@daily.example.com", "released"), ("tv@tv.example.org", "released")}


def test_a_journalist_de_vetted_while_waiting_gets_the_released_version_at_the_lift(
        make_system, smtp_sink, statement_file, tmp_path):
    clock = FixedClock(START)
    system = make_system(clock=clock, transport="smtp", smtp_port=smtp_sink.port)
    smtp_sink.handler.rcpt_replies["ana@paper.example.com"] = "451 4.3.0 try later"
    scheduled_for_the_list(system, tmp_path, statement_file)
    tick(system)
    del smtp_sink.handler.rcpt_replies["ana@paper.example.com"]
    csv = tmp_path / "list.csv"
    csv.write_text(LIST.replace("Paper,yes", "Paper,no"), encoding="utf-8")
    assert system.cli("recipients", "import", csv, "--list", "embargo").code == 0
    clock.advance(3600)
    tick(system)
    [row] = [r for r in json.loads(system.cli("log", SID, "--format", "json").out) if r["target"].startswith("ana")]
    assert (row["status"], row["next_attempt_at"]) == ("pending", "2027-03-02T00:01:00Z")
    assert "the released version goes at the lift" in row["error"]
    clock.set(EMBARGO)
    tick(system)
    [copy] = [m for m in messages(smtp_sink) if m["To"].addresses[0].addr_spec == "ana@paper.example.com"]
    assert not copy["Subject"].startswith("EMBARGOED")


# -- alerts and status ---------------------------------------------------------------------------------------------

def status(system) -> tuple[int, dict]:
    result = system.at("status", "--format", "json")
    return result.code, json.loads(result.out)


def test_copies_unsent_at_the_lift_raise_an_alert_that_closes_when_they_are_gone(
        make_system, smtp_sink, statement_file, tmp_path):
    clock = FixedClock(START)
    out = tmp_path / "alert.txt"
    system = make_system(clock=clock, transport="smtp", smtp_port=smtp_sink.port,
                         delivery_extra=f"alert_command = \"sh -c 'cat > {out}'\"")
    smtp_sink.handler.rcpt_replies["ana@paper.example.com"] = "451 4.3.0 try later"
    scheduled_for_the_list(system, tmp_path, statement_file)
    tick(system)
    code, found = status(system)
    assert code == 0 and found["reasons"] == [] and [s["id"] for s in found["scheduled"]] == [SID]  # information
    clock.set(EMBARGO - timedelta(minutes=30))
    with system.engine.begin() as conn:  # the only worker stopped beating a minute ago
        conn.execute(update(workers).values(last_seen=db_now(conn) - timedelta(minutes=1)))
    code, found = status(system)
    assert [s["id"] for s in found["scheduled"]] == [SID]
    assert code == 1 and found["reasons"] == [  # Ana's copy waits for a retry: overdue
        "1 overdue deliveries", f"{SID} due within the hour and no worker running ('distributor run')"]
    system.dispatcher.heartbeat.beat()
    clock.set(EMBARGO)
    tick(system)
    code, found = status(system)
    [alert] = found["alerts"]
    assert alert["text"].startswith(f"{SID}: 1 embargoed copies were still unsent when the embargo lifted")
    assert code == 1 and "1 open alert(s)" in found["reasons"]
    assert wait_for(lambda: out.exists() and out.read_text().startswith(SID))
    trail = audit(system)
    assert [a for a, _, _ in trail].count("alert") == 1
    del smtp_sink.handler.rcpt_replies["ana@paper.example.com"]
    clock.advance(3600)
    tick(system)
    system.dispatcher.advance()
    code, found = status(system)
    assert found["alerts"] == [] and code == 0, found["reasons"]
    assert [a for a, _, _ in audit(system)].count("alert_resolved") == 1


def test_a_channel_meeting_only_transport_faults_raises_an_alert_after_alert_after_seconds(
        make_system, smtp_sink, statement_file, tmp_path):
    clock = FixedClock(START)
    smtp_sink.handler.mail_reply = "550 5.7.1 sender not allowed"  # the session fails: a transport fault
    system = make_system(clock=clock, transport="smtp", smtp_port=smtp_sink.port)
    scheduled_for_the_list(system, tmp_path, statement_file)
    tick(system)
    clock.advance(299)
    system.dispatcher.deliver("email")
    rows = json.loads(system.cli("log", SID, "--format", "json").out)
    assert {r["status"] for r in rows} == {"retrying"}
    assert status(system)[1]["alerts"] == []
    clock.set(max(datetime.fromisoformat(r["next_attempt_at"]) for r in rows))  # 300 s and more since the first
    system.dispatcher.deliver("email")
    code, found = status(system)
    [alert] = found["alerts"]
    assert alert["key"] == "transport:email" and "550 5.7.1" in alert["text"] and code == 1
    smtp_sink.handler.mail_reply = None
    clock.advance(3600)
    system.dispatcher.deliver("email")
    assert status(system)[1]["alerts"] == []


def test_failed_and_overdue_deliveries_need_attention(held, smtp_sink):
    system, clock = held()
    with system.engine.begin() as conn:
        from distributor.store.schema import deliveries
        conn.execute(update(deliveries).where(deliveries.c.target == "ana@paper.example.com").values(
            status="failed", last_error="550 no such user", updated_at=clock.now()))
    code, found = status(system)
    assert code == 1 and found["failed"]["count"] == 1 and found["failed"]["rows"][0]["last_error"] == "550 no such user"
    clock.advance(8 * 24 * 3600)
    code, found = status(system)
    assert found["failed"]["count"] == 0
    text = system.at("status")
    assert text.code == found["needs_attention"] and "Workers running" in text.out


# -- copies already claimed when the statement changes ---------------------------------------------------------------

def claimed_copies(system, clock):
    """Claim the embargoed copies as a worker would, without sending them yet: (job, rendered, rows)."""
    from distributor import deliveries
    system.dispatcher.advance()
    with system.engine.begin() as conn:
        batch = deliveries.claim(conn, "email", clock.now(), system.dispatcher.worker, 100, 60,
                                 system.dispatcher.cutoff(conn))
        job = system.dispatcher.job(conn, SID, 1)
    email = system.channels["email"]
    return job, email.render(job, email.variant(job, clock.now())), batch


def test_a_copy_claimed_before_a_withdrawal_is_cancelled_not_sent(make_system, smtp_sink, statement_file, tmp_path):
    clock = FixedClock(START)
    system = make_system(clock=clock, transport="smtp", smtp_port=smtp_sink.port)
    scheduled_for_the_list(system, tmp_path, statement_file)
    job, rendered, batch = claimed_copies(system, clock)
    rows = batch.rows
    assert len(rows) == 2
    assert system.at("withdraw", SID, "--by", "Maya", "--reason", "legal advice").code == 0
    outcomes = []
    system.channels["email"].send(job, rendered, rows, lambda o: outcomes.append(o) or RECORDED)
    assert smtp_sink.messages == [] and {(o.result.value, o.detail) for o in outcomes} == {("cancelled", "withdrawn")}


def test_a_copy_claimed_before_the_embargo_moved_is_made_again(make_system, smtp_sink, statement_file, tmp_path):
    clock = FixedClock(START)
    system = make_system(clock=clock, transport="smtp", smtp_port=smtp_sink.port)
    scheduled_for_the_list(system, tmp_path, statement_file)
    job, rendered, batch = claimed_copies(system, clock)
    rows = batch.rows
    later = EMBARGO + timedelta(days=1)
    assert system.at("reschedule", SID, "--embargo", later.isoformat(), "--by", "Maya", "--reason", "r").code == 0
    outcomes = []
    system.channels["email"].send(job, rendered, rows, lambda o: outcomes.append(o) or RECORDED)
    assert smtp_sink.messages == [] and {o.result.value for o in outcomes} == {"retry"}
    with system.engine.begin() as conn:  # recorded as the worker would: a retry, after the backoff
        from distributor import deliveries
        deliveries.record(conn, batch, outcomes, system.config.delivery, clock.now(), system.dispatcher.worker)
    clock.advance(3600)
    tick(system)
    assert {m.rcpt_tos[0] for m in smtp_sink.messages} == {"ana@paper.example.com", "bob@wire.example.net"}
    subjects = {email.message_from_bytes(m.data, policy=email.policy.default)["Subject"] for m in smtp_sink.messages}
    assert subjects == {"EMBARGOED UNTIL 00:01 GMT 3 March 2027: Riverland: Flood maps must be published"}
