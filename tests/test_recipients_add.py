"""recipients add, and recipients unsubscribe --undo: one member at a time, checked as an imported row is, and
only a suppression made by staff or by a bounce lifted; each in the audit trail with who did it."""

import json
from datetime import UTC, datetime

import pytest

from distributor import recipients as recipients_module
from distributor import unsubscribe
from tests.webapp import SECRET


@pytest.fixture
def config(write_config, run):
    path = write_config()
    assert run(path, "init").code == 0
    return path


def members(run, config, list_name: str | None = None) -> dict[str, dict]:
    return {r["email"]: r for r in json.loads(run(config, "recipients", "list", "--format", "json").out)
            if list_name is None or r["list"] == list_name}


def trail(run, config) -> list[dict]:
    return json.loads(run(config, "audit", "--format", "json").out)


def test_add_puts_one_member_on_a_list_with_every_field_and_audits_it(config, run):
    result = run(config, "recipients", "add", "Ana@PAPER.example.com", "--list", "embargo", "--name", " Ana Lima ",
                 "--outlet", "Daily Paper", "--embargo-ok", "--language", "pt", "--tags", "courts health",
                 "--by", "Kim Ahn")
    assert result.code == 0, result.err
    assert result.out == "Ana@paper.example.com: added to the list embargo; vetted for embargoed copies\n"
    row = members(run, config, "embargo")["Ana@paper.example.com"]
    assert (row["name"], row["outlet"], row["embargo_ok"], row["language"], row["tags"], row["suppressed"]) == \
        ("Ana Lima", "Daily Paper", True, "pt", "courts health", False)
    [entry] = trail(run, config)
    assert (entry["action"], entry["actor"], entry["detail"]) == (
        "recipient_added", "Kim Ahn", {"email": "Ana@paper.example.com", "list": "embargo", "embargo_ok": True})


def test_add_without_options_makes_an_unvetted_member_of_a_new_list(config, run):
    result = run(config, "recipients", "add", "bob@wire.example.net", "--list", "regional desk")
    assert result.code == 0
    assert result.out == "bob@wire.example.net: added to the list regional desk; not vetted: gets the released " \
                         "version only\n"
    row = members(run, config)["bob@wire.example.net"]
    assert (row["list"], row["name"], row["embargo_ok"], row["tags"]) == ("regional desk", "", False, "")
    # the same address may be on another list too
    assert run(config, "recipients", "add", "bob@wire.example.net", "--list", "embargo").code == 0


def test_add_of_a_suppressed_address_says_it_gets_no_mail(config, run):
    assert run(config, "recipients", "unsubscribe", "cy@radio.example.org").code == 0
    result = run(config, "recipients", "add", "CY@radio.example.org", "--list", "embargo", "--embargo-ok")
    assert result.code == 0
    assert result.out.endswith("vetted for embargoed copies; suppressed, so it gets no mail\n")
    assert members(run, config)["CY@radio.example.org"]["suppressed"]


@pytest.mark.parametrize("args, said", [
    (("nope", "--list", "embargo"), "distributor: EMAIL: 'nope' is not an email address"),
    (("a@paper.example.com", "--list", " "), "distributor: --list: needs a name"),
    (("a@paper.example.com", "--list", "l" * 101), "distributor: --list: is 101 characters long; at most 100 fit"),
    (("a@paper.example.com", "--list", "embargo", "--name", "n" * 201),
     "distributor: --name: is 201 characters long; at most 200 fit"),
    (("a@paper.example.com", "--list", "embargo", "--outlet", "o" * 201), "distributor: --outlet: is 201 characters"),
    (("a@paper.example.com", "--list", "embargo", "--language", "l" * 36), "distributor: --language: is 36 characters"),
    (("a@paper.example.com", "--list", "embargo", "--tags", "t" * 501), "distributor: --tags: is 501 characters"),
    (("a@paper.example.com", "--list", "embargo", "--tags", "a\x00b"), "distributor: --tags: contains a NUL byte"),
])
def test_a_member_that_cannot_be_added_is_one_line_and_exit_2(config, run, args, said):
    result = run(config, "recipients", "add", *args)
    assert result.code == 2 and result.err.startswith(said) and result.err.count("\n") == 1
    assert members(run, config) == {} and trail(run, config) == []


def test_an_address_already_on_the_list_is_refused_and_left_as_it_was(config, run):
    assert run(config, "recipients", "add", "ana@paper.example.com", "--list", "embargo", "--embargo-ok").code == 0
    again = run(config, "recipients", "add", "ANA@paper.example.com", "--list", "embargo")
    assert again.code == 2
    assert again.err == ("distributor: EMAIL: ANA@paper.example.com is already on the list 'embargo'; a re-import "
                         "changes a member\n")
    assert members(run, config)["ana@paper.example.com"]["embargo_ok"] is True and len(trail(run, config)) == 1


def test_undo_lifts_a_staff_suppression_and_audits_who_lifted_it(config, run):
    assert run(config, "recipients", "add", "ana@paper.example.com", "--list", "embargo").code == 0
    assert run(config, "recipients", "unsubscribe", "ana@paper.example.com", "--by", "Kim Ahn").code == 0
    result = run(config, "recipients", "unsubscribe", "--undo", "Ana@paper.example.com", "--by", "Sam")
    assert result.code == 0, result.err
    assert result.out == "Ana@paper.example.com: no longer suppressed; copies cancelled while it was stay cancelled\n"
    assert members(run, config)["ana@paper.example.com"]["suppressed"] is False
    assert [(e["action"], e["actor"], e["detail"]) for e in trail(run, config)[1:]] == [
        ("unsubscribed", "Kim Ahn", {"email": "ana@paper.example.com"}),
        ("suppression_lifted", "Sam", {"email": "Ana@paper.example.com", "suppressed_by": "Kim Ahn",
                                       "reason": "unsubscribed"})]
    again = run(config, "recipients", "unsubscribe", "--undo", "ana@paper.example.com")
    assert again.code == 2 and again.err == "distributor: EMAIL: ana@paper.example.com is not suppressed\n"
    bad = run(config, "recipients", "unsubscribe", "--undo", "nope")
    assert bad.code == 2 and bad.err.startswith("distributor: EMAIL: 'nope' is not an email address")


def test_undo_lifts_a_bounce(config, run):
    from distributor.channels import load_config
    from distributor.store import connect

    engine = connect(load_config(config).database_url)
    with engine.begin() as conn:
        assert recipients_module.unsubscribe(conn, "gone@paper.example.com", "mailer", datetime(2030, 1, 1, tzinfo=UTC),
                                             reason="bounced")
    engine.dispose()
    result = run(config, "recipients", "unsubscribe", "--undo", "gone@paper.example.com", "--by", "Kim")
    assert result.code == 0, result.err
    assert trail(run, config)[-1]["detail"]["reason"] == "bounced"


def test_undo_never_lifts_the_recipients_own_unsubscribe(web):
    system, clock, app = web()
    reply = app.test_client().post(f"/u/{unsubscribe.token(SECRET, 'ana@paper.example.com')}")
    assert reply.status_code == 200
    before = system.cli("audit", "--format", "json").out
    result = system.cli("recipients", "unsubscribe", "--undo", "ana@paper.example.com", "--by", "Kim")
    assert result.code == 2
    assert result.err == ("distributor: EMAIL: ana@paper.example.com unsubscribed themselves (one-click "
                          "unsubscribe); only a suppression made by staff or by a bounce can be lifted\n")
    listing = json.loads(system.cli("recipients", "list", "--format", "json").out)
    assert [r["suppressed"] for r in listing if r["email"] == "ana@paper.example.com"] == [True]
    assert system.cli("audit", "--format", "json").out == before
    # staff unsubscribing it again changes nothing: it stays the recipient's own
    assert "was already suppressed" in system.cli("recipients", "unsubscribe", "ana@paper.example.com").out
    assert system.cli("recipients", "unsubscribe", "--undo", "ana@paper.example.com").code == 2


def test_the_recipients_own_unsubscribe_replaces_a_staff_one(web):
    system, clock, app = web()
    assert system.cli("recipients", "unsubscribe", "bob@wire.example.net", "--by", "Kim").code == 0
    app.test_client().post(f"/u/{unsubscribe.token(SECRET, 'bob@wire.example.net')}")
    result = system.cli("recipients", "unsubscribe", "--undo", "bob@wire.example.net")
    assert result.code == 2 and "unsubscribed themselves" in result.err
