"""The embargoed email against a real SMTP server on loopback."""

import email
import email.policy
import hashlib
import json
from datetime import timedelta

import pytest
from sqlalchemy import update

from distributor.clock import FixedClock, utcnow
from distributor.outcomes import Outcome, Result
from distributor.store.schema import workers
from distributor.workers import Heartbeat, db_now
from tests.conftest import soon

RECIPIENTS = """email,name,outlet,embargo_ok
ana@paper.example.com,Ana Lima,Paper,yes
bob@wire.example.net,"Bob ""Scoop"" Ng",Wire,yes
zoe@radio.example.org,Zoë Ærø,Radio,true
no-embargo@tv.example.org,Not Vetted,TV,no
blank@tv.example.org,Blank Flag,TV,
gone@paper.example.com,Unsubscribed,Paper,yes
"""
ELIGIBLE = {"ana@paper.example.com", "bob@wire.example.net", "zoe@radio.example.org"}
AT_LIFT = {"no-embargo@tv.example.org", "blank@tv.example.org"}  # not vetted: the released version, at the lift
SID = "tro-01-001-2026"


def prepare(system, tmp_path, statement_file, embargo=None, send_at=None, **statement):
    csv = tmp_path / "r.csv"
    csv.write_text(RECIPIENTS, encoding="utf-8")
    assert system.cli("recipients", "import", csv, "--list", "embargo").code == 0
    assert system.cli("recipients", "unsubscribe", "gone@paper.example.com").code == 0
    assert system.cli("import", statement_file(**statement)).code == 0
    assert system.cli("approve", SID, "--by", "Maya").code == 0
    args = ["schedule", SID, "--embargo", embargo or soon()]
    if send_at is None and isinstance(system.clock, FixedClock):
        send_at = system.clock.now().isoformat()
    if send_at:
        args += ["--send-embargoed-at", send_at]
    result = system.cli(*args)
    assert result.code == 0, result.err


def log(system, at_lift: bool = False):
    """The log; without ``at_lift``, only the embargoed copies (not the rows waiting for the lift)."""
    rows = json.loads(system.cli("log", SID, "--format", "json").out)
    return rows if at_lift else [r for r in rows if r["target"] not in AT_LIFT]


def deliver_now(system):
    """Plan what is due and deliver it, as one scheduler tick would; returns the log."""
    system.dispatcher.advance()
    system.dispatcher.deliver("email")
    return log(system)


def next_attempt(system, target):
    from sqlalchemy import select

    from distributor.store.schema import deliveries
    with system.engine.connect() as conn:
        return conn.execute(select(deliveries.c.next_attempt_at).where(deliveries.c.target == target)).scalar_one()


def parse(raw: bytes):
    return email.message_from_bytes(raw, policy=email.policy.default)


def test_embargoed_email_headers_parts_and_recipients(make_system, smtp_sink, tmp_path, statement_file):
    system = make_system(transport="smtp", smtp_port=smtp_sink.port)
    long_paragraph = "Word " * 1000 + "end."
    prepare(system, tmp_path, statement_file, embargo="2099-10-15 00:01 Europe/London",
            title="Riverland: “Flood maps” — Zoë’s appeal", body_extra=long_paragraph)
    system.dispatcher.advance()
    totals = system.dispatcher.deliver("email")
    assert totals == {Result.SENT: 3}
    assert {r["target"]: r["status"] for r in log(system, at_lift=True) if r["target"] in AT_LIFT} == dict.fromkeys(
        AT_LIFT, "pending")

    assert sorted(m.rcpt_tos[0] for m in smtp_sink.messages) == sorted(ELIGIBLE)
    for received in smtp_sink.messages:
        assert len(received.rcpt_tos) == 1
        assert received.mail_from == "press@office.example.org"
        assert max(len(line) for line in received.data.split(b"\r\n")) <= 998
        assert all(b < 128 for b in received.data)  # 7-bit: headers encoded, parts quoted-printable
        msg = parse(received.data)
        assert msg["To"].addresses[0].addr_spec == received.rcpt_tos[0]
        assert msg.get_all("Cc") is None and msg.get_all("Bcc") is None
        assert msg["Subject"] == "EMBARGOED UNTIL 00:01 BST 15 October 2099: Riverland: “Flood maps” — Zoë’s appeal"
        assert msg["Reply-To"] == "desk@office.example.org"
        assert msg["List-Unsubscribe"] == "<mailto:desk@office.example.org?subject=unsubscribe>"
        assert msg["Date"] is not None
        key = hashlib.sha256(f"{SID}/1/{received.rcpt_tos[0].lower()}".encode()).hexdigest()[:24]
        assert msg["Message-ID"] == f"<{SID}.r1.{key}@office.example.org>"
        assert msg.get_content_type() == "multipart/alternative"
        text = msg.get_body(("plain",)).get_content()
        html = msg.get_body(("html",)).get_content()
        assert text.lstrip().startswith("*** EMBARGOED")
        for zone_line in ("23:01 UTC Wednesday 14 October 2099", "00:01 BST Thursday 15 October 2099",
                          "19:01 EDT Wednesday 14 October 2099"):
            assert zone_line in text and zone_line in html
        assert "Index: TRO 01/001/2026" in text and "Åsgård" in text and long_paragraph.strip() in text
        assert "EMBARGOED" in html[:html.index("<h1")]
        assert "“Flood maps” — Zoë’s appeal" in html
        assert "src=" not in html and "<link" not in html  # no external resources

    names = {parse(m.data)["To"].addresses[0].display_name for m in smtp_sink.messages}
    assert names == {"Ana Lima", 'Bob "Scoop" Ng', "Zoë Ærø"}
    rows = log(system)
    assert {r["target"] for r in rows} == ELIGIBLE
    assert all(r["status"] == "sent" and r["attempts"] == 1 and r["channel"] == "email" for r in rows)
    assert all(r["remote_id"].startswith(f"<{SID}.r1.") and r["sent_at"].endswith("Z") for r in rows)
    assert all(r["variant"] == "embargoed" for r in rows)


def test_html_is_autoescaped_and_statement_text_is_not_a_template(make_system, smtp_sink, tmp_path, statement_file):
    system = make_system(transport="smtp", smtp_port=smtp_sink.port)
    prepare(system, tmp_path, statement_file, title="<b>Bold</b> {{ office.name }} {% if 1 %}x{% endif %}")
    system.dispatcher.advance()
    system.dispatcher.deliver("email")
    msg = parse(smtp_sink.messages[0].data)
    html = msg.get_body(("html",)).get_content()
    assert "&lt;b&gt;Bold&lt;/b&gt;" in html
    assert "{{ office.name }}" in html and "{% if 1 %}x{% endif %}" in html
    assert "{{ office.name }}" in msg["Subject"]


def test_header_injection_is_impossible(make_system, smtp_sink, tmp_path, statement_file):
    system = make_system(transport="smtp", smtp_port=smtp_sink.port)
    csv = tmp_path / "evil.csv"
    csv.write_text('email,name,embargo_ok\nana@paper.example.com,"Ana\r\nBcc: victim@evil.example.com",yes\n')
    system.cli("recipients", "import", csv, "--list", "embargo")
    system.cli("import", statement_file())
    system.cli("approve", SID, "--by", "M")
    system.cli("schedule", SID, "--embargo", soon())
    system.dispatcher.advance()
    system.dispatcher.deliver("email")
    assert len(smtp_sink.messages) == 1
    msg = parse(smtp_sink.messages[0].data)
    assert msg.get_all("Bcc") is None
    assert smtp_sink.messages[0].rcpt_tos == ["ana@paper.example.com"]


def test_refusals_retries_and_failures(make_system, smtp_sink, tmp_path, statement_file):
    smtp_sink.handler.rcpt_replies["ana@paper.example.com"] = "450 4.2.1 Mailbox busy, try later"
    smtp_sink.handler.rcpt_replies["bob@wire.example.net"] = "550 5.1.1 No such user"
    smtp_sink.handler.data_replies["zoe@radio.example.org"] = "554 5.7.1 Message rejected as spam"
    system = make_system(transport="smtp", smtp_port=smtp_sink.port)
    prepare(system, tmp_path, statement_file)
    system.dispatcher.advance()
    before = utcnow()
    system.dispatcher.deliver("email")
    assert smtp_sink.messages == []
    rows = {r["target"]: r for r in log(system)}
    assert rows["ana@paper.example.com"]["status"] == "retrying"
    assert "450 4.2.1 Mailbox busy" in rows["ana@paper.example.com"]["error"]
    retry_at = rows["ana@paper.example.com"]["next_attempt_at"]
    from distributor.statements.times import parse_instant
    assert 28 <= (parse_instant(retry_at) - before).total_seconds() <= 32
    assert rows["bob@wire.example.net"]["status"] == "failed"
    assert rows["bob@wire.example.net"]["error"] == "RCPT TO: 550 5.1.1 No such user"
    assert rows["zoe@radio.example.org"]["status"] == "failed"
    assert "554 5.7.1 Message rejected as spam" in rows["zoe@radio.example.org"]["error"]
    assert all(r["sent_at"] is None and r["remote_id"] is None for r in rows.values())


def test_retry_backoff_doubles_caps_and_gives_up(make_system, smtp_sink, tmp_path, statement_file):
    smtp_sink.handler.rcpt_replies["ana@paper.example.com"] = "452 4.3.1 Insufficient storage"
    start = utcnow()
    clock = FixedClock(start)
    system = make_system(clock=clock, transport="smtp", smtp_port=smtp_sink.port)
    prepare(system, tmp_path, statement_file, embargo=(start + timedelta(days=1)).isoformat())
    system.dispatcher.advance()
    waits = []
    for _ in range(8):
        system.dispatcher.deliver("email")
        row = {r["target"]: r for r in log(system)}["ana@paper.example.com"]
        if row["status"] != "retrying":
            break
        due = next_attempt(system, "ana@paper.example.com")
        waits.append((due - clock.now()).total_seconds())
        clock.set(due)
    assert waits == [30, 60, 120, 240, 480, 900, 900]
    assert row["status"] == "failed" and row["attempts"] == 8
    assert "gave up after 8 attempts" in row["error"]


def test_login_refused_is_a_transport_fault(make_system, smtp_auth_sink, tmp_path, statement_file, monkeypatch):
    monkeypatch.setenv("TEST_SMTP_PASSWORD", "wrong-password")
    extra = 'username = "press"\npassword_env = "TEST_SMTP_PASSWORD"'
    system = make_system(transport="smtp", smtp_port=smtp_auth_sink.port, smtp_extra=extra)
    prepare(system, tmp_path, statement_file)
    rows = deliver_now(system)
    assert {r["status"] for r in rows} == {"retrying"}
    assert all("login refused: 535" in r["error"] for r in rows)
    assert "wrong-password" not in json.dumps(rows)

    monkeypatch.setenv("TEST_SMTP_PASSWORD", "right-password")
    fixed = make_system(transport="smtp", smtp_port=smtp_auth_sink.port, smtp_extra=extra,
                        clock=FixedClock(utcnow() + timedelta(minutes=5)))
    fixed.dispatcher.deliver("email")
    assert {r["status"] for r in log(fixed)} == {"sent"}
    assert len(smtp_auth_sink.messages) == 3


def test_missing_password_variable_is_a_config_error(make_system, write_config, run, monkeypatch):
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    path = write_config(transport="smtp", smtp_extra='username = "u"\npassword_env = "NOT_SET_ANYWHERE"')
    run(path, "init")
    result = run(path, "run", "--exit-when-idle")
    assert result.code == 2
    assert "environment variable NOT_SET_ANYWHERE is not set" in result.err


def test_refused_mail_from_and_relay_down_are_transport_faults(make_system, smtp_sink, tmp_path, statement_file):
    smtp_sink.handler.mail_reply = "550 5.7.1 Sender not allowed"
    system = make_system(transport="smtp", smtp_port=smtp_sink.port)
    prepare(system, tmp_path, statement_file)
    rows = deliver_now(system)
    assert {r["status"] for r in rows} == {"retrying"}
    assert all("MAIL FROM refused: 550" in r["error"] for r in rows)

    from tests.conftest import free_port
    down = make_system(transport="smtp", smtp_port=free_port(), clock=FixedClock(utcnow() + timedelta(minutes=5)))
    down.dispatcher.deliver("email")
    rows = log(down)
    assert {r["status"] for r in rows} == {"retrying"}
    assert all("cannot connect to 127.0.0.1" in r["error"] for r in rows)


def test_crash_loses_no_one_and_resend_keeps_message_id(make_system, smtp_sink, tmp_path, statement_file):
    from distributor import deliveries

    start = utcnow()
    clock = FixedClock(start)
    system = make_system(clock=clock, transport="smtp", smtp_port=smtp_sink.port)
    prepare(system, tmp_path, statement_file, embargo=(start + timedelta(hours=2)).isoformat())
    system.dispatcher.advance()
    # A worker claims everything, then dies before recording anything.
    crashed = Heartbeat(system.engine, clock, system.config.delivery, "crashed-worker")
    crashed.register()
    with system.engine.begin() as conn:
        batch = deliveries.claim(conn, "email", clock.now(), crashed.id, 100, 3600, system.dispatcher.cutoff(conn))
    assert len(batch.rows) == 3
    system.dispatcher.deliver("email")
    assert smtp_sink.messages == []  # its heartbeat is fresh: still its own
    with system.engine.begin() as conn:  # it stopped beating 16 s ago, by the database's clock
        conn.execute(update(workers).where(workers.c.id == crashed.id).values(
            last_seen=db_now(conn) - timedelta(seconds=16)))
    system.dispatcher.deliver("email")
    assert sorted(m.rcpt_tos[0] for m in smtp_sink.messages) == sorted(ELIGIBLE)
    rows = {r["target"]: r for r in log(system)}
    for received in smtp_sink.messages:
        assert parse(received.data)["Message-ID"] == rows[received.rcpt_tos[0]]["remote_id"]
    with system.engine.connect() as conn:
        history = [(a["outcome"], a["detail"]) for a in deliveries.attempt_rows(conn, SID)]
    assert history.count(("abandoned", f"{batch.token} stopped; taken over")) == 3
    assert [o for o, _ in history].count("sent") == 3
    # The dead worker's late report changes nothing: the rows are no longer its own.
    with system.engine.begin() as conn:
        counts = deliveries.record(conn, batch, [Outcome(r.id, Result.FAILED, "late") for r in batch.rows],
                                   system.config.delivery, clock.now(), "crashed-worker")
    assert {r["status"] for r in log(system)} == {"sent"}
    assert counts == {Result.FAILED: 3}  # it reported, but no row moved


def test_copy_sent_after_lift_is_the_released_version(make_system, smtp_sink, tmp_path, statement_file):
    start = utcnow()
    clock = FixedClock(start)
    system = make_system(clock=clock, transport="smtp", smtp_port=smtp_sink.port)
    prepare(system, tmp_path, statement_file, embargo=(start + timedelta(minutes=10)).isoformat())
    clock.advance(11 * 60)  # the worker was down across the whole send window and the lift
    system.dispatcher.advance()
    system.dispatcher.deliver("email")
    assert len(smtp_sink.messages) == 5  # the vetted three and, at the lift, the two others
    msg = parse(smtp_sink.messages[0].data)
    assert not msg["Subject"].startswith("EMBARGOED")
    assert "EMBARGOED" not in msg.get_body(("plain",)).get_content()
    assert "https://office.example.org/press/tro-01-001-2026" in msg.get_body(("plain",)).get_content()
    rows = log(system, at_lift=True)
    assert len(rows) == 5 and all(r["variant"] == "released" and r["after_lift"] for r in rows)
    table = system.cli("log", SID).out
    assert "after the lift" in table
    assert table.strip().endswith("total 5: sent 5")
    assert json.loads(system.cli("show", SID, "--format", "json").out)["status"] == "released"


def test_unsubscribed_before_sending_is_cancelled(make_system, smtp_sink, tmp_path, statement_file):
    system = make_system(transport="smtp", smtp_port=smtp_sink.port)
    prepare(system, tmp_path, statement_file)
    system.dispatcher.advance()
    system.cli("recipients", "unsubscribe", "ana@paper.example.com")
    system.dispatcher.deliver("email")
    rows = {r["target"]: r for r in log(system)}
    assert rows["ana@paper.example.com"]["status"] == "cancelled"
    assert len(smtp_sink.messages) == 2


def test_file_transport_writes_one_eml_per_recipient(make_system, tmp_path, statement_file):
    system = make_system(transport="file")
    prepare(system, tmp_path, statement_file)
    system.dispatcher.advance()
    system.dispatcher.deliver("email")
    files = sorted((tmp_path / "outbox").rglob("*.eml"))
    assert sorted(f.stem for f in files) == sorted(ELIGIBLE)
    msg = parse(files[0].read_bytes())
    assert msg["Subject"].startswith("EMBARGOED UNTIL")


def test_new_revision_cancels_unsent_deliveries(make_system, smtp_sink, tmp_path, statement_file):
    smtp_sink.handler.rcpt_replies["ana@paper.example.com"] = "451 later"
    system = make_system(transport="smtp", smtp_port=smtp_sink.port)
    prepare(system, tmp_path, statement_file)
    system.dispatcher.advance()
    system.dispatcher.deliver("email")
    result = system.cli("import", statement_file(body_extra="A correction."))
    assert "3 unsent deliveries of the old revision cancelled" in result.err  # Ana's, and the two at the lift
    rows = {r["target"]: r for r in log(system)}
    assert rows["ana@paper.example.com"]["status"] == "cancelled"
    again = system.cli("approve", SID, "--by", "Maya")
    assert again.code == 0


def test_schedule_refuses_to_move_a_held_embargo_and_names_reschedule(make_system, smtp_sink, tmp_path,
                                                                      statement_file):
    system = make_system(transport="smtp", smtp_port=smtp_sink.port)
    prepare(system, tmp_path, statement_file)
    system.dispatcher.advance()
    system.dispatcher.deliver("email")
    result = system.cli("schedule", SID, "--embargo", soon(7200), "--override-embargo")
    assert result.code == 2
    assert "3 journalists already hold" in result.err and f"distributor reschedule {SID}" in result.err


def test_rate_limit_spaces_messages(make_system, smtp_sink, tmp_path, statement_file):
    import time
    system = make_system(transport="smtp", smtp_port=smtp_sink.port, smtp_extra="max_per_second = 10")
    prepare(system, tmp_path, statement_file)
    system.dispatcher.advance()
    started = time.monotonic()
    system.dispatcher.deliver("email")
    assert len(smtp_sink.messages) == 3
    assert time.monotonic() - started >= 0.2  # three messages at 10 a second: at least two intervals


def test_log_formats(make_system, smtp_sink, tmp_path, statement_file):
    import csv
    import io
    smtp_sink.handler.rcpt_replies["bob@wire.example.net"] = "550 5.1.1 No such user"
    system = make_system(transport="smtp", smtp_port=smtp_sink.port)
    prepare(system, tmp_path, statement_file)
    system.dispatcher.advance()
    system.dispatcher.deliver("email")
    rows = list(csv.DictReader(io.StringIO(system.cli("log", "--format", "csv").out)))
    assert {r["target"]: r["status"] for r in rows} == {
        "ana@paper.example.com": "sent", "bob@wire.example.net": "failed", "zoe@radio.example.org": "sent",
        **dict.fromkeys(AT_LIFT, "pending")}
    failed = json.loads(system.cli("log", "--status", "failed", "--channel", "email", "--format", "json").out)
    assert [r["target"] for r in failed] == ["bob@wire.example.net"]
    table = system.cli("log").out.strip().splitlines()
    assert table[-1] == "total 5: failed 1, pending 2, sent 2"
    assert any("550 5.1.1 No such user" in line for line in table)


@pytest.mark.parametrize("how", ["de-vetted", "removed", "replaced", "unsubscribed"])
def test_an_embargoed_copy_waiting_for_a_retry_never_reaches_a_journalist_who_lost_standing(
        make_system, smtp_sink, tmp_path, statement_file, how):
    smtp_sink.handler.rcpt_replies["ana@paper.example.com"] = "451 4.3.0 try later"
    start = utcnow()
    clock = FixedClock(start)
    system = make_system(clock=clock, transport="smtp", smtp_port=smtp_sink.port)
    prepare(system, tmp_path, statement_file, embargo=(start + timedelta(days=1)).isoformat())
    assert {r["target"]: r["status"] for r in deliver_now(system)}["ana@paper.example.com"] == "retrying"
    del smtp_sink.handler.rcpt_replies["ana@paper.example.com"]

    csv = tmp_path / "again.csv"
    if how == "de-vetted":
        csv.write_text(RECIPIENTS.replace("ana@paper.example.com,Ana Lima,Paper,yes",
                                          "ana@paper.example.com,Ana Lima,Paper,no"), encoding="utf-8")
        result = system.cli("recipients", "import", csv, "--list", "embargo")
    elif how == "removed":
        result = system.cli("recipients", "remove", "ana@paper.example.com", "--list", "embargo", "--by", "Kim")
    elif how == "replaced":
        csv.write_text(RECIPIENTS.replace("ana@paper.example.com,Ana Lima,Paper,yes\n", ""), encoding="utf-8")
        result = system.cli("recipients", "import", csv, "--list", "embargo", "--replace", "--by", "Kim")
        assert "1 removed" in result.out
    else:
        result = system.cli("recipients", "unsubscribe", "ana@paper.example.com")
    assert result.code == 0, result.err

    clock.set(next_attempt(system, "ana@paper.example.com"))
    rows = {r["target"]: r for r in deliver_now(system)}
    assert (rows["ana@paper.example.com"]["status"], rows["ana@paper.example.com"]["error"]) == {
        # still a member: the released version is hers at the lift, as for every member not vetted
        "de-vetted": ("pending", "not vetted for embargoed copies: the released version goes at the lift"),
        "removed": ("cancelled", "no longer on the list 'embargo'"),
        "replaced": ("cancelled", "no longer on the list 'embargo'"), "unsubscribed": ("cancelled", "unsubscribed")}[how]
    assert "ana@paper.example.com" not in {m.rcpt_tos[0] for m in smtp_sink.messages}
    assert {t for t, r in rows.items() if r["status"] == "sent"} == ELIGIBLE - {"ana@paper.example.com"}


def test_a_released_copy_is_not_stopped_by_the_embargo_vetting():
    from distributor.recipients import Standing
    assert Standing(member=False, embargo_ok=False).refusal(embargoed=False, list_name="embargo") is None
    assert Standing(member=True, embargo_ok=False).refusal(embargoed=True, list_name="embargo") == \
        "no longer vetted for embargoed copies"
    assert Standing(member=True, embargo_ok=True, suppressed=True).refusal(embargoed=False, list_name="x") == \
        "unsubscribed"
    assert Standing(member=True, embargo_ok=True).refusal(embargoed=True, list_name="x") is None


IDN = """email,name,embargo_ok
ana@paper.example.com,Ana,yes
jo@xn--bcher-kva.example,Jo,yes
jö@bücher.example,Jö,yes
"""


@pytest.mark.parametrize("smtputf8", [False, True])
def test_internationalised_addresses_go_out_in_ascii_or_over_smtputf8_and_fail_alone(
        make_system, tmp_path, statement_file, smtputf8):
    from tests.conftest import SinkHandler, _start_sink
    handler = SinkHandler()
    controller = _start_sink(handler, enable_SMTPUTF8=smtputf8)
    try:
        system = make_system(transport="smtp", smtp_port=controller.port)
        csv = tmp_path / "idn.csv"
        csv.write_text(IDN, encoding="utf-8")
        result = system.cli("recipients", "import", csv, "--list", "embargo")
        assert result.code == 0 and "3 added" in result.out and "0 rejected" in result.out, result.err
        assert system.cli("import", statement_file()).code == 0
        assert system.cli("approve", SID, "--by", "Maya").code == 0
        assert system.cli("schedule", SID, "--embargo", soon()).code == 0
        rows = {r["target"]: r for r in deliver_now(system)}
    finally:
        controller.stop()
    assert rows["ana@paper.example.com"]["status"] == "sent"
    assert rows["jo@bücher.example"]["status"] == "sent"  # stored as email-validator writes it
    got = {m.rcpt_tos[0]: parse(m.data) for m in handler.messages}
    assert "jo@xn--bcher-kva.example" in got  # the envelope is ASCII
    assert "<jo@xn--bcher-kva.example>" in str(got["jo@xn--bcher-kva.example"]["To"])
    if smtputf8:
        assert rows["jö@bücher.example"]["status"] == "sent"
        assert "jö@xn--bcher-kva.example" in got
        assert "jö@xn--bcher-kva.example" in str(got["jö@xn--bcher-kva.example"]["To"])
    else:
        assert rows["jö@bücher.example"]["status"] == "failed"
        assert rows["jö@bücher.example"]["error"] == "the relay does not offer SMTPUTF8, which this address needs"
        assert len(got) == 2


def test_utf8_to_header_quotes_the_display_name():
    from distributor.channels.email import RenderedEmail
    own = RenderedEmail.own_headers("jö@x.example", 'Jö "Scoop" \\ Ng', "<m@x>", utcnow())
    assert own.decode("utf-8").startswith('To: "Jö \\"Scoop\\" \\\\ Ng" <jö@x.example>\r\n')
    assert RenderedEmail.own_headers("jö@x.example", "", "<m@x>", utcnow()).startswith("To: <jö@x.example>\r\n".encode())


@pytest.mark.parametrize("subject", ["EMBARGOED: Zoë", "EMBARGOED: =?utf-8?b?SGk=?= literal", "Plain ASCII",
                                     "Long Zoë " * 20, "=?x?q?a?= =?utf-8?q?=C3=A9?="])
def test_subjects_reach_mail_clients_as_the_exact_text(subject):
    from distributor.channels.email import header_line
    line = header_line("Subject", subject)
    assert line.isascii() and line.endswith("\r\n") and all(len(p) <= 998 for p in line.split("\r\n"))
    parsed = parse(line.encode("ascii") + b"\r\n")
    assert str(parsed["Subject"]) == subject


def test_retry_requeues_failed_copies_with_a_fresh_set_of_attempts_and_is_audited(make_system, smtp_sink, tmp_path,
                                                                                  statement_file):
    smtp_sink.handler.rcpt_replies["bob@wire.example.net"] = "550 5.1.1 No such user"
    system = make_system(transport="smtp", smtp_port=smtp_sink.port)
    prepare(system, tmp_path, statement_file)
    rows = {r["target"]: r for r in deliver_now(system)}
    assert (rows["bob@wire.example.net"]["status"], rows["bob@wire.example.net"]["attempts"]) == ("failed", 1)
    del smtp_sink.handler.rcpt_replies["bob@wire.example.net"]  # the mailbox exists again
    result = system.cli("retry", SID, "--channel", "email", "--by", "Maya")
    assert result.code == 0 and "1 failed delivery requeued" in result.out
    assert system.cli("retry", SID, "--by", "Maya").out.startswith(f"{SID}: nothing to retry: no failed deliveries")
    rows = {r["target"]: r for r in deliver_now(system)}
    assert (rows["bob@wire.example.net"]["status"], rows["bob@wire.example.net"]["attempts"]) == ("sent", 2)
    audit = [e for e in json.loads(system.cli("audit", SID, "--format", "json").out) if e["action"] == "retried"]
    assert [(e["actor"], e["detail"]["requeued"]) for e in audit] == [("Maya", 1), ("Maya", 0)]
    assert system.cli("retry", SID).code == 2  # --by is required


def test_the_classification_line_is_not_printed_inside_an_embargoed_copy(make_system, tmp_path, statement_file):
    from distributor.channels.base import EMBARGOED, RELEASED
    from distributor.statements import parse_file
    system = make_system()
    path = statement_file()
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("For more information", "Public Document\n\nFor more information"), encoding="utf-8")
    statement = parse_file(path)
    assert statement.classification == "Public Document"
    assert system.cli("import", path).code == 0
    with system.engine.connect() as conn:
        job = system.dispatcher.job(conn, SID, 1)
    email_channel = system.channels["email"]
    embargoed, released = email_channel.render(job, EMBARGOED), email_channel.render(job, RELEASED)
    assert "Public Document" not in embargoed.text and "Public Document" not in embargoed.html
    assert "Public Document" in released.text and "Public Document" in released.html


def test_the_recorder_waits_for_as_many_outcomes_as_smtp_has_connections(make_system):
    assert make_system(transport="smtp", connections=3).channels["email"].lanes == 3
    assert make_system(transport="file", connections=3).channels["email"].lanes == 1
