"""Small factories that insert intake rows directly, for tests of the rules that read them.

They bypass the application workflow on purpose: a rating or a statistic is about the state
an application is in, however it got there. The applicant is a fixed sample person, encrypted
as intake stores applicants (with the development key every test service uses), since an
application's answer shows who applied.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date, datetime, timedelta, timezone

from sqlalchemy.ext.asyncio import AsyncSession

from intake_service.events import HOLDER_CONTEXT
from intake_service.models import Application, ApplicationMaterial, Rating
from wangban.crypto import FieldCipher
from wangban.settings import Settings

CST = timezone(timedelta(hours=8), "CST")
SAMPLE_APPLICANT = ("陈桂英", "441900195001020015")
"""Name and ID number of the applicant of every application made here."""
_CIPHER = FieldCipher.from_settings(Settings())


def at(year: int, month: int, day: int, hour: int = 9, minute: int = 0) -> datetime:
    """A moment in China time."""
    return datetime(year, month, day, hour, minute, tzinfo=CST)


def unique(prefix: str) -> str:
    """A department name or item code no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def application(
    session: AsyncSession,
    *,
    department: str,
    item_code: str = "TEST-ITEM",
    status: str = "completed",
    channel: str = "mini_program",
    applicant_subject: str | None = None,
    kind: str = "single",
    visits: int | None = 0,
    committed_days: int | None = 5,
    auto_approval: bool = False,
    decided_by: str | None = None,
    submitted_at: datetime | None = None,
    accepted_at: datetime | None = None,
    completed_at: datetime | None = None,
    due_date: date | None = None,
    tolerated_until: date | None = None,
) -> Application:
    row = Application(
        id=str(uuid.uuid4()),
        kind=kind,
        item_code=item_code,
        item_name="测试事项",
        department=department,
        region_code="441900",
        applicant_subject=applicant_subject or f"subject-{uuid.uuid4().hex[:12]}",
        applicant_kind="person",
        applicant_ref="ref-dummy",
        applicant_id_enc=_CIPHER.encrypt(SAMPLE_APPLICANT[1], context=HOLDER_CONTEXT),
        applicant_name_enc=_CIPHER.encrypt(SAMPLE_APPLICANT[0], context=HOLDER_CONTEXT),
        channel=channel,
        form={},
        status=status,
        status_reason="",
        committed_days=committed_days,
        online_depth=4 if channel in ("mini_program", "web") else 2,
        visits=visits,
        auto_approval=auto_approval,
        decided_by=decided_by,
        created_at=submitted_at or at(2026, 9, 1),
        submitted_at=submitted_at,
        accepted_at=accepted_at,
        completed_at=completed_at,
        due_date=due_date,
        tolerated_until=tolerated_until,
    )
    session.add(row)
    await session.flush()
    return row


async def material(
    session: AsyncSession,
    *,
    application: Application,
    status: str,
    index: int = 0,
    name: str = "户口簿",
    may_be_missing: bool = True,
) -> ApplicationMaterial:
    row = ApplicationMaterial(
        id=str(uuid.uuid4()),
        application_id=application.id,
        index=index,
        name=name,
        source="upload",
        required=True,
        may_be_missing=may_be_missing,
        status=status,
        note="",
    )
    session.add(row)
    await session.flush()
    return row


async def rating(
    session: AsyncSession,
    *,
    application: Application,
    score: int,
    prompted: bool = False,
    tags: Sequence[str] = (),
    rated_at: datetime | None = None,
) -> Rating:
    """A rating row as it would be stored (no rectification, no event)."""
    row = Rating(
        application_id=application.id,
        department=application.department,
        item_code=application.item_code,
        score=score,
        tags=list(tags),
        comment="",
        prompted=prompted,
        rated_at=rated_at or application.completed_at or at(2026, 9, 30),
    )
    session.add(row)
    await session.flush()
    return row
