"""Routes of the sharing service: parse, authorise, call, return.

* lookups and material resolution: for Wangban services (and staff of a department);
* consents, "who used my data" and the wallet: for the citizen, by their own identity;
* certificate verification: public, no login;
* certificate status and keys, the registry and the audit log: for staff roles.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from sqlalchemy.ext.asyncio import AsyncSession

from contracts.internal_api import ACTOR_HEADER
from contracts.sharing.api_v1 import IdentityCheckRequest, LookupRequest, ResolutionRequest
from sharing_service import (
    audit,
    catalog_copies,
    certificates,
    configuration,
    data_usage,
    identity_check,
    lookups,
    materials,
    registry,
    repository,
)
from sharing_service.catalog_copies import CatalogUnavailable
from sharing_service.directory import ProviderDirectory
from sharing_service.egress import ProviderUrlPolicy
from sharing_service.http_provider import ProviderMetrics
from sharing_service.models import Certificate, Consent
from sharing_service.providers import Subject
from sharing_service.schemas import (
    AttributeOut,
    AuditFilterIn,
    AuditPageOut,
    AuditRecordOut,
    CertificateOut,
    CertificateSummary,
    ChainReportOut,
    CheckpointOut,
    ConsentIn,
    ConsentOut,
    DatasetOut,
    DataUsePage,
    EvidenceOut,
    GrantIn,
    GrantOut,
    IdentityCheckOut,
    KeyOut,
    LookupOut,
    MaterialOut,
    ProviderIn,
    ProviderOut,
    ResolveOut,
    StatusChangeIn,
    VerifyIn,
    VerifyOut,
    WalletCount,
)
from wangban.auth import (
    APPROVER,
    AUDITOR,
    DATA_ADMIN,
    OPS,
    REVIEWER,
    WINDOW_CLERK,
    CurrentIdentity,
    Identity,
    InternalTokens,
    require_roles,
)
from wangban.crypto import BlindIndex, FieldCipher, mask_name
from wangban.db import ReadSession, UnitOfWork
from wangban.errors import Forbidden, NotFound, Unauthorized, problem_responses
from wangban.http import ServiceCalls
from wangban.settings import Environment
from wangban.storage import object_store_from_settings

public = APIRouter(tags=["data sharing"])
citizen = APIRouter(prefix="/me", tags=["citizen: my data and certificates"])
staff = APIRouter(prefix="/admin", tags=["sharing administration"])

Auditor = Annotated[Identity, Depends(require_roles(AUDITOR))]
DataAdmin = Annotated[Identity, Depends(require_roles(DATA_ADMIN))]
KeyAdmin = Annotated[Identity, Depends(require_roles(OPS, DATA_ADMIN))]
CertificateOfficer = Annotated[Identity, Depends(require_roles(REVIEWER, APPROVER))]
"""A reviewer or approver; the issuing department is checked against the certificate."""


class NotAConsumer(Forbidden):
    type_slug = "not-a-data-consumer"
    title = "只有平台服务或部门工作人员可以查询共享数据"


class RealNameRequired(Forbidden):
    type_slug = "real-name-required"
    title = "请先完成实名认证"


class ConsentNotFound(NotFound):
    type_slug = "consent-not-found"
    title = "找不到该授权记录"


# --- per-app objects ----------------------------------------------------------------------------


class Keys:
    """The platform keys the service needs: field encryption and the blind index."""

    def __init__(self, cipher: FieldCipher, blind_index: BlindIndex) -> None:
        self.cipher = cipher
        self.blind_index = blind_index


async def _keys(request: Request) -> Keys:
    state = request.app.state
    if not hasattr(state, "sharing_keys"):
        settings = state.settings
        state.sharing_keys = Keys(
            FieldCipher.from_settings(settings), BlindIndex.from_settings(settings)
        )
    keys: Keys = state.sharing_keys
    return keys


async def _directory(request: Request, keys: Annotated[Keys, Depends(_keys)]) -> ProviderDirectory:
    state = request.app.state
    if not hasattr(state, "provider_directory"):
        state.provider_directory = ProviderDirectory(
            cipher=keys.cipher,
            metrics=ProviderMetrics(state.metrics.registry),
            allow_sandbox=state.settings.env != Environment.PRODUCTION,
            url_policy=ProviderUrlPolicy.from_settings(state.settings),
        )
    directory: ProviderDirectory = state.provider_directory
    return directory


async def close_directory(app: FastAPI) -> None:
    directory = getattr(app.state, "provider_directory", None)
    if directory is not None:
        await directory.close()
    catalog = getattr(app.state, "sharing_catalog", None)
    if catalog is not None:
        await catalog.aclose()


async def _catalog(request: Request) -> ServiceCalls:
    state = request.app.state
    if not hasattr(state, "sharing_catalog"):
        state.sharing_catalog = catalog_copies.catalog_calls(state.settings)
    catalog: ServiceCalls = state.sharing_catalog
    return catalog


PlatformKeys = Annotated[Keys, Depends(_keys)]
Providers = Annotated[ProviderDirectory, Depends(_directory)]
Catalog = Annotated[ServiceCalls, Depends(_catalog)]


_ROLE_PREFERENCE = (WINDOW_CLERK, REVIEWER, APPROVER, AUDITOR)


def _role_of(person: Identity) -> str:
    """The one role a lookup is recorded under: what the person does that needs data."""
    if person.kind != "staff":
        return person.kind
    for role in _ROLE_PREFERENCE:
        if role in person.roles:
            return role
    return min(person.roles, default="staff")


def _actor(request: Request) -> Identity | None:
    """The person a calling service acts for, from the signed internal token it forwards in
    :data:`ACTOR_HEADER` (so no request body can name someone else)."""
    header = request.headers.get(ACTOR_HEADER)
    if not header:
        return None
    state = request.app.state
    tokens: InternalTokens | None = getattr(state, "internal_tokens", None)
    if tokens is None:
        tokens = state.internal_tokens = InternalTokens.from_settings(state.settings)
    person = tokens.verify(header.strip())
    if person.kind == "service":
        raise Unauthorized("代为查询的身份必须是工作人员或申请人本人")
    return person


def _caller(identity: Identity, request: Request) -> lookups.Caller:
    """The policy's name for the caller (the service, or the staff member's department) and
    the person on whose behalf it asks."""
    if identity.kind == "service":
        person = _actor(request)
        if person is None:
            return lookups.Caller(consumer=identity.subject, requested_by=identity.subject)
        return lookups.Caller(
            consumer=identity.subject,
            requested_by=identity.subject,
            actor_subject=person.subject,
            actor_department=person.department if person.kind == "staff" else None,
            actor_role=_role_of(person),
        )
    if identity.kind == "staff" and identity.department:
        return lookups.Caller(
            consumer=identity.department,
            requested_by=identity.subject,
            actor_subject=identity.subject,
            actor_department=identity.department,
            actor_role=_role_of(identity),
        )
    raise NotAConsumer()


def _person_ref(identity: Identity) -> str:
    if identity.kind != "citizen" or identity.person_ref is None:
        raise RealNameRequired()
    return identity.person_ref


# --- lookups ------------------------------------------------------------------------------------


@public.post(
    "/lookups",
    summary="Look up shared data (policy, consent, minimisation, predicates; always audited)",
    responses=problem_responses(
        NotAConsumer,
        lookups.UnknownDataset,
        lookups.InvalidLookup,
        lookups.LookupDenied,
        lookups.ConsentRequired,
        lookups.DataUnavailable,
    ),
)
async def lookup(
    body: LookupRequest,
    session: UnitOfWork,
    identity: CurrentIdentity,
    keys: PlatformKeys,
    providers: Providers,
    request: Request,
) -> LookupOut:
    result = await lookups.perform_lookup(
        session,
        caller=_caller(identity, request),
        subject=Subject(kind=body.subject.kind, id=body.subject.id),
        dataset_code=body.dataset,
        fields=body.fields,
        predicates=[lookups.Predicate(**p.model_dump()) for p in body.predicates],
        purpose=lookups.Purpose(
            item_code=body.purpose.item_code, application_id=body.purpose.application_id
        ),
        directory=providers,
        blind_index=keys.blind_index,
    )
    return LookupOut(
        lookup_id=result.lookup_id,
        found=result.found,
        attributes={
            name: AttributeOut(
                value=a.value,
                source=a.source,
                provider=a.provider,
                dataset=a.dataset,
                updated_at=a.updated_at,
            )
            for name, a in result.attributes.items()
        },
        predicates=result.predicates,
    )


@public.post(
    "/materials/resolve",
    summary="Which materials of an item version the applicant need not bring (免证明)",
    responses=problem_responses(NotAConsumer, materials.ItemVersionUnknown, CatalogUnavailable),
)
async def resolve_materials(
    body: ResolutionRequest,
    session: UnitOfWork,
    identity: CurrentIdentity,
    keys: PlatformKeys,
    providers: Providers,
    catalog: Catalog,
    request: Request,
) -> ResolveOut:
    # Our copy may lag the catalogue (a version just published, sharing just started): ask
    # the catalog rather than refuse the applicant. Before the request's session first speaks
    # to the database, so no connection is held while the catalog answers.
    await catalog_copies.ensure_version(
        request.app.state.database, catalog=catalog, version_id=body.item_version_id
    )
    resolved = await materials.resolve_materials(
        session,
        caller=_caller(identity, request),
        item_version_id=body.item_version_id,
        applicant=Subject(kind=body.applicant.kind, id=body.applicant.id),
        application_id=body.application_id,
        directory=providers,
        blind_index=keys.blind_index,
    )
    return ResolveOut(
        materials=[
            MaterialOut(
                index=m.index,
                name=m.name,
                source=m.source,
                status=m.status,
                message=m.message,
                needs_upload=m.needs_upload,
                evidence=EvidenceOut(kind=m.evidence.kind, id=m.evidence.id)
                if m.evidence
                else None,
            )
            for m in resolved
        ]
    )


@public.post(
    "/identity/verify",
    summary="Window intake: does the name match the population register for the ID number?",
    responses=problem_responses(
        NotAConsumer,
        lookups.UnknownDataset,
        lookups.InvalidLookup,
        lookups.LookupDenied,
        lookups.DataUnavailable,
    ),
)
async def verify_identity(
    body: IdentityCheckRequest,
    session: UnitOfWork,
    identity: CurrentIdentity,
    keys: PlatformKeys,
    providers: Providers,
    request: Request,
) -> IdentityCheckOut:
    checked = await identity_check.verify_name(
        session,
        caller=_caller(identity, request),
        subject=Subject(kind=body.subject.kind, id=body.subject.id),
        name=body.name,
        purpose=lookups.Purpose(
            item_code=body.purpose.item_code, application_id=body.purpose.application_id
        ),
        directory=providers,
        blind_index=keys.blind_index,
    )
    return IdentityCheckOut(lookup_id=checked.lookup_id, matches=checked.matches)


@public.get("/datasets", summary="The shared-data catalogue (共享目录)")
async def list_datasets(session: ReadSession, identity: CurrentIdentity) -> list[DatasetOut]:
    return [DatasetOut.model_validate(d) for d in await repository.datasets(session)]


# --- certificates: public verification ----------------------------------------------------------


@public.post(
    "/certificates/verify",
    summary="Verify an e-certificate by id or scanned QR payload (no login)",
)
async def verify_certificate(body: VerifyIn, session: ReadSession, keys: PlatformKeys) -> VerifyOut:
    result = await certificates.verify(
        session, certificate_id=body.certificate_id, qr=body.qr, cipher=keys.cipher
    )
    out = VerifyOut(verdict=result.verdict, reason=result.reason)
    if result.certificate is not None and result.document is not None:
        row, document = result.certificate, result.document
        out.certificate_id = row.id
        out.type_name = str(document["type"]["name"])
        out.issuer = str(document["issuer"]["name"])
        out.holder_name = mask_name(str(document["holder"]["name"]))
        out.issued_at = row.issued_at
        out.valid_until = row.valid_until
        out.status = row.status
    return out


# --- the citizen's own data ---------------------------------------------------------------------


@citizen.post(
    "/consents",
    status_code=201,
    summary="Consent to lookups of my data for an item (数据授权)",
    responses=problem_responses(RealNameRequired),
)
async def give_consent(
    body: ConsentIn, session: UnitOfWork, identity: CurrentIdentity
) -> ConsentOut:
    now = datetime.now(UTC)
    row = Consent(
        id=str(uuid.uuid4()),
        subject_ref=_person_ref(identity),
        item_code=body.item_code,
        application_id=body.application_id,
        granted_at=now,
        expires_at=now + timedelta(days=body.valid_days),
        revoked_at=None,
    )
    session.add(row)
    await session.flush()
    return ConsentOut.model_validate(row)


@citizen.get("/consents", summary="My consents", responses=problem_responses(RealNameRequired))
async def my_consents(session: ReadSession, identity: CurrentIdentity) -> list[ConsentOut]:
    rows = await repository.consents_of(session, _person_ref(identity))
    return [ConsentOut.model_validate(r) for r in rows]


@citizen.delete(
    "/consents/{consent_id}",
    summary="Withdraw a consent",
    responses=problem_responses(RealNameRequired, ConsentNotFound),
)
async def revoke_consent(
    consent_id: uuid.UUID, session: UnitOfWork, identity: CurrentIdentity
) -> ConsentOut:
    row = await repository.consent(session, str(consent_id))
    if row is None or row.subject_ref != _person_ref(identity):
        raise ConsentNotFound()
    if row.revoked_at is None:
        row.revoked_at = datetime.now(UTC)
        await session.flush()
    return ConsentOut.model_validate(row)


@citizen.get(
    "/data-usage",
    summary="Who used my data (数据使用记录)",
    responses=problem_responses(RealNameRequired),
)
async def my_data_usage(
    session: ReadSession,
    identity: CurrentIdentity,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    before: Annotated[int | None, Query(ge=1)] = None,
) -> DataUsePage:
    return await data_usage.page(
        session, subject_ref=_person_ref(identity), limit=limit, before=before
    )


async def _summary(
    session: AsyncSession, row: Certificate | repository.WalletEntry
) -> CertificateSummary:
    """A certificate as lists show it (a row, or a wallet entry's columns): the type's name
    and issuer from the registry, nothing from the encrypted document."""
    type_ = await configuration.certificate_type(session, row.type_code)
    return CertificateSummary(
        id=row.id,
        type_code=row.type_code,
        type_name=type_.name if type_ else row.type_code,
        issuer=type_.issuing_department if type_ else row.issuer_code,
        issued_at=row.issued_at,
        valid_from=row.valid_from,
        valid_until=row.valid_until,
        status=row.status,
        status_reason=row.status_reason,
    )


@citizen.get(
    "/certificates",
    summary="My certificates (证照夹)",
    responses=problem_responses(RealNameRequired),
)
async def my_certificates(
    session: ReadSession, identity: CurrentIdentity
) -> list[CertificateSummary]:
    entries = await repository.wallet_entries(session, holder_ref=_person_ref(identity))
    return [await _summary(session, entry) for entry in entries]


@citizen.get(
    "/certificates/count",
    summary="How many certificates my wallet holds (the first screen's figure)",
    responses=problem_responses(RealNameRequired),
)
async def my_certificate_count(session: ReadSession, identity: CurrentIdentity) -> WalletCount:
    # One count: the first screen needs the figure, not the list.
    return WalletCount(
        count=await repository.wallet_count(session, holder_ref=_person_ref(identity))
    )


@citizen.get(
    "/certificates/{certificate_id}",
    summary="One of my certificates, with its signed document and QR payload",
    responses=problem_responses(RealNameRequired, certificates.CertificateNotFound),
)
async def my_certificate(
    certificate_id: str, session: ReadSession, identity: CurrentIdentity, keys: PlatformKeys
) -> CertificateOut:
    row = await repository.certificate(session, certificate_id)
    if row is None or not certificates.in_wallet_of(row, holder=_person_ref(identity)):
        raise certificates.CertificateNotFound()
    summary = await _summary(session, row)
    return CertificateOut(
        **summary.model_dump(),
        document=certificates.read_document(row, cipher=keys.cipher),
        kid=row.kid,
        signature=row.signature,
        qr_payload=certificates.qr_of(row, cipher=keys.cipher),
    )


# --- staff --------------------------------------------------------------------------------------


@staff.post(
    "/certificates/{certificate_id}/status",
    summary="Change a certificate's status (暂扣, 撤销, 注销, 失效, 吊销, or back to 有效)",
    responses=problem_responses(
        certificates.CertificateNotFound,
        certificates.StatusChangeNotAllowed,
        certificates.InvalidCertificateData,
    ),
)
async def change_certificate_status(
    certificate_id: str, body: StatusChangeIn, session: UnitOfWork, officer: CertificateOfficer
) -> CertificateSummary:
    row = await certificates.change_status(
        session,
        certificate_id=certificate_id,
        to_status=body.status,
        reason=body.reason,
        changed_by=officer.subject,
        officer_department=officer.department,
    )
    return await _summary(session, row)


@staff.post(
    "/signing-keys/{issuer_code}/rotate",
    status_code=201,
    summary="Rotate an issuer's signing key (old certificates keep verifying)",
)
async def rotate_key(
    issuer_code: str,
    session: UnitOfWork,
    keys: PlatformKeys,
    _: KeyAdmin,
) -> KeyOut:
    row = await certificates.create_signing_key(
        session, issuer_code=issuer_code, cipher=keys.cipher, at=datetime.now(UTC)
    )
    return KeyOut(
        kid=row.kid,
        issuer_code=row.issuer_code,
        public_key=row.public_key,
        created_at=row.created_at,
        retired_at=row.retired_at,
    )


@staff.get(
    "/audit/verify",
    summary="Verify the whole lookup audit chain (MACs and the latest signed checkpoint)",
)
async def verify_audit(session: ReadSession, _: Auditor, request: Request) -> ChainReportOut:
    settings = request.app.state.settings
    store = object_store_from_settings(settings, caller="sharing")
    try:
        report = await audit.verify_chain(
            session, keys=audit.AuditKeys.from_settings(settings), store=store
        )
    finally:
        await store.close()
    return ChainReportOut(
        ok=report.ok,
        records=report.records,
        first_bad_seq=report.first_bad_seq,
        problems=report.problems,
        checkpoint_seq=report.checkpoint_seq,
    )


@staff.get("/audit", summary="Lookup audit records, newest first")
async def audit_records(
    session: ReadSession,
    _: Auditor,
    application_id: str | None = None,
    department: Annotated[str | None, Query(max_length=100, description="查询人所在部门")] = None,
    dataset: Annotated[str | None, Query(max_length=64, description="数据集编码")] = None,
    item_code: Annotated[str | None, Query(max_length=64, description="查询用途：事项编码")] = None,
    since: Annotated[datetime | None, Query(description="查询时间不早于")] = None,
    until: Annotated[datetime | None, Query(description="查询时间早于")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    before: Annotated[int | None, Query(ge=1)] = None,
) -> list[AuditRecordOut]:
    rows = await repository.audit_records(
        session,
        application_id=application_id,
        department=department,
        dataset_code=dataset,
        item_code=item_code,
        since=since,
        until=until,
        limit=limit,
        before_seq=before,
    )
    return [AuditRecordOut.model_validate(r) for r in rows]


@staff.post(
    "/audit/search",
    summary="Lookup audit records by filters, the data subject's number among them (in the body)",
)
async def search_audit_records(
    body: AuditFilterIn, session: ReadSession, _: Auditor, keys: PlatformKeys
) -> AuditPageOut:
    # The records hold the subject's keyed hash only, so the number is hashed the same way.
    subject_ref = (
        lookups.subject_ref(keys.blind_index, Subject(body.subject.kind, body.subject.id_number))
        if body.subject is not None
        else None
    )
    rows = await repository.audit_records(
        session,
        subject_ref=subject_ref,
        application_id=body.application_id,
        department=body.department,
        dataset_code=body.dataset,
        item_code=body.item_code,
        since=body.since,
        until=body.until,
        limit=body.limit,
        before_seq=body.before,
    )
    return AuditPageOut(
        items=[AuditRecordOut.model_validate(r) for r in rows],
        next_before=rows[-1].seq if len(rows) == body.limit else None,
    )


@staff.get(
    "/audit/checkpoints",
    summary="The chain's published checkpoints, newest first, each checked against the chain",
)
async def audit_checkpoints(
    session: ReadSession,
    _: Auditor,
    request: Request,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> list[CheckpointOut]:
    published = await audit.published_checkpoints(
        session, keys=audit.AuditKeys.from_settings(request.app.state.settings), limit=limit
    )
    return [
        CheckpointOut(
            seq=p.checkpoint.seq,
            mac=p.checkpoint.mac,
            at=datetime.fromisoformat(p.checkpoint.at),
            kid=p.checkpoint.kid,
            published_at=p.published_at,
            signature_valid=p.signature_valid,
            in_chain=p.in_chain,
        )
        for p in published
    ]


@staff.put(
    "/providers/{code}",
    summary="Register or update a data provider",
    responses=problem_responses(registry.InvalidRegistration),
)
async def put_provider(
    code: str,
    body: ProviderIn,
    session: UnitOfWork,
    keys: PlatformKeys,
    _: DataAdmin,
    request: Request,
) -> ProviderOut:
    row = await registry.register_provider(
        session,
        code=code,
        cipher=keys.cipher,
        url_policy=ProviderUrlPolicy.from_settings(request.app.state.settings),
        **body.model_dump(),
    )
    return ProviderOut.model_validate(row)


@staff.get("/grants", summary="The access policy")
async def list_grants(
    session: ReadSession,
    _: DataAdmin,
    consumer: str | None = None,
    item_code: str | None = None,
) -> list[GrantOut]:
    rows = await repository.grants(session, consumer=consumer, item_code=item_code)
    return [GrantOut.model_validate(r) for r in rows]


@staff.put(
    "/grants",
    summary="Grant (or change the grant of) a consumer on a dataset for an item",
    responses=problem_responses(registry.InvalidRegistration),
)
async def put_grant(body: GrantIn, session: UnitOfWork, _: DataAdmin) -> GrantOut:
    row = await registry.put_grant(
        session,
        consumer=body.consumer,
        dataset_code=body.dataset,
        item_code=body.item_code,
        disclose_fields=body.disclose_fields,
        verify_fields=body.verify_fields,
        consent_required=body.consent_required,
        legal_basis=body.legal_basis,
    )
    return GrantOut.model_validate(row)


@staff.delete(
    "/grants/{grant_id}",
    status_code=204,
    summary="Withdraw a grant",
    responses=problem_responses(registry.UnknownGrant),
)
async def delete_grant(grant_id: uuid.UUID, session: UnitOfWork, _: DataAdmin) -> None:
    await registry.delete_grant(session, grant_id=str(grant_id))
