"""Rebinding an account's real name to another person takes 实人 away: the face WeChat checked
was the previous person's. Binding the same person again keeps it. Through the gateway, with
the sandbox register and a local WeChat server."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import delete

from catalog_service import service as catalog
from gateway.models import Account
from sandbox.population import PERSONAS, Persona
from tests.catalog.support import item_content
from tests.fakes.wechat import FakeWeChat, serve_fake_wechat
from tests.gateway.support import Gateway, running_gateway, verify_real_person
from tests.infrastructure import Infrastructure
from wangban.crypto import BlindIndex
from wangban.db import Database

APPID = "wx00000000rebind00"
SECRET = "rebind-secret"
FIRST, SECOND = PERSONAS[0], PERSONAS[1]


@pytest.fixture
async def running(
    infrastructure: Infrastructure, database: Database, tmp_path: Path
) -> AsyncIterator[tuple[Gateway, FakeWeChat]]:
    async with (
        serve_fake_wechat(appid=APPID, secret=SECRET) as wechat,
        running_gateway(
            infrastructure,
            database,
            data_dir=tmp_path,
            wechat_api_base=wechat.base_url,
            wechat_appid=APPID,
            wechat_app_secret=SECRET,
        ) as gateway,
    ):
        # One account per person: earlier tests' accounts of these personas step aside.
        index = BlindIndex.from_settings(gateway.settings)
        refs = [index.resident_id(p.id_number) for p in (FIRST, SECOND)]
        async with database.sessionmaker() as session, session.begin():
            await session.execute(delete(Account).where(Account.person_ref.in_(refs)))
        yield gateway, wechat


async def _real_person(
    gateway: Gateway, wechat: FakeWeChat, person: Persona
) -> tuple[dict[str, str], str]:
    """A WeChat login raised to 实名 and 实人 as ``person``: its auth header and openid."""
    openid = f"o-rebind-{uuid.uuid4().hex[:8]}"
    wechat.login_codes[f"code-{openid}"] = (openid, None)
    login = await gateway.client.post("/api/v1/auth/wechat", json={"code": f"code-{openid}"})
    assert login.status_code == 200, login.text
    headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
    headers = await verify_real_person(
        gateway.client, wechat, headers, openid=openid, name=person.name, id_number=person.id_number
    )
    return headers, openid


async def _bind(gateway: Gateway, headers: dict[str, str], person: Persona) -> dict[str, str]:
    bound = await gateway.client.post(
        "/api/v1/me/real-name",
        json={"name": person.name, "id_number": person.id_number},
        headers=headers,
    )
    assert bound.status_code == 200, bound.text
    return {"Authorization": f"Bearer {bound.json()['access_token']}"}


async def test_rebinding_another_person_drops_real_person_and_its_open_face_check(
    running: tuple[Gateway, FakeWeChat], database: Database
) -> None:
    gateway, wechat = running
    # An item that needs 实人, published (intake learns it from the catalog when asked).
    content = item_content(
        assurance="real_person", materials=[{"name": "承诺书", "source": "commitment"}]
    )
    async with database.sessionmaker() as session, session.begin():
        draft = await catalog.create_item_draft(session, content=content)
        await catalog.publish_version(session, version_id=draft.id)
    headers, openid = await _real_person(gateway, wechat, FIRST)
    me = (await gateway.client.get("/api/v1/me", headers=headers)).json()
    assert me["assurance"] == "real_person"
    # A face check started for the first person, not finished before the rebind.
    started = await gateway.client.post("/api/v1/me/real-person/start", headers=headers)
    assert started.status_code == 200, started.text

    headers = await _bind(gateway, headers, SECOND)

    me = (await gateway.client.get("/api/v1/me", headers=headers)).json()
    assert me["assurance"] == "real_name"
    refused = await gateway.client.post(
        "/api/v1/applications",
        json={"item_code": content.implementing_code, "form": {}},
        headers={**headers, "Idempotency-Key": str(uuid.uuid4())},
    )
    assert refused.status_code == 403, refused.text
    problem = refused.json()
    assert problem["type"] == "urn:wangban:problem:insufficient-assurance"
    assert problem["required_assurance"] == "real_person"
    assert problem["current_assurance"] == "real_name"
    assert "实人" in problem["detail"]
    # The first person's face check cannot raise the second person to 实人.
    wechat.complete_face(openid, 10000)
    finished = await gateway.client.post(
        "/api/v1/me/real-person",
        json={"verify_id": started.json()["verify_id"]},
        headers=headers,
    )
    assert finished.status_code == 404, finished.text
    me = (await gateway.client.get("/api/v1/me", headers=headers)).json()
    assert me["assurance"] == "real_name"


async def test_binding_the_same_person_again_keeps_real_person(
    running: tuple[Gateway, FakeWeChat],
) -> None:
    gateway, wechat = running
    headers, _ = await _real_person(gateway, wechat, FIRST)

    headers = await _bind(gateway, headers, FIRST)

    me = (await gateway.client.get("/api/v1/me", headers=headers)).json()
    assert me["assurance"] == "real_person"
