"""The e-certificate library (电子证照库): issue, sign, change status, verify, wallet.

A certificate is a JSON document — identifier, type, holder, the facts it certifies, issuer,
validity — signed with Ed25519 by a key of the issuing department (:mod:`sharing_service.signing`),
identified in the national style (:mod:`sharing_service.certificate_ids`). The status is not
part of the signed document: it changes (暂扣, 撤销 …) while the signature must stay valid, so
verification reads it from the library. The document names the holder, so it is stored
encrypted; the library indexes holders by a keyed hash of their ID number.

Keys: each issuer has one active key; rotating it retires the old one, which signs nothing new
but still verifies everything it signed.
"""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncSession

from sharing_service import configuration, repository
from sharing_service.certificate_ids import CertificateId, InvalidCertificateId
from sharing_service.events import CertificateIssued, CertificateStatusChanged, outbox
from sharing_service.lookups import subject_ref
from sharing_service.models import Certificate, CertificateStatusChange, CertificateType, SigningKey
from sharing_service.providers import Subject
from sharing_service.signing import (
    InvalidQrPayload,
    SignedCertificate,
    VerifyingKey,
    parse_qr_payload,
    qr_payload,
    sign_certificate,
    verify_signature,
)
from sharing_service.signing import SigningKey as Ed25519Key
from wangban import identifiers
from wangban.crypto import BlindIndex, DecryptionError, FieldCipher
from wangban.errors import Conflict, NotFound, ValidationFailed

# --- errors -------------------------------------------------------------------------------------


class CertificateNotFound(NotFound):
    type_slug = "certificate-not-found"
    title = "找不到该电子证照"


class UnknownCertificateType(ValidationFailed):
    type_slug = "unknown-certificate-type"
    title = "未登记的证照类型"


class InvalidCertificateData(ValidationFailed):
    type_slug = "invalid-certificate-data"
    title = "证照内容不完整或有误"


class StatusChangeNotAllowed(Conflict):
    type_slug = "certificate-status-change-not-allowed"
    title = "证照当前状态不允许此变更"


# --- status -------------------------------------------------------------------------------------


class CertificateStatus(StrEnum):
    VALID = "有效"
    SUSPENDED = "暂扣"
    REVOKED = "撤销"
    """Withdrawn because it should not have been issued."""
    CANCELLED = "注销"
    """Ended at the holder's request or because the holder ceased to exist."""
    LAPSED = "失效"
    """No longer in force (e.g. replaced by a new one)."""
    WITHDRAWN_AS_PENALTY = "吊销"


ALLOWED_CHANGES: Mapping[CertificateStatus, frozenset[CertificateStatus]] = {
    CertificateStatus.VALID: frozenset(CertificateStatus) - {CertificateStatus.VALID},
    CertificateStatus.SUSPENDED: frozenset(
        {
            CertificateStatus.VALID,
            CertificateStatus.REVOKED,
            CertificateStatus.CANCELLED,
            CertificateStatus.WITHDRAWN_AS_PENALTY,
        }
    ),
}
"""From 有效 anywhere; from 暂扣 back to 有效 or to an end; every other status is final."""


# --- issuing ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Holder:
    kind: Literal["person", "company"]
    id: str
    """Resident ID number or unified social credit code."""
    name: str

    def __repr__(self) -> str:
        return f"Holder(kind={self.kind!r}, id=<hidden>, name=<hidden>)"


@dataclass(frozen=True)
class NewEntity:
    """设立登记: the market entity an approved application registers. The entity holds the
    licence, under a credit code assigned at issue (赋码); the applicant who registered it is
    its founder (经营者 of a 个体工商户, 法定代表人 of a company), whom the licence names and
    whose wallet shows it."""

    kind: str
    """Its kind as the licence's 类型 reads: ``个体工商户``, ``有限责任公司`` …"""
    founder: Holder


MARKET_REGULATION = "9"
"""登记管理部门代码 of the market-regulation authorities (市场监管), who register businesses."""
ENTITY_CATEGORIES = {"个体工商户": "2", "农民专业合作社": "3"}
"""机构类别代码 under 市场监管 by kind; every other kind registered there is an 企业 (``1``)."""


def _kid(issuer_code: str) -> str:
    return f"{issuer_code}-{secrets.token_hex(4)}"


async def create_signing_key(
    session: AsyncSession, *, issuer_code: str, cipher: FieldCipher, at: datetime
) -> SigningKey:
    """A new active key for the issuer; any earlier one is retired (rotation)."""
    await repository.lock_issuer_keys(session, issuer_code)
    await repository.retire_signing_keys(session, issuer_code=issuer_code, at=at)
    # The retired key stops signing in this process when this commits.
    configuration.changed(session, "signing_key")
    key = Ed25519Key.generate(kid=_kid(issuer_code))
    row = SigningKey(
        kid=key.kid,
        issuer_code=issuer_code,
        public_key=key.public_key().to_b64(),
        private_key_enc=cipher.encrypt(
            key.private_bytes().hex(), context=f"sharing.signing_key:{key.kid}"
        ),
        created_at=at,
        retired_at=None,
    )
    session.add(row)
    await session.flush()
    return row


async def _active_key(
    session: AsyncSession, *, issuer_code: str, cipher: FieldCipher, at: datetime
) -> Ed25519Key:
    row = await configuration.active_signing_key(session, issuer_code)
    if row is None:
        await repository.lock_issuer_keys(session, issuer_code)
        row = await repository.active_signing_key(session, issuer_code)
        if row is None:
            row = await create_signing_key(session, issuer_code=issuer_code, cipher=cipher, at=at)
    raw = cipher.decrypt(row.private_key_enc, context=f"sharing.signing_key:{row.kid}")
    return Ed25519Key.from_private_bytes(bytes.fromhex(raw), kid=row.kid)


SOURCES_FROM_HOLDER = frozenset({"holder.name", "holder.birth_date", "holder.gender"})
"""Where a certificate item may come from besides the form: what the holder's ID number and
name state, the day of issue (``issued_on``) and the number assigned at issue (``serial``)."""
SOURCES_FROM_NEW_ENTITY = frozenset({"entity.kind", "entity.founder", "entity.established_on"})
"""What a 设立登记 knows of the entity it registers: its kind (类型), its founder's name
(经营者 / 法定代表人) and the day it comes into being (成立日期, the day of issue). They fill
nothing on a certificate of an entity that already existed."""

DEFAULT_NUMBER_FORMAT = "{serial:010d}"
"""How a number assigned at issue is written when the type's item names no ``number_format``."""


def field_sources(declared: Mapping[str, Any]) -> list[str]:
    """Where a declared certificate item is taken from, first found wins: ``form.<field>``
    (the application's form, prefilled government values included), ``holder.name``,
    ``holder.birth_date``, ``holder.gender`` (a person's, read from the ID number),
    ``issued_on`` or ``serial`` (a number the issuing department assigns at issue — 证号,
    许可证编号 —, the certificate's 流水号 written by the item's ``number_format``, e.g.
    ``"JY1441900{serial:07d}"``; ``{year}`` is the year of issue), ``entity.kind``,
    ``entity.founder`` or ``entity.established_on`` (:data:`SOURCES_FROM_NEW_ENTITY`); by
    default the form field of the same name. A ``default`` applies after."""
    sources = declared.get("from")
    if isinstance(sources, str):
        return [sources]
    if isinstance(sources, list) and sources:
        return [str(s) for s in sources]
    return [f"form.{declared['name']}"]


def unobtainable_fields(
    type_fields: Sequence[Mapping[str, Any]],
    *,
    form_schema: Mapping[str, Any] | None,
    holder_kind: str,
    establishes: bool = False,
) -> list[str]:
    """The titles of a type's required items that an item with this form can never fill: no
    source of theirs is a form field or something the holder (or, for an item that
    ``establishes`` an entity, its registration) states, and no default. An item promising
    this certificate would be approved and then dead-letter at issue."""
    form_fields = set(((form_schema or {}).get("properties") or {}).keys())
    missing = []
    for declared in type_fields:
        if not declared.get("required", True) or declared.get("default") not in (None, ""):
            continue
        reachable = False
        for source in field_sources(declared):
            if source in ("issued_on", "serial") or (
                source in SOURCES_FROM_HOLDER and holder_kind == "person"
            ):
                reachable = True
            elif source == "holder.name" or (source in SOURCES_FROM_NEW_ENTITY and establishes):
                reachable = True
            elif source.startswith("form.") and source.removeprefix("form.") in form_fields:
                reachable = True
        if not reachable:
            missing.append(str(declared["title"]))
    return missing


def assigned_number(declared: Mapping[str, Any], *, serial: int, at: date) -> str:
    """The number the issuing department gives this item at issue, from the certificate's
    流水号 (unique per type and issuer, so the number is too)."""
    template = str(declared.get("number_format") or DEFAULT_NUMBER_FORMAT)
    try:
        return template.format(serial=serial, year=at.year)
    except (KeyError, IndexError, ValueError) as exc:
        raise InvalidCertificateData(
            f"证照项目「{declared['title']}」的编号格式有误：{template}"
        ) from exc


def _source_value(
    source: str,
    *,
    declared: Mapping[str, Any],
    fields: Mapping[str, Any],
    holder: Holder,
    entity: NewEntity | None,
    at: date,
    serial: int,
) -> Any:
    if source.startswith("form."):
        return fields.get(source.removeprefix("form."))
    if source == "issued_on":
        return at.isoformat()
    if source == "serial":
        return assigned_number(declared, serial=serial, at=at)
    if source == "holder.name":
        return holder.name
    if holder.kind == "person" and source == "holder.birth_date":
        return identifiers.birth_date_of(holder.id).isoformat()
    if holder.kind == "person" and source == "holder.gender":
        return identifiers.gender_of(holder.id)
    if entity is not None and source == "entity.kind":
        return entity.kind
    if entity is not None and source == "entity.founder":
        return entity.founder.name
    if entity is not None and source == "entity.established_on":
        return at.isoformat()
    return None


def _certified_fields(
    type_: CertificateType,
    fields: Mapping[str, Any],
    *,
    holder: Holder,
    entity: NewEntity | None = None,
    at: date,
    serial: int,
) -> dict[str, Any]:
    """The facts the certificate states: each of the type's declared fields from its sources
    (what the decision carries — an application's form holds more than its certificate
    states — or the holder, the day of issue, the number assigned at issue), else the type's
    default; required ones present; values text or whole numbers (signed JSON takes no
    floats)."""
    problems = []
    certified: dict[str, Any] = {}
    for declared in type_.fields:
        name = declared["name"]
        value = None
        for source in field_sources(declared):
            value = _source_value(
                source,
                declared=declared,
                fields=fields,
                holder=holder,
                entity=entity,
                at=at,
                serial=serial,
            )
            if value not in (None, ""):
                break
        if value in (None, ""):
            value = declared.get("default")
        if value in (None, ""):
            if declared.get("required", True):
                problems.append(f"缺少证照项目：{declared['title']}")
            continue
        if isinstance(value, float):
            value = str(value)  # amounts as text: no float formatting ambiguity in signatures
        if not isinstance(value, str | int | bool | list):
            problems.append(f"证照项目「{declared['title']}」的值类型不支持")
        certified[name] = value
    if problems:
        raise InvalidCertificateData("；".join(problems))
    return certified


async def issue_certificate(
    session: AsyncSession,
    *,
    application_id: str,
    type_code: str,
    holder: Holder,
    fields: Mapping[str, Any],
    cipher: FieldCipher,
    blind_index: BlindIndex,
    establishes: str | None = None,
    at: datetime | None = None,
) -> Certificate:
    """Issue the certificate an approved application earned — once: asking again for the same
    application and type returns the certificate already issued.

    ``establishes`` (设立登记): the approval registers a new market entity of that kind; it
    holds the certificate under a credit code assigned now, named as the type's ``name``
    item (名称) reads, and ``holder`` is its founder."""
    at = (at or datetime.now(UTC)).astimezone(UTC)
    try:
        type_, checked, entity, name = _checked(
            await configuration.certificate_type(session, type_code),
            type_code=type_code,
            holder=holder,
            fields=fields,
            establishes=establishes,
            at=at,
        )
    except (UnknownCertificateType, InvalidCertificateData):
        # Issued before (the type or its declared items changed since): that one stands.
        existing = await _issued(session, application_id=application_id, type_code=type_code)
        if existing is not None:
            return existing
        raise
    key = await _active_key(session, issuer_code=type_.issuer_code, cipher=cipher, at=at)
    serial = await repository.next_serial_unless_issued(
        session, type_code=type_.code, issuer_code=type_.issuer_code, application_id=application_id
    )
    if serial is None:
        existing = await _issued(session, application_id=application_id, type_code=type_code)
        assert existing is not None  # what the statement found (certificates are never deleted)
        return existing
    founder_ref = None
    if entity is not None:
        checked = await _register(session, entity=entity, type_=type_, name=name)
        founder_ref = subject_ref(
            blind_index, Subject(kind=entity.founder.kind, id=entity.founder.id)
        )
    holder_id = checked.id
    valid_from = at.date()
    valid_until = valid_from + timedelta(days=type_.validity_days) if type_.validity_days else None
    certified = _certified_fields(
        type_, fields, holder=checked, entity=entity, at=at.date(), serial=serial
    )
    certificate_id = str(
        CertificateId.build(type_code=type_.code, issuer_code=type_.issuer_code, serial=serial)
    )
    document = {
        "id": certificate_id,
        "type": {"code": type_.code, "name": type_.name},
        "holder": {"kind": checked.kind, "name": checked.name, "id": holder_id},
        "fields": certified,
        "issuer": {"name": type_.issuing_department, "code": type_.issuer_code},
        "issued_at": at.isoformat(timespec="seconds"),
        "valid_from": valid_from.isoformat(),
        "valid_until": valid_until.isoformat() if valid_until else None,
        "application_id": application_id,
    }
    signed = sign_certificate(document, key=key)
    row = Certificate(
        id=certificate_id,
        type_code=type_.code,
        issuer_code=type_.issuer_code,
        application_id=application_id,
        holder_kind=checked.kind,
        holder_ref=subject_ref(blind_index, Subject(kind=checked.kind, id=holder_id)),
        founder_ref=founder_ref,
        document_enc=cipher.encrypt(
            _document_text(signed.document), context=f"sharing.certificate:{certificate_id}"
        ),
        kid=signed.kid,
        signature=signed.signature,
        issued_at=at,
        valid_from=valid_from,
        valid_until=valid_until,
        status=CertificateStatus.VALID.value,
        status_reason="",
        status_changed_at=at,
    )
    session.add(row)
    await session.flush()
    await outbox.publish(
        session,
        CertificateIssued(
            certificate_id=certificate_id,
            type_code=type_.code,
            type_name=type_.name,
            issuer_code=type_.issuer_code,
            application_id=application_id,
            holder_kind=checked.kind,
            issued_at=at.isoformat(),
            valid_until=valid_until.isoformat() if valid_until else None,
        ),
    )
    return row


_KINDS = {"person": "自然人", "company": "法人或其他组织"}


def _checked(
    type_: CertificateType | None,
    *,
    type_code: str,
    holder: Holder,
    fields: Mapping[str, Any],
    establishes: str | None,
    at: datetime,
) -> tuple[CertificateType, Holder, NewEntity | None, str]:
    """What can be checked before a 流水号 (or a credit code) is taken: a certificate that
    cannot be issued (the failure is recorded and committed) must not use up a number. An
    entity being registered has no credit code yet: the check sees it without one. Answers
    the type, the holder, the entity a 设立登记 registers and its name."""
    if type_ is None:
        raise UnknownCertificateType(f"证照类型 {type_code} 未登记")
    if establishes is None and holder.kind != type_.holder_kind:
        raise InvalidCertificateData(f"「{type_.name}」的持证主体应为{_KINDS[type_.holder_kind]}")
    if establishes is not None and type_.holder_kind != "company":
        raise InvalidCertificateData(f"「{type_.name}」不是市场主体的证照，不能用于设立登记")
    checked = Holder(kind=holder.kind, id=_valid_holder_id(holder), name=holder.name)
    entity = NewEntity(kind=establishes, founder=checked) if establishes is not None else None
    provisional = _certified_fields(
        type_,
        fields,
        holder=Holder(kind="company", id="", name="") if entity is not None else checked,
        entity=entity,
        at=at.date(),
        serial=0,
    )
    name = provisional.get("name")
    if entity is None:
        return type_, checked, None, ""
    if not isinstance(name, str) or not name.strip():
        raise InvalidCertificateData(f"「{type_.name}」没有名称项目，无法设立登记")
    return type_, checked, entity, name.strip()


async def _issued(
    session: AsyncSession, *, application_id: str, type_code: str
) -> Certificate | None:
    return await repository.certificate_for_application(
        session, application_id=application_id, type_code=type_code
    )


def _valid_holder_id(holder: Holder) -> str:
    try:
        if holder.kind == "person":
            return identifiers.validate_resident_id(holder.id)
        return identifiers.validate_uscc(holder.id)
    except identifiers.InvalidIdentifier as exc:
        raise InvalidCertificateData(str(exc)) from exc


async def _register(
    session: AsyncSession, *, entity: NewEntity, type_: CertificateType, name: str
) -> Holder:
    """The entity as registered now, under the credit code the issuing authority assigns it
    (赋码) in its own region (positions 3-8 of the issuer's code)."""
    authority = MARKET_REGULATION + ENTITY_CATEGORIES.get(entity.kind, "1")
    region_code = type_.issuer_code[2:8]
    serial = await repository.next_credit_serial(
        session, authority=authority, region_code=region_code
    )
    code = identifiers.new_uscc(
        authority=authority[0], category=authority[1], region=region_code, serial=serial
    )
    return Holder(kind="company", id=code, name=name)


def _document_text(document: Mapping[str, Any]) -> str:
    return json.dumps(document, ensure_ascii=False, sort_keys=True)


def read_document(row: Certificate, *, cipher: FieldCipher) -> dict[str, Any]:
    text = cipher.decrypt(row.document_enc, context=f"sharing.certificate:{row.id}")
    document: dict[str, Any] = json.loads(text)
    return document


# --- status -------------------------------------------------------------------------------------


async def change_status(
    session: AsyncSession,
    *,
    certificate_id: str,
    to_status: CertificateStatus,
    reason: str,
    changed_by: str,
    officer_department: str | None,
    at: datetime | None = None,
) -> Certificate:
    """Change a certificate's status, by an officer of the department that issued it.

    The status decides what every verifier is told (撤销 is final), so only the issuing
    department answers for it. A certificate of another department reads as not found: an
    officer learns nothing about certificates that are not theirs to manage."""
    at = at or datetime.now(UTC)
    row = await repository.certificate(session, certificate_id, lock=True)
    if row is None:
        raise CertificateNotFound()
    type_ = await configuration.certificate_type(session, row.type_code)
    if type_ is None or not officer_department or officer_department != type_.issuing_department:
        raise CertificateNotFound()
    current = CertificateStatus(row.status)
    if to_status not in ALLOWED_CHANGES.get(current, frozenset()):
        raise StatusChangeNotAllowed(
            f"证照当前为「{current.value}」，不能变更为「{to_status.value}」"
        )
    if not reason.strip():
        raise InvalidCertificateData("变更证照状态必须说明原因")
    session.add(
        CertificateStatusChange(
            id=str(uuid.uuid4()),
            certificate_id=row.id,
            from_status=current.value,
            to_status=to_status.value,
            reason=reason.strip(),
            changed_by=changed_by,
            changed_at=at,
        )
    )
    row.status, row.status_reason, row.status_changed_at = to_status.value, reason.strip(), at
    await session.flush()
    await outbox.publish(
        session,
        CertificateStatusChanged(
            certificate_id=row.id,
            type_code=row.type_code,
            from_status=current.value,
            to_status=to_status.value,
            reason=reason.strip(),
            changed_at=at.isoformat(),
        ),
    )
    return row


# --- verification -------------------------------------------------------------------------------


class Verdict(StrEnum):
    VALID = "valid"
    REVOKED = "revoked"
    EXPIRED = "expired"
    FORGED = "forged"


@dataclass(frozen=True)
class Verification:
    verdict: Verdict
    reason: str
    certificate: Certificate | None = None
    document: Mapping[str, Any] | None = None


async def _verifying_keys(session: AsyncSession, kid: str) -> dict[str, VerifyingKey]:
    row = await configuration.signing_key(session, kid)
    if row is None:
        return {}
    return {row.kid: VerifyingKey.from_b64(row.public_key, kid=row.kid)}


async def verify(
    session: AsyncSession,
    *,
    certificate_id: str | None = None,
    qr: str | None = None,
    cipher: FieldCipher,
    today: date | None = None,
) -> Verification:
    """Is this certificate genuine and in force? By identifier or by scanned QR payload.

    ``forged`` covers every way the evidence fails: an identifier with a wrong check character
    or unknown to the library, a QR code whose signature is not the library's, a document or
    signature that no longer verifies under the issuer's key."""
    today = today or datetime.now(UTC).date()
    scanned = None
    if qr is not None:
        try:
            scanned = parse_qr_payload(qr)
        except InvalidQrPayload as exc:
            return Verification(Verdict.FORGED, str(exc))
        certificate_id = str(scanned.certificate_id)
    if not certificate_id:
        return Verification(Verdict.FORGED, "未提供证照标识")
    try:
        CertificateId.parse(certificate_id)
    except InvalidCertificateId as exc:
        return Verification(Verdict.FORGED, str(exc))
    row = await repository.certificate(session, certificate_id)
    if row is None:
        return Verification(Verdict.FORGED, "电子证照库中没有该证照，证照可能系伪造")
    try:
        document = read_document(row, cipher=cipher)
    except DecryptionError:
        return Verification(Verdict.FORGED, "证照数据已被篡改", row)
    signed = SignedCertificate(document=document, kid=row.kid, signature=row.signature)
    if scanned is not None and not scanned.matches(signed):
        return Verification(Verdict.FORGED, "二维码中的签名与电子证照库中的证照不符", row)
    result = verify_signature(signed, keys=await _verifying_keys(session, row.kid))
    if not result.valid or document.get("id") != row.id:
        return Verification(Verdict.FORGED, "证照签名验证失败，内容可能已被篡改", row)
    status = CertificateStatus(row.status)
    if status is CertificateStatus.LAPSED:
        return Verification(Verdict.EXPIRED, f"证照已失效：{row.status_reason}", row, document)
    if status is not CertificateStatus.VALID:
        return Verification(
            Verdict.REVOKED, f"证照已{status.value}：{row.status_reason}", row, document
        )
    if row.valid_until is not None and row.valid_until < today:
        return Verification(
            Verdict.EXPIRED, f"证照已于 {row.valid_until.isoformat()} 过期", row, document
        )
    return Verification(Verdict.VALID, "证照真实有效", row, document)


def qr_of(row: Certificate, *, cipher: FieldCipher) -> str:
    signed = SignedCertificate(
        document=read_document(row, cipher=cipher), kid=row.kid, signature=row.signature
    )
    return qr_payload(signed)


# --- wallet -------------------------------------------------------------------------------------


async def wallet(
    session: AsyncSession, *, holder: str, type_code: str | None = None
) -> Sequence[Certificate]:
    """A person's wallet (证照夹), newest first (``holder`` is their reference): their own
    certificates and the licences of the entities they registered (设立登记)."""
    return await repository.certificates_of(
        session, holder_ref=holder, type_code=type_code, with_founded=True
    )


def in_wallet_of(row: Certificate, *, holder: str) -> bool:
    """Whether the certificate shows in this person's wallet (see :func:`wallet`)."""
    return holder in (row.holder_ref, row.founder_ref)


async def usable_certificate(
    session: AsyncSession, *, holder: str, type_code: str, today: date
) -> Certificate | None:
    """A certificate of this type the holder can reuse as evidence now (有效, not expired)."""
    for row in await repository.certificates_of(session, holder_ref=holder, type_code=type_code):
        if row.status == CertificateStatus.VALID.value and (
            row.valid_until is None or row.valid_until >= today
        ):
            return row
    return None
