"""Applications on the real database: the state machine, forms, materials, 容缺, withdrawal,
decisions arriving as events, bundles and window intake."""

from __future__ import annotations

import itertools
import uuid
from datetime import date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from approval_service.events import (
    CaseAccepted,
    CaseApproved,
    CaseCorrectionRequested,
    CaseDenied,
)
from contracts.sharing.api_v1 import SharedResolution
from intake_service import bundles, consumers, repository
from intake_service.applications import errors, lifecycle, states, supplements
from intake_service.applications.creation import Channel, MaterialChoice
from intake_service.applications.states import transition
from intake_service.models import Application
from tests.intake.support import (
    CALENDAR,
    ELDER,
    FORM,
    NOW,
    applicant,
    deliver,
    draft,
    keys,
    library_file,
    outbox_data,
    outbox_types,
    publish_bundle,
    publish_item,
    published_draft,
    submit_as_applicant,
)
from wangban.settings import Settings

# --- the state machine --------------------------------------------------------------------------

ACTORS: tuple[states.ActorKind, ...] = ("applicant", "staff", "system", "service")


@pytest.mark.parametrize(
    ("start", "to", "actor"),
    list(itertools.product(states.STATUS_NAMES, states.STATUS_NAMES, ACTORS)),
)
def test_every_transition_is_allowed_exactly_as_the_table_says(
    start: str, to: str, actor: states.ActorKind
) -> None:
    application = Application(id=str(uuid.uuid4()), status=start, status_reason="")
    allowed = actor in states.TRANSITIONS.get(start, {}).get(to, frozenset())
    if allowed:
        entry = transition(application, to=to, actor_kind=actor, actor="someone", at=NOW, note="x")
        assert application.status == to and entry.from_status == start and entry.to_status == to
    else:
        with pytest.raises(errors.TransitionNotAllowed, match="不能变更为"):
            transition(application, to=to, actor_kind=actor, actor="someone", at=NOW)
        assert application.status == start


def test_the_table_covers_the_journey_and_final_states_go_nowhere() -> None:
    journey = [
        ("draft", "submitted", "applicant"),
        ("submitted", "accepted", "staff"),
        ("accepted", "under_review", "service"),
        ("under_review", "correction_requested", "service"),
        ("correction_requested", "resubmitted", "applicant"),
        ("resubmitted", "approved", "service"),
        ("approved", "completed", "system"),
        ("completed", "delivered", "system"),
    ]
    for start, to, actor in journey:
        assert actor in states.TRANSITIONS[start][to]
    for final in ("not_accepted", "withdrawn", "terminated", "delivered"):
        assert final not in states.TRANSITIONS
    decided = ("approved", "denied", "completed", "delivered")
    assert all("withdrawn" not in states.TRANSITIONS.get(s, {}) for s in decided)


# --- submitting ---------------------------------------------------------------------------------


async def test_materials_are_met_by_sharing_commitment_upload_and_library(
    db_session: AsyncSession, settings: Settings
) -> None:
    application = await published_draft(db_session, settings)
    own_file = await library_file(db_session, owner=application.applicant_subject)
    await submit_as_applicant(
        db_session,
        settings,
        application,
        choices=[
            MaterialChoice(index=1, commitment=True),
            MaterialChoice(index=2, file_id=own_file),
        ],
    )
    rows = await repository.materials(db_session, application.id)
    assert [(r.status, r.evidence_kind, r.evidence_id) for r in rows] == [
        ("shared", "lookup", "L-1"),
        ("commitment", "commitment", None),
        ("uploaded", "file", own_file),
        ("tolerated", None, None),
    ]
    # An uploaded file and a tolerated material need a person's check: not accepted yet.
    assert application.status == "submitted"
    assert await outbox_types(db_session, application.id) == ["submitted"]


async def test_a_file_from_the_library_is_reused_for_the_same_material_elsewhere(
    db_session: AsyncSession, settings: Settings
) -> None:
    first = await published_draft(db_session, settings)
    earlier = await library_file(
        db_session, owner=first.applicant_subject, material_name="银行卡（存折）复印件"
    )
    await submit_as_applicant(
        db_session,
        settings,
        first,
        choices=[
            MaterialChoice(index=1, commitment=True),
            MaterialChoice(index=2, file_id=earlier),
        ],
    )
    rows = await repository.materials(db_session, first.id)
    assert rows[2].status == "reused" and rows[2].evidence_id == earlier
    stranger = await library_file(db_session, owner="u-someone-else")
    second = await published_draft(db_session, settings)
    with pytest.raises(errors.MaterialsIncomplete, match="所选文件不存在"):
        await submit_as_applicant(
            db_session,
            settings,
            second,
            choices=[
                MaterialChoice(index=1, commitment=True),
                MaterialChoice(index=2, file_id=stranger),
            ],
        )


async def test_all_met_without_files_is_accepted_at_once_with_a_due_date(
    db_session: AsyncSession, settings: Settings
) -> None:
    application = await published_draft(
        db_session,
        settings,
        committed_days=3,
        materials=[
            {"name": "户籍信息", "source": "shared:gongan.huji"},
            {"name": "承诺书", "source": "commitment"},
        ],
    )
    await submit_as_applicant(
        db_session, settings, application, choices=[MaterialChoice(index=1, commitment=True)]
    )
    assert application.status == "accepted" and application.accepted_by == "intake"
    # Accepted Tue 29 Sep 2026 + 3 working days: Wed 30 Sep, then 国庆 (1–7 Oct), Thu 8 and
    # Fri 9 Oct.
    assert application.due_date == date(2026, 10, 9)
    # One event: the submission carries its acceptance (no application.accepted follows).
    assert await outbox_types(db_session, application.id) == ["submitted"]
    acceptance = (await outbox_data(db_session, application.id, "submitted"))["acceptance"]
    assert acceptance["accepted_by"] == "intake"
    assert acceptance["accepted_at"] == NOW.isoformat()
    assert (acceptance["due_date"], acceptance["tolerated_until"]) == ("2026-10-09", None)
    timeline = await repository.timeline(db_session, application.id)
    assert [(t.to_status, t.actor_kind) for t in timeline] == [
        ("draft", "applicant"),
        ("submitted", "applicant"),
        ("accepted", "system"),
    ]


async def test_a_missing_required_material_refuses_the_submission_and_changes_nothing(
    db_session: AsyncSession, settings: Settings
) -> None:
    application = await published_draft(db_session, settings)
    with pytest.raises(errors.MaterialsIncomplete, match="银行卡复印件") as refused:
        await submit_as_applicant(
            db_session, settings, application, choices=[MaterialChoice(index=1, commitment=True)]
        )
    assert refused.value.extra["missing"] == ["银行卡复印件"]
    # The lookup could not be made (sharing unavailable): the applicant is asked, not refused.
    with pytest.raises(errors.MaterialsIncomplete, match="户籍信息"):
        await submit_as_applicant(db_session, settings, application, choices=[], shared=[])
    assert application.status == "draft"
    assert await repository.materials(db_session, application.id) == []
    with pytest.raises(errors.MaterialsIncomplete, match="不适用告知承诺"):
        await submit_as_applicant(
            db_session, settings, application, choices=[MaterialChoice(index=2, commitment=True)]
        )


async def test_form_errors_point_at_their_fields_in_chinese(
    db_session: AsyncSession, settings: Settings
) -> None:
    schema = {
        "type": "object",
        "properties": {
            "bank_account": {
                "type": "string",
                "title": "收款银行账号",
                "pattern": "^[0-9]{12,19}$",
            },
            "months": {"type": "integer", "title": "申领月数", "minimum": 1},
            "kind": {"type": "string", "title": "补贴类型", "enum": ["生活补贴", "护理补贴"]},
        },
        "required": ["bank_account", "kind"],
    }
    application = await published_draft(
        db_session, settings, form={"bank_account": "abc", "months": 0}, form_schema=schema
    )
    with pytest.raises(errors.InvalidForm) as invalid:
        await submit_as_applicant(
            db_session,
            settings,
            application,
            choices=[
                MaterialChoice(index=1, commitment=True),
                MaterialChoice(index=2, file_id="x"),
            ],
        )
    problems = {e["pointer"]: e["detail"] for e in invalid.value.extra["errors"]}
    assert problems == {
        "/form/bank_account": "「收款银行账号」格式不正确",
        "/form/kind": "请填写「补贴类型」",
        "/form/months": "「申领月数」不能小于 1",
    }
    assert application.status == "draft"


async def test_submitting_twice_or_after_withdrawal_is_refused(
    db_session: AsyncSession, settings: Settings
) -> None:
    application = await published_draft(
        db_session, settings, materials=[{"name": "承诺书", "source": "commitment"}]
    )
    await submit_as_applicant(
        db_session, settings, application, choices=[MaterialChoice(index=0, commitment=True)]
    )
    with pytest.raises(errors.AlreadySubmitted):
        await submit_as_applicant(
            db_session, settings, application, choices=[MaterialChoice(index=0, commitment=True)]
        )
    await lifecycle.withdraw(
        db_session, application=application, actor=application.applicant_subject, reason="不办了"
    )
    assert application.status == "withdrawn" and application.status_reason == "不办了"
    with pytest.raises(errors.AlreadySubmitted):
        await submit_as_applicant(
            db_session, settings, application, choices=[MaterialChoice(index=0, commitment=True)]
        )
    with pytest.raises(errors.TransitionNotAllowed):
        await lifecycle.withdraw(
            db_session, application=application, actor=application.applicant_subject, reason="再撤"
        )


# --- decisions arriving as events ---------------------------------------------------------------


def _approved(application: Application, at: datetime) -> CaseApproved:
    return CaseApproved(
        application_id=application.id,
        item_id=str(uuid.uuid4()),
        item_version_id=application.item_version_id or "",
        item_code=application.item_code,
        decided_at=at.isoformat(),
        decided_by="reviewer-7",
        result_kind="decision",
    )


async def _accepted_with_a_material_missing(
    session: AsyncSession, settings: Settings
) -> Application:
    """Accepted by a clerk on NOW with the 可容缺 最低生活保障证明 still missing (an item
    whose result is a decision: one promising a certificate also waits for it)."""
    application = await published_draft(
        session, settings, result_kind="decision", certificate_type=None
    )
    file_id = await library_file(session, owner=application.applicant_subject)
    await submit_as_applicant(
        session,
        settings,
        application,
        choices=[
            MaterialChoice(index=1, commitment=True),
            MaterialChoice(index=2, file_id=file_id),
        ],
    )
    await lifecycle.accept(
        session,
        application=application,
        actor_kind="staff",
        actor="clerk-1",
        calendar=CALENDAR,
        now=NOW,
    )
    return application


async def test_tolerated_material_holds_the_result_until_supplied(
    db_session: AsyncSession, settings: Settings
) -> None:
    application = await _accepted_with_a_material_missing(db_session, settings)
    # 容缺时限 3 working days from Tue 29 Sep 2026: Wed 30 Sep, Thu 8 Oct, Fri 9 Oct.
    assert application.tolerated_until == date(2026, 10, 9)
    await deliver(db_session, consumers.approved, _approved(application, NOW + timedelta(days=1)))
    assert application.status == "approved"  # held: the tolerated material is still missing
    materials = await repository.materials(db_session, application.id)
    # 补齐 is offered while the material is outstanding; withdrawing no more (it is decided).
    assert supplements.may_supplement(application, materials)
    assert not lifecycle.may_withdraw(application)
    proof = await library_file(
        db_session, owner=application.applicant_subject, material_name="最低生活保障证明"
    )
    await supplements.supplement(
        db_session,
        application=application,
        choices=[MaterialChoice(index=3, file_id=proof)],
        actor_kind="applicant",
        actor=application.applicant_subject,
        now=NOW + timedelta(days=2),
    )
    assert application.status == "completed"
    assert not supplements.may_supplement(
        application, await repository.materials(db_session, application.id)
    )
    assert application.tolerated_until == date(2026, 10, 9)  # kept: it was a 容缺 acceptance
    assert (await outbox_types(db_session, application.id))[-2:] == ["supplemented", "completed"]


async def test_a_tolerated_material_not_supplied_in_time_ends_the_application(
    db_session: AsyncSession, settings: Settings
) -> None:
    application = await _accepted_with_a_material_missing(db_session, settings)
    deadline = application.tolerated_until
    assert deadline is not None
    reminded = await supplements.remind_due(
        db_session, today=date(2026, 10, 7), calendar=CALENDAR, now=NOW
    )
    assert application.id in reminded
    again = await supplements.remind_due(db_session, today=date(2026, 10, 8), calendar=CALENDAR)
    assert application.id not in again  # once
    assert application.id not in await supplements.terminate_overdue(db_session, today=deadline)
    ended = await supplements.terminate_overdue(db_session, today=deadline + timedelta(days=1))
    assert application.id in ended
    assert application.status == "terminated" and "容缺材料未在" in application.status_reason
    assert (await outbox_types(db_session, application.id))[-2:] == ["reminder_due", "terminated"]


async def test_review_correction_resubmission_and_denial(
    db_session: AsyncSession, settings: Settings
) -> None:
    application = await published_draft(
        db_session, settings, materials=[{"name": "承诺书", "source": "commitment"}]
    )
    await submit_as_applicant(
        db_session, settings, application, choices=[MaterialChoice(index=0, commitment=True)]
    )
    at = NOW.isoformat()
    await deliver(
        db_session,
        consumers.case_accepted,
        CaseAccepted(application_id=application.id, started_at=at, reviewer="r-1"),
    )
    await deliver(
        db_session,
        consumers.correction_requested,
        CaseCorrectionRequested(
            application_id=application.id, requested_at=at, reviewer="r-1", reason="银行账号有误"
        ),
    )
    assert application.status == "correction_requested"
    assert application.status_reason == "银行账号有误"
    file_id = await library_file(
        db_session, owner=application.applicant_subject, material_name="承诺书"
    )
    await supplements.supplement(
        db_session,
        application=application,
        choices=[MaterialChoice(index=0, file_id=file_id)],
        actor_kind="applicant",
        actor=application.applicant_subject,
    )
    assert application.status == "resubmitted"
    denial = CaseDenied(
        application_id=application.id, decided_at=at, decided_by="r-1", reason="不符合条件"
    )
    await deliver(db_session, consumers.denied, denial)
    assert application.status == "completed" and application.status_reason == "不符合条件"
    await deliver(db_session, consumers.denied, denial)  # a late duplicate changes nothing
    await deliver(db_session, consumers.approved, _approved(application, NOW))
    assert application.status == "completed"
    statuses = [t.to_status for t in await repository.timeline(db_session, application.id)]
    assert statuses[-4:] == ["correction_requested", "resubmitted", "denied", "completed"]


# --- bundles and windows ------------------------------------------------------------------------


async def _no_lookups(item_version_id: str, application_id: str) -> list[SharedResolution]:
    return []


async def test_a_bundle_fans_out_and_reports_one_status(
    db_session: AsyncSession, settings: Settings
) -> None:
    commitment = [{"name": "承诺书", "source": "commitment"}]
    # Decision results: a member promising a certificate is 办结 only once it is issued.
    decision: dict[str, Any] = {"result_kind": "decision", "certificate_type": None}
    first = await publish_item(
        db_session, name="出生医学证明首次签发", materials=commitment, **decision
    )
    second = await publish_item(
        db_session,
        **decision,
        name="新生儿入户登记",
        department="东莞市公安局",
        materials=commitment,
        form_schema={
            "type": "object",
            "properties": {"account": {"type": "string", "title": "账号"}},
            "required": ["account"],
        },
    )
    bundle_id = await publish_bundle(
        db_session, [first, second], [{"bank": "bank_account"}, {"bank": "account"}]
    )
    one = [MaterialChoice(index=0, commitment=True)]
    parent = await bundles.submit_bundle(
        db_session,
        bundle_version_id=bundle_id,
        applicant=applicant(ELDER),
        form={"bank": "6222000011112222"},
        channel=Channel(name="mini_program"),
        resolve=_no_lookups,
        choices={first.version_id: one, second.version_id: one},
        keys=keys(settings),
        calendar=CALENDAR,
        idempotency_key="bundle-key-1",
        now=NOW,
    )
    members = await repository.children(db_session, parent.id)
    assert sorted(m.department for m in members) == ["东莞市公安局", "东莞市民政局"]
    forms = {m.item_name: m.form for m in members}
    assert forms == {
        "出生医学证明首次签发": {"bank_account": "6222000011112222"},
        "新生儿入户登记": {"account": "6222000011112222"},
    }
    assert all(m.status == "accepted" for m in members)
    police = next(m for m in members if m.department == "东莞市公安局")
    await deliver(
        db_session,
        consumers.case_accepted,
        CaseAccepted(application_id=police.id, started_at=NOW.isoformat(), reviewer="r"),
    )
    await deliver(
        db_session,
        consumers.correction_requested,
        CaseCorrectionRequested(
            application_id=police.id,
            requested_at=NOW.isoformat(),
            reviewer="r",
            reason="请核对姓名",
        ),
    )
    assert parent.status == "correction_requested"
    parent_timeline = await repository.timeline(db_session, parent.id)
    assert "请核对姓名" in parent_timeline[-1].note and "新生儿入户登记" in parent_timeline[-1].note
    for member in members:
        if member is not police:
            await deliver(db_session, consumers.approved, _approved(member, NOW))
    assert bundles.aggregate(members).summary == "1/2 项已办结"
    again = await bundles.submit_bundle(
        db_session,
        bundle_version_id=bundle_id,
        applicant=applicant(ELDER, subject=parent.applicant_subject),
        form={"bank": "6222000011112222"},
        channel=Channel(name="mini_program"),
        resolve=_no_lookups,
        choices={},
        keys=keys(settings),
        calendar=CALENDAR,
        idempotency_key="bundle-key-1",
        now=NOW,
    )
    assert again.id == parent.id  # the same key: the same bundle application


async def test_window_intake_across_districts_follows_the_items_scope(
    db_session: AsyncSession, settings: Settings
) -> None:
    city_wide = await publish_item(db_session, scope="city", region_code="441900")
    district_only = await publish_item(db_session, scope="district", region_code="441900003000")
    other_city = await publish_item(db_session, scope="city", region_code="440100")
    window = Channel(
        name="window",
        window="南城街道便民服务中心",
        region="441900004000",
        clerk="clerk-9",
        agent="u-son",
    )
    application = await draft(
        db_session,
        item=city_wide,
        applicant=applicant(ELDER),
        form=FORM,
        channel=window,
        settings=settings,
        now=NOW,
    )
    assert application.accepting_window == "南城街道便民服务中心"
    assert application.accepting_region == "441900004000" and application.region_code == "441900"
    assert application.agent_subject == "u-son"
    for elsewhere in (district_only, other_city):
        with pytest.raises(errors.ScopeNotAllowed, match=elsewhere.region_code):
            await draft(
                db_session,
                item=elsewhere,
                applicant=applicant(ELDER),
                form=FORM,
                channel=window,
                settings=settings,
                now=NOW,
            )


async def test_personal_data_is_encrypted_at_rest(
    db_session: AsyncSession, settings: Settings
) -> None:
    application = await published_draft(db_session, settings)
    assert (
        ELDER not in application.applicant_id_enc and "陈桂英" not in application.applicant_name_enc
    )
    assert application.applicant_ref == keys(settings).blind_index.resident_id(ELDER)


async def test_the_submitted_event_carries_form_and_identity_only_encrypted(
    db_session: AsyncSession, settings: Settings
) -> None:
    from intake_service.events import FORM_CONTEXT, HOLDER_CONTEXT
    from intake_service.models import kit_tables

    application = await published_draft(
        db_session, settings, materials=[{"name": "承诺书", "source": "commitment"}]
    )
    await submit_as_applicant(
        db_session, settings, application, choices=[MaterialChoice(index=0, commitment=True)]
    )
    envelope = (
        await db_session.execute(
            select(kit_tables.outbox.c.envelope).where(
                kit_tables.outbox.c.key == application.id,
                kit_tables.outbox.c.event_type == "cn.wangban.intake.application.submitted.v1",
            )
        )
    ).scalar_one()
    text = str(envelope)
    assert FORM["bank_account"] not in text and ELDER not in text and "陈桂英" not in text
    cipher = keys(settings).cipher
    data = envelope["data"]
    assert cipher.decrypt(data["applicant_id_enc"], context=HOLDER_CONTEXT) == ELDER
    assert FORM["bank_account"] in cipher.decrypt(data["form_enc"], context=FORM_CONTEXT)
    # Age and region are derived by approval from the encrypted ID number, not published.
    assert "applicant_age" not in data and "region_code" not in data
