"""Building blocks for the approval tests (and the gateway's, which meet a case): item versions
as the catalog announces them, an accepted case, a staff token, a submitted application as
intake announces it."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from approval_service import cases
from approval_service.consumers import build_consumer
from approval_service.models import Case, ItemVersionCopy
from catalog_service.events import ItemPublished
from intake_service.events import (
    FORM_CONTEXT,
    HOLDER_CONTEXT,
    SUBJECT_CONTEXT,
    ApplicationSubmitted,
)
from tests.catalog.support import item_content
from wangban.auth import AssuranceLevel, Identity, InternalTokens
from wangban.calendar import WorkingDayCalendar
from wangban.crypto import FieldCipher
from wangban.events import envelope_for
from wangban.settings import Settings

CALENDAR = WorkingDayCalendar()
CIPHER = FieldCipher.from_settings(Settings())
ACCEPTED = datetime(2025, 9, 22, 2, 0, tzinfo=UTC)  # Monday 22 Sep 2025, 10:00 in China
DEPARTMENT = "东莞市民政局"


async def item_copy(session: AsyncSession, settings: Settings, **overrides: Any) -> ItemVersionCopy:
    content = item_content(**overrides).model_dump(mode="json")
    event = ItemPublished(
        item_id=str(uuid.uuid4()),
        version_id=str(uuid.uuid4()),
        version=1,
        implementing_code=content["implementing_code"],
        lists=[],
        published_at=ACCEPTED.isoformat(),
        content=content,
    )
    handler = build_consumer(settings).handlers[ItemPublished.event_type][1]
    await handler(session, event=event, envelope=envelope_for(event, source="/t"))
    copy = await session.get(ItemVersionCopy, event.version_id)
    assert copy is not None
    return copy


async def accepted_case(
    session: AsyncSession,
    settings: Settings,
    *,
    committed_days: int = 5,
    department: str = DEPARTMENT,
    parent_id: str | None = None,
    **item_overrides: Any,
) -> Case:
    item = await item_copy(
        session,
        settings,
        committed_days=committed_days,
        department=department,
        auto_approval=False,
        rules=[],
        **item_overrides,
    )
    opening = cases.new_case(
        application_id=str(uuid.uuid4()),
        parent_id=parent_id,
        item_version_id=item.version_id,
        item_code=item.implementing_code,
        department=department,
        applicant_kind="person",
        applicant_id_enc="x",
        applicant_name_enc="y",
        applicant_age=70,
        applicant_region="441900",
        form={"bank_account": "6222"},
        form_schema=item.content.get("form_schema"),
        cipher=CIPHER,
        submitted_at=ACCEPTED - timedelta(hours=1),
    )
    assert await cases.open_case(session, case=opening)
    case = await session.get(Case, opening.application_id)
    assert case is not None
    await cases.accept(session, case=case, item=item, accepted_at=ACCEPTED, calendar=CALENDAR)
    return case


def staff_token(settings: Settings, *roles: str, department: str | None = None) -> dict[str, str]:
    identity = Identity(
        subject="staff-1",
        kind="staff",
        roles=frozenset(roles),
        department=department,
        assurance=AssuranceLevel.REAL_NAME,
    )
    token = InternalTokens.from_settings(settings).issue(identity, issuer="gateway")
    return {"Authorization": f"Bearer {token}"}


def submitted_event(
    settings: Settings, *, version_id: str, id_number: str, form: dict[str, Any]
) -> ApplicationSubmitted:
    cipher = FieldCipher.from_settings(settings)
    return ApplicationSubmitted(
        application_id=str(uuid.uuid4()),
        item_version_id=version_id,
        item_code="TEST-TRUST",
        department=DEPARTMENT,
        channel="mini_program",
        applicant_kind="person",
        applicant_subject_enc=cipher.encrypt("u-elder", context=SUBJECT_CONTEXT),
        applicant_id_enc=cipher.encrypt(id_number, context=HOLDER_CONTEXT),
        applicant_name_enc=cipher.encrypt("陈桂英", context=HOLDER_CONTEXT),
        form_enc=cipher.encrypt(json.dumps(form, ensure_ascii=False), context=FORM_CONTEXT),
        submitted_at=datetime.now(UTC).isoformat(),
    )
