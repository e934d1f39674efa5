"""``--dry-run`` says what an action would do, in the web's confirmation's words, and does nothing."""

import json

from tests.test_web_actions import released, scheduled_and_held, summary_of
from tests.webapp import EMBARGO, SID, login, post


def test_a_dry_run_says_what_the_confirmation_says_and_changes_nothing(web):
    system, clock, app = web()
    scheduled_and_held(system, clock)
    before = system.at("audit", SID, "--format", "json").out
    result = system.at("withdraw", SID, "--by", "maya", "--reason", "legal advice", "--dry-run")
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines[0] == f"{SID}: dry run of withdraw, nothing done; it would do this:"
    web_lines = summary_of(post(login(app), f"/statements/{SID}/withdraw", reason="legal advice"))
    assert [line.strip() for line in lines[1:]] == web_lines
    assert system.at("audit", SID, "--format", "json").out == before
    assert json.loads(system.at("show", SID, "--format", "json").out)["status"] == "scheduled"


def test_a_dry_run_of_a_refused_action_exits_2_with_the_refusal(web):
    system, clock, app = web()
    result = system.at("retract", SID, "--by", "maya", "--reason", "x", "--dry-run")
    assert result.code == 2 and result.out == ""
    assert "only a released statement can be retracted" in result.err and len(result.err.strip().splitlines()) == 1


def test_every_action_with_consequences_has_a_dry_run(web):
    system, clock, app = web()
    scheduled_and_held(system, clock)
    moved = system.at("reschedule", SID, "--embargo", (EMBARGO.replace(day=3)).isoformat(), "--by", "maya",
                      "--reason", "later", "--dry-run")
    assert moved.code == 0 and "The embargo will be 00:01 UTC Wednesday 3 March 2027" in moved.out
    released(system, clock)
    retract = system.at("retract", SID, "--by", "maya", "--reason", "wrong", "--dry-run")
    assert retract.code == 0 and "journalists holding a copy will be told" in retract.out
    correct = system.at("correct", SID, "--by", "maya", "--reason", "x", "--dry-run")
    assert correct.code == 2 and "no new revision" in correct.err
    assert json.loads(system.at("show", SID, "--format", "json").out)["status"] == "released"
