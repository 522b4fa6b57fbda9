"""Every query of the intake service."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from intake_service.models import (
    Application,
    ApplicationMaterial,
    BundleVersionCopy,
    ItemVersionCopy,
    StoredFile,
    TimelineEntry,
)

# --- version copies -----------------------------------------------------------------------------


async def item_version(session: AsyncSession, version_id: str) -> ItemVersionCopy | None:
    return await session.get(ItemVersionCopy, version_id)


async def save_item_version(session: AsyncSession, values: dict[str, object]) -> None:
    """Store a published version once; a redelivered event changes nothing."""
    await session.execute(
        insert(ItemVersionCopy)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["version_id"])
    )


async def mark_item_withdrawn(session: AsyncSession, *, item_id: str, at: object) -> None:
    rows = await session.scalars(select(ItemVersionCopy).where(ItemVersionCopy.item_id == item_id))
    for row in rows:
        if row.withdrawn_at is None:
            row.withdrawn_at = at  # type: ignore[assignment]


async def bundle_version(session: AsyncSession, version_id: str) -> BundleVersionCopy | None:
    return await session.get(BundleVersionCopy, version_id)


async def save_bundle_version(session: AsyncSession, values: dict[str, object]) -> None:
    await session.execute(
        insert(BundleVersionCopy)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["version_id"])
    )


# --- applications -------------------------------------------------------------------------------


async def application(
    session: AsyncSession, application_id: str, *, lock: bool = False
) -> Application | None:
    query = select(Application).where(Application.id == application_id)
    if lock:
        query = query.with_for_update()
    return (await session.scalars(query)).one_or_none()


async def by_idempotency_key(
    session: AsyncSession, *, applicant_subject: str, key: str
) -> Application | None:
    return (
        await session.scalars(
            select(Application).where(
                Application.applicant_subject == applicant_subject,
                Application.idempotency_key == key,
            )
        )
    ).one_or_none()


async def children(session: AsyncSession, parent_id: str) -> Sequence[Application]:
    return (
        await session.scalars(
            select(Application).where(Application.parent_id == parent_id).order_by(Application.id)
        )
    ).all()


async def applications_of(
    session: AsyncSession, *, applicant_subject: str, limit: int
) -> Sequence[Application]:
    return (
        await session.scalars(
            select(Application)
            .where(
                Application.applicant_subject == applicant_subject,
                Application.kind != "member",
            )
            .order_by(Application.created_at.desc())
            .limit(limit)
        )
    ).all()


async def applications_for_staff(
    session: AsyncSession,
    *,
    department: str | None,
    window: str | None,
    status: str | None,
    limit: int,
) -> Sequence[Application]:
    query = select(Application).where(Application.kind != "bundle")
    if department is not None:
        query = query.where(Application.department == department)
    if window is not None:
        query = query.where(Application.accepting_window == window)
    if status is not None:
        query = query.where(Application.status == status)
    return (await session.scalars(query.order_by(Application.created_at.desc()).limit(limit))).all()


async def overdue_tolerated(session: AsyncSession, *, today: date) -> Sequence[Application]:
    return (
        await session.scalars(
            select(Application)
            .where(
                Application.tolerated_until.is_not(None),
                Application.tolerated_until < today,
                Application.status.in_(
                    ["accepted", "under_review", "correction_requested", "resubmitted", "approved"]
                ),
            )
            .with_for_update(skip_locked=True)
        )
    ).all()


async def tolerated_due_by(session: AsyncSession, *, day: date) -> Sequence[Application]:
    """Open applications with a 容缺 deadline on or before ``day`` not yet reminded."""
    return (
        await session.scalars(
            select(Application)
            .where(
                Application.tolerated_until.is_not(None),
                Application.tolerated_until <= day,
                Application.reminded_at.is_(None),
                Application.status.in_(
                    ["accepted", "under_review", "correction_requested", "resubmitted", "approved"]
                ),
            )
            .with_for_update(skip_locked=True)
        )
    ).all()


# --- timeline and materials ---------------------------------------------------------------------


async def timeline(session: AsyncSession, application_id: str) -> Sequence[TimelineEntry]:
    return (
        await session.scalars(
            select(TimelineEntry)
            .where(TimelineEntry.application_id == application_id)
            .order_by(TimelineEntry.seq)
        )
    ).all()


async def materials(session: AsyncSession, application_id: str) -> Sequence[ApplicationMaterial]:
    return (
        await session.scalars(
            select(ApplicationMaterial)
            .where(ApplicationMaterial.application_id == application_id)
            .order_by(ApplicationMaterial.index)
        )
    ).all()


# --- files --------------------------------------------------------------------------------------


async def stored_file(session: AsyncSession, file_id: str) -> StoredFile | None:
    return await session.get(StoredFile, file_id)


async def library(
    session: AsyncSession, *, owner_subject: str, material_name: str | None = None
) -> Sequence[StoredFile]:
    query = select(StoredFile).where(StoredFile.owner_subject == owner_subject)
    if material_name is not None:
        query = query.where(StoredFile.material_name == material_name)
    return (await session.scalars(query.order_by(StoredFile.created_at.desc()))).all()


async def applications_using_file(session: AsyncSession, file_id: str) -> Sequence[Application]:
    return (
        await session.scalars(
            select(Application)
            .join(ApplicationMaterial, ApplicationMaterial.application_id == Application.id)
            .where(
                ApplicationMaterial.evidence_kind == "file",
                ApplicationMaterial.evidence_id == file_id,
            )
        )
    ).all()
