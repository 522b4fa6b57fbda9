"""What the approval service does with other services' events.

* ``item.published`` (catalog): keep the version (rule set, time limits, result);
* ``application.submitted`` (intake): open the case — for a version not heard of yet (the
  catalogue's topic is not ordered with intake's, and a service just started may not have read
  it), the version is asked of the catalog first, never decided without its rules. When the
  submission carries its acceptance (受理 at submission, no ``application.accepted`` follows)
  the case opens accepted and a 秒批 item's is decided in the same transaction;
* ``application.accepted`` (an application accepted after its submission: 预审 at a window,
  容缺): start the clock; for a 秒批 item decide at once;
* ``application.supplemented``: a correction was answered, the clock runs again;
* ``application.withdrawn``: the case ends.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from approval_service import cases, catalog_copies, repository
from approval_service.calendar import calendar_for
from approval_service.item_versions import (
    CatalogAnswer,
    ItemVersions,
    MissingVersion,
    version_values,
)
from approval_service.models import Case, EarlyAcceptance, ItemVersionCopy
from approval_service.sharing import Sharing
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


@dataclass(frozen=True)
class Prepared:
    """What a handler needs from other services, asked before its transaction (the consumer's
    prepare step), so no transaction or case row lock waits for them."""

    catalog: CatalogAnswer | None = None
    """The item version asked of the catalog, when our copy lacks it."""
    facts: cases.SharedFacts | None = None
    """The 秒批 lookups, when the acceptance is to be decided automatically."""
    opened_before: bool = False
    """The case was found open already (a redelivered or replayed submission): nothing to do,
    and nothing was asked of sharing for it."""


class AskFirst(ServiceUnavailable):
    """The handler needs another service's answer that its prepare step did not get (what it
    read changed in between: a replay out of order). Retried like an unavailable dependency,
    using up no attempt; the next attempt's prepare step asks. Never asked inside the
    handler's transaction."""

    type_slug = "ask-first"
    title = "需先查询其他服务后再处理"


class _Acceptance(Protocol):
    """受理 as either event says it: ``application.accepted``, or the acceptance an
    ``application.submitted`` carries."""

    @property
    def accepted_at(self) -> str: ...

    @property
    def tolerated_materials(self) -> list[str]: ...


def decides_automatically(item: ItemVersionCopy | None, acceptance: _Acceptance) -> bool:
    # 秒批 decides on complete applications only: with materials accepted as missing (容缺)
    # a person decides once they arrive.
    return bool(
        item is not None
        and item.content.get("auto_approval")
        and not acceptance.tolerated_materials
    )


def build_consumer(
    settings: Settings,
    *,
    sharing: Sharing | None = None,
    catalog: ServiceCalls | None = None,
) -> Consumer:
    consumer = Consumer(name="approval")
    cipher = FieldCipher.from_settings(settings)
    lookups = sharing or Sharing(settings)
    versions = ItemVersions(catalog or catalog_copies.catalog_calls(settings))

    @consumer.on(ItemPublished)
    async def keep_item_version(
        session: AsyncSession, *, event: ItemPublished, envelope: Envelope
    ) -> None:
        await repository.save_item_version(
            session,
            version_values(
                version_id=event.version_id,
                item_id=event.item_id,
                implementing_code=event.implementing_code,
                content=event.content,
            ),
        )

    async def known_item(
        session: AsyncSession, version_id: str, *, prepared: Prepared | None
    ) -> ItemVersionCopy | None:
        """The version's copy; when its event has not come yet, the catalog's answer of the
        prepare step, kept, so the case is decided under the version's rules and time limits
        exactly as if the event had come first. ``None`` only for a version the catalog never
        published: that case goes to a person."""
        try:
            return await versions.in_transaction(
                session, version_id, asked=prepared.catalog if prepared else None
            )
        except MissingVersion:
            raise AskFirst(f"事项版本 {version_id} 尚未同步，需先向事项目录查询") from None

    async def prepare_submission(
        database: Database, *, event: ApplicationSubmitted, envelope: Envelope
    ) -> Prepared | None:
        # Before the handler's transaction: the catalog and sharing are other services.
        item, asked = await versions.before_transaction(database, event.item_version_id)
        facts = None
        if event.acceptance is not None:
            # Accepted at submission: no acceptance can have come ahead of it.
            if decides_automatically(item, event.acceptance):
                assert item is not None
                if cases.datasets_read(item):
                    # Departments are asked once per application: a redelivered or replayed
                    # submission (a rewound partition replays them all) finds its case and
                    # asks no one again. The one read that costs, only where it saves calls.
                    async with database.read_sessionmaker() as reads:
                        if await repository.case_exists(reads, event.application_id):
                            return Prepared(opened_before=True)
                facts = await cases.look_up_shared_data(
                    application_id=event.application_id,
                    item_code=event.item_code,
                    applicant_kind=event.applicant_kind,
                    applicant_id_enc=event.applicant_id_enc,
                    item=item,
                    lookups=lookups,
                    cipher=cipher,
                )
        else:
            async with database.read_sessionmaker() as reads:
                early = await reads.get(EarlyAcceptance, event.application_id)
            if early is not None:
                # The acceptance came first (a replay out of order) and is applied when the
                # case opens: its lookups are made now, from what the submission says of the
                # applicant.
                acceptance = ApplicationAccepted.model_validate(early.event)
                if decides_automatically(item, acceptance):
                    assert item is not None
                    facts = await cases.look_up_shared_data(
                        application_id=event.application_id,
                        item_code=event.item_code,
                        applicant_kind=event.applicant_kind,
                        applicant_id_enc=event.applicant_id_enc,
                        item=item,
                        lookups=lookups,
                        cipher=cipher,
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
        if prepared is not None and prepared.opened_before:
            return  # cases are never removed: it is still there
        submitted_at = datetime.fromisoformat(event.submitted_at)
        # Age and region are derived here from the encrypted ID number, not published in clear.
        age, region = identifiers.applicant_age_and_region(
            kind=event.applicant_kind,
            id_number=cipher.decrypt(event.applicant_id_enc, context=HOLDER_CONTEXT),
            today=china_date(submitted_at),
        )
        item = await known_item(session, event.item_version_id, prepared=prepared)
        case = cases.new_case(
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
        if event.acceptance is not None:
            facts = prepared.facts if prepared is not None else None
            if decides_automatically(item, event.acceptance) and facts is None:
                # Looked up before this transaction; missing only when the handler runs
                # without its prepare step: tried again, never asked while in a transaction.
                raise AskFirst("秒批所需的共享数据尚未查询，稍后重试")
            await cases.open_accepted_case(
                session,
                case=case,
                item=item,
                accepted_at=datetime.fromisoformat(event.acceptance.accepted_at),
                calendar=await calendar_for(session, settings),
                cipher=cipher,
                facts=facts,
            )
            return
        if not await cases.open_case(session, case=case):
            return  # opened by an earlier delivery
        early = await repository.take_early_acceptance(session, event.application_id)
        if early is not None:
            # The acceptance came first (a redelivery or replay out of order): apply it now,
            # as if it had arrived second, on the lookups made before this transaction.
            opened = await repository.case(session, event.application_id, lock=True)
            if opened is not None and opened.status == "submitted":
                await start(
                    session,
                    case=opened,
                    event=ApplicationAccepted.model_validate(early),
                    prepared=prepared,
                )

    async def look_up_for_decision(
        database: Database, *, event: ApplicationAccepted, envelope: Envelope
    ) -> Prepared | None:
        # Before the handler's transaction: the lookups are calls to sharing.
        async with database.read_sessionmaker() as reads:
            case = await repository.case(reads, event.application_id)
        if case is None or case.status != "submitted":
            return None  # kept for its submission, or already applied (a redelivery)
        item, asked = await versions.before_transaction(database, event.item_version_id)
        facts = None
        if decides_automatically(item, event):
            assert item is not None
            facts = await cases.look_up_shared_data(
                application_id=case.application_id,
                item_code=case.item_code,
                applicant_kind=case.applicant_kind,
                applicant_id_enc=case.applicant_id_enc,
                item=item,
                lookups=lookups,
                cipher=cipher,
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
        item = await known_item(session, event.item_version_id, prepared=prepared)
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
