"""What holders are told, rule by rule, on a real database: a moved embargo, a withdrawal, a correction before
and after the release, a retraction; each numbered, planned for exactly those who have a copy, and audited."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta

import pytest
from sqlalchemy import insert, select, update

from distributor import deliveries, workflow
from distributor.errors import InputError, StateError
from distributor.outcomes import Kind
from distributor.store.schema import deliveries as delivery_rows
from distributor.store.schema import notices
from tests.test_rules_workflow import CHANNELS, DOC, HOUR, NOW, SID, approved, imported, scheduled, trail

LATER = NOW + 2 * HOUR
LEAD = 600.0


def holding(engine, *targets, channel="email", variant="embargoed", revision=1, status="sent"):
    """``targets`` get a copy (sent unless ``status``) of ``revision`` on ``channel``."""
    with engine.begin() as conn:
        deliveries.plan_chunk(conn, SID, revision, channel, list(targets), NOW, NOW)
        conn.execute(update(delivery_rows).where(delivery_rows.c.target.in_(targets),
                                                 delivery_rows.c.channel == channel).values(
            status=status, variant=variant if status == "sent" else None, sent_at=NOW if status == "sent" else None))


def told(conn) -> list[dict]:
    return [{k: v for k, v in dict(r).items() if k != "statement_id"}
            for r in conn.execute(select(notices).order_by(notices.c.number)).mappings()]


def notice_rows(conn) -> list[tuple]:
    """(kind, notice, channel, target, status, due_at) of every notice or correction row, in order."""
    return [tuple(r) for r in conn.execute(select(
        delivery_rows.c.kind, delivery_rows.c.notice, delivery_rows.c.channel, delivery_rows.c.target,
        delivery_rows.c.status, delivery_rows.c.due_at).where(delivery_rows.c.kind != "statement").order_by(
        delivery_rows.c.notice, delivery_rows.c.channel, delivery_rows.c.target))]


def released(engine, at=NOW + HOUR):
    scheduled(engine, send_at=NOW)
    with engine.begin() as conn:
        workflow.release(conn, workflow.get(conn, SID), "scheduler", at)


def reschedule(engine, embargo=LATER, at=NOW + timedelta(minutes=10), note="New date", lead=LEAD):
    with engine.begin() as conn:
        return workflow.reschedule(conn, SID, "Maya", at, embargo=embargo, reason="report delayed", note=note,
                                   channels=CHANNELS, lead_seconds=lead)


def error_of(call, *args, **kwargs):
    with pytest.raises((StateError, InputError)) as error:
        call(*args, **kwargs)
    return error.value


# -- a moved embargo ------------------------------------------------------------------------------------------------
def test_a_moved_embargo_moves_what_has_not_gone_and_tells_each_holder_once(engine):
    scheduled(engine, send_at=NOW)
    holding(engine, "a@x", "b@x")
    holding(engine, "c@x", status="pending")
    holding(engine, "newswire", channel="wire", status="pending")
    with engine.begin() as conn:
        conn.execute(update(delivery_rows).where(delivery_rows.c.channel == "wire").values(
            due_at=NOW + HOUR, next_attempt_at=NOW + HOUR))
    at = NOW + timedelta(minutes=10)
    row = reschedule(engine, at=at)
    assert (row["status"], row["embargo"], row["embargo_source"], row["send_embargoed_at"], row["updated_at"]) == \
        ("scheduled", LATER, "set", NOW, at)
    with engine.connect() as conn:
        assert told(conn) == [{"number": 1, "kind": "embargo-change", "revision": 1, "generation": 1,
                               "note": "New date", "detail": {"previous": str(NOW + HOUR), "embargo": str(LATER)},
                               "actor": "Maya", "created_at": at}]
        assert notice_rows(conn) == [("embargo-change", 1, "email", "a@x", "pending", at),
                                     ("embargo-change", 1, "email", "b@x", "pending", at)]
        due = dict(conn.execute(select(delivery_rows.c.target, delivery_rows.c.due_at).where(
            delivery_rows.c.kind == "statement", delivery_rows.c.status == "pending")).all())
        assert due == {"c@x": NOW, "newswire": LATER}
        assert trail(conn)[-2:] == [
            ("notified", "Maya", 1, {"email_targets": 2, "kind": "embargo-change", "note": "New date", "notice": 1}),
            ("rescheduled", "Maya", 1, {"embargo": str(LATER), "note": "New date", "notified": 2,
                                        "previous": str(NOW + HOUR), "reason": "report delayed"})]


def test_a_moved_embargo_with_no_holders_tells_no_one(engine):
    scheduled(engine, send_at=NOW)
    holding(engine, "a@x", variant="released")  # a released copy is no embargoed one
    reschedule(engine, note=None)
    with engine.connect() as conn:
        assert told(conn) == [] and notice_rows(conn) == []
        assert trail(conn)[-1][0] == "rescheduled" and trail(conn)[-1][3]["notified"] == 0


def test_notices_are_numbered_one_after_another(engine):
    scheduled(engine, send_at=NOW)
    holding(engine, "a@x")
    reschedule(engine)
    reschedule(engine, embargo=LATER + HOUR)
    with engine.connect() as conn:
        assert [(n["number"], n["detail"]["previous"]) for n in told(conn)] == [(1, str(NOW + HOUR)),
                                                                                (2, str(LATER))]
        assert [r[1] for r in notice_rows(conn)] == [1, 2]


def test_a_send_time_after_the_new_embargo_becomes_now(engine):
    scheduled(engine, embargo=LATER, send_at=NOW + HOUR)
    at = NOW + timedelta(minutes=10)
    row = reschedule(engine, embargo=NOW + timedelta(minutes=30), at=at)
    assert row["send_embargoed_at"] == at
    row = reschedule(engine, embargo=LATER + HOUR, at=at)
    assert row["send_embargoed_at"] == at  # before the new embargo: kept


@pytest.mark.parametrize("minutes, holders, allowed", [
    (20, True, True),     # 10 minutes ahead of the change: the notices can go first (lead 600 s)
    (19, True, False),    # 9 minutes: too soon while someone holds the copy
    (11, False, True),    # nobody to tell: any future time
])
def test_an_earlier_embargo_must_leave_time_to_tell_the_holders(engine, minutes, holders, allowed):
    scheduled(engine, send_at=NOW)
    if holders:
        holding(engine, "a@x", "b@x")
    at = NOW + timedelta(minutes=10)
    if allowed:
        assert reschedule(engine, embargo=NOW + timedelta(minutes=minutes), at=at)["embargo"] == \
            NOW + timedelta(minutes=minutes)
        return
    error = error_of(reschedule, engine, embargo=NOW + timedelta(minutes=minutes), at=at)
    assert isinstance(error, InputError) and error.where == "--embargo"
    assert error.message == (f"{NOW + timedelta(minutes=minutes):%Y-%m-%d %H:%M} UTC is too soon: 2 journalists "
                             f"hold the embargoed copy and must be told first; the new time must be at least 600 s "
                             f"ahead (delivery.notice_lead_seconds)")


def test_a_later_embargo_needs_no_lead(engine):
    scheduled(engine, send_at=NOW)
    holding(engine, "a@x")
    assert reschedule(engine, embargo=NOW + HOUR + timedelta(seconds=1), at=NOW + HOUR - timedelta(seconds=1),
                      lead=3600)["embargo"] == NOW + HOUR + timedelta(seconds=1)


def test_what_cannot_be_rescheduled(engine):
    scheduled(engine, send_at=NOW)
    same = error_of(reschedule, engine, embargo=NOW + HOUR)
    assert (type(same), same.where, same.message) == (
        InputError, "--embargo", f"the embargo is {NOW + HOUR:%Y-%m-%d %H:%M} UTC already")
    past = error_of(reschedule, engine, embargo=NOW + timedelta(minutes=10), at=NOW + timedelta(minutes=10))
    assert (type(past), past.where, past.message) == (
        InputError, "--embargo", f"the embargo {NOW + timedelta(minutes=10):%Y-%m-%d %H:%M} UTC is in the past")
    with engine.begin() as conn:
        workflow.release(conn, workflow.get(conn, SID), "scheduler", NOW + HOUR)
    public = error_of(reschedule, engine)
    assert (type(public), public.where, public.message) == (
        StateError, SID, f"statement {SID} is released (public since {NOW + HOUR:%Y-%m-%d %H:%M} UTC); its embargo "
                         f"cannot move")


def test_only_a_scheduled_statement_is_rescheduled(engine):
    approved(engine)
    error = error_of(reschedule, engine)
    assert (type(error), error.where) == (StateError, SID)
    assert error.message == (f"statement {SID} is approved; only a scheduled statement can be rescheduled "
                             f"('distributor schedule {SID}' sets the embargo)")


# -- withdrawal -----------------------------------------------------------------------------------------------------
def test_a_withdrawal_tells_the_holders_of_the_embargoed_copy(engine):
    scheduled(engine, send_at=NOW)
    holding(engine, "a@x")
    holding(engine, "b@x", variant="released")
    holding(engine, "c@x", status="pending")
    at = NOW + timedelta(minutes=5)
    with engine.begin() as conn:
        row = workflow.withdraw(conn, SID, "Maya", at, "legal advice", note="Do not publish.")
        assert row["status"] == "withdrawn"
        assert [(n["kind"], n["note"], n["detail"]) for n in told(conn)] == [("withdrawal", "Do not publish.", None)]
        assert notice_rows(conn) == [("withdrawal", 1, "email", "a@x", "pending", at)]
        assert trail(conn)[-1] == ("withdrawn", "Maya", 1, {"cancelled": 1, "note": "Do not publish.", "notified": 1,
                                                            "reason": "legal advice"})


# -- corrections ----------------------------------------------------------------------------------------------------
def revised(engine, note="Adds the number of homes."):
    with engine.begin() as conn:
        workflow.import_statement(conn, replace(DOC, body=("Corrected.",)), "fix.txt", "ana", NOW + HOUR, note=note)


def test_a_new_revision_scheduled_goes_to_the_holders_as_a_correction_with_the_imports_note(engine):
    scheduled(engine, send_at=NOW)
    holding(engine, "a@x", "b@x")
    holding(engine, "c@x", variant="released")
    revised(engine)
    holding(engine, "b@x", revision=2, status="pending")  # already planned for the new revision
    at = NOW + timedelta(minutes=20)
    with engine.begin() as conn:
        workflow.approve(conn, SID, "Maya", at)
        workflow.schedule(conn, SID, "ana", at, embargo=NOW + HOUR, send_embargoed_at=at + HOUR / 4,
                          channels=CHANNELS, reason="typo")
        assert [(n["kind"], n["revision"], n["note"], n["detail"]) for n in told(conn)] == [
            ("correction", 2, "Adds the number of homes.", None)]
        assert notice_rows(conn) == [("correction", 1, "email", "a@x", "pending", at + HOUR / 4)]


def test_a_correction_without_a_note_of_its_own_carries_the_reason_given(engine):
    scheduled(engine, send_at=NOW)
    holding(engine, "a@x")
    revised(engine, note=None)
    with engine.begin() as conn:
        workflow.approve(conn, SID, "Maya", NOW)
        workflow.schedule(conn, SID, "ana", NOW, embargo=NOW + HOUR, send_embargoed_at=None,
                          channels={"wire": CHANNELS["wire"], "email": CHANNELS["email"]}, reason="typo")
        assert [n["note"] for n in told(conn)] == ["typo"]


def test_a_correction_is_not_planned_when_every_holder_already_has_the_revision(engine):
    scheduled(engine, send_at=NOW)
    holding(engine, "a@x")
    revised(engine)
    holding(engine, "a@x", revision=2, status="pending")
    with engine.begin() as conn:
        workflow.approve(conn, SID, "Maya", NOW)
        workflow.schedule(conn, SID, "ana", NOW, embargo=NOW + HOUR, send_embargoed_at=None, channels=CHANNELS)
        assert told(conn) == []


def test_a_correction_after_the_release_goes_to_everyone_reached_on_every_channel(engine):
    released(engine)
    holding(engine, "a@x")
    holding(engine, "b@x", variant="released")
    holding(engine, "c@x", status="failed")
    holding(engine, "newswire", channel="wire", variant="released")
    revised(engine, note="Adds the number of homes.")
    at = NOW + 3 * HOUR
    with engine.begin() as conn:
        workflow.approve(conn, SID, "Maya", at)
        row = workflow.correct(conn, SID, "Maya", at, reason="typo", note=None)
        assert (row["status"], row["revision"], row["published_revision"], row["updated_at"]) == \
            ("released", 2, 2, at)
        assert [(n["kind"], n["revision"], n["note"], n["detail"]) for n in told(conn)] == [
            ("correction", 2, "Adds the number of homes.", {"public": True})]
        assert notice_rows(conn) == [("correction", 1, "email", "a@x", "pending", at),
                                     ("correction", 1, "email", "b@x", "pending", at),
                                     ("correction", 1, "wire", "newswire", "pending", at)]
        assert trail(conn)[-1] == ("corrected", "Maya", 2, {"note": "Adds the number of homes.",
                                                            "previous_revision": 1, "reason": "typo", "targets": 3})
        assert workflow.version(conn, SID, 1) == 2


def test_a_correction_note_given_now_beats_the_imports(engine):
    released(engine)
    holding(engine, "a@x")
    revised(engine)
    with engine.begin() as conn:
        workflow.approve(conn, SID, "Maya", NOW + 3 * HOUR)
        workflow.correct(conn, SID, "Maya", NOW + 3 * HOUR, reason="typo", note="Now with the figures.")
        assert [n["note"] for n in told(conn)] == ["Now with the figures."]


def test_what_cannot_be_corrected(engine):
    scheduled(engine, send_at=NOW)

    def correct():
        with engine.begin() as conn:
            workflow.correct(conn, SID, "Maya", NOW + 3 * HOUR, reason="typo", note=None)

    early = error_of(correct)
    assert (type(early), early.where) == (StateError, SID)
    assert early.message == (f"statement {SID} is scheduled; only a released statement can be corrected (before the "
                             f"release, schedule the approved new revision: its holders get it as a correction)")
    with engine.begin() as conn:
        workflow.release(conn, workflow.get(conn, SID), "scheduler", NOW + HOUR)
    assert error_of(correct).message == (f"statement {SID} has no new revision to publish; import the corrected "
                                         f"file first")
    revised(engine)
    assert error_of(correct).message == (f"revision 2 of {SID} is not approved; 'distributor approve {SID} "
                                         f"--by NAME' first")


def test_a_withdrawn_statement_is_not_corrected_and_no_hint_is_given(engine):
    imported(engine)
    with engine.begin() as conn:
        workflow.withdraw(conn, SID, "Maya", NOW, "wrong")
    with engine.begin() as conn, pytest.raises(StateError) as error:
        workflow.correct(conn, SID, "Maya", NOW, reason="typo", note=None)
    assert error.value.message == f"statement {SID} is withdrawn; only a released statement can be corrected"


# -- retraction -----------------------------------------------------------------------------------------------------
def test_a_retraction_stops_what_has_not_gone_and_tells_everyone_reached(engine):
    released(engine)
    holding(engine, "a@x")
    holding(engine, "b@x", status="retrying")
    holding(engine, "newswire", channel="wire", variant="released")
    revised(engine)  # a draft of a new revision: the retraction is of what was published
    at = NOW + 3 * HOUR
    with engine.begin() as conn:
        row = workflow.retract(conn, SID, "Maya", at, reason="wrong figures", note="Please disregard.")
        assert (row["status"], row["revision"], row["published_revision"]) == ("retracted", 1, 1)
        assert [(n["kind"], n["revision"], n["note"], n["detail"]) for n in told(conn)] == [
            ("retraction", 1, "Please disregard.", {"public": True})]
        assert notice_rows(conn) == [("retraction", 1, "email", "a@x", "pending", at),
                                     ("retraction", 1, "wire", "newswire", "pending", at)]
        stopped = conn.execute(select(delivery_rows.c.status, delivery_rows.c.last_error).where(
            delivery_rows.c.target == "b@x")).one()
        assert tuple(stopped) == ("cancelled", "retracted: wrong figures")
        assert trail(conn)[-1] == ("retracted", "Maya", 1, {"note": "Please disregard.", "reason": "wrong figures",
                                                            "targets": 2})
        assert workflow.version(conn, SID, 1) == 2


@pytest.mark.parametrize("stage, hint", [
    ("scheduled", f"; before the release use 'distributor withdraw {SID}'"),
    ("withdrawn", ""),
])
def test_only_a_released_statement_is_retracted(engine, stage, hint):
    scheduled(engine)
    if stage == "withdrawn":
        with engine.begin() as conn:
            workflow.withdraw(conn, SID, "Maya", NOW, "wrong")
    with engine.begin() as conn, pytest.raises(StateError) as error:
        workflow.retract(conn, SID, "Maya", NOW, reason="x", note=None)
    assert error.value.message == f"statement {SID} is {stage}; only a released statement can be retracted{hint}"
    assert error.value.where == SID


# -- what the feed and the wire read ---------------------------------------------------------------------------------
def test_version_counts_the_public_notices_up_to_this_one(engine):
    released(engine)
    with engine.begin() as conn:
        for number, (kind, public) in enumerate([("correction", True), ("embargo-change", False),
                                                 ("correction", True)], start=1):
            conn.execute(insert(notices).values(statement_id=SID, number=number, kind=kind, revision=1,
                                                generation=1, detail={"public": True} if public else None,
                                                actor="Maya", created_at=NOW))
        assert [workflow.version(conn, SID, n) for n in (None, 1, 2, 3)] == [1, 2, 2, 3]
        assert workflow.notice(conn, SID, 2)["kind"] == "embargo-change"


def test_released_carries_when_its_published_revision_was_last_corrected(engine):
    released(engine)
    with engine.begin() as conn:
        assert workflow.released(conn, NOW + 3 * HOUR, 10)[0]["corrected_at"] is None
        for number, (kind, revision, minutes) in enumerate([("correction", 1, 5), ("correction", 1, 9),
                                                            ("correction", 2, 30), ("retraction", 1, 40)], start=1):
            conn.execute(insert(notices).values(statement_id=SID, number=number, kind=kind, revision=revision,
                                                generation=1, actor="Maya",
                                                created_at=NOW + HOUR + timedelta(minutes=minutes)))
        [row] = workflow.released(conn, NOW + 3 * HOUR, 10)
        assert row["corrected_at"] == NOW + HOUR + timedelta(minutes=9)


# -- import: whose revision, and a silent merge refused ---------------------------------------------------------------
def test_imported_by_names_who_imported_each_revision(engine):
    imported(engine, actor="ana")
    imported(engine, replace(DOC, body=("Changed.",)), actor="bob")
    with engine.connect() as conn:
        assert [workflow.imported_by(conn, SID, n) for n in (1, 2, 3)] == ["ana", "bob", None]


def test_an_id_taken_by_a_statement_without_a_reference_is_not_merged_silently(engine):
    untied = replace(DOC, reference=None, date=date(2030, 1, 1))
    with engine.begin() as conn:
        first = workflow.import_statement(conn, untied, "a.txt", "ana", NOW)
        other = replace(untied, title="Flood maps must be published!")  # another title, the same id
        assert other.id == first.id
        with pytest.raises(StateError) as error:
            workflow.import_statement(conn, other, "b.txt", "ana", NOW)
        assert error.value.where == "b.txt"
        assert error.value.message == (
            f"the id {first.id} belongs to another statement ({untied.title!r}), and no reference ties it to this "
            f"one ({other.title!r}); import with --id NEW-ID for a new statement, or --revision-of {first.id} for a "
            f"new revision of that one")
        same_title = replace(untied, body=("Changed.",))
        assert workflow.import_statement(conn, same_title, "c.txt", "ana", NOW).revision == 2


# -- failed copies sent again ---------------------------------------------------------------------------------------
def test_retry_failed_requeues_the_failed_copies_of_the_chosen_channels_with_fresh_attempts(engine):
    scheduled(engine, send_at=NOW)
    holding(engine, "a@x", "b@x", status="failed")
    holding(engine, "c@x", status="pending")
    holding(engine, "newswire", channel="wire", status="failed")
    with engine.begin() as conn:
        conn.execute(update(delivery_rows).values(attempts=3, attempts_since_requeue=3))
        at = NOW + timedelta(minutes=30)
        assert workflow.retry_failed(conn, SID, "Maya", at, channels=("email",)) == 2
        rows = {r.target: r for r in conn.execute(select(delivery_rows))}
        assert {t: (r.status, r.attempts, r.attempts_since_requeue, r.next_attempt_at, r.updated_at)
                for t, r in rows.items() if t != "c@x"} == {
            "a@x": ("retrying", 3, 0, at, at), "b@x": ("retrying", 3, 0, at, at),
            "newswire": ("failed", 3, 3, NOW, NOW)}
        assert rows["c@x"].status == "pending"
        assert trail(conn)[-1] == ("retried", "Maya", 1, {"channels": ["email"], "requeued": 2})
        assert workflow.retry_failed(conn, SID, "Maya", at) == 1
        assert trail(conn)[-1] == ("retried", "Maya", 1, {"channels": "all", "requeued": 1})
        assert workflow.retry_failed(conn, SID, "Maya", at) == 0


def test_retry_failed_leaves_the_copies_of_another_statement(engine):
    scheduled(engine, send_at=NOW)
    other = replace(DOC, reference="TRO 01/002/2030")
    with engine.begin() as conn:
        workflow.import_statement(conn, other, "o.txt", "ana", NOW)
        workflow.approve(conn, other.id, "Maya", NOW)
        workflow.schedule(conn, other.id, "ana", NOW, embargo=NOW + HOUR, send_embargoed_at=None, channels=CHANNELS)
        deliveries.plan_chunk(conn, other.id, 1, "email", ["z@x"], NOW, NOW)
        conn.execute(update(delivery_rows).values(status="failed"))
        assert workflow.retry_failed(conn, SID, "Maya", NOW) == 0
        assert workflow.retry_failed(conn, other.id, "Maya", NOW) == 1


def test_unsent_embargoed_counts_email_copies_due_before_the_embargo_not_yet_done(engine):
    scheduled(engine, send_at=NOW)
    holding(engine, "a@x")                          # sent
    holding(engine, "b@x", status="pending")        # counts
    holding(engine, "c@x", status="retrying")       # counts
    holding(engine, "d@x", status="failed")         # done
    holding(engine, "e@x", status="pending")        # due at the lift: the released version
    holding(engine, "newswire", channel="wire", status="pending")
    with engine.begin() as conn:
        conn.execute(update(delivery_rows).where(delivery_rows.c.target == "e@x").values(due_at=NOW + HOUR))
        assert deliveries.unsent_embargoed(conn, SID, 1, NOW + HOUR) == 2
        assert deliveries.unsent_embargoed(conn, SID, 2, NOW + HOUR) == 0
        assert deliveries.unsent_embargoed(conn, "other", 1, NOW + HOUR) == 0
        deliveries.plan_notice(conn, SID, 1, 1, Kind.EMBARGO_CHANGE, 1, {"email": ["a@x"]}, NOW, NOW)
        deliveries.plan_notice(conn, SID, 1, 1, Kind.CORRECTION, 2, {"email": ["a@x"]}, NOW, NOW)
        assert deliveries.unsent_embargoed(conn, SID, 1, NOW + HOUR) == 3  # a correction counts, a notice not
