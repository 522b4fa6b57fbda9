"""An application for an item version approval has not stored yet (its ``item.published``
not read: the catalogue's topic is not ordered with intake's, and a service just started may
not have read it) is decided exactly as if it had been: approval asks the catalog for the
version over HTTP. It never silently takes the manual path with no deadline; while the catalog
cannot answer the event is held (an "unavailable" error), never sent to a person."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from approval_service.catalog_copies import CatalogUnavailable
from approval_service.consumers import AskFirst, build_consumer
from approval_service.models import Case, Decision, ItemVersionCopy
from catalog_service import service as catalog
from intake_service.events import ApplicationAccepted, ApplicationSubmitted
from tests.approval.support import submitted_event
from tests.catalog.support import item_content
from tests.infrastructure import Infrastructure, make_settings
from tests.serving import serve_asgi
from tests.sharing.support import person_id
from wangban.app import create_service_app
from wangban.db import Database
from wangban.embedded import free_port
from wangban.errors import is_unavailability
from wangban.events import envelope_for
from wangban.services import load_spec

ELDER = person_id(date(1938, 3, 4), 631)


async def _publish(database: Database) -> str:
    """A 秒批 item published in the catalog (committed), of which approval has no copy: no
    catalog relay runs here, so approval never reads its event."""
    async with database.sessionmaker() as session, session.begin():
        draft = await catalog.create_item_draft(session, content=item_content())
        return (await catalog.publish_version(session, version_id=draft.id)).id


async def test_an_application_for_a_version_not_yet_heard_of_is_still_decided_by_machine(
    infrastructure: Infrastructure, database: Database, tmp_path: Path
) -> None:
    version_id = await _publish(database)
    base = make_settings(infrastructure, data_dir=tmp_path)
    catalog_app = create_service_app(load_spec("catalog"), base, background=False)
    async with (
        catalog_app.router.lifespan_context(catalog_app),
        serve_asgi(catalog_app) as catalog_url,
    ):
        settings = make_settings(infrastructure, data_dir=tmp_path, catalog_url=catalog_url)
        consumer = build_consumer(settings)
        submitted = submitted_event(
            settings, version_id=version_id, id_number=ELDER, form={"bank_account": "6222"}
        )
        accepted = ApplicationAccepted(
            application_id=submitted.application_id,
            item_version_id=version_id,
            item_code=submitted.item_code,
            accepted_at=datetime.now(UTC).isoformat(),
            accepted_by="intake",
        )
        # As the consumer runner does: prepare (no transaction), then the handler.
        for event in (submitted, accepted):
            envelope = envelope_for(event, source="/t")
            prepare = consumer.preparers.get(event.event_type)
            extra = (
                {}
                if prepare is None
                else {"prepared": await prepare(database, event=event, envelope=envelope)}
            )
            async with database.sessionmaker() as session, session.begin():
                await consumer.handlers[event.event_type][1](
                    session, event=event, envelope=envelope, **extra
                )

    async with database.sessionmaker() as session:
        copy = await session.get(ItemVersionCopy, version_id)
        case = (
            await session.scalars(
                select(Case).where(Case.application_id == submitted.application_id)
            )
        ).one()
        decisions = list(
            await session.scalars(
                select(Decision).where(Decision.application_id == submitted.application_id)
            )
        )
    assert copy is not None and copy.content["auto_approval"] is True
    assert [(d.kind, d.outcome) for d in decisions] == [("auto", "approve")]
    assert case.status != "open" and case.committed_days == 0


async def test_while_the_catalog_cannot_answer_the_event_is_held_not_sent_to_a_person(
    infrastructure: Infrastructure, database: Database, tmp_path: Path
) -> None:
    version_id = await _publish(database)
    settings = make_settings(
        infrastructure,
        data_dir=tmp_path,
        catalog_url=f"http://127.0.0.1:{free_port()}",  # nothing listens: the catalog is down
        http_retries=0,
    )
    consumer = build_consumer(settings)
    submitted = submitted_event(
        settings, version_id=version_id, id_number=ELDER, form={"bank_account": "6222"}
    )
    envelope = envelope_for(submitted, source="/t")
    with pytest.raises(CatalogUnavailable) as raised:
        await consumer.preparers[ApplicationSubmitted.event_type](
            database, event=submitted, envelope=envelope
        )
    assert is_unavailability(raised.value)  # the runner holds it without using up attempts
    # The handler alone (what its prepare step read has changed) never asks the catalog inside
    # its transaction: it refuses, as an unavailability, so the event is tried again.
    with pytest.raises(AskFirst) as refused:
        async with database.sessionmaker() as session, session.begin():
            await consumer.handlers[ApplicationSubmitted.event_type][1](
                session, event=submitted, envelope=envelope
            )
    assert is_unavailability(refused.value)
    async with database.sessionmaker() as session:
        opened = await session.scalar(
            select(Case).where(Case.application_id == submitted.application_id)
        )
    assert opened is None


async def test_a_version_the_catalog_never_published_is_neither_held_nor_guessed(
    infrastructure: Infrastructure, database: Database, tmp_path: Path
) -> None:
    """Intake learns versions from the catalog, so this does not happen in production; if it
    does, the event is not held for ever: a person decides, and the error log says why."""
    base = make_settings(infrastructure, data_dir=tmp_path)
    catalog_app = create_service_app(load_spec("catalog"), base, background=False)
    async with (
        catalog_app.router.lifespan_context(catalog_app),
        serve_asgi(catalog_app) as catalog_url,
    ):
        settings = make_settings(infrastructure, data_dir=tmp_path, catalog_url=catalog_url)
        consumer = build_consumer(settings)
        submitted = submitted_event(
            settings, version_id=str(uuid.uuid4()), id_number=ELDER, form={"bank_account": "1"}
        )
        envelope = envelope_for(submitted, source="/t")
        prepared = await consumer.preparers[ApplicationSubmitted.event_type](
            database, event=submitted, envelope=envelope
        )
        async with database.sessionmaker() as session, session.begin():
            await consumer.handlers[ApplicationSubmitted.event_type][1](
                session, event=submitted, envelope=envelope, prepared=prepared
            )
    async with database.sessionmaker() as session:
        case = await session.scalar(
            select(Case).where(Case.application_id == submitted.application_id)
        )
    assert case is not None and case.status == "submitted"
