"""service_client against a real uvicorn server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import socket
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Any

import httpx
import jwt
import pytest
import uvicorn
from fastapi import Depends, FastAPI, Request, Response
from pydantic import SecretStr

from wangban.auth import REVIEWER, AssuranceLevel, Identity, current_identity, identity_var
from wangban.errors import install_problem_handlers
from wangban.http import service_client
from wangban.observability import bound_context
from wangban.settings import Environment, Settings

KEY = "http-test-internal-token-key-0123456789"
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def make_server_app(settings: Settings, calls: Counter[str]) -> FastAPI:
    app = FastAPI()
    app.state.settings = settings
    install_problem_handlers(app)

    async def flaky(request: Request, key: str, fail: int) -> Response:
        calls[key] += 1
        if calls[key] <= fail:
            retry_after = request.query_params.get("retry_after", "0")
            return Response(status_code=503, headers={"Retry-After": retry_after})
        return Response(content=str(calls[key]), media_type="text/plain")

    @app.get("/flaky")
    async def flaky_get(request: Request, key: str, fail: int = 0) -> Response:
        return await flaky(request, key, fail)

    @app.post("/flaky")
    async def flaky_post(request: Request, key: str, fail: int = 0) -> Response:
        await request.body()
        return await flaky(request, key, fail)

    @app.get("/whoami")
    async def whoami(
        request: Request, identity: Annotated[Identity, Depends(current_identity)]
    ) -> dict[str, Any]:
        return {
            "identity": identity.model_dump(mode="json"),
            "request_id": request.headers.get("x-request-id"),
            "correlation_id": request.headers.get("x-correlation-id"),
            "traceparent": request.headers.get("traceparent"),
            "authorization": request.headers.get("authorization"),
            "user_agent": request.headers.get("user-agent"),
        }

    return app


@dataclass
class Server:
    settings: Settings
    calls: Counter[str]


@pytest.fixture(scope="module")
async def server() -> AsyncIterator[Server]:
    server_settings = Settings(env=Environment.TEST, internal_token_key=SecretStr(KEY))
    calls: Counter[str] = Counter()
    config = uvicorn.Config(
        make_server_app(server_settings, calls),
        host="127.0.0.1",
        port=0,  # the OS picks a free port; read back below
        log_config=None,
        access_log=False,
        lifespan="off",
    )
    uv = uvicorn.Server(config)
    task = asyncio.create_task(uv.serve())
    try:
        async with asyncio.timeout(10):
            while not uv.started:
                if task.done():
                    task.result()
                await asyncio.sleep(0.01)
        port = uv.servers[0].sockets[0].getsockname()[1]
        client_settings = Settings(
            env=Environment.TEST,
            internal_token_key=SecretStr(KEY),
            catalog_url=f"http://127.0.0.1:{port}",
            http_retries=2,
            http_timeout_s=2.0,
        )
        yield Server(client_settings, calls)
    finally:
        uv.should_exit = True
        await asyncio.wait_for(task, 10)


@pytest.fixture
async def client(server: Server) -> AsyncIterator[httpx.AsyncClient]:
    async with service_client(server.settings, "catalog", caller="intake") as c:
        yield c


async def test_get_is_retried_on_503(server: Server, client: httpx.AsyncClient) -> None:
    response = await client.get("/flaky", params={"key": "get-ok", "fail": 2})
    assert response.status_code == 200
    assert server.calls["get-ok"] == 3


async def test_retries_are_bounded(server: Server, client: httpx.AsyncClient) -> None:
    response = await client.get("/flaky", params={"key": "get-gives-up", "fail": 5})
    assert response.status_code == 503
    assert server.calls["get-gives-up"] == 1 + server.settings.http_retries


async def test_long_retry_after_is_not_waited_for(
    server: Server, client: httpx.AsyncClient
) -> None:
    response = await client.get(
        "/flaky", params={"key": "get-long-outage", "fail": 1, "retry_after": "30"}
    )
    assert response.status_code == 503
    assert server.calls["get-long-outage"] == 1


async def test_post_without_idempotency_key_is_not_retried(
    server: Server, client: httpx.AsyncClient
) -> None:
    response = await client.post("/flaky", params={"key": "post-plain", "fail": 1}, json={"a": 1})
    assert response.status_code == 503
    assert server.calls["post-plain"] == 1


async def test_post_with_idempotency_key_is_retried(
    server: Server, client: httpx.AsyncClient
) -> None:
    response = await client.post(
        "/flaky",
        params={"key": "post-keyed", "fail": 1},
        json={"a": 1},
        headers={"Idempotency-Key": "apply-0001"},
    )
    assert response.status_code == 200
    assert server.calls["post-keyed"] == 2


async def test_connection_refused_is_raised_after_retries() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again on exit: nothing listens there
    settings = Settings(
        env=Environment.TEST, catalog_url=f"http://127.0.0.1:{port}", http_retries=1
    )
    async with service_client(settings, "catalog", caller="intake") as c:
        with pytest.raises(httpx.ConnectError):
            await c.get("/anything")


async def test_ids_and_identity_are_forwarded(client: httpx.AsyncClient) -> None:
    identity = Identity(
        subject="s-9",
        kind="staff",
        roles=frozenset({REVIEWER}),
        department="住建局",
        assurance=AssuranceLevel.REAL_PERSON,
    )
    token = identity_var.set(identity)
    try:
        with bound_context(request_id="req-77", correlation_id="corr-5", traceparent=TRACEPARENT):
            response = await client.get("/whoami")
    finally:
        identity_var.reset(token)
    assert response.status_code == 200, response.text
    body = response.json()
    # The server verified the token with current_identity and got the same person back.
    assert Identity.model_validate(body["identity"]) == identity
    assert body["request_id"] == "req-77"
    assert body["correlation_id"] == "corr-5"
    assert body["traceparent"] == TRACEPARENT
    assert body["user_agent"] == "wangban-intake"
    claims = jwt.decode(
        body["authorization"].removeprefix("Bearer "),
        KEY,
        algorithms=["HS256"],
        audience="wangban-internal",
    )
    assert claims["iss"] == "intake"


async def test_without_identity_no_token_is_sent(client: httpx.AsyncClient) -> None:
    response = await client.get("/whoami")
    assert response.status_code == 401
    assert response.json()["detail"] == "缺少身份令牌"


async def test_explicit_authorization_is_not_replaced(client: httpx.AsyncClient) -> None:
    identity = Identity(subject="u-1", kind="citizen", assurance=AssuranceLevel.WECHAT)
    token = identity_var.set(identity)
    try:
        response = await client.get("/whoami", headers={"Authorization": "Bearer forged"})
    finally:
        identity_var.reset(token)
    assert response.status_code == 401
    assert response.json()["detail"] == "身份令牌无效"
