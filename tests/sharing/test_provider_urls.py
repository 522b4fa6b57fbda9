"""Provider URLs cannot reach internal addresses (Trust finding 14): in production a provider
must be https and resolve to public addresses only, unless allow-listed; the rule holds at
registration and again at every call; and a lookup never follows a redirect."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from sharing_service import registry
from sharing_service.egress import LOCAL_POLICY, ProviderUrlPolicy
from sharing_service.http_provider import HttpProvider
from sharing_service.models import Provider
from sharing_service.providers import ProviderUnavailable, Subject
from tests.serving import serve_asgi
from wangban.app import create_service_app
from wangban.auth import AssuranceLevel, Identity, InternalTokens
from wangban.db import Database
from wangban.services import load_spec
from wangban.settings import Environment, Settings

PERSON = Subject(kind="person", id="441900194203150012")
TOKEN = "department-credential"


async def _register(
    settings: Settings, database: Database, base_url: str, *, allowed: Sequence[str] = ()
) -> httpx.Response:
    """PUT /admin/providers/{code} on a sharing service running with production settings
    (only the environment switched: the rest of production's checks are not the point)."""
    production = settings.model_copy(
        update={"env": Environment.PRODUCTION, "provider_allowed_hosts": list(allowed)}
    )
    admin = Identity(
        subject="admin-1",
        kind="staff",
        roles=frozenset({"data_admin"}),
        assurance=AssuranceLevel.REAL_NAME,
    )
    token = InternalTokens.from_settings(production).issue(admin, issuer="gateway")
    app = create_service_app(load_spec("sharing"), production, background=False)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://sharing"
        ) as client,
    ):
        return await client.put(
            f"/admin/providers/t-{uuid.uuid4().hex[:12]}",
            json={"name": "某部门", "kind": "http", "base_url": base_url, "token": TOKEN},
            headers={"Authorization": f"Bearer {token}"},
        )


async def _stored(database: Database, answer: httpx.Response) -> int:
    async with database.sessionmaker() as session:
        code = str(answer.request.url).rsplit("/", 1)[1]
        return 0 if await session.get(Provider, code) is None else 1


@pytest.mark.parametrize(
    "base_url",
    [
        "http://169.254.169.254/",
        "https://169.254.169.254/latest/meta-data",
        "https://127.0.0.1",
        "https://localhost:8443",
        "https://[::ffff:127.0.0.1]/",
        "https://10.2.3.4",
        "https://0.0.0.0",
        "http://1.1.1.1",
    ],
)
async def test_production_refuses_internal_and_plain_http_provider_urls(
    settings: Settings, database: Database, base_url: str
) -> None:
    answer = await _register(settings, database, base_url)
    assert answer.status_code == 422, answer.text
    assert answer.json()["type"].endswith("invalid-registration")
    assert await _stored(database, answer) == 0


async def test_allow_listed_hosts_and_networks_and_public_addresses_are_accepted(
    settings: Settings, database: Database
) -> None:
    for base_url, allowed in (
        ("https://127.0.0.1:8443", ["127.0.0.1"]),
        ("https://10.2.3.4/api", ["10.0.0.0/8"]),
        ("https://localhost:8443", ["localhost"]),
        ("https://1.1.1.1", []),
    ):
        answer = await _register(settings, database, base_url, allowed=allowed)
        assert answer.status_code == 200, (base_url, answer.text)
        assert await _stored(database, answer) == 1
    # Allow-listing one network does not open another.
    refused = await _register(settings, database, "https://127.0.0.1", allowed=["10.0.0.0/8"])
    assert refused.status_code == 422


async def test_the_metadata_address_is_refused_in_every_environment(
    db_session: AsyncSession,
) -> None:
    with pytest.raises(registry.InvalidRegistration):
        await registry.register_provider(
            db_session,
            code="t-metadata",
            name="元数据",
            kind="http",
            base_url="http://169.254.169.254/",
            token=TOKEN,
            url_policy=LOCAL_POLICY,
        )


def _department(seen: list[str]) -> Starlette:
    async def answer(request: Request) -> Response:
        seen.append(request.url.path)
        return JSONResponse(
            {"found": True, "record": {"name": "陈桂英"}, "updated_at": "2026-11-20T08:30:00+08:00"}
        )

    return Starlette(routes=[Route("/{path:path}", answer, methods=["POST"])])


async def test_a_call_is_checked_again_and_refused_when_the_address_is_internal() -> None:
    seen: list[str] = []
    async with serve_asgi(_department(seen)) as url:
        production = ProviderUrlPolicy.build(require_https=False, public_only=True)
        refused = HttpProvider(name="t", base_url=url, token=TOKEN, url_policy=production)
        try:
            with pytest.raises(ProviderUnavailable, match="address refused"):
                await refused.fetch(
                    dataset="gongan.huji", subject=PERSON, fields=["name"], request_id="r-1"
                )
        finally:
            await refused.close()
        assert seen == []
        listed = ProviderUrlPolicy.build(
            require_https=False, public_only=True, allowed=["127.0.0.0/8"]
        )
        allowed = HttpProvider(name="t", base_url=url, token=TOKEN, url_policy=listed)
        try:
            record = await allowed.fetch(
                dataset="gongan.huji", subject=PERSON, fields=["name"], request_id="r-2"
            )
        finally:
            await allowed.close()
        assert record is not None and len(seen) == 1


async def test_a_redirect_is_never_followed() -> None:
    elsewhere: list[str] = []
    async with serve_asgi(_department(elsewhere)) as target:

        async def redirect(request: Request) -> Response:
            return RedirectResponse(f"{target}/stolen", status_code=307)

        redirecting = Starlette(routes=[Route("/{path:path}", redirect, methods=["POST"])])
        async with serve_asgi(redirecting) as url:
            # Even a client built to follow redirects (a deployment's client factory) does
            # not follow one for a lookup.
            provider = HttpProvider(
                name="t",
                base_url=url,
                token=TOKEN,
                client_factory=lambda timeout: httpx.AsyncClient(
                    timeout=timeout, follow_redirects=True
                ),
            )
            try:
                with pytest.raises(ProviderUnavailable, match="307"):
                    await provider.fetch(
                        dataset="gongan.huji", subject=PERSON, fields=["name"], request_id="r-3"
                    )
            finally:
                await provider.close()
    assert elsewhere == []
