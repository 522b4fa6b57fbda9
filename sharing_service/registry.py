"""The data-sharing registry: providers, datasets and the access policy (共享目录与授权)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from sharing_service import repository
from sharing_service.directory import token_context
from sharing_service.egress import LOCAL_POLICY, ProviderUrlPolicy, UrlRefused
from sharing_service.models import AccessGrant, CertificateType, Dataset, Provider
from wangban.crypto import FieldCipher
from wangban.errors import NotFound, ValidationFailed

DEMO_DIR = Path(__file__).parent / "demo"


class UnknownGrant(NotFound):
    type_slug = "grant-not-found"
    title = "找不到该授权"


class InvalidRegistration(ValidationFailed):
    type_slug = "invalid-registration"
    title = "共享目录登记信息有误"


async def register_provider(
    session: AsyncSession,
    *,
    code: str,
    name: str,
    kind: str,
    base_url: str | None = None,
    token: str | None = None,
    connect_timeout_s: float = 2.0,
    read_timeout_s: float = 5.0,
    enabled: bool = True,
    cipher: FieldCipher | None = None,
    url_policy: ProviderUrlPolicy = LOCAL_POLICY,
) -> Provider:
    """Create or update a provider. An ``http`` provider needs a URL and a credential; the
    credential is stored encrypted and never returned. The URL must pass ``url_policy``
    (:mod:`sharing_service.egress`: https and no internal address in production)."""
    if kind not in ("sandbox", "http"):
        raise InvalidRegistration("数据提供方类型只能是 sandbox 或 http")
    if kind == "http" and base_url:
        try:
            await url_policy.check(base_url)
        except UrlRefused as refused:
            raise InvalidRegistration(str(refused)) from None
    row = await repository.provider(session, code)
    if row is None:
        row = Provider(code=code)
        session.add(row)
    if kind == "http":
        if not base_url or not (token or row.token_enc):
            raise InvalidRegistration("接口方式的数据提供方必须登记接口地址和访问凭证")
        if token:
            if cipher is None:
                raise ValueError("a cipher is needed to store a provider token")
            row.token_enc = cipher.encrypt(token, context=token_context(code))
    row.name, row.kind, row.base_url = name, kind, base_url
    row.connect_timeout_s, row.read_timeout_s, row.enabled = (
        connect_timeout_s,
        read_timeout_s,
        enabled,
    )
    await session.flush()
    return row


async def put_grant(
    session: AsyncSession,
    *,
    consumer: str,
    dataset_code: str,
    item_code: str,
    disclose_fields: Sequence[str],
    verify_fields: Sequence[str] = (),
    consent_required: bool = False,
    legal_basis: str = "",
) -> AccessGrant:
    """Create or replace the grant of ``consumer`` on ``dataset_code`` for ``item_code``."""
    dataset = await repository.dataset(session, dataset_code)
    if dataset is None:
        raise InvalidRegistration(f"共享数据目录中没有数据集 {dataset_code}")
    known = {f["name"] for f in dataset.fields}
    unknown = sorted((set(disclose_fields) | set(verify_fields)) - known)
    if unknown:
        raise InvalidRegistration(f"数据集「{dataset.name}」没有这些字段：{'、'.join(unknown)}")
    row = await repository.grant(
        session, consumer=consumer, dataset_code=dataset_code, item_code=item_code
    )
    if row is None:
        row = AccessGrant(
            id=str(uuid.uuid4()), consumer=consumer, dataset_code=dataset_code, item_code=item_code
        )
        session.add(row)
    row.disclose_fields = sorted(set(disclose_fields))
    row.verify_fields = sorted(set(verify_fields) - set(disclose_fields))
    row.consent_required = consent_required
    row.legal_basis = legal_basis
    await session.flush()
    return row


async def delete_grant(session: AsyncSession, *, grant_id: str) -> None:
    row = await session.get(AccessGrant, grant_id)
    if row is None:
        raise UnknownGrant()
    await session.delete(row)
    await session.flush()


def _demo(name: str) -> Any:
    return json.loads((DEMO_DIR / name).read_text(encoding="utf-8"))


async def seed_registry(session: AsyncSession) -> None:
    """The demo registry (东莞's departments on the sandbox provider), the access policy the
    demo catalogue needs, and its certificate types. Idempotent: what exists is left alone."""
    registry = _demo("datasets.json")
    for provider in registry["providers"]:
        if await repository.provider(session, provider["code"]) is None:
            await register_provider(
                session, code=provider["code"], name=provider["name"], kind=provider["kind"]
            )
    for dataset in registry["datasets"]:
        if await repository.dataset(session, dataset["code"]) is None:
            session.add(
                Dataset(
                    code=dataset["code"],
                    name=dataset["name"],
                    provider_code=dataset["provider"],
                    subject_kinds=dataset["subject_kinds"],
                    legal_basis=dataset["legal_basis"],
                    freshness=dataset["freshness"],
                    description=dataset.get("description", ""),
                    fields=dataset["fields"],
                )
            )
    await session.flush()
    for grant in _demo("grants.json"):
        existing = await repository.grant(
            session,
            consumer=grant["consumer"],
            dataset_code=grant["dataset"],
            item_code=grant["item_code"],
        )
        if existing is None:
            await put_grant(
                session,
                consumer=grant["consumer"],
                dataset_code=grant["dataset"],
                item_code=grant["item_code"],
                disclose_fields=grant["disclose_fields"],
                verify_fields=grant["verify_fields"],
                consent_required=grant["consent_required"],
                legal_basis=grant["legal_basis"],
            )
    for type_ in _demo("certificate_types.json"):
        existing_type = await repository.certificate_type(session, type_["code"])
        if existing_type is None:
            session.add(CertificateType(**type_))
        elif existing_type.fields != type_["fields"]:
            # Where each item comes from is demo data too: a corrected mapping reaches a
            # library seeded by an earlier release (the issued certificates are unchanged).
            existing_type.fields = type_["fields"]
    await session.flush()
