"""Idempotent submission: an ``Idempotency-Key`` makes one application, and the same key with
another request is refused rather than answered with the old application."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from intake_service import repository
from intake_service.applications.creation import Keys
from intake_service.applications.errors import IdempotencyKeyReused
from intake_service.models import Application

IDEMPOTENCY_PURPOSE = "idempotency_request"
"""Blind-index purpose of request fingerprints: keyed, because a request carries personal data
(an unkeyed hash of a form would let anyone holding the table test guesses of it)."""


def request_fingerprint(request: Mapping[str, Any], *, target: str, keys: Keys) -> str:
    """The fingerprint stored with an Idempotency-Key: a keyed hash of the request as received
    (canonical JSON), not of the stored application, whose personal fields are encrypted with
    a fresh nonce and whose prefilled fields the government's values replaced. ``target`` names
    what is applied for by its code, and ``request`` leaves the version id and the code out: a
    code stands for the current version, so a retry after the catalogue published a new
    version of the item is still the same request, and so is a retry naming the item by code
    that named it by version before (a gateway upgraded in between)."""
    content = {
        k: v
        for k, v in request.items()
        if k not in ("item_version_id", "item_code", "bundle_version_id")
    }
    canonical = json.dumps(
        {"target": target, "request": content},
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return keys.blind_index.compute(canonical, purpose=IDEMPOTENCY_PURPOSE)


def check_same_request(existing: Application, fingerprint: str | None) -> Application:
    """``existing`` when it was created by this request again; raises
    :class:`IdempotencyKeyReused` when its key came with another request. An application stored
    before fingerprints were kept (or without one) counts as the same request."""
    stored = existing.idempotency_fingerprint
    if stored is not None and fingerprint is not None and stored != fingerprint:
        raise IdempotencyKeyReused(
            "该 Idempotency-Key 已用于一份内容不同的申请，本次修改未被保存。"
            "如需提交修改后的申请，请使用新的 Idempotency-Key",
            extra={"application_id": existing.id},
        )
    return existing


async def recent_idempotent(
    session: AsyncSession, *, applicant_subject: str, key: str | None, fingerprint: str | None
) -> Application | None:
    """The application this key already made, if the request is the same again; raises
    :class:`IdempotencyKeyReused` if the key came with another request."""
    if key is None:
        return None
    existing = await repository.by_idempotency_key(
        session, applicant_subject=applicant_subject, key=key
    )
    return check_same_request(existing, fingerprint) if existing is not None else None


async def made_first(
    session: AsyncSession, *, applicant_subject: str, key: str, fingerprint: str | None
) -> Application:
    """The application this key's first request made, for a request whose insert found the key
    taken (the first committed while this one was on its way: the unique index made the insert
    wait for it, then insert nothing); raises :class:`IdempotencyKeyReused` if it came with
    another request."""
    existing = await repository.by_idempotency_key(
        session, applicant_subject=applicant_subject, key=key
    )
    if existing is None:
        raise RuntimeError("an Idempotency-Key found taken names no application")
    return check_same_request(existing, fingerprint)
