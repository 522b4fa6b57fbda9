"""The gateway in front of the real services, for tests.

Every service runs as itself (its app, its schema, real PostgreSQL); the gateway reaches them
over in-process ASGI transports, and the sharing service also on a local port because intake
and approval call it by URL. ``background=True`` starts the relays, consumers and the notify
dispatcher too (the journey needs events to flow); otherwise only HTTP runs.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import delete

from gateway import accounts
from gateway.models import Account
from gateway.sessions import client_tokens
from gateway.upstream import SERVICES, Upstreams
from tests.fakes.wechat import FakeWeChat
from tests.infrastructure import Infrastructure, make_settings
from tests.serving import serve_asgi
from wangban.app import create_service_app
from wangban.auth import AssuranceLevel, Identity
from wangban.consumer import wait_until_assigned
from wangban.crypto import BlindIndex
from wangban.db import Database
from wangban.services import load_spec
from wangban.settings import Settings


@dataclass
class Gateway:
    client: httpx.AsyncClient
    app: FastAPI
    settings: Settings
    database: Database
    services: dict[str, FastAPI] = field(default_factory=dict)

    def bearer(self, identity: Identity) -> dict[str, str]:
        # A family of its own, as a login gives (the gateway refuses tokens without one).
        token = client_tokens(self.settings).issue(
            identity, issuer="gateway", family=str(uuid.uuid4())
        )
        return {"Authorization": f"Bearer {token}"}

    def staff(
        self, role: str, *, department: str | None = None, region: str | None = "441900"
    ) -> dict[str, str]:
        return self.bearer(
            Identity(
                subject=f"s-{role}-{department or 'x'}",
                kind="staff",
                roles=frozenset({role}),
                department=department,
                region=region,
                assurance=AssuranceLevel.REAL_NAME,
            )
        )

    async def citizen(
        self,
        *,
        assurance: str = "real_person",
        name: str | None = None,
        id_number: str | None = None,
    ) -> dict[str, str]:
        """A logged-in citizen through the development login; returns the auth header. An
        earlier test's account for the same person steps aside (one account per person)."""
        body: dict[str, Any] = {"openid": f"o-{uuid.uuid4().hex}", "assurance": assurance}
        if assurance != "wechat":
            body |= {"name": name, "id_number": id_number}
            if id_number:
                person_ref = BlindIndex.from_settings(self.settings).resident_id(id_number)
                async with self.database.sessionmaker() as session, session.begin():
                    await session.execute(delete(Account).where(Account.person_ref == person_ref))
        answer = await self.client.post("/api/v1/auth/dev", json=body)
        assert answer.status_code == 200, answer.text
        return {"Authorization": f"Bearer {answer.json()['access_token']}"}

    async def staff_account(
        self, username: str, password: str, *, roles: list[str], department: str | None
    ) -> None:
        async with self.database.sessionmaker() as session, session.begin():
            await accounts.create_staff(
                session,
                username=username,
                display_name=username,
                password=password,
                roles=roles,
                department=department,
                region="441900",
            )


def _fresh_address() -> str:
    value = uuid.uuid4().int
    return f"10.{value % 256}.{(value >> 8) % 256}.{(value >> 16) % 256}"


@asynccontextmanager
async def running_gateway(
    infrastructure: Infrastructure,
    database: Database,
    *,
    background: bool = False,
    **overrides: Any,
) -> AsyncIterator[Gateway]:
    async with AsyncExitStack() as stack:
        base = make_settings(infrastructure, **overrides)
        sharing = create_service_app(load_spec("sharing"), base, background=background)
        await stack.enter_async_context(sharing.router.lifespan_context(sharing))
        sharing_url = await stack.enter_async_context(serve_asgi(sharing))
        # The catalog by URL too: approval asks it for a version it has not read yet (an
        # event of an earlier test's item, read from the shared topic), as in production.
        catalog = create_service_app(
            load_spec("catalog"),
            make_settings(infrastructure, sharing_url=sharing_url, **overrides),
            background=background,
        )
        await stack.enter_async_context(catalog.router.lifespan_context(catalog))
        catalog_url = await stack.enter_async_context(serve_asgi(catalog))
        # Sharing (started first: the catalog needs its URL) asks the catalog for a version
        # its copy lacks: it reads the URL from its settings when it first needs it.
        sharing.state.settings = sharing.state.settings.model_copy(
            update={"catalog_url": catalog_url}
        )
        settings = make_settings(
            infrastructure, sharing_url=sharing_url, catalog_url=catalog_url, **overrides
        )
        services = {"sharing": sharing, "catalog": catalog}
        for name in SERVICES:
            if name not in services:
                services[name] = create_service_app(
                    load_spec(name), settings, background=background
                )
                app = services[name]
                await stack.enter_async_context(app.router.lifespan_context(app))
        if background:
            await wait_until_assigned(
                [r for app in services.values() for r in app.state.runtime.runners], timeout_s=90
            )
        # The gateway last: its logins report openids to notify (over ASGI, set just below).
        gateway = create_service_app(load_spec("gateway"), settings, background=background)
        await stack.enter_async_context(gateway.router.lifespan_context(gateway))
        await gateway.state.upstreams.close()
        gateway.state.upstreams = Upstreams(
            settings,
            transports={name: httpx.ASGITransport(app=app) for name, app in services.items()},
        )
        client = await stack.enter_async_context(
            httpx.AsyncClient(
                # A fresh address per gateway: rate-limit counters live in the database.
                transport=httpx.ASGITransport(app=gateway, client=(_fresh_address(), 50000)),
                base_url="http://gateway",
            )
        )
        yield Gateway(client, gateway, settings, database, services)


async def verify_real_person(
    api: httpx.AsyncClient,
    wechat: FakeWeChat,
    headers: dict[str, str],
    *,
    openid: str,
    name: str,
    id_number: str,
) -> dict[str, str]:
    """实名 (name and ID number against the register), then 实人 (WeChat's face check, passed
    on the fake and its result asked of WeChat), as a citizen does through the gateway; the
    auth header of the token that carries the new assurance."""
    named = await api.post(
        "/api/v1/me/real-name", json={"name": name, "id_number": id_number}, headers=headers
    )
    assert named.status_code == 200, named.text
    headers = {"Authorization": f"Bearer {named.json()['access_token']}"}
    started = await api.post("/api/v1/me/real-person/start", headers=headers)
    assert started.status_code == 200, started.text
    wechat.complete_face(openid, 10000)
    person = await api.post(
        "/api/v1/me/real-person", json={"verify_id": started.json()["verify_id"]}, headers=headers
    )
    assert person.status_code == 200, person.text
    return {"Authorization": f"Bearer {person.json()['access_token']}"}
