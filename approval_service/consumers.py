"""What the approval service does with other services' events.

* ``item.published`` (catalog): keep the version (rule set, time limits, result);
* ``application.submitted`` (intake): open the case — for a version not heard of yet (the
  catalogue's topic is not ordered with intake's, and a service just started may not have read
  it), the version is asked of the catalog first, never decided without its rules;
* ``application.accepted``: start the clock; for a 秒批 item decide at once;
* ``application.supplemented``: a correction was answered, the clock runs again;
* ``application.withdrawn``: the case ends.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from approval_service import cases, catalog_copies, repository
from approval_service.calendar import calendar_for
from approval_service.models import Case, EarlyAcceptance, ItemVersionCopy
from approval_service.sharing import Sharing
from contracts.catalog.api_v1 import PublishedVersion
from contracts.catalog.v1 import ItemPublished
from contracts.intake.v1 import (
    FORM_CONTEXT,
    HOLDER_CONTEXT,
    ApplicationAccepted,
    ApplicationSubmitted,
    ApplicationSupplemented,
    ApplicationWithdrawn,
)
from wangban import identifiers
from wangban.calendar import china_date
from wangban.consumer import Consumer
from wangban.crypto import FieldCipher
from wangban.db import Database
from wangban.errors import ServiceUnavailable
from wangban.events import Envelope
from wangban.http import ServiceCalls
from wangban.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CatalogAnswer:
    """What the catalog said about a version approval had no copy of (``None``: it never
    published one)."""

    version: PublishedVersion | None


@dataclass(frozen=True)
class Prepared:
    """What a handler needs from other services, asked before its transaction (the consumer's
    prepare step), so no transaction or case row lock waits for them."""

    catalog: CatalogAnswer | None = None
    """The item version asked of the catalog, when our copy lacks it."""
    facts: cases.SharedFacts | None = None
    """The 秒批 lookups, when the acceptance is to be decided automatically."""


class AskFirst(ServiceUnavailable):
    """The handler needs another service's answer that its prepare step did not get (what it
    read changed in between: a replay out of order). Retried like an unavailable dependency,
    using up no attempt; the next attempt's prepare step asks. Never asked inside the
    handler's transaction."""

    type_slug = "ask-first"
    title = "需先查询其他服务后再处理"


def _version_values(
    *, version_id: str, item_id: str, implementing_code: str, content: dict[str, object]
) -> dict[str, object]:
    return {
        "version_id": version_id,
        "item_id": item_id,
        "implementing_code": implementing_code,
        "name": str(content.get("name", "")),
        "department": str(content.get("department", "")),
        "content": content,
    }


def build_consumer(
    settings: Settings,
    *,
    sharing: Sharing | None = None,
    catalog: ServiceCalls | None = None,
) -> Consumer:
    consumer = Consumer(name="approval")
    cipher = FieldCipher.from_settings(settings)
    lookups = sharing or Sharing(settings)
    versions = catalog or catalog_copies.catalog_calls(settings)

    @consumer.on(ItemPublished)
    async def keep_item_version(
        session: AsyncSession, *, event: ItemPublished, envelope: Envelope
    ) -> None:
        await repository.save_item_version(
            session,
            _version_values(
                version_id=event.version_id,
                item_id=event.item_id,
                implementing_code=event.implementing_code,
                content=event.content,
            ),
        )

    async def known_item(
        session: AsyncSession, version_id: str, *, asked: CatalogAnswer | None = None
    ) -> ItemVersionCopy | None:
        """The version's copy; when its event has not come yet, asked of the catalog and kept,
        so the case is decided under the version's rules and time limits exactly as if the
        event had come first. Raises :class:`CatalogUnavailable` (the runner holds the event)
        while the catalog cannot answer. ``None`` only for a version the catalog never
        published, which intake cannot have accepted (it learns versions from the catalog):
        that case goes to a person, and the error log says why."""
        item = await repository.item_version(session, version_id)
        if item is not None:
            return item
        if asked is None:
            raise AskFirst(f"事项版本 {version_id} 尚未同步，需先向事项目录查询")
        found = asked.version
        if found is None or found.version_id != version_id:
            log.error(
                "application for an item version the catalog never published; a person decides",
                extra={"fields": {"item_version_id": version_id}},
            )
            return None
        await repository.save_item_version(
            session,
            _version_values(
                version_id=found.version_id,
                item_id=found.item_id,
                implementing_code=found.implementing_code,
                content=found.content,
            ),
        )
        return await repository.item_version(session, version_id)

    async def version_if_unknown(
        database: Database, version_id: str
    ) -> tuple[ItemVersionCopy | None, CatalogAnswer | None]:
        """Our copy of the version, else the catalog's answer (and an unsaved copy from it)."""
        async with database.read_sessionmaker() as reads:
            item = await repository.item_version(reads, version_id)
        if item is not None:
            return item, None
        asked = CatalogAnswer(await catalog_copies.published_version(versions, version_id))
        found = asked.version
        if found is None or found.version_id != version_id:
            return None, asked
        copy = ItemVersionCopy(
            **_version_values(
                version_id=found.version_id,
                item_id=found.item_id,
                implementing_code=found.implementing_code,
                content=found.content,
            )
        )
        return copy, asked

    async def prepare_submission(
        database: Database, *, event: ApplicationSubmitted, envelope: Envelope
    ) -> Prepared | None:
        # Before the handler's transaction: the catalog and sharing are other services.
        item, asked = await version_if_unknown(database, event.item_version_id)
        async with database.read_sessionmaker() as reads:
            early = await reads.get(EarlyAcceptance, event.application_id)
        facts = None
        if early is not None:
            # The acceptance came first (a replay out of order) and is applied when the case
            # opens: its lookups are made now, from what the submission says of the applicant.
            acceptance = ApplicationAccepted.model_validate(early.event)
            if item is not None and decides_automatically(item, acceptance):
                unsaved = Case(
                    application_id=event.application_id,
                    item_code=event.item_code,
                    applicant_kind=event.applicant_kind,
                    applicant_id_enc=event.applicant_id_enc,
                )
                facts = await cases.look_up_shared_data(
                    case=unsaved, item=item, lookups=lookups, cipher=cipher
                )
        if asked is None and facts is None:
            return None
        return Prepared(catalog=asked, facts=facts)

    @consumer.on(ApplicationSubmitted, prepare=prepare_submission)
    async def submitted(
        session: AsyncSession,
        *,
        event: ApplicationSubmitted,
        envelope: Envelope,
        prepared: Prepared | None = None,
    ) -> None:
        submitted_at = datetime.fromisoformat(event.submitted_at)
        # Age and region are derived here from the encrypted ID number, not published in clear.
        age, region = identifiers.applicant_age_and_region(
            kind=event.applicant_kind,
            id_number=cipher.decrypt(event.applicant_id_enc, context=HOLDER_CONTEXT),
            today=china_date(submitted_at),
        )
        item = await known_item(
            session, event.item_version_id, asked=prepared.catalog if prepared else None
        )
        await cases.open_case(
            session,
            application_id=event.application_id,
            parent_id=event.parent_id,
            item_version_id=event.item_version_id,
            item_code=event.item_code,
            department=event.department,
            applicant_kind=event.applicant_kind,
            applicant_id_enc=event.applicant_id_enc,
            applicant_name_enc=event.applicant_name_enc,
            applicant_age=age,
            applicant_region=region,
            form=json.loads(cipher.decrypt(event.form_enc, context=FORM_CONTEXT)),
            form_schema=item.content.get("form_schema") or {} if item is not None else None,
            cipher=cipher,
            submitted_at=submitted_at,
        )
        early = await repository.take_early_acceptance(session, event.application_id)
        if early is not None:
            # The acceptance came first (a redelivery or replay out of order): apply it now,
            # as if it had arrived second, on the lookups made before this transaction.
            case = await repository.case(session, event.application_id, lock=True)
            if case is not None and case.status == "submitted":
                await start(
                    session,
                    case=case,
                    event=ApplicationAccepted.model_validate(early),
                    prepared=prepared,
                )

    def decides_automatically(item: ItemVersionCopy | None, event: ApplicationAccepted) -> bool:
        # 秒批 decides on complete applications only: with materials accepted as missing (容缺)
        # a person decides once they arrive.
        return bool(
            item is not None and item.content.get("auto_approval") and not event.tolerated_materials
        )

    async def look_up_for_decision(
        database: Database, *, event: ApplicationAccepted, envelope: Envelope
    ) -> Prepared | None:
        # Before the handler's transaction: the lookups are calls to sharing.
        async with database.read_sessionmaker() as reads:
            case = await repository.case(reads, event.application_id)
        if case is None or case.status != "submitted":
            return None  # kept for its submission, or already applied (a redelivery)
        item, asked = await version_if_unknown(database, event.item_version_id)
        facts = None
        if decides_automatically(item, event):
            assert item is not None
            facts = await cases.look_up_shared_data(
                case=case, item=item, lookups=lookups, cipher=cipher
            )
        if asked is None and facts is None:
            return None
        return Prepared(catalog=asked, facts=facts)

    @consumer.on(ApplicationAccepted, prepare=look_up_for_decision)
    async def accepted(
        session: AsyncSession,
        *,
        event: ApplicationAccepted,
        envelope: Envelope,
        prepared: Prepared | None,
    ) -> None:
        case = await repository.case(session, event.application_id, lock=True)
        if case is None:
            # Submission and acceptance share a key, so in order the case exists; out of order
            # (a replay, a redelivery) the acceptance waits for the submission that opens it.
            await repository.keep_early_acceptance(
                session,
                application_id=event.application_id,
                event=event.model_dump(mode="json"),
                at=datetime.now(UTC),
            )
            return
        if case.status != "submitted":
            return  # done: a redelivery
        await start(session, case=case, event=event, prepared=prepared)

    async def start(
        session: AsyncSession,
        *,
        case: Case,
        event: ApplicationAccepted,
        prepared: Prepared | None,
    ) -> None:
        """The clock starts; a 秒批 item is decided at once."""
        item = await known_item(
            session, event.item_version_id, asked=prepared.catalog if prepared else None
        )
        calendar = await calendar_for(session, settings)
        await cases.accept(
            session,
            case=case,
            item=item,
            accepted_at=datetime.fromisoformat(event.accepted_at),
            calendar=calendar,
        )
        if item is not None and decides_automatically(item, event):
            # Looked up before this transaction. Missing only when what the prepare step read
            # has changed since (submission and acceptance share a key, so they arrive in
            # order): tried again, never asked while this transaction holds the case.
            if prepared is None or prepared.facts is None:
                raise AskFirst("秒批所需的共享数据尚未查询，稍后重试")
            await cases.decide_automatically(
                session,
                case=case,
                item=item,
                facts=prepared.facts,
                cipher=cipher,
                calendar=calendar,
            )

    @consumer.on(ApplicationSupplemented)
    async def supplemented(
        session: AsyncSession, *, event: ApplicationSupplemented, envelope: Envelope
    ) -> None:
        case = await repository.case(session, event.application_id, lock=True)
        if case is not None:
            await cases.resubmitted(
                session,
                case=case,
                calendar=await calendar_for(session, settings),
                now=datetime.fromisoformat(event.at),
            )

    @consumer.on(ApplicationWithdrawn)
    async def withdrawn(
        session: AsyncSession, *, event: ApplicationWithdrawn, envelope: Envelope
    ) -> None:
        case = await repository.case(session, event.application_id, lock=True)
        if case is not None and case.status in ("submitted", *cases.OPEN):
            case.status = "withdrawn"
            await session.flush()

    return consumer
