"""The same Idempotency-Key with a different request (issue 18, defect 6), through the gateway.

Before, intake answered 200 with the application the key first made and silently dropped the
change. Now the key is kept with a fingerprint of the request: the same request again is the
same application (200), another one is 422 ``idempotency-key-reused`` (as the IETF
Idempotency-Key draft says), and an application stored before fingerprints were kept counts as
the same request. The item has a personal (``x-personal``) field, stored encrypted with a fresh
nonce: the fingerprint is of the request as received, so a repeat still matches."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import func, select, update

from catalog_service import service as catalog
from catalog_service.events import ItemPublished
from catalog_service.schemas import ItemContent
from intake_service import consumers
from intake_service.models import Application
from sandbox import PERSONAS
from tests.catalog.support import item_content
from tests.gateway.support import Gateway, running_gateway
from tests.infrastructure import Infrastructure
from wangban.db import Database
from wangban.events import envelope_for

PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
async def gateway(infrastructure: Infrastructure, database: Database) -> AsyncIterator[Gateway]:
    async with running_gateway(infrastructure, database) as gw:
        yield gw


async def _item(gateway: Gateway) -> str:
    """An item published in the catalogue and known to intake (its copy as the event gives
    it), whose only material is a commitment (nothing to look up) and whose form has a
    personal field."""
    content: ItemContent = item_content(
        materials=[{"name": "承诺书", "source": "commitment"}],
        auto_approval=False,
        rules=[],
        form_schema={
            "type": "object",
            "properties": {
                "bank_account": {"type": "string", "title": "收款银行账号", "x-personal": True},
                "note": {"type": "string", "title": "备注"},
            },
            "required": ["bank_account"],
        },
    )
    async with gateway.database.sessionmaker() as session, session.begin():
        draft = await catalog.create_item_draft(session, content=content)
        await catalog.publish_version(session, version_id=draft.id)
    guide = await gateway.client.get(f"/api/v1/items/{content.implementing_code}")
    assert guide.status_code == 200, guide.text
    event = ItemPublished(
        item_id=guide.json()["item_id"],
        version_id=guide.json()["id"],
        version=1,
        implementing_code=content.implementing_code,
        lists=[],
        published_at=guide.json()["published_at"],
        content=guide.json()["content"],
    )
    async with gateway.database.sessionmaker() as session, session.begin():
        await consumers.keep_item_version(
            session, event=event, envelope=envelope_for(event, source="/t")
        )
    return content.implementing_code


async def _applications_with_key(gateway: Gateway, key: str) -> int:
    async with gateway.database.sessionmaker() as session:
        count = await session.scalar(
            select(func.count()).select_from(Application).where(Application.idempotency_key == key)
        )
    return int(count or 0)


async def _apply(gateway: Gateway, headers: dict[str, str], key: str, body: dict[str, Any]) -> Any:
    return await gateway.client.post(
        "/api/v1/applications", json=body, headers={**headers, "Idempotency-Key": key}
    )


async def test_the_same_key_with_another_request_is_refused_not_answered_with_the_old_one(
    gateway: Gateway,
) -> None:
    persona = PERSONAS[0]
    headers = await gateway.citizen(name=persona.name, id_number=persona.id_number)
    code = await _item(gateway)
    key = str(uuid.uuid4())
    first = {
        "item_code": code,
        "form": {"bank_account": "6222000011112222", "note": "第一次"},
        "materials": [{"index": 0, "commitment": True}],
    }
    created = await _apply(gateway, headers, key, first)
    assert created.status_code == 201, created.text
    application_id = created.json()["id"]

    # The same request again (a retry): the same application, once.
    again = await _apply(gateway, headers, key, first)
    assert again.status_code == 200, again.text
    assert again.json()["id"] == application_id

    # The same key with a changed form: refused, and nothing changed.
    changed = {**first, "form": {"bank_account": "6222000099998888", "note": "改过了"}}
    refused = await _apply(gateway, headers, key, changed)
    assert refused.status_code == 422, refused.text
    assert refused.headers["content-type"] == PROBLEM
    problem = refused.json()
    assert problem["type"] == "urn:wangban:problem:idempotency-key-reused"
    assert "Idempotency-Key" in problem["detail"] and "新的" in problem["detail"]
    assert problem["application_id"] == application_id
    assert "6222000099998888" not in refused.text and "6222000011112222" not in refused.text
    # The materials alone differing is another request too.
    assert (await _apply(gateway, headers, key, {**first, "materials": []})).status_code == 422

    stored = await gateway.client.get(f"/api/v1/applications/{application_id}", headers=headers)
    assert stored.json()["form"]["bank_account"] == "6222000011112222"
    assert await _applications_with_key(gateway, key) == 1

    # A new key for the changed request: a new application.
    other = await _apply(gateway, headers, str(uuid.uuid4()), changed)
    assert other.status_code == 201, other.text
    assert other.json()["id"] != application_id


async def test_an_application_stored_before_fingerprints_counts_as_the_same_request(
    gateway: Gateway,
) -> None:
    persona = PERSONAS[1]
    headers = await gateway.citizen(name=persona.name, id_number=persona.id_number)
    code = await _item(gateway)
    key = str(uuid.uuid4())
    body = {
        "item_code": code,
        "form": {"bank_account": "6222000033334444"},
        "materials": [{"index": 0, "commitment": True}],
    }
    created = await _apply(gateway, headers, key, body)
    assert created.status_code == 201, created.text
    async with gateway.database.sessionmaker() as session, session.begin():
        await session.execute(
            update(Application)
            .where(Application.id == created.json()["id"])
            .values(idempotency_fingerprint=None)
        )
    changed = {**body, "form": {"bank_account": "6222000055556666"}}
    answer = await _apply(gateway, headers, key, changed)
    assert answer.status_code == 200, answer.text
    assert answer.json()["id"] == created.json()["id"]
