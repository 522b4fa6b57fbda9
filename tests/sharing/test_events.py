"""The sharing service consuming other services' events over the real broker: it keeps copies
of published item versions, and an approval issues one certificate however often it arrives."""

from __future__ import annotations

import uuid
from contextlib import AsyncExitStack
from datetime import UTC, date, datetime

from sqlalchemy import func, select

from approval_service.events import CaseApproved
from approval_service.events import outbox as approval_outbox
from catalog_service import service as catalog
from sharing_service.consumers import HOLDER_CONTEXT
from sharing_service.models import Certificate, ItemVersionCopy, kit_tables
from sharing_service.registry import seed_registry
from tests.catalog.support import item_content
from tests.kit.support import eventually
from tests.sharing.support import keys, person_id
from wangban.app import create_service_app
from wangban.consumer import wait_until_assigned
from wangban.db import Database
from wangban.services import load_spec
from wangban.settings import Settings


async def test_item_versions_and_approvals_arrive_through_kafka(
    settings: Settings, database: Database
) -> None:
    async with database.sessionmaker() as session, session.begin():
        await seed_registry(session)
    async with AsyncExitStack() as stack:
        apps = {
            name: create_service_app(load_spec(name), settings, background=True)
            for name in ("catalog", "approval", "sharing")
        }
        for app in apps.values():
            await stack.enter_async_context(app.router.lifespan_context(app))
        await wait_until_assigned(apps["sharing"].state.runtime.runners, timeout_s=60)

        async with database.sessionmaker() as session, session.begin():
            draft = await catalog.create_item_draft(
                session, content=item_content(department=f"事件测试局-{uuid.uuid4().hex[:6]}")
            )
            published = await catalog.publish_version(session, version_id=draft.id)

        cipher, _ = keys(settings)
        holder_id = person_id(date(1941, 5, 4), 401)
        application_id = str(uuid.uuid4())
        sent = []
        for _ in range(2):  # the same decision sent twice, as two events
            async with database.sessionmaker() as session, session.begin():
                envelope = await approval_outbox.publish(
                    session,
                    CaseApproved(
                        application_id=application_id,
                        item_id=published.item_id,
                        item_version_id=published.id,
                        item_code=item_content().implementing_code,
                        decided_at=datetime.now(UTC).isoformat(),
                        decided_by="auto",
                        result_kind="certificate",
                        certificate_type="elderly_allowance_notice",
                        certificate_fields={"monthly_amount": 200, "start_month": "2026-12"},
                        holder_name_enc=cipher.encrypt("周秀兰", context=HOLDER_CONTEXT),
                        holder_id_enc=cipher.encrypt(holder_id, context=HOLDER_CONTEXT),
                    ),
                )
            sent.append(envelope.id)

        async def copied() -> bool:
            async with database.sessionmaker() as session:
                return await session.get(ItemVersionCopy, published.id) is not None

        async def handled_twice() -> bool:
            inbox = kit_tables.inbox
            async with database.sessionmaker() as session:
                count = await session.scalar(
                    select(func.count())
                    .select_from(inbox)
                    .where(inbox.c.consumer == "sharing", inbox.c.event_id.in_(sent))
                )
            return count == 2

        await eventually(copied, timeout_s=60)
        await eventually(handled_twice, timeout_s=60)
        async with database.sessionmaker() as session:
            issued = (
                await session.scalars(
                    select(Certificate).where(Certificate.application_id == application_id)
                )
            ).all()
            copy = await session.get(ItemVersionCopy, published.id)
        assert len(issued) == 1 and issued[0].type_code == "elderly_allowance_notice"
        assert copy is not None and copy.materials[0]["source"] == "shared:gongan.huji"
