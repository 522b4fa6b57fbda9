"""Cases on the real database: the manual workflow, each action limited to its role and
department, clocks stopped by 补正 and 特别程序, deadline warnings, parallel bundle cases, the
calendar override table, and the dry-run endpoint."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from approval_service import cases
from approval_service.calendar import calendar_for, forget_cached_calendar, load_notice
from approval_service.models import Case, kit_tables
from tests.approval.support import (
    ACCEPTED,
    CALENDAR,
    CIPHER,
    DEPARTMENT,
    accepted_case,
    staff_token,
)
from tests.infrastructure import Infrastructure, make_settings
from wangban.app import create_service_app
from wangban.db import Database
from wangban.services import load_spec
from wangban.settings import Settings


async def _review(
    session: AsyncSession, case: Case, *, now: datetime, reviewer: str = "r-1"
) -> None:
    """Finish the 审查 step and take the case again at 决定 (same department and person)."""
    await cases.advance(
        session,
        case=case,
        reviewer=reviewer,
        department=case.department,
        comment="审查通过",
        now=now,
    )
    await cases.claim(session, case=case, reviewer=reviewer, department=case.department, now=now)


async def _events(session: AsyncSession, application_id: str) -> list[str]:
    rows = await session.execute(
        select(kit_tables.outbox.c.event_type)
        .where(kit_tables.outbox.c.key == application_id)
        .order_by(kit_tables.outbox.c.seq)
    )
    return [r[0].split(".")[-2] for r in rows]


async def test_the_due_date_counts_working_days_across_the_national_day(
    db_session: AsyncSession, settings: Settings
) -> None:
    case = await accepted_case(db_session, settings)
    # Accepted Mon 22 Sep 2025; 5 working days: 23, 24, 25, 26 Sep and Sun 28 Sep (调休).
    assert case.due_date == date(2025, 9, 28) and not case.due_provisional
    longer = await accepted_case(db_session, settings, committed_days=10)
    # … 29, 30 Sep, then 国庆 1–8 Oct off, Thu 9, Fri 10, Sat 11 Oct (调休).
    assert longer.due_date == date(2025, 10, 11)


async def test_a_reviewer_acts_only_on_claimed_cases_of_their_department(
    db_session: AsyncSession, settings: Settings
) -> None:
    case = await accepted_case(db_session, settings)
    now = ACCEPTED + timedelta(days=1)
    with pytest.raises(cases.CaseNotFound):  # another department's case: as if missing
        await cases.claim(db_session, case=case, reviewer="r-x", department="别的局", now=now)
    with pytest.raises(cases.ActionNotAllowed, match="认领"):
        await cases.decide_manually(
            db_session,
            case=case,
            item=None,
            approve=True,
            reviewer="r-1",
            department=DEPARTMENT,
            reason="",
            cipher=CIPHER,
            calendar=CALENDAR,
            now=now,
        )
    await cases.claim(db_session, case=case, reviewer="r-1", department=DEPARTMENT, now=now)
    with pytest.raises(cases.ActionNotAllowed, match="已由 r-1 认领"):
        await cases.claim(db_session, case=case, reviewer="r-2", department=DEPARTMENT, now=now)
    # The default workflow: 审查, then 决定. No decision at the review step.
    assert [s["name"] for s in case.steps] == ["审查", "决定"] and case.step == "审查"
    with pytest.raises(cases.ActionNotAllowed, match="审查"):
        await cases.decide_manually(
            db_session,
            case=case,
            item=None,
            approve=True,
            reviewer="r-1",
            department=DEPARTMENT,
            reason="",
            cipher=CIPHER,
            calendar=CALENDAR,
            now=now,
        )
    await _review(db_session, case, now=now)
    assert case.step == "决定"
    with pytest.raises(cases.ActionNotAllowed, match="最后一个环节"):
        await cases.advance(
            db_session, case=case, reviewer="r-1", department=DEPARTMENT, comment="", now=now
        )
    with pytest.raises(cases.ReasonRequired):
        await cases.decide_manually(
            db_session,
            case=case,
            item=None,
            approve=False,
            reviewer="r-1",
            department=DEPARTMENT,
            reason=" ",
            cipher=CIPHER,
            calendar=CALENDAR,
            now=now,
        )
    await cases.decide_manually(
        db_session,
        case=case,
        item=None,
        approve=False,
        reviewer="r-1",
        department=DEPARTMENT,
        reason="材料不实",
        cipher=CIPHER,
        calendar=CALENDAR,
        now=now,
    )
    assert case.status == "denied"
    assert await _events(db_session, case.application_id) == ["accepted", "denied", "completed"]
    with pytest.raises(cases.ActionNotAllowed):
        await cases.claim(db_session, case=case, reviewer="r-1", department=DEPARTMENT, now=now)


async def test_correction_and_special_procedures_stop_the_clock(
    db_session: AsyncSession, settings: Settings
) -> None:
    case = await accepted_case(db_session, settings)
    assert case.due_date == date(2025, 9, 28)
    await cases.claim(db_session, case=case, reviewer="r-1", department=DEPARTMENT, now=ACCEPTED)
    # 补正 on Tue 23 Sep; the applicant answers on Fri 26 Sep: 3 working days do not count.
    await cases.request_correction(
        db_session,
        case=case,
        reviewer="r-1",
        department=DEPARTMENT,
        reason="银行账号不清晰",
        materials=["银行卡复印件"],
        now=datetime(2025, 9, 23, 2, tzinfo=UTC),
    )
    assert case.status == "correction"
    await cases.resubmitted(
        db_session, case=case, calendar=CALENDAR, now=datetime(2025, 9, 26, 2, tzinfo=UTC)
    )
    assert case.stopped_days == 3 and case.due_date == date(2025, 10, 9)
    # 现场核查 from Thu 9 Oct to Mon 13 Oct (9 Oct is a working day; 10, 11 (调休), 13): 3 more.
    await cases.suspend(
        db_session,
        case=case,
        reviewer="r-1",
        department=DEPARTMENT,
        procedure="现场核查",
        now=datetime(2025, 10, 9, 2, tzinfo=UTC),
    )
    with pytest.raises(cases.ActionNotAllowed):
        await cases.decide_manually(
            db_session,
            case=case,
            item=None,
            approve=True,
            reviewer="r-1",
            department=DEPARTMENT,
            reason="",
            cipher=CIPHER,
            calendar=CALENDAR,
            now=datetime(2025, 10, 10, 2, tzinfo=UTC),
        )
    await cases.resume(
        db_session,
        case=case,
        reviewer="r-1",
        department=DEPARTMENT,
        calendar=CALENDAR,
        now=datetime(2025, 10, 13, 2, tzinfo=UTC),
    )
    # 5 + 6 working days after Mon 22 Sep: 23–26, 28 (调休), 29, 30 Sep, 9, 10, 11 (调休), 13 Oct.
    assert case.stopped_days == 6 and case.due_date == date(2025, 10, 13)
    await _review(db_session, case, now=datetime(2025, 10, 13, 1, tzinfo=UTC))
    await cases.decide_manually(
        db_session,
        case=case,
        item=None,
        approve=True,
        reviewer="r-1",
        department=DEPARTMENT,
        reason="",
        cipher=CIPHER,
        calendar=CALENDAR,
        now=datetime(2025, 10, 13, 2, tzinfo=UTC),
    )
    assert (await _events(db_session, case.application_id))[-2:] == ["approved", "completed"]


async def test_deadline_warning_at_80_percent_and_overdue_once(
    db_session: AsyncSession, settings: Settings
) -> None:
    case = await accepted_case(db_session, settings)  # due Sun 28 Sep 2025 (5 working days)
    assert case.application_id not in await cases.watch_deadlines(
        db_session,
        calendar=CALENDAR,
        now=datetime(2025, 9, 24, 2, tzinfo=UTC),  # 2 of 5 used
    )
    warned = await cases.watch_deadlines(
        db_session,
        calendar=CALENDAR,
        now=datetime(2025, 9, 26, 2, tzinfo=UTC),  # 4 of 5
    )
    assert case.application_id in warned
    again = await cases.watch_deadlines(
        db_session, calendar=CALENDAR, now=datetime(2025, 9, 26, 3, tzinfo=UTC)
    )
    assert case.application_id not in again
    late = await cases.watch_deadlines(
        db_session, calendar=CALENDAR, now=datetime(2025, 9, 29, 2, tzinfo=UTC)
    )
    assert case.application_id in late and case.overdue_at is not None
    assert (await _events(db_session, case.application_id))[-2:] == [
        "deadline_warning",
        "overdue",
    ]


async def test_the_queues_lights_turn_with_the_deadline_watch(
    db_session: AsyncSession, settings: Settings
) -> None:
    """绿灯 while in time, 黄灯 from the day the watch warns (4 of 5 working days), 红灯 once
    overdue; none while the clock is stopped."""
    case = await accepted_case(db_session, settings)  # accepted Mon 22 Sep 2025, due Sun 28 Sep

    def state(day: date) -> cases.DeadlineState | None:
        return cases.deadline_state(case, calendar=CALENDAR, today=day)

    assert state(date(2025, 9, 24)) == cases.DeadlineState("green", 3)  # 25, 26, 28 (调休) left
    assert state(date(2025, 9, 25)) == cases.DeadlineState("green", 2)
    assert state(date(2025, 9, 26)) == cases.DeadlineState("yellow", 1)
    assert state(date(2025, 9, 28)) == cases.DeadlineState("yellow", 0)
    assert state(date(2025, 9, 30)) == cases.DeadlineState("red", -2)  # 29, 30 Sep late
    case.status = "correction"
    assert state(date(2025, 9, 26)) is None


async def test_a_bundles_cases_proceed_in_parallel_in_their_departments(
    db_session: AsyncSession, settings: Settings
) -> None:
    parent = str(uuid.uuid4())
    civil = await accepted_case(db_session, settings, parent_id=parent)
    police = await accepted_case(db_session, settings, parent_id=parent, department="东莞市公安局")
    now = ACCEPTED + timedelta(days=1)
    await cases.claim(db_session, case=police, reviewer="p-1", department="东莞市公安局", now=now)
    await _review(db_session, police, now=now, reviewer="p-1")
    await cases.decide_manually(
        db_session,
        case=police,
        item=None,
        approve=True,
        reviewer="p-1",
        department="东莞市公安局",
        reason="",
        cipher=CIPHER,
        calendar=CALENDAR,
        now=now,
    )
    assert police.status == "approved" and civil.status == "open"  # neither waits for the other
    with pytest.raises(cases.CaseNotFound):
        await cases.claim(
            db_session, case=civil, reviewer="p-1", department="东莞市公安局", now=now
        )


async def test_a_loaded_notice_makes_2027_deadlines_final(
    db_session: AsyncSession, settings: Settings, tmp_path: Path
) -> None:
    forget_cached_calendar()
    before = await calendar_for(db_session, settings)
    assert before.deadline(date(2026, 12, 28), 10).provisional
    notice = tmp_path / "2027.json"
    days = {f"2027-02-{d:02d}": "holiday" for d in range(6, 13)}  # test data: 春节 6–12 Feb
    days |= {"2027-01-01": "holiday", "2027-01-31": "workday"}
    notice.write_text(json.dumps({"years": [2027], "source": "test data", "days": days}))
    loaded, years = await load_notice(db_session, path=notice)
    assert (loaded, years) == (9, [2027])
    after = await calendar_for(db_session, settings)
    deadline = after.deadline(date(2027, 2, 5), 1)
    assert deadline.due == date(2027, 2, 15) and not deadline.provisional
    assert after.is_working_day(date(2027, 1, 31))  # the 调休 Sunday of the test notice
    forget_cached_calendar()


async def test_the_http_api_limits_actions_to_role_and_department_and_dry_runs_rules(
    infrastructure: Infrastructure, database: Database, tmp_path: Path
) -> None:
    settings = make_settings(infrastructure, data_dir=tmp_path)
    async with database.sessionmaker() as session, session.begin():
        case = await accepted_case(session, settings)
    app = create_service_app(load_spec("approval"), settings, background=False)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://approval"
        ) as client,
    ):
        path = f"/cases/{case.application_id}"
        mine = staff_token(settings, "reviewer", department=DEPARTMENT)
        other = staff_token(settings, "reviewer", department="别的局")
        clerk = staff_token(settings, "window_clerk", department=DEPARTMENT)
        assert (await client.get(path, headers=other)).status_code == 404
        assert (await client.post(f"{path}/claim", headers=clerk)).status_code == 403
        refused = await client.post(f"{path}/claim", headers=other)
        assert refused.status_code == 404  # another department's case: as if it did not exist
        assert refused.json()["type"] == "urn:wangban:problem:case-not-found"
        assert (await client.post(f"{path}/claim", headers=mine)).status_code == 200
        too_early = await client.post(f"{path}/approve", json={"comment": "x"}, headers=mine)
        assert too_early.status_code == 409
        reviewed = await client.post(f"{path}/advance", json={"comment": "审查通过"}, headers=mine)
        assert reviewed.status_code == 200, reviewed.text
        assert reviewed.json()["step"] == "决定" and reviewed.json()["assignee"] is None
        assert (await client.post(f"{path}/claim", headers=mine)).status_code == 200
        queue = await client.get("/cases/queue", headers=mine)
        listed = {c["application_id"]: c for c in queue.json()}
        # Due in September 2025: long overdue today, so 红灯 with the working days late.
        assert listed[case.application_id]["deadline_light"] == "red"
        assert listed[case.application_id]["working_days_left"] < -200
        approved = await client.post(f"{path}/approve", json={"comment": "符合条件"}, headers=mine)
        assert approved.status_code == 200 and approved.json()["status"] == "approved"
        assert [a["action"] for a in approved.json()["actions"]][-4:] == [
            "claimed",
            "完成审查",
            "claimed",
            "approved",
        ]
        auditor = staff_token(settings, "auditor")
        assert (await client.get(path, headers=auditor)).json()["decisions"][0]["kind"] == "manual"

        admin = staff_token(settings, "catalog_admin")
        rules = [
            {"name": "age_80", "expression": "applicant.age >= 80", "message": "未满80周岁"},
            {
                "name": "local",
                "expression": 'shared["gongan.huji"].registered_region.startsWith("4419")',
                "message": "非本市户籍",
            },
        ]
        body = {"rules": rules, "applicant": {"age": 85}, "shared": {"gongan.huji": "unavailable"}}
        dry = await client.post("/rules/dry-run", json=body, headers=admin)
        assert dry.status_code == 200, dry.text
        assert dry.json()["outcome"] == "refer"
        assert [r["result"] for r in dry.json()["results"]] == ["true", "skipped"]
        young = await client.post(
            "/rules/dry-run",
            json={
                **body,
                "applicant": {"age": 70},
                "shared": {"gongan.huji": {"registered_region": "441900"}},
            },
            headers=admin,
        )
        assert young.json()["outcome"] == "deny" and young.json()["reason"] == "未满80周岁"
        broken = await client.post(
            "/rules/dry-run",
            json={"rules": [{"name": "x", "expression": "applicant.age >=", "message": "m"}]},
            headers=admin,
        )
        assert broken.status_code == 422
        assert (await client.post("/rules/dry-run", json=body, headers=mine)).status_code == 403


async def test_an_items_own_workflow_routes_the_decision_to_its_role(
    db_session: AsyncSession, settings: Settings
) -> None:
    case = await accepted_case(
        db_session,
        settings,
        workflow=[{"name": "初审", "role": "reviewer"}, {"name": "决定", "role": "approver"}],
    )
    assert case.step == "初审"
    await cases.claim(db_session, case=case, reviewer="r-1", department=DEPARTMENT, now=ACCEPTED)
    await cases.advance(
        db_session,
        case=case,
        reviewer="r-1",
        department=DEPARTMENT,
        comment="初审通过",
        now=ACCEPTED,
    )
    with pytest.raises(cases.NotYourDepartment, match="approver"):
        await cases.claim(
            db_session, case=case, reviewer="r-1", department=DEPARTMENT, now=ACCEPTED
        )
    await cases.claim(
        db_session,
        case=case,
        reviewer="boss",
        department=DEPARTMENT,
        now=ACCEPTED,
        roles=frozenset({"approver"}),
    )
    await cases.decide_manually(
        db_session,
        case=case,
        item=None,
        approve=True,
        reviewer="boss",
        department=DEPARTMENT,
        reason="",
        cipher=CIPHER,
        calendar=CALENDAR,
        now=ACCEPTED,
        roles=frozenset({"approver"}),
    )
    assert case.status == "approved"
