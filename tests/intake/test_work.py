"""What a 秒批 application costs intake, counted (issue 20, "秒批 at a budget").

The submission is written once, in its final state (accepted at once): the row, its materials
and its timeline in one statement, one ``application.submitted`` carrying the acceptance, and
the answer built from what was written, not read back. The decision and the certificate are
one statement each (update and timeline together) and ``application.completed`` once. What
the one-statement ways leave to the general way (a certificate that came first, concurrently
too) still ends delivered, once.

Counted with SQLAlchemy's engine events on intake's own engine (``tests.work_budget``); only
statements on intake's tables are compared, so the kit's own (a relay's wake-up) do not blur
what intake's code does.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from datetime import date
from typing import Any

from sqlalchemy import select, text

from approval_service.events import CaseApproved, CaseDenied
from contracts.approval.v1 import Completion
from intake_service import consumers, repository
from intake_service.models import Application
from sharing_service.events import CertificateIssued
from tests.intake.support import Intake, outbox_data, outbox_types
from tests.kit.support import eventually
from tests.sharing.support import person_id
from tests.work_budget import PlatformWork, ServiceWork
from wangban.db import Database
from wangban.events import envelope_for

ALICE = person_id(date(1944, 5, 6), 611)
COMMITMENT_ONLY = [{"name": "承诺书", "source": "commitment"}]


def _intake_statements(work: ServiceWork) -> Counter[str]:
    return Counter({k: n for k, n in work.kinds.items() if "intake." in k})


async def _apply(intake: Intake, code: str, subject: str) -> dict[str, Any]:
    answer = await intake.client.post(
        "/applications",
        json={
            "item_code": code,
            "applicant": {"kind": "person", "id_number": ALICE, "name": "陈桂英"},
            "form": {"bank_account": "6222000011112222"},
            "materials": [{"index": 0, "commitment": True}],
        },
        headers={**intake.citizen(subject, ALICE), "Idempotency-Key": str(uuid.uuid4())},
    )
    assert answer.status_code == 201, answer.text
    body: dict[str, Any] = answer.json()
    return body


def _approved(application: dict[str, Any], **extra: Any) -> CaseApproved:
    return CaseApproved(
        application_id=application["id"],
        item_id=str(uuid.uuid4()),
        item_version_id=application["item_version_id"],
        item_code=application["item_code"],
        decided_at="2026-11-23T01:00:00+00:00",
        decided_by="auto",
        **{"result_kind": "certificate", **extra},
    )


def _issued(application: dict[str, Any]) -> CertificateIssued:
    return CertificateIssued(
        certificate_id=str(uuid.uuid4()),
        type_code="gaoling-jintie",
        type_name="高龄津贴发放通知",
        issuer_code="11441900007330256F",
        application_id=application["id"],
        holder_kind="person",
        issued_at="2026-11-23T01:00:01+00:00",
        valid_until=None,
    )


async def _handle(database: Database, handler: Any, event: Any) -> None:
    async with database.sessionmaker() as session, session.begin():
        await handler(session, event=event, envelope=envelope_for(event, source="/t"))


async def _state(database: Database, application_id: str) -> tuple[str, list[str], list[str]]:
    async with database.sessionmaker() as session:
        status = await session.scalar(
            select(Application.status).where(Application.id == application_id)
        )
        timeline = [t.to_status for t in await repository.timeline(session, application_id)]
        events = await outbox_types(session, application_id)
    return str(status), timeline, events


async def test_a_submission_accepted_at_once_is_written_once_in_its_final_state(
    intake: Intake,
) -> None:
    code = f"TEST-WORK-{uuid.uuid4().hex[:10]}"
    await intake.item(implementing_code=code, materials=COMMITMENT_ONLY, committed_days=5)
    await _apply(intake, code, "u-work-warm")  # the version's content read once per process
    work = PlatformWork({"intake": intake.app})
    with work.measure() as measured:
        application = await _apply(intake, code, f"u-work-{uuid.uuid4().hex[:6]}")
    assert _intake_statements(measured["intake"]) == {
        "SELECT intake.item_version": 1,  # the code's current version (its id, not its content)
        "SELECT intake.application": 1,  # the Idempotency-Key's application, if any
        "WITH intake.application": 1,  # the row, its materials, its timeline
        "INSERT intake.outbox": 1,  # application.submitted, carrying the acceptance
    }, PlatformWork.report(measured)
    assert measured["intake"].write_transactions == 1
    # The answer is what was written.
    assert application["status"] == "accepted" and application["due_date"] is not None
    assert [t["to_status"] for t in application["timeline"]] == ["draft", "submitted", "accepted"]
    assert [(m["name"], m["status"]) for m in application["materials"]] == [
        ("承诺书", "commitment")
    ]
    async with intake.database.sessionmaker() as session:
        stored = await session.get(Application, application["id"])
        assert stored is not None and stored.status == "accepted"
        assert stored.accepted_by == "intake" and stored.lock_version == 1
        assert await outbox_types(session, application["id"]) == ["submitted"]
        submitted = await outbox_data(session, application["id"], "submitted")
        timeline = await repository.timeline(session, application["id"])
    assert submitted["acceptance"]["due_date"] == application["due_date"]
    assert [(t.from_status, t.to_status) for t in timeline] == [
        (None, "draft"),
        ("draft", "submitted"),
        ("submitted", "accepted"),
    ]


async def test_the_decision_and_the_certificate_are_one_statement_each(intake: Intake) -> None:
    code = f"TEST-WORK-{uuid.uuid4().hex[:10]}"
    await intake.item(implementing_code=code, materials=COMMITMENT_ONLY)
    application = await _apply(intake, code, f"u-work-{uuid.uuid4().hex[:6]}")
    database: Database = intake.app.state.database
    work = PlatformWork({"intake": intake.app})

    with work.measure() as decided:
        await _handle(database, consumers.approved, _approved(application))
    # Approved, waiting for its certificate: nothing to publish yet.
    assert _intake_statements(decided["intake"]) == {"WITH intake.application": 1}
    assert (await _state(database, application["id"]))[0] == "approved"

    with work.measure() as delivered:
        await _handle(database, consumers.certificate_issued, _issued(application))
    assert _intake_statements(delivered["intake"]) == {
        "WITH intake.application": 1,
        "INSERT intake.outbox": 1,  # application.completed
    }
    status, timeline, events = await _state(database, application["id"])
    assert status == "delivered"
    assert timeline == ["draft", "submitted", "accepted", "approved", "completed", "delivered"]
    assert events == ["submitted", "completed"]

    # Redelivered (under new envelopes), either changes nothing.
    await _handle(database, consumers.approved, _approved(application))
    await _handle(database, consumers.certificate_issued, _issued(application))
    assert await _state(database, application["id"]) == (status, timeline, events)
    async with database.sessionmaker() as session:
        completed = await outbox_data(session, application["id"], "completed")
    assert completed["outcome"] == "approved"


async def test_a_machine_decision_with_nothing_to_issue_completes_on_time_as_approval_counted(
    intake: Intake,
) -> None:
    code = f"TEST-WORK-{uuid.uuid4().hex[:10]}"
    await intake.item(
        implementing_code=code,
        materials=COMMITMENT_ONLY,
        result_kind="decision",
        certificate_type=None,
    )
    database: Database = intake.app.state.database
    approved = await _apply(intake, code, f"u-work-{uuid.uuid4().hex[:6]}")
    completion = Completion(
        completed_at="2026-11-23T01:00:00+00:00", working_days_used=0, on_time=False
    )
    await _handle(
        database,
        consumers.approved,
        _approved(approved, result_kind="decision", completion=completion),
    )
    status, timeline, events = await _state(database, approved["id"])
    assert (status, timeline[-2:], events) == (
        "completed",
        ["approved", "completed"],
        ["submitted", "completed"],
    )
    async with database.sessionmaker() as session:
        completed = await outbox_data(session, approved["id"], "completed")
    # Approval's count (it knows the days its clock stopped), not intake's due date.
    assert (completed["outcome"], completed["on_time"]) == ("approved", False)

    denied = await _apply(intake, code, f"u-work-{uuid.uuid4().hex[:6]}")
    await _handle(
        database,
        consumers.denied,
        CaseDenied(
            application_id=denied["id"],
            decided_at="2026-11-23T01:00:00+00:00",
            decided_by="auto",
            reason="申请人未满80周岁",
            rules=[],
        ),
    )
    status, timeline, events = await _state(database, denied["id"])
    assert (status, timeline[-2:], events) == (
        "completed",
        ["denied", "completed"],
        ["submitted", "completed"],
    )
    async with database.sessionmaker() as session:
        stored = await session.get(Application, denied["id"])
        assert stored is not None and stored.status_reason == "申请人未满80周岁"


async def _waiting_for_a_lock(database: Database) -> bool:
    async with database.read_sessionmaker() as reads:
        waiting = await reads.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
        )
    return bool(waiting)


async def test_a_decision_and_its_certificate_handled_at_the_same_time_deliver_once(
    intake: Intake,
) -> None:
    """Either handler may hold the row while the other's one statement meets it: the one that
    waits sees what the other committed (a certificate kept, an approval) and takes the
    general way, so the application is delivered, once, whichever order."""
    code = f"TEST-WORK-{uuid.uuid4().hex[:10]}"
    await intake.item(implementing_code=code, materials=COMMITMENT_ONLY)
    database: Database = intake.app.state.database
    for first, second in (("certificate", "decision"), ("decision", "certificate")):
        application = await _apply(intake, code, f"u-work-{uuid.uuid4().hex[:6]}")
        handlers = {
            "certificate": (consumers.certificate_issued, _issued(application)),
            "decision": (consumers.approved, _approved(application)),
        }
        async with database.sessionmaker() as holding, holding.begin():
            handler, event = handlers[first]
            await handler(holding, event=event, envelope=envelope_for(event, source="/t"))
            waiting = asyncio.create_task(_handle(database, *handlers[second]))
            # The decision's statement waits for the row the certificate's handler holds; the
            # certificate's finds no approved row (its snapshot predates the approval) and its
            # general way waits for the row.
            await eventually(lambda: _waiting_for_a_lock(database), timeout_s=10)
        await waiting
        status, timeline, events = await _state(database, application["id"])
        assert status == "delivered", (first, timeline)
        assert timeline.count("delivered") == 1 and timeline[-2:] == ["completed", "delivered"]
        assert events == ["submitted", "completed"], first
