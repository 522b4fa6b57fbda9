"""Every query of the sharing service."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, func, literal, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession

from sharing_service.models import (
    AccessGrant,
    AuditHead,
    Certificate,
    CertificateSerial,
    CertificateType,
    Consent,
    CreditCodeSerial,
    Dataset,
    ItemVersionCopy,
    LookupAudit,
    Provider,
    SigningKey,
    kit_tables,
)

# --- registry -----------------------------------------------------------------------------------


async def provider(session: AsyncSession, code: str) -> Provider | None:
    return await session.get(Provider, code)


async def providers(session: AsyncSession) -> Sequence[Provider]:
    return (await session.scalars(select(Provider).order_by(Provider.code))).all()


async def dataset(session: AsyncSession, code: str) -> Dataset | None:
    return await session.get(Dataset, code)


async def datasets(session: AsyncSession) -> Sequence[Dataset]:
    return (await session.scalars(select(Dataset).order_by(Dataset.code))).all()


async def grant(
    session: AsyncSession, *, consumer: str, dataset_code: str, item_code: str
) -> AccessGrant | None:
    return (
        await session.scalars(
            select(AccessGrant).where(
                AccessGrant.consumer == consumer,
                AccessGrant.dataset_code == dataset_code,
                AccessGrant.item_code == item_code,
            )
        )
    ).one_or_none()


async def grants(
    session: AsyncSession, *, consumer: str | None = None, item_code: str | None = None
) -> Sequence[AccessGrant]:
    query = select(AccessGrant).order_by(
        AccessGrant.consumer, AccessGrant.item_code, AccessGrant.dataset_code
    )
    if consumer is not None:
        query = query.where(AccessGrant.consumer == consumer)
    if item_code is not None:
        query = query.where(AccessGrant.item_code == item_code)
    return (await session.scalars(query)).all()


# --- consent ------------------------------------------------------------------------------------


async def valid_consent(
    session: AsyncSession,
    *,
    subject_ref: str,
    item_code: str,
    application_id: str | None,
    at: datetime,
) -> Consent | None:
    """A consent of the subject for the item that is in force at ``at``: given for this
    application or for the item in general."""
    scope: ColumnElement[bool] = Consent.application_id.is_(None)
    if application_id is not None:
        scope = or_(scope, Consent.application_id == application_id)
    return (
        await session.scalars(
            select(Consent)
            .where(
                Consent.subject_ref == subject_ref,
                Consent.item_code == item_code,
                Consent.revoked_at.is_(None),
                Consent.granted_at <= at,
                Consent.expires_at > at,
                scope,
            )
            .limit(1)
        )
    ).first()


async def consent(session: AsyncSession, consent_id: str) -> Consent | None:
    return await session.get(Consent, consent_id)


async def consents_of(session: AsyncSession, subject_ref: str) -> Sequence[Consent]:
    return (
        await session.scalars(
            select(Consent)
            .where(Consent.subject_ref == subject_ref)
            .order_by(Consent.granted_at.desc())
        )
    ).all()


# --- audit --------------------------------------------------------------------------------------


async def audit_head(session: AsyncSession) -> AuditHead:
    head = (
        await session.scalars(
            select(AuditHead).where(AuditHead.id == 1).execution_options(populate_existing=True)
        )
    ).one()
    return head


async def audit_records_of_subject(
    session: AsyncSession, *, subject_ref: str, limit: int, before_seq: int | None
) -> Sequence[LookupAudit]:
    query = select(LookupAudit).where(LookupAudit.subject_ref == subject_ref)
    if before_seq is not None:
        query = query.where(LookupAudit.seq < before_seq)
    return (await session.scalars(query.order_by(LookupAudit.seq.desc()).limit(limit))).all()


async def audit_records(
    session: AsyncSession,
    *,
    application_id: str | None,
    limit: int,
    before_seq: int | None,
    subject_ref: str | None = None,
    department: str | None = None,
    dataset_code: str | None = None,
    item_code: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> Sequence[LookupAudit]:
    """Records matching every filter given, newest first, those before ``before_seq``."""
    conditions: list[ColumnElement[bool]] = []
    for column, value in (
        (LookupAudit.application_id, application_id),
        (LookupAudit.subject_ref, subject_ref),
        (LookupAudit.actor_department, department),
        (LookupAudit.dataset_code, dataset_code),
        (LookupAudit.item_code, item_code),
    ):
        if value is not None:
            conditions.append(column == value)
    if since is not None:
        conditions.append(LookupAudit.at >= since)
    if until is not None:
        conditions.append(LookupAudit.at < until)
    if before_seq is not None:
        conditions.append(LookupAudit.seq < before_seq)
    query = select(LookupAudit).where(*conditions)
    return (await session.scalars(query.order_by(LookupAudit.seq.desc()).limit(limit))).all()


async def audit_macs(session: AsyncSession, seqs: Sequence[int]) -> dict[int, str]:
    """The MAC of each of these records that exists."""
    if not seqs:
        return {}
    rows = await session.execute(
        select(LookupAudit.seq, LookupAudit.hash).where(LookupAudit.seq.in_(set(seqs)))
    )
    return {int(seq): str(mac) for seq, mac in rows}


async def published_events(
    session: AsyncSession, *, event_type: str, limit: int
) -> list[tuple[dict[str, Any], datetime, datetime | None]]:
    """The latest events of one type this service wrote to its outbox (envelope, when
    written, when the broker acknowledged it), newest first."""
    table = kit_tables.outbox
    query = (
        select(table.c.envelope, table.c.created_at, table.c.published_at)
        .where(table.c.event_type == event_type)
        .order_by(table.c.seq.desc())
        .limit(limit)
    )
    return [(r.envelope, r.created_at, r.published_at) for r in await session.execute(query)]


# --- items --------------------------------------------------------------------------------------


async def item_version(session: AsyncSession, version_id: str) -> ItemVersionCopy | None:
    return await session.get(ItemVersionCopy, version_id)


async def item_names(session: AsyncSession, codes: Sequence[str]) -> dict[str, str]:
    """The latest known name of each implementing code."""
    if not codes:
        return {}
    rows = await session.execute(
        select(ItemVersionCopy.implementing_code, ItemVersionCopy.name)
        .where(ItemVersionCopy.implementing_code.in_(set(codes)))
        .order_by(ItemVersionCopy.implementing_code, ItemVersionCopy.published_at)
    )
    return {code: name for code, name in rows}


async def save_item_version(session: AsyncSession, copy: ItemVersionCopy) -> None:
    """Store a published version once; a redelivered event changes nothing."""
    values = {
        column: getattr(copy, column)
        for column in (
            "version_id",
            "item_id",
            "implementing_code",
            "name",
            "materials",
            "published_at",
        )
    }
    await session.execute(
        insert(ItemVersionCopy)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["version_id"])
    )


# --- certificates -------------------------------------------------------------------------------


async def certificate_type(session: AsyncSession, code: str) -> CertificateType | None:
    return await session.get(CertificateType, code)


async def certificate_types(session: AsyncSession) -> Sequence[CertificateType]:
    return (await session.scalars(select(CertificateType).order_by(CertificateType.code))).all()


async def active_signing_key(session: AsyncSession, issuer_code: str) -> SigningKey | None:
    return (
        await session.scalars(
            select(SigningKey)
            .where(SigningKey.issuer_code == issuer_code, SigningKey.retired_at.is_(None))
            .order_by(SigningKey.created_at.desc())
            .limit(1)
        )
    ).first()


async def signing_key(session: AsyncSession, kid: str) -> SigningKey | None:
    return await session.get(SigningKey, kid)


async def retire_signing_keys(session: AsyncSession, *, issuer_code: str, at: datetime) -> None:
    await session.execute(
        update(SigningKey)
        .where(SigningKey.issuer_code == issuer_code, SigningKey.retired_at.is_(None))
        .values(retired_at=at)
    )


async def lock_issuer_keys(session: AsyncSession, issuer_code: str) -> None:
    """Serialise key creation and rotation per issuer (a transaction-scoped advisory lock), so
    two first certificates of a new issuer do not each create an active key."""
    await session.execute(
        select(func.pg_advisory_xact_lock(func.hashtext("sharing.signing_key:" + issuer_code)))
    )


async def next_serial_unless_issued(
    session: AsyncSession, *, type_code: str, issuer_code: str, application_id: str
) -> int | None:
    """The next 流水号 of this type and issuer, or None — and no number taken — when the
    application already has its certificate of this type: the check and the number in one
    statement (the row lock makes concurrent issues queue; the certificate's unique
    (application, type) stops a second one racing past the check)."""
    issued = (
        select(Certificate.id)
        .where(Certificate.application_id == application_id, Certificate.type_code == type_code)
        .exists()
    )
    statement = (
        insert(CertificateSerial)
        .from_select(
            ["type_code", "issuer_code", "next_serial"],
            select(literal(type_code), literal(issuer_code), literal(2, BigInteger)).where(~issued),
        )
        .on_conflict_do_update(
            index_elements=["type_code", "issuer_code"],
            set_={"next_serial": CertificateSerial.next_serial + 1},
        )
        .returning(CertificateSerial.next_serial)
    )
    serial = (await session.execute(statement)).scalar_one_or_none()
    return None if serial is None else int(serial) - 1


async def next_credit_serial(session: AsyncSession, *, authority: str, region_code: str) -> int:
    """The next serial from which this authority assigns a credit code (赋码); the row lock
    makes concurrent registrations queue, so no code is given twice."""
    statement = (
        insert(CreditCodeSerial)
        .values(authority=authority, region_code=region_code, next_serial=2)
        .on_conflict_do_update(
            index_elements=["authority", "region_code"],
            set_={"next_serial": CreditCodeSerial.next_serial + 1},
        )
        .returning(CreditCodeSerial.next_serial)
    )
    return int((await session.execute(statement)).scalar_one()) - 1


async def certificate(
    session: AsyncSession, certificate_id: str, *, lock: bool = False
) -> Certificate | None:
    if lock:
        return (
            await session.scalars(
                select(Certificate).where(Certificate.id == certificate_id).with_for_update()
            )
        ).one_or_none()
    return await session.get(Certificate, certificate_id)


async def certificate_for_application(
    session: AsyncSession, *, application_id: str, type_code: str
) -> Certificate | None:
    return (
        await session.scalars(
            select(Certificate).where(
                Certificate.application_id == application_id,
                Certificate.type_code == type_code,
            )
        )
    ).one_or_none()


WalletEntry = Row[str, str, str, datetime, date, date | None, str, str]
"""A certificate as a wallet lists it: id, type, issuer, issued, valid from and until, status
and why."""


def _in_wallet(holder_ref: str) -> ColumnElement[bool]:
    return or_(Certificate.holder_ref == holder_ref, Certificate.founder_ref == holder_ref)


async def wallet_entries(session: AsyncSession, *, holder_ref: str) -> Sequence[WalletEntry]:
    """What a wallet lists, newest first: the columns shown in clear, not the encrypted
    documents (which name the holder and are read one at a time)."""
    return (
        await session.execute(
            select(
                Certificate.id,
                Certificate.type_code,
                Certificate.issuer_code,
                Certificate.issued_at,
                Certificate.valid_from,
                Certificate.valid_until,
                Certificate.status,
                Certificate.status_reason,
            )
            .where(_in_wallet(holder_ref))
            .order_by(Certificate.issued_at.desc())
        )
    ).all()


async def wallet_count(session: AsyncSession, *, holder_ref: str) -> int:
    return int(
        await session.scalar(
            select(func.count()).select_from(Certificate).where(_in_wallet(holder_ref))
        )
        or 0
    )


async def certificates_of(
    session: AsyncSession,
    *,
    holder_ref: str,
    type_code: str | None = None,
    with_founded: bool = False,
) -> Sequence[Certificate]:
    """The holder's certificates; ``with_founded`` adds the licences of entities the person
    registered (设立登记), for their wallet."""
    held = Certificate.holder_ref == holder_ref
    query = select(Certificate).where(
        or_(held, Certificate.founder_ref == holder_ref) if with_founded else held
    )
    if type_code is not None:
        query = query.where(Certificate.type_code == type_code)
    return (await session.scalars(query.order_by(Certificate.issued_at.desc()))).all()
