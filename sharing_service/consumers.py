"""What the sharing service does with other services' events.

* ``item.published`` (catalog): keep a copy of the version's materials, so material resolution
  never calls the catalog;
* ``case.approved`` (approval): issue the e-certificate the item results in — at most
  once per application, however often the event is delivered.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from contracts.approval.v1 import FORM_CONTEXT, HOLDER_CONTEXT, CaseApproved
from contracts.catalog.v1 import ItemPublished
from sharing_service import certificates, configuration, repository
from sharing_service.events import CertificateFailed, outbox
from sharing_service.models import ItemVersionCopy
from wangban.consumer import Consumer, PoisonEvent
from wangban.crypto import BlindIndex, FieldCipher
from wangban.events import Envelope
from wangban.settings import Settings


def build_consumer(settings: Settings) -> Consumer:
    consumer = Consumer(name="sharing")
    cipher, blind_index = FieldCipher.from_settings(settings), BlindIndex.from_settings(settings)

    @consumer.on(ItemPublished)
    async def keep_item_version(
        session: AsyncSession, *, event: ItemPublished, envelope: Envelope
    ) -> None:
        await repository.save_item_version(
            session,
            ItemVersionCopy(
                version_id=event.version_id,
                item_id=event.item_id,
                implementing_code=event.implementing_code,
                name=str(event.content.get("name", "")),
                materials=list(event.content.get("materials", [])),
                published_at=datetime.fromisoformat(event.published_at),
            ),
        )

    @consumer.on(CaseApproved)
    async def issue_certificate(
        session: AsyncSession, *, event: CaseApproved, envelope: Envelope
    ) -> None:
        if event.result_kind != "certificate" or not event.certificate_type:
            return
        if not event.holder_id_enc or not event.holder_name_enc:
            raise PoisonEvent("case.approved with a certificate result lacks the holder")
        holder = certificates.Holder(
            kind="company" if event.holder_kind == "company" else "person",
            id=cipher.decrypt(event.holder_id_enc, context=HOLDER_CONTEXT),
            name=cipher.decrypt(event.holder_name_enc, context=HOLDER_CONTEXT),
        )
        try:
            await certificates.issue_certificate(
                session,
                application_id=event.application_id,
                type_code=event.certificate_type,
                holder=holder,
                fields={**_facts(event), **event.certificate_fields},
                cipher=cipher,
                blind_index=blind_index,
                establishes=event.establishes,
                at=datetime.fromisoformat(event.decided_at),
            )
        except (certificates.InvalidCertificateData, certificates.UnknownCertificateType) as exc:
            # The data will not change by retrying: a dead letter alone would leave the
            # application "approved" with nobody told. Say so, so intake shows staff a problem.
            type_ = await configuration.certificate_type(session, event.certificate_type)
            await outbox.publish(
                session,
                CertificateFailed(
                    application_id=event.application_id,
                    type_code=event.certificate_type,
                    type_name=type_.name if type_ is not None else event.certificate_type,
                    reason=exc.detail or exc.title,
                    failed_at=datetime.now(UTC).isoformat(),
                ),
            )

    def _facts(event: CaseApproved) -> dict[str, Any]:
        if not event.certificate_facts_enc:
            return {}
        facts: dict[str, Any] = json.loads(
            cipher.decrypt(event.certificate_facts_enc, context=FORM_CONTEXT)
        )
        return facts

    return consumer
