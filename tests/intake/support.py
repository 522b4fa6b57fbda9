"""Building blocks for the intake tests: item versions as the catalog announces them, drafts
as the API writes them and submitted by the applicant, keys, files in the applicant's library,
events delivered to intake's handlers, the events intake wrote."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from catalog_service.events import BundlePublished, ItemPublished
from contracts.sharing.api_v1 import SharedResolution
from intake_service import applying, consumers
from intake_service.applications import lifecycle
from intake_service.applications.creation import Applicant, Channel, Keys, MaterialChoice
from intake_service.catalog_copies import catalog_calls
from intake_service.models import (
    Application,
    ItemVersionCopy,
    StoredFile,
    kit_tables,
)
from intake_service.schemas import ApplicantIn, ApplicationIn
from intake_service.sharing import Sharing
from tests.catalog.support import item_content
from tests.sharing.support import person_id
from wangban.auth import AssuranceLevel, Identity, InternalTokens
from wangban.calendar import WorkingDayCalendar
from wangban.crypto import BlindIndex, FieldCipher
from wangban.db import Database
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


@dataclass(frozen=True)
class JoinedSessions:
    """Sessions that join a test's own transaction (rolled back after the test), for reading
    and writing alike: what the test wrote is what they read."""

    sessionmaker: async_sessionmaker[AsyncSession]
    read_sessionmaker: async_sessionmaker[AsyncSession]

    @classmethod
    def of(cls, session: AsyncSession) -> JoinedSessions:
        joined = async_sessionmaker(
            bind=session.bind, expire_on_commit=False, join_transaction_mode="create_savepoint"
        )
        return cls(sessionmaker=joined, read_sessionmaker=joined)


async def draft(
    session: AsyncSession,
    *,
    item: ItemVersionCopy,
    applicant: Applicant,
    form: dict[str, Any],
    channel: Channel,
    settings: Settings,
    now: datetime,
) -> Application:
    """A draft, applied for as ``POST /applications`` with ``draft: true`` applies
    (:func:`intake_service.applying.apply`), by the applicant, or by the clerk at a window. The
    forms of these tests have no prefilled fields: neither sharing nor the catalog is asked."""
    catalog, sharing = catalog_calls(settings), Sharing(settings)
    try:
        applied = await applying.apply(
            session,
            services=applying.Services(
                database=JoinedSessions.of(session),
                catalog=catalog,
                sharing=sharing,
                keys=keys(settings),
                calendar=CALENDAR,
            ),
            body=ApplicationIn(
                item_version_id=item.version_id,
                applicant=ApplicantIn(
                    kind=applicant.kind, id_number=applicant.id_number, name=applicant.name
                ),
                form=form,
                draft=True,
            ),
            applicant=applicant,
            channel=channel,
            key=None,
            actor_kind="staff" if channel.clerk else "applicant",
            actor=channel.clerk or applicant.subject,
            now=now,
        )
    finally:
        await catalog.aclose()
        await sharing.aclose()
    return applied.application


NOW = datetime(2026, 9, 29, 10, 0, tzinfo=UTC)  # a Tuesday before 国庆 2026
CALENDAR = WorkingDayCalendar()
ELDER = person_id(date(1942, 3, 15), 501)
FORM = {"bank_account": "6222000011112222"}
SHARED_OK = [
    SharedResolution(index=0, status="satisfied", evidence_kind="lookup", evidence_id="L-1")
]


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


async def published_draft(
    session: AsyncSession, settings: Settings, *, form: dict[str, Any] | None = None, **item: Any
) -> Application:
    version = await publish_item(session, **item)
    return await draft(
        session,
        item=version,
        applicant=applicant(ELDER),
        form=FORM if form is None else form,
        channel=Channel(name="mini_program"),
        settings=settings,
        now=NOW,
    )


async def submit_as_applicant(
    session: AsyncSession,
    settings: Settings,
    application: Application,
    *,
    choices: list[MaterialChoice],
    shared: list[SharedResolution] | None = None,
) -> Application:
    return await lifecycle.submit(
        session,
        application=application,
        shared=SHARED_OK if shared is None else shared,
        choices=choices,
        actor_kind="applicant",
        actor=application.applicant_subject,
        keys=keys(settings),
        calendar=CALENDAR,
        now=NOW,
    )


async def outbox_types(session: AsyncSession, application_id: str) -> list[str]:
    rows = await session.execute(
        select(kit_tables.outbox.c.event_type)
        .where(kit_tables.outbox.c.key == application_id)
        .order_by(kit_tables.outbox.c.seq)
    )
    return [r[0].split(".")[-2] for r in rows]


async def outbox_data(session: AsyncSession, application_id: str, kind: str) -> dict[str, Any]:
    """The data of the one event of ``kind`` (``submitted``, ``completed`` …) intake wrote
    about the application."""
    rows = await session.execute(
        select(kit_tables.outbox.c.event_type, kit_tables.outbox.c.envelope).where(
            kit_tables.outbox.c.key == application_id
        )
    )
    [data] = [dict(e["data"]) for t, e in rows if t.split(".")[-2] == kind]
    return data


async def deliver(session: AsyncSession, handler: Any, event: Any) -> None:
    await handler(session, event=event, envelope=envelope_for(event, source="/approval"))


@dataclass
class Intake:
    client: httpx.AsyncClient
    app: FastAPI
    settings: Settings
    database: Database

    def citizen(self, subject: str, id_number: str) -> dict[str, str]:
        ref = BlindIndex.from_settings(self.settings).resident_id(id_number)
        return self._token(
            Identity(
                subject=subject,
                kind="citizen",
                assurance=AssuranceLevel.REAL_PERSON,
                person_ref=ref,
            )
        )

    def staff(
        self, subject: str, *roles: str, department: str | None = None, region: str | None = None
    ) -> dict[str, str]:
        return self._token(
            Identity(
                subject=subject,
                kind="staff",
                roles=frozenset(roles),
                department=department,
                region=region,
                assurance=AssuranceLevel.REAL_NAME,
            )
        )

    def _token(self, identity: Identity) -> dict[str, str]:
        token = InternalTokens.from_settings(self.settings).issue(identity, issuer="gateway")
        return {"Authorization": f"Bearer {token}"}

    async def item(self, **overrides: object) -> str:
        async with self.database.sessionmaker() as session, session.begin():
            version = await publish_item(session, **overrides)
        return version.version_id


def applicant(id_number: str, subject: str | None = None) -> Applicant:
    return Applicant(
        subject=subject or f"u-{uuid.uuid4().hex[:10]}",
        kind="person",
        id_number=id_number,
        name="陈桂英",
    )
