"""Building blocks for the intake tests: item versions as the catalog announces them, drafts
as the API writes them, keys, files in the applicant's library."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from catalog_service.events import BundlePublished, ItemPublished
from intake_service import applications, consumers
from intake_service.applications import Applicant, Channel, Keys
from intake_service.models import Application, ItemVersionCopy, StoredFile, TimelineEntry
from tests.catalog.support import item_content
from wangban.crypto import BlindIndex, FieldCipher
from wangban.events import envelope_for
from wangban.settings import Settings

PUBLISHED = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)

MATERIALS: list[dict[str, Any]] = [
    {"name": "户籍信息", "source": "shared:gongan.huji"},
    {"name": "不在外地领取的承诺", "source": "commitment"},
    {"name": "银行卡复印件", "source": "upload"},
    {
        "name": "最低生活保障证明",
        "source": "upload",
        "may_be_missing": True,
        "supplement_method": "线上补传",
        "supplement_days": 3,
    },
]


def keys(settings: Settings) -> Keys:
    return Keys(FieldCipher.from_settings(settings), BlindIndex.from_settings(settings))


async def publish_item(session: AsyncSession, **overrides: Any) -> ItemVersionCopy:
    """An item version arriving through the intake consumer, as in production."""
    overrides.setdefault("materials", MATERIALS)
    content = item_content(**overrides).model_dump(mode="json")
    event = ItemPublished(
        item_id=str(uuid.uuid4()),
        version_id=str(uuid.uuid4()),
        version=1,
        implementing_code=content["implementing_code"],
        lists=[],
        published_at=PUBLISHED.isoformat(),
        content=content,
    )
    await consumers.keep_item_version(
        session, event=event, envelope=envelope_for(event, source="/t")
    )
    copy = await session.get(ItemVersionCopy, event.version_id)
    assert copy is not None
    return copy


async def publish_bundle(
    session: AsyncSession, members: list[ItemVersionCopy], field_maps: list[dict[str, str]]
) -> str:
    event = BundlePublished(
        bundle_id=str(uuid.uuid4()),
        version_id=str(uuid.uuid4()),
        version=1,
        code=f"BUNDLE-{uuid.uuid4().hex[:8]}",
        member_version_ids=[m.version_id for m in members],
        published_at=PUBLISHED.isoformat(),
        content={
            "code": "newborn",
            "name": "新生儿出生一件事",
            "members": [
                {"implementing_code": m.implementing_code, "field_map": f}
                for m, f in zip(members, field_maps, strict=True)
            ],
            "form_schema": {
                "type": "object",
                "properties": {"bank": {"type": "string", "title": "收款账号"}},
                "required": ["bank"],
            },
        },
    )
    await consumers.keep_bundle_version(
        session, event=event, envelope=envelope_for(event, source="/t")
    )
    return event.version_id


async def draft(
    session: AsyncSession,
    *,
    item: ItemVersionCopy,
    applicant: Applicant,
    form: dict[str, Any],
    channel: Channel,
    keys: Keys,
    now: datetime,
) -> Application:
    """A draft written as ``POST /applications`` with ``draft: true`` writes one, once its
    reads are done (``intake_service.api._apply``): the window's scope checked, the application
    built and inserted under its key, its first timeline entry by the applicant, or by the clerk
    at a window. The forms of these tests have no prefilled fields, so prefill is left out."""
    if item.withdrawn_at is not None:
        raise applications.ItemVersionNotAvailable()
    applications.check_window_scope(item, channel)
    application, _ = await applications.insert_once(
        session,
        applications.new_application(
            item=item, applicant=applicant, form=form, channel=channel, keys=keys, now=now
        ),
    )
    session.add(
        TimelineEntry(
            application_id=application.id,
            at=now,
            from_status=None,
            to_status="draft",
            actor_kind="staff" if channel.clerk else "applicant",
            actor=channel.clerk or applicant.subject,
            note="",
        )
    )
    await session.flush()
    return application


async def library_file(
    session: AsyncSession, *, owner: str, material_name: str = "银行卡复印件"
) -> str:
    file_id = str(uuid.uuid4())
    session.add(
        StoredFile(
            id=file_id,
            owner_subject=owner,
            material_name=material_name,
            filename="card.pdf",
            media_type="application/pdf",
            size=1024,
            sha256="0" * 64,
            storage_key=f"materials/{file_id}",
            created_at=PUBLISHED,
        )
    )
    await session.flush()
    return file_id


def applicant(id_number: str, subject: str | None = None) -> Applicant:
    return Applicant(
        subject=subject or f"u-{uuid.uuid4().hex[:10]}",
        kind="person",
        id_number=id_number,
        name="陈桂英",
    )
