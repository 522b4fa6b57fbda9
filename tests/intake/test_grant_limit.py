"""One-time benefits (``grant_limit`` of the item): a second application of the same person
for the item is refused while the first is open or granted, with a Chinese detail naming it;
once the first was denied or withdrawn, or granted in an earlier period, a new one is allowed.
Two concurrent submissions meet at a database lock: one of them is refused."""

from __future__ import annotations

import asyncio
import random
import uuid
from datetime import UTC, date, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from approval_service.events import CaseApproved, CaseDenied
from intake_service import consumers, repository
from intake_service.applications import errors, lifecycle
from intake_service.applications.creation import Channel, MaterialChoice, new_application
from intake_service.models import Application, ItemVersionCopy, TimelineEntry
from tests.intake.support import Intake, applicant, draft, keys, publish_item
from tests.sharing.support import person_id
from tests.work_budget import PlatformWork
from wangban.calendar import WorkingDayCalendar
from wangban.db import Database
from wangban.events import envelope_for
from wangban.settings import Settings

NOW = datetime(2026, 9, 29, 10, 0, tzinfo=UTC)
CALENDAR = WorkingDayCalendar()
COMMITMENT = [{"name": "承诺书", "source": "commitment"}]


def _person() -> str:
    """Someone no other test applies as."""
    return person_id(date(1940, 1, random.randint(1, 28)), random.randint(1, 999))


async def _item(session: AsyncSession, **limit: Any) -> ItemVersionCopy:
    return await publish_item(
        session,
        materials=COMMITMENT,
        auto_approval=False,
        result_kind="decision",  # completed on approval, without waiting for a certificate
        certificate_type=None,
        **limit,
    )


async def _apply(
    session: AsyncSession,
    settings: Settings,
    item: ItemVersionCopy,
    id_number: str,
    *,
    now: datetime = NOW,
) -> Application:
    application = await draft(
        session,
        item=item,
        applicant=applicant(id_number),
        form={"bank_account": "6222000011112222"},
        channel=Channel(name="mini_program"),
        settings=settings,
        now=now,
    )
    return await lifecycle.submit(
        session,
        application=application,
        shared=[],
        choices=[MaterialChoice(index=0, commitment=True)],
        actor_kind="applicant",
        actor=application.applicant_subject,
        keys=keys(settings),
        calendar=CALENDAR,
        now=now,
    )


async def _approve(session: AsyncSession, application: Application, at: datetime) -> None:
    event = CaseApproved(
        application_id=application.id,
        item_id=str(uuid.uuid4()),
        item_version_id=application.item_version_id or "",
        item_code=application.item_code,
        decided_at=at.isoformat(),
        decided_by="reviewer-7",
        result_kind="decision",
    )
    await consumers.approved(session, event=event, envelope=envelope_for(event, source="/t"))


async def test_a_one_time_benefit_is_refused_while_one_is_open_or_granted(
    db_session: AsyncSession, settings: Settings
) -> None:
    item = await _item(db_session, grant_limit="once")
    elder = _person()
    first = await _apply(db_session, settings, item, elder)
    assert first.status == "accepted"
    # Another account, another key, the same person (an agent, a second login): refused.
    with pytest.raises(errors.ApplicationOpen) as open_:
        async with db_session.begin_nested():
            await _apply(db_session, settings, item, elder)
    problem = open_.value.to_body(None, None)
    assert problem["type"].endswith(":application-open")
    assert first.id in problem["detail"] and "已受理" in problem["detail"]
    assert "每人限享受一次" in problem["detail"]
    assert problem["existing_application"]["id"] == first.id

    # Withdrawn: a new application is allowed; granted: the next is refused for good.
    await lifecycle.withdraw(db_session, application=first, actor="u", reason="填错了")
    second = await _apply(db_session, settings, item, elder)
    await _approve(db_session, second, NOW)
    assert second.status == "completed"
    with pytest.raises(errors.AlreadyGranted) as granted:
        async with db_session.begin_nested():
            await _apply(db_session, settings, item, elder)
    detail = granted.value.to_body(None, None)["detail"]
    assert second.id in detail and "2026-09-29" in detail and "获准" in detail

    # Someone else is not concerned.
    other = await _apply(db_session, settings, item, _person())
    assert other.status == "accepted"


async def test_after_a_denial_a_new_application_is_allowed(
    db_session: AsyncSession, settings: Settings
) -> None:
    item = await _item(db_session, grant_limit="once")
    elder = _person()
    first = await _apply(db_session, settings, item, elder)
    denial = CaseDenied(
        application_id=first.id, decided_at=NOW.isoformat(), decided_by="r-1", reason="材料不实"
    )
    await consumers.denied(db_session, event=denial, envelope=envelope_for(denial, source="/t"))
    assert first.status == "completed"
    again = await _apply(db_session, settings, item, elder)
    assert again.status == "accepted"


async def test_once_per_period_counts_grants_of_the_current_period_only(
    db_session: AsyncSession, settings: Settings
) -> None:
    item = await _item(db_session, grant_limit="once_per_period", grant_period="year")
    elder = _person()
    last_year = datetime(2025, 12, 31, 15, 0, tzinfo=UTC)  # 2025-12-31 23:00 in China
    first = await _apply(db_session, settings, item, elder, now=last_year)
    await _approve(db_session, first, last_year)
    this_year = await _apply(db_session, settings, item, elder)  # 2026: allowed
    await _approve(db_session, this_year, NOW)
    with pytest.raises(errors.AlreadyGranted) as refused:
        async with db_session.begin_nested():
            await _apply(db_session, settings, item, elder)
    detail = refused.value.to_body(None, None)["detail"]
    assert this_year.id in detail and "每年限享受一次" in detail


async def test_items_without_a_limit_may_be_applied_for_again(
    db_session: AsyncSession, settings: Settings
) -> None:
    item = await _item(db_session)
    elder = _person()
    first = await _apply(db_session, settings, item, elder)
    second = await _apply(db_session, settings, item, elder)
    assert first.status == second.status == "accepted"


async def test_two_concurrent_submissions_make_one_application(
    database: Database, settings: Settings
) -> None:
    async with database.sessionmaker() as session, session.begin():
        item = await _item(session, grant_limit="once", department=f"测试局-{uuid.uuid4().hex[:6]}")
    elder = _person()

    async def submit() -> str:
        async with database.sessionmaker() as session:
            try:
                async with session.begin():
                    application = await _apply(session, settings, item, elder)
                    await asyncio.sleep(0.3)  # hold the lock while the other one arrives
                return application.id
            except errors.ApplicationOpen:
                return "refused"

    outcomes = await asyncio.gather(submit(), submit())
    assert sorted(o == "refused" for o in outcomes) == [False, True]


async def test_applied_for_online_the_limit_costs_one_statement_and_holds_under_concurrency(
    intake: Intake,
) -> None:
    """Applying online, the applicant's lock for the item is taken by the statement that
    inserts the application (no statement of its own), the check is one more; two
    submissions of one person at once (two keys: two logins) make one application."""
    code = f"TEST-ONCE-{uuid.uuid4().hex[:10]}"
    await intake.item(
        implementing_code=code,
        materials=COMMITMENT,
        auto_approval=False,
        result_kind="decision",
        certificate_type=None,
        grant_limit="once",
    )
    elder = _person()

    async def apply(subject: str) -> httpx.Response:
        return await intake.client.post(
            "/applications",
            json={
                "item_code": code,
                "applicant": {"kind": "person", "id_number": elder, "name": "陈桂英"},
                "form": {"bank_account": "6222000011112222"},
                "materials": [{"index": 0, "commitment": True}],
            },
            headers={**intake.citizen(subject, elder), "Idempotency-Key": str(uuid.uuid4())},
        )

    work = PlatformWork({"intake": intake.app})
    with work.measure() as measured:
        first = await apply("u-once-1")
    assert first.status_code == 201, first.text
    kinds = measured["intake"].kinds
    assert not [k for k in kinds if "pg_advisory" in k], PlatformWork.report(measured)
    # The key's application (none), then the open or granted ones (the first's own excluded).
    assert kinds["SELECT intake.application"] == 2, PlatformWork.report(measured)
    refused = await apply("u-once-2")
    assert refused.status_code == 409, refused.text
    assert refused.json()["type"] == "urn:wangban:problem:application-open"
    assert first.json()["id"] in refused.json()["detail"]

    elder = _person()  # someone who has not applied yet
    answers = await asyncio.gather(apply("u-once-3"), apply("u-once-4"))
    assert sorted(a.status_code for a in answers) == [201, 409], [a.text for a in answers]


async def test_the_insert_takes_the_applicants_lock_for_the_item(
    db_session: AsyncSession, settings: Settings
) -> None:
    """The lock the check relies on is really taken by the statement that inserts the
    application (a lock in a part of a statement the planner could skip would not be)."""
    item = await _item(db_session, grant_limit="once")
    application = new_application(
        item=item,
        applicant=applicant(_person()),
        form={"bank_account": "6222000011112222"},
        channel=Channel(name="mini_program"),
        keys=keys(settings),
        now=NOW,
        idempotency_key=str(uuid.uuid4()),
    )
    entry = TimelineEntry(
        application_id=application.id,
        at=NOW,
        from_status=None,
        to_status="draft",
        actor_kind="applicant",
        actor="u",
        note="",
    )
    assert await repository.insert_application(
        db_session, application, materials=[], timeline=[entry], lock_grant=True
    )
    held = await db_session.scalar(
        text(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
            "AND pid = pg_backend_pid() AND granted"
        )
    )
    assert held == 1
