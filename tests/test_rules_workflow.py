"""The statement state machine and its audit trail, rule by rule, on a real database."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from distributor import deliveries, workflow
from distributor.errors import InputError, StateError
from distributor.statements.model import Statement, StatementStatus
from distributor.store.schema import deliveries as delivery_rows
from distributor.store.schema import statements
from distributor.workflow import Action

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
SID = "tro-01-001-2030"
DOC = Statement(title="Flood maps must be published", body=("The authority must publish.",),
                reference="TRO 01/001/2030")


@dataclass
class Timed:
    public: bool

    def due_at(self, embargo, send_embargoed_at):
        return embargo if self.public or send_embargoed_at is None else send_embargoed_at


CHANNELS = {"email": Timed(False), "wire": Timed(True)}


def trail(conn, sid=SID) -> list[tuple]:
    return [(e["action"], e["actor"], e["revision"], json.loads(e["detail"]) if e["detail"] else None)
            for e in workflow.audit_trail(conn, sid)]


def imported(engine, doc=DOC, at=NOW, actor="ana"):
    with engine.begin() as conn:
        return workflow.import_statement(conn, doc, "file.txt", actor, at)


def approved(engine, by="Maya", at=NOW):
    imported(engine)
    with engine.begin() as conn:
        return workflow.approve(conn, SID, by, at)


def scheduled(engine, embargo=NOW + HOUR, send_at=None, channels=CHANNELS, at=NOW):
    approved(engine)
    with engine.begin() as conn:
        return workflow.schedule(conn, SID, "ana", at, embargo=embargo, send_embargoed_at=send_at, channels=channels)


# -- import ------------------------------------------------------------------------------------------------------------
def test_first_import_creates_a_draft_revision_one(engine):
    result = imported(engine)
    assert result == workflow.ImportResult(SID, 1, created=True, changed=True, approval_revoked=False, cancelled=0)
    with engine.connect() as conn:
        row = workflow.get(conn, SID)
        assert (row["status"], row["revision"], row["created_at"], row["updated_at"]) == ("draft", 1, NOW, NOW)
        assert row["approved_revision"] is None
        assert workflow.content(conn, SID, 1) == DOC
        assert workflow.imported_at(conn, SID) == {1: NOW}
        assert trail(conn) == [("imported", "ana", 1, {"hash": DOC.content_hash(), "source": "file.txt"})]
        assert workflow.audit_trail(conn, SID)[0]["at"] == NOW


def test_unchanged_import_is_a_no_op(engine):
    imported(engine)
    result = imported(engine, at=NOW + HOUR, actor="bob")
    assert result == workflow.ImportResult(SID, 1, created=False, changed=False, approval_revoked=False, cancelled=0)
    with engine.connect() as conn:
        assert len(trail(conn)) == 1
        assert workflow.get(conn, SID)["updated_at"] == NOW


def test_changed_draft_becomes_revision_two_without_revoking(engine):
    imported(engine)
    changed = replace(DOC, body=("Changed.",))
    result = imported(engine, changed, at=NOW + HOUR, actor="bob")
    assert result == workflow.ImportResult(SID, 2, created=False, changed=True, approval_revoked=False, cancelled=0)
    with engine.connect() as conn:
        row = workflow.get(conn, SID)
        assert (row["status"], row["revision"], row["updated_at"]) == ("draft", 2, NOW + HOUR)
        assert workflow.content(conn, SID, 2) == changed and workflow.content(conn, SID, 1) == DOC
        assert workflow.imported_at(conn, SID) == {1: NOW, 2: NOW + HOUR}
        assert trail(conn)[-1] == ("revised", "bob", 2, {"cancelled": 0, "hash": changed.content_hash(),
                                                         "source": "file.txt"})


def test_changed_scheduled_statement_revokes_approval_and_cancels_unsent(engine):
    scheduled(engine)
    with engine.begin() as conn:
        deliveries.plan(conn, SID, 1, "email", ["a@x", "b@x"], NOW, NOW)
        conn.execute(update(delivery_rows).where(delivery_rows.c.target == "b@x").values(status="sent"))
    result = imported(engine, replace(DOC, body=("Changed.",)), at=NOW + timedelta(minutes=1), actor="bob")
    assert result == workflow.ImportResult(SID, 2, created=False, changed=True, approval_revoked=True, cancelled=1)
    with engine.connect() as conn:
        row = workflow.get(conn, SID)
        assert (row["status"], row["revision"], row["approved_revision"], row["approved_hash"], row["approved_by"],
                row["approved_at"]) == ("draft", 2, None, None, None, None)
        assert trail(conn)[-2:] == [
            ("revised", "bob", 2, {"cancelled": 1, "hash": result and workflow.content(conn, SID, 2).content_hash(),
                                   "source": "file.txt"}),
            ("approval_revoked", "bob", 2, {"approved_by": "Maya", "reason": "content changed"})]
        statuses = dict(conn.execute(select(delivery_rows.c.target, delivery_rows.c.status)).all())
        errors = dict(conn.execute(select(delivery_rows.c.target, delivery_rows.c.last_error)).all())
    assert statuses == {"a@x": "cancelled", "b@x": "sent"}
    assert errors["a@x"] == "superseded by revision 2"


def test_a_changed_released_statement_becomes_a_draft_revision_and_the_public_keeps_the_published_one(engine):
    scheduled(engine)
    with engine.begin() as conn:
        workflow.release(conn, workflow.get(conn, SID), "scheduler", NOW + HOUR)
    result = imported(engine, replace(DOC, body=("Changed.",)))
    with engine.connect() as conn:
        row = workflow.get(conn, SID)
        public = workflow.released(conn, NOW + 2 * HOUR, 10)
    assert (result.revision, row["status"], row["revision"], row["published_revision"], row["approved_revision"]) \
        == (2, "released", 2, 1, None)
    assert [(r["id"], r["published_revision"], r["content"]["body"]) for r in public] == [(SID, 1, list(DOC.body))]


def test_the_embargo_line_of_a_correction_after_the_release_is_not_held_against_it(engine):
    scheduled(engine)  # the embargo was set by a person: the document has no line
    with engine.begin() as conn:
        workflow.release(conn, workflow.get(conn, SID), "scheduler", NOW + HOUR)
    result = imported(engine, replace(DOC, body=("Changed.",), embargo=NOW + 5 * HOUR))
    assert (result.revision, result.changed) == (2, True)


def test_a_correction_draft_of_a_released_statement_leaves_the_public_copies_going(engine):
    scheduled(engine)
    with engine.begin() as conn:
        deliveries.plan(conn, SID, 1, "wire", ["newswire"], NOW + HOUR, NOW)
        workflow.release(conn, workflow.get(conn, SID), "scheduler", NOW + HOUR)
    result = imported(engine, replace(DOC, body=("Changed.",)))
    with engine.connect() as conn:
        status = conn.execute(select(delivery_rows.c.status)).scalar_one()
    assert (result.cancelled, status) == (0, "pending")


def test_retry_never_brings_back_what_a_retraction_overtook(engine):
    from distributor.outcomes import Kind
    scheduled(engine)
    with engine.begin() as conn:
        workflow.release(conn, workflow.get(conn, SID), "scheduler", NOW + HOUR)
        deliveries.plan_notice(conn, SID, 1, 1, Kind.CORRECTION, 1, {"wire": ["newswire"]}, NOW + HOUR, NOW + HOUR)
        deliveries.plan_notice(conn, SID, 1, 1, Kind.RETRACTION, 2, {"email": ["a@x"]}, NOW + HOUR, NOW + HOUR)
        conn.execute(update(delivery_rows).values(status="failed"))
        conn.execute(update(statements).values(status="retracted"))
        assert workflow.retry_failed(conn, SID, "Maya", NOW + 2 * HOUR) == 1  # the retraction notice only
        kinds = dict(conn.execute(select(delivery_rows.c.kind, delivery_rows.c.status)).all())
    assert kinds == {"correction": "failed", "retraction": "retrying"}


def test_a_retracted_statement_takes_no_new_revision(engine):
    scheduled(engine)
    with engine.begin() as conn:
        workflow.release(conn, workflow.get(conn, SID), "scheduler", NOW + HOUR)
        workflow.retract(conn, SID, "Maya", NOW + HOUR, reason="wrong figures", note=None)
    with pytest.raises(StateError) as error:
        imported(engine, replace(DOC, body=("Changed.",)))
    assert "was retracted" in error.value.message and error.value.where == "file.txt"


# -- approve -----------------------------------------------------------------------------------------------------------
def test_approve_records_who_and_the_hash(engine):
    imported(engine)
    with engine.begin() as conn:
        row = workflow.approve(conn, SID, "Maya Okafor", NOW + HOUR)
    assert (row["status"], row["approved_revision"], row["approved_hash"], row["approved_by"], row["approved_at"],
            row["updated_at"]) == ("approved", 1, DOC.content_hash(), "Maya Okafor", NOW + HOUR, NOW + HOUR)
    with engine.connect() as conn:
        assert trail(conn)[-1] == ("approved", "Maya Okafor", 1, {"hash": DOC.content_hash()})


@pytest.mark.parametrize("by", ["", "   "])
def test_approve_needs_a_name(engine, by):
    imported(engine)
    with engine.begin() as conn, pytest.raises(InputError) as error:
        workflow.approve(conn, SID, by, NOW)
    assert error.value.where == "--by"


def test_only_a_draft_can_be_approved(engine):
    approved(engine)
    with engine.begin() as conn, pytest.raises(StateError) as error:
        workflow.approve(conn, SID, "Maya", NOW)
    assert error.value.message == (f"statement {SID} is approved; only a draft, a withdrawn statement or the "
                                   f"correction of a released one can be approved")
    assert error.value.where == SID


def test_unknown_statement(engine):
    with engine.connect() as conn, pytest.raises(InputError) as error:
        workflow.get(conn, "nope")
    assert error.value.message == "no statement with id 'nope' (see 'distributor list')" and error.value.where == "ID"
    with engine.connect() as conn:
        assert workflow.lock(conn, "nope") is None
        with pytest.raises(InputError):
            workflow.audit_trail(conn, "nope")


# -- schedule ----------------------------------------------------------------------------------------------------------
def test_schedule_sets_embargo_send_time_and_channels(engine):
    row = scheduled(engine, embargo=NOW + HOUR, send_at=NOW + timedelta(minutes=5))
    assert (row["status"], row["embargo"], row["send_embargoed_at"], row["channels"], row["updated_at"]) == \
        ("scheduled", NOW + HOUR, NOW + timedelta(minutes=5), ["email", "wire"], NOW)
    with engine.connect() as conn:
        assert trail(conn)[-1] == ("scheduled", "ana", 1, {
            "channels": ["email", "wire"], "embargo": str(NOW + HOUR),
            "send_embargoed_at": str(NOW + timedelta(minutes=5))})


def test_schedule_without_send_time_sends_now(engine):
    row = scheduled(engine)
    assert row["send_embargoed_at"] == NOW


def test_schedule_takes_the_embargo_from_the_statement(engine):
    imported(engine, replace(DOC, embargo=NOW + 2 * HOUR))
    with engine.begin() as conn:
        workflow.approve(conn, SID, "Maya", NOW)
        row = workflow.schedule(conn, SID, "ana", NOW, embargo=None, send_embargoed_at=None, channels=CHANNELS)
    assert row["embargo"] == NOW + 2 * HOUR


def test_schedule_embargo_other_than_the_statements_needs_an_override_and_is_audited(engine):
    imported(engine, replace(DOC, embargo=NOW + 2 * HOUR))
    with engine.begin() as conn:
        workflow.approve(conn, SID, "Maya", NOW)
    error = schedule_error(engine, embargo=NOW + HOUR)
    assert isinstance(error, InputError) and error.where == "--embargo"
    assert error.message == ("2030-01-01 13:00 UTC is not the statement's own embargo (2030-01-01 14:00 UTC); "
                             "add --override-embargo to move it")
    with engine.begin() as conn:
        row = workflow.schedule(conn, SID, "ana", NOW, embargo=NOW + 2 * HOUR, send_embargoed_at=None,
                                channels=CHANNELS)  # its own embargo, typed: no override needed
        assert (row["embargo"], row["embargo_source"]) == (NOW + 2 * HOUR, "document")
        assert [t[0] for t in trail(conn)][-1] == "scheduled"
        row = workflow.schedule(conn, SID, "ana", NOW, embargo=NOW + HOUR, send_embargoed_at=None, channels=CHANNELS,
                                override_embargo=True)
        assert (row["embargo"], row["embargo_source"]) == (NOW + HOUR, "set")
        overridden = [t for t in trail(conn) if t[0] == "embargo_overridden"]
        assert overridden == [("embargo_overridden", "ana", 1, {"embargo": str(NOW + HOUR),
                                                                "statement_embargo": str(NOW + 2 * HOUR)})]
        # the time set by the override is the statement's own now: scheduling again keeps it without a flag
        row = workflow.schedule(conn, SID, "ana", NOW, embargo=None, send_embargoed_at=None, channels=CHANNELS)
        assert row["embargo"] == NOW + HOUR


def test_a_new_revision_must_agree_with_an_embargo_set_by_a_person(engine):
    imported(engine, replace(DOC, embargo=NOW + 2 * HOUR))
    with engine.begin() as conn:
        workflow.approve(conn, SID, "Maya", NOW)
        workflow.schedule(conn, SID, "ana", NOW, embargo=NOW + HOUR, send_embargoed_at=None, channels=CHANNELS,
                          override_embargo=True)
    with engine.begin() as conn, pytest.raises(StateError) as err:
        workflow.import_statement(conn, replace(DOC, embargo=NOW + 2 * HOUR, body=("Changed.",)), "b.txt", "ana", NOW)
    assert err.value.where == "b.txt"
    assert "the embargo line says 2030-01-01 14:00 UTC but the embargo of" in err.value.message
    assert f"'distributor reschedule {SID} --embargo TIME --by NAME --reason TEXT'" in err.value.message  # scheduled
    with engine.begin() as conn:  # not yet scheduled: the way is schedule --override-embargo
        conn.execute(update(statements).values(status="approved"))
    with engine.begin() as conn, pytest.raises(StateError) as err:
        workflow.import_statement(conn, replace(DOC, embargo=NOW + 2 * HOUR, body=("Changed.",)), "b.txt", "ana", NOW)
    assert f"'distributor schedule {SID} --embargo TIME --override-embargo'" in err.value.message
    with engine.begin() as conn:  # a line that agrees, or none, is fine
        assert workflow.import_statement(conn, replace(DOC, embargo=NOW + HOUR, body=("Changed.",)), "b.txt", "ana",
                                         NOW).revision == 2
        assert workflow.import_statement(conn, replace(DOC, embargo=None, body=("Again.",)), "c.txt", "ana",
                                         NOW).revision == 3


def schedule_error(engine, **kwargs):
    args = dict(embargo=NOW + HOUR, send_embargoed_at=None, channels=CHANNELS)
    args.update(kwargs)
    with engine.begin() as conn:
        with pytest.raises((InputError, StateError)) as error:
            workflow.schedule(conn, SID, "ana", NOW, **args)
    return error.value


def test_schedule_needs_an_embargo(engine):
    approved(engine)
    error = schedule_error(engine, embargo=None)
    assert isinstance(error, InputError) and error.where == "--embargo"
    assert error.message.startswith("no embargo given")


@pytest.mark.parametrize("embargo", [NOW, NOW - timedelta(seconds=1)])
def test_schedule_refuses_an_embargo_not_in_the_future(engine, embargo):
    approved(engine)
    error = schedule_error(engine, embargo=embargo)
    assert isinstance(error, InputError) and error.where == "--embargo"
    assert error.message == f"the embargo {embargo:%Y-%m-%d %H:%M:%S} UTC is in the past"


@pytest.mark.parametrize("send_at", [NOW + HOUR, NOW + 2 * HOUR])
def test_embargoed_copies_must_go_before_the_embargo(engine, send_at):
    approved(engine)
    error = schedule_error(engine, send_embargoed_at=send_at)
    assert isinstance(error, InputError) and error.where == "--send-embargoed-at"
    assert error.message == "embargoed copies must go out before the embargo"


def test_send_time_just_before_the_embargo_is_fine(engine):
    row = scheduled(engine, send_at=NOW + HOUR - timedelta(seconds=1))
    assert row["status"] == "scheduled"


def test_a_draft_must_be_approved_first(engine):
    imported(engine)
    error = schedule_error(engine)
    assert isinstance(error, StateError) and error.where == SID
    assert error.message == f"statement {SID} is draft; approve it first ('distributor approve {SID} --by NAME')"


@pytest.mark.parametrize("status", ["released", "withdrawn"])
def test_released_or_withdrawn_cannot_be_scheduled(engine, status):
    approved(engine)
    with engine.begin() as conn:
        conn.execute(update(statements).values(status=status))
    error = schedule_error(engine)
    assert isinstance(error, StateError) and error.where == SID
    assert error.message == f"statement {SID} is {status}; it cannot be scheduled"


def test_schedule_again_moves_unsent_rows_and_drops_channels(engine):
    scheduled(engine)
    with engine.begin() as conn:
        deliveries.plan(conn, SID, 1, "email", ["a@x"], NOW, NOW)
        deliveries.plan(conn, SID, 1, "wire", ["newswire"], NOW + HOUR, NOW)
        row = workflow.schedule(conn, SID, "bob", NOW + timedelta(minutes=1), embargo=NOW + 2 * HOUR,
                                send_embargoed_at=NOW + HOUR, channels={"email": CHANNELS["email"]},
                                override_embargo=True)
        assert (row["status"], row["embargo"], row["channels"]) == ("scheduled", NOW + 2 * HOUR, ["email"])
        moved = dict(conn.execute(select(delivery_rows.c.channel, delivery_rows.c.next_attempt_at)).all())
        statuses = dict(conn.execute(select(delivery_rows.c.channel, delivery_rows.c.status)).all())
    assert moved["email"] == NOW + HOUR  # the email channel is due when embargoed copies go out
    assert statuses == {"email": "pending", "wire": "cancelled"}


def test_first_schedule_does_not_touch_rows(engine):
    approved(engine)
    with engine.begin() as conn:
        deliveries.plan(conn, SID, 1, "email", ["a@x"], NOW, NOW)  # left over, as after an earlier plan
        workflow.schedule(conn, SID, "ana", NOW, embargo=NOW + HOUR, send_embargoed_at=None,
                          channels={"wire": CHANNELS["wire"]})
        assert conn.execute(select(delivery_rows.c.status)).scalar_one() == "pending"


def test_schedule_again_with_another_embargo_after_embargoed_copies_went_out_is_refused(engine):
    scheduled(engine)
    with engine.begin() as conn:
        deliveries.plan(conn, SID, 1, "email", ["a@x"], NOW, NOW)
        conn.execute(update(delivery_rows).values(status="sent", variant="embargoed"))
    error = schedule_error(engine, embargo=NOW + 2 * HOUR, override_embargo=True)
    assert isinstance(error, StateError) and error.where == "--embargo"
    assert error.message.startswith(f"1 journalist already holds {SID}") and "distributor reschedule" in error.message


def test_copies_of_an_earlier_revision_pin_the_embargo(engine):
    scheduled(engine)
    with engine.begin() as conn:
        deliveries.plan(conn, SID, 1, "email", ["a@x"], NOW, NOW)
        conn.execute(update(delivery_rows).values(status="sent", variant="embargoed"))
    imported(engine, replace(DOC, body=("Changed.",)))
    with engine.begin() as conn:
        workflow.approve(conn, SID, "Maya", NOW)
    error = schedule_error(engine, embargo=NOW + 2 * HOUR, override_embargo=True)
    assert isinstance(error, StateError) and error.where == "--embargo"
    assert error.message == (f"1 journalist already holds {SID} under the embargo "
                             f"{NOW + HOUR:%Y-%m-%d %H:%M} UTC; move it with 'distributor reschedule {SID} "
                             f"--embargo TIME --by NAME --reason TEXT', which tells them")
    with engine.begin() as conn:  # the same embargo is fine
        row = workflow.schedule(conn, SID, "ana", NOW, embargo=NOW + HOUR, send_embargoed_at=None, channels=CHANNELS)
    assert (row["status"], row["revision"]) == ("scheduled", 2)


def test_released_copies_do_not_pin_the_embargo(engine):
    scheduled(engine)
    with engine.begin() as conn:
        deliveries.plan(conn, SID, 1, "email", ["a@x"], NOW, NOW)
        conn.execute(update(delivery_rows).values(status="sent", variant="released"))
        row = workflow.schedule(conn, SID, "ana", NOW, embargo=NOW + 2 * HOUR, override_embargo=True,
                                send_embargoed_at=None,
                                channels=CHANNELS)
    assert row["embargo"] == NOW + 2 * HOUR


# -- withdraw and release --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("stage", ["draft", "approved", "scheduled"])
def test_withdraw_before_release_cancels_what_has_not_gone(engine, stage):
    {"draft": imported, "approved": approved, "scheduled": scheduled}[stage](engine)
    with engine.begin() as conn:
        deliveries.plan(conn, SID, 1, "email", ["a@x", "b@x"], NOW, NOW)
        conn.execute(update(delivery_rows).where(delivery_rows.c.target == "b@x").values(status="sent"))
        row = workflow.withdraw(conn, SID, "Maya", NOW + HOUR, "legal advice")
        assert (row["status"], row["updated_at"]) == ("withdrawn", NOW + HOUR)
        assert trail(conn)[-1] == ("withdrawn", "Maya", 1, {"cancelled": 1, "notified": 0, "reason": "legal advice"})
        errors = dict(conn.execute(select(delivery_rows.c.target, delivery_rows.c.last_error)).all())
    assert errors == {"a@x": "withdrawn: legal advice", "b@x": None}


def test_released_cannot_be_withdrawn(engine):
    scheduled(engine)
    with engine.begin() as conn:
        workflow.release(conn, workflow.get(conn, SID), "scheduler", NOW + HOUR)
    with engine.begin() as conn, pytest.raises(StateError) as error:
        workflow.withdraw(conn, SID, "Maya", NOW + HOUR, "late")
    assert error.value.message == (f"statement {SID} is already public; it cannot be withdrawn (retract it: "
                                   f"'distributor retract {SID} --by NAME --reason TEXT')")
    assert error.value.where == SID


def test_withdrawn_statement_changed_becomes_a_draft_again(engine):
    imported(engine)
    with engine.begin() as conn:
        workflow.withdraw(conn, SID, "Maya", NOW, "wrong")
    result = imported(engine, replace(DOC, body=("Corrected.",)))
    assert result.revision == 2
    with engine.connect() as conn:
        assert workflow.get(conn, SID)["status"] == "draft"


def test_release_records_how_late_it_was(engine):
    scheduled(engine)
    at = NOW + HOUR + timedelta(seconds=1.2345)
    with engine.begin() as conn:
        workflow.release(conn, workflow.get(conn, SID), "scheduler@w1", at)
        row = workflow.get(conn, SID)
        assert (row["status"], row["released_at"], row["updated_at"]) == ("released", at, at)
        assert trail(conn)[-1] == ("released", "scheduler@w1", 1,
                                   {"embargo": str(NOW + HOUR), "late_seconds": 1.234})


# -- moves and transitions ---------------------------------------------------------------------------------------------
def test_transitions():
    S = StatementStatus
    assert workflow.TRANSITIONS == {
        S.DRAFT: {S.APPROVED, S.WITHDRAWN, S.DRAFT},
        S.APPROVED: {S.SCHEDULED, S.DRAFT, S.WITHDRAWN},
        S.SCHEDULED: {S.SCHEDULED, S.RELEASED, S.DRAFT, S.WITHDRAWN},
        S.RELEASED: {S.RETRACTED},
        S.WITHDRAWN: {S.DRAFT, S.APPROVED},
        S.RETRACTED: set(),
    }


def test_a_move_not_allowed_is_refused(engine):
    imported(engine)
    with engine.begin() as conn:
        row = workflow.get(conn, SID)
        with pytest.raises(StateError) as error:
            workflow.release(conn, row, "scheduler", NOW)
    assert error.value.message == f"statement {SID} is draft; it cannot become released" and error.value.where == SID


def test_a_move_from_a_stale_row_is_refused(engine):
    imported(engine)
    with engine.begin() as conn:
        stale = workflow.get(conn, SID)
        workflow.approve(conn, SID, "Maya", NOW)
        with pytest.raises(StateError) as error:
            workflow._move(conn, stale, StatementStatus.WITHDRAWN, NOW)
    assert error.value.message == f"statement {SID} changed while this command ran; try again"
    assert error.value.where == SID


def test_a_move_from_an_old_revision_is_refused(engine):
    imported(engine)
    with engine.begin() as conn:
        stale = workflow.get(conn, SID)
        conn.execute(update(statements).values(revision=2))
        with pytest.raises(StateError):
            workflow._move(conn, stale, StatementStatus.APPROVED, NOW)
        assert workflow.get(conn, SID)["status"] == "draft"


def test_a_move_changes_only_its_statement(engine):
    imported(engine)
    imported(engine, replace(DOC, reference="TRO 01/002/2030"))
    with engine.begin() as conn:
        workflow.approve(conn, SID, "Maya", NOW)
        assert workflow.get(conn, "tro-01-002-2030")["status"] == "draft"


# -- what the scheduler and the commands read ------------------------------------------------------------------------
def test_scheduled_lists_only_scheduled_approved_revisions(engine):
    scheduled(engine)
    imported(engine, replace(DOC, reference="TRO 01/002/2030"))
    with engine.begin() as conn:
        assert [r["id"] for r in workflow.scheduled(conn)] == [SID]
        # a sweep looks only at what is due by now: the send time (NOW) or the lift (NOW + HOUR)
        assert [r["id"] for r in workflow.scheduled(conn, due_by=NOW)] == [SID]
        conn.execute(update(statements).where(statements.c.id == SID).values(send_embargoed_at=NOW + timedelta(1)))
        assert workflow.scheduled(conn, due_by=NOW + HOUR - timedelta(microseconds=1)) == []
        assert [r["id"] for r in workflow.scheduled(conn, due_by=NOW + HOUR)] == [SID]
        assert workflow.scheduled_instants(conn, NOW) == {NOW + HOUR, NOW + timedelta(1)}
        assert workflow.scheduled_instants(conn, NOW + HOUR) == {NOW + timedelta(1)}
        conn.execute(update(statements).where(statements.c.id == SID).values(approved_revision=0))
        assert workflow.scheduled(conn) == [] and workflow.scheduled_instants(conn, NOW) == set()


def test_released_lists_newest_first_and_only_past_the_embargo(engine):
    docs = [replace(DOC, reference=f"TRO 01/00{i}/2030", title=f"Title {i}") for i in (1, 2, 3, 4)]
    with engine.begin() as conn:
        for i, doc in enumerate(docs):
            workflow.import_statement(conn, doc, "f", "ana", NOW)
            sid = doc.id
            workflow.approve(conn, sid, "Maya", NOW)
            workflow.schedule(conn, sid, "ana", NOW, embargo=NOW + HOUR, send_embargoed_at=None, channels=CHANNELS)
            if i < 3:
                workflow.release(conn, workflow.get(conn, sid), "s", NOW + HOUR + timedelta(minutes=i))
        conn.execute(update(statements).where(statements.c.id == docs[2].id).values(embargo=NOW + 3 * HOUR))
        released = workflow.released(conn, NOW + 2 * HOUR, limit=5)
        assert [r["id"] for r in released] == [docs[1].id, docs[0].id]
        assert released[0]["content"]["title"] == "Title 2" and released[0]["imported_at"] == NOW
        assert [r["id"] for r in workflow.released(conn, NOW + 2 * HOUR, limit=1)] == [docs[1].id]
        assert [r["id"] for r in workflow.released(conn, NOW + 3 * HOUR, limit=5)] == [d.id for d in docs[2::-1]]


def test_released_shows_the_current_revision(engine):
    scheduled(engine)
    with engine.begin() as conn:
        workflow.release(conn, workflow.get(conn, SID), "s", NOW + HOUR)
    with engine.connect() as conn:
        [row] = workflow.released(conn, NOW + HOUR, 10)
        assert row["content"]["title"] == DOC.title and row["revision"] == 1


def test_listing_is_newest_first_with_current_content(engine):
    imported(engine, at=NOW)
    imported(engine, replace(DOC, reference="TRO 01/002/2030", title="Second"), at=NOW + HOUR)
    imported(engine, replace(DOC, reference="TRO 01/002/2030", title="Second, changed"), at=NOW + 2 * HOUR)
    with engine.connect() as conn:
        rows = workflow.listing(conn)
    assert [(r["id"], r["content"]["title"]) for r in rows] == [("tro-01-002-2030", "Second, changed"),
                                                                 (SID, DOC.title)]


def test_listing_ties_are_ordered_by_id(engine):
    imported(engine, replace(DOC, reference="TRO 01/009/2030"))
    imported(engine, replace(DOC, reference="TRO 01/002/2030"))
    with engine.connect() as conn:
        assert [r["id"] for r in workflow.listing(conn)] == ["tro-01-002-2030", "tro-01-009-2030"]


def test_audit_trail_in_time_order_for_one_or_all(engine):
    imported(engine, at=NOW + HOUR)
    imported(engine, replace(DOC, reference="TRO 01/002/2030"), at=NOW)
    with engine.begin() as conn:
        workflow.record(conn, Action.UNSUBSCRIBED, "desk", NOW + timedelta(minutes=1))
        everything = workflow.audit_trail(conn)
        assert [(e["action"], e["statement_id"]) for e in everything] == [
            ("imported", "tro-01-002-2030"), ("unsubscribed", None), ("imported", SID)]
        assert everything[1]["detail"] is None and everything[1]["revision"] is None
        assert [e["statement_id"] for e in workflow.audit_trail(conn, SID)] == [SID]


def test_audit_detail_is_sorted_json_keeping_unicode(engine):
    with engine.begin() as conn:
        workflow.record(conn, Action.PLANNED, "scheduler", NOW, None, None, z=1, a="Zoë", when=NOW)
        [entry] = workflow.audit_trail(conn)
    assert entry["detail"] == '{"a": "Zoë", "when": "2030-01-01 12:00:00+00:00", "z": 1}'
    assert (entry["action"], entry["actor"], entry["at"]) == ("planned", "scheduler", NOW)


def test_action_names():
    assert [a.value for a in Action] == ["imported", "revised", "approval_revoked", "approved", "scheduled",
                                         "released", "withdrawn", "planned", "delivered", "unsubscribed",
                                         "embargo_overridden", "recipients_imported", "recipient_removed",
                                         "recipient_added", "suppression_lifted", "test-sent", "retried",
                                         "rescheduled", "corrected", "retracted", "notified", "alert", "alert_resolved",
                                         "user_added", "user_changed", "user_removed", "media_added", "media_removed",
                                         "portal_revoked", "language_chosen", "list_joined", "list_left"]


def test_lock_returns_the_row(engine):
    imported(engine)
    with engine.begin() as conn:
        assert workflow.lock(conn, SID)["status"] == "draft"


# -- rules found by mutation testing -----------------------------------------------------------------------------------
def test_released_shows_the_current_revision_once(engine):
    imported(engine)
    imported(engine, replace(DOC, body=("Changed.",)), actor="bob")
    with engine.begin() as conn:
        workflow.approve(conn, SID, "Maya", NOW)
        workflow.schedule(conn, SID, "ana", NOW, embargo=NOW + HOUR, send_embargoed_at=None, channels=CHANNELS)
        workflow.release(conn, workflow.get(conn, SID), "s", NOW + HOUR)
        rows = workflow.released(conn, NOW + HOUR, 10)
    assert [(r["id"], r["revision"], r["content"]["body"]) for r in rows] == [(SID, 2, ["Changed."])]


def test_released_at_the_same_instant_are_ordered_by_id(engine):
    with engine.begin() as conn:
        for ref in ("TRO 01/009/2030", "TRO 01/002/2030"):
            doc = replace(DOC, reference=ref)
            workflow.import_statement(conn, doc, "f", "ana", NOW)
            workflow.approve(conn, doc.id, "Maya", NOW)
            workflow.schedule(conn, doc.id, "ana", NOW, embargo=NOW + HOUR, send_embargoed_at=None, channels=CHANNELS)
            workflow.release(conn, workflow.get(conn, doc.id), "s", NOW + HOUR)
        assert [r["id"] for r in workflow.released(conn, NOW + HOUR, 10)] == ["tro-01-002-2030", "tro-01-009-2030"]


def test_approve_without_a_name_says_so(engine):
    imported(engine)
    with engine.begin() as conn, pytest.raises(InputError) as error:
        workflow.approve(conn, SID, " ", NOW)
    assert error.value.message == "--by needs the approver's name"


def test_schedule_without_an_embargo_says_how_to_give_one(engine):
    approved(engine)
    error = schedule_error(engine, embargo=None)
    assert error.message == "no embargo given and none found in the statement; use --embargo TIME"


def test_unchanged_import_of_a_later_revision_is_a_no_op(engine):
    imported(engine)
    changed = replace(DOC, body=("Changed.",))
    imported(engine, changed)
    result = imported(engine, changed)
    assert (result.revision, result.changed, result.created) == (2, False, False)


def test_schedule_again_moves_public_channels_to_the_new_embargo(engine):
    scheduled(engine)
    with engine.begin() as conn:
        deliveries.plan(conn, SID, 1, "wire", ["newswire"], NOW + HOUR, NOW)
        workflow.schedule(conn, SID, "bob", NOW, embargo=NOW + 2 * HOUR, send_embargoed_at=None, channels=CHANNELS,
                          override_embargo=True)
        assert conn.execute(select(delivery_rows.c.due_at)).scalar_one() == NOW + 2 * HOUR
