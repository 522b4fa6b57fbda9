"""The gateway's lean reads (issue 20): GETs to the services on the lean HTTP client
(``gateway.internal_http``) with the kit client's guarantees, the public catalogue's answers kept
a few seconds (``gateway.public_answers``), and the first screen and a search through them on
services reached over real local ports."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from sqlalchemy import text

from catalog_service import service as catalog
from catalog_service.schemas import BundleContent
from gateway.internal_http import InternalGets, TransportError
from gateway.public_answers import Kept, PublicAnswers
from gateway.schemas import HomeOut
from gateway.upstream import Upstreams
from sandbox import PERSONAS
from tests.catalog.support import item_content
from tests.gateway.support import running_gateway
from tests.infrastructure import Infrastructure
from tests.serving import serve_asgi
from wangban.auth import AssuranceLevel, Identity, InternalTokens, identity_var
from wangban.db import Database, TransactionHeldAcrossCall
from wangban.embedded import free_port
from wangban.observability import REQUEST_ID_HEADER, bound_context
from wangban.settings import Settings

TOKENS = InternalTokens("lean-reads-test-key-0123456789abcdef", ttl_s=60)
PERSON = Identity(subject="u-lean", kind="citizen", assurance=AssuranceLevel.REAL_NAME)


class Service:
    """A small service on a real port: what it was asked, on which connections."""

    def __init__(self) -> None:
        self.app = FastAPI()
        self.seen: list[dict[str, Any]] = []
        self.unavailable = 0
        self.retry_after = "0"
        app = self.app

        @app.get("/echo")
        async def echo(request: Request) -> dict[str, Any]:
            client = request.scope["client"]
            seen = {
                "query": str(request.url.query),
                "params": dict(request.query_params),
                "connection": f"{client[0]}:{client[1]}",
                "authorization": request.headers.get("authorization"),
                "request_id": request.headers.get(REQUEST_ID_HEADER),
                "custom": request.headers.get("x-custom"),
            }
            self.seen.append(seen)
            return seen

        @app.get("/chunked")
        async def chunked() -> StreamingResponse:
            async def parts() -> AsyncIterator[bytes]:
                for n in range(50):
                    yield f'{{"n":{n}}}\n'.encode()

            return StreamingResponse(parts(), media_type="application/x-ndjson")

        @app.get("/closing")
        async def closing(request: Request) -> Response:
            client = request.scope["client"]
            self.seen.append({"connection": f"{client[0]}:{client[1]}"})
            return JSONResponse({"ok": True}, headers={"Connection": "close"})

        @app.get("/slow")
        async def slow() -> dict[str, bool]:
            await asyncio.sleep(5)
            return {"late": True}

        @app.get("/flaky")
        async def flaky() -> Response:
            if self.unavailable > 0:
                self.unavailable -= 1
                return JSONResponse(
                    {"title": "busy"}, status_code=503, headers={"Retry-After": self.retry_after}
                )
            return JSONResponse({"ok": True})


@pytest.fixture
async def service() -> AsyncIterator[tuple[Service, str]]:
    served = Service()
    # Idle kept-alive connections are closed by the server after 0.3 s (uvicorn's default: 5).
    async with serve_asgi(served.app, timeout_keep_alive=0.3) as url:
        yield served, url


def _gets(url: str, **options: Any) -> InternalGets:
    values: dict[str, Any] = {
        "base_url": url,
        "service": "catalog",
        "caller": "gateway",
        "tokens": TOKENS,
        "timeout_s": 2.0,
        "retries": 0,
        "guard": "raise",
    } | options
    return InternalGets(**values)


async def test_a_get_carries_its_query_the_person_and_the_request_id_on_one_kept_connection(
    service: tuple[Service, str],
) -> None:
    served, url = service
    gets = _gets(url)
    try:
        marker = identity_var.set(PERSON)
        try:
            with bound_context(request_id="req-lean-1"):
                first = await gets.get(
                    "/echo",
                    params={"q": "公积金 社保&x=1", "auto_approval": True, "page": 2},
                    headers={"X-Custom": "yes"},
                )
        finally:
            identity_var.reset(marker)
        second = await gets.get("/echo", params={"flag": False})
    finally:
        await gets.aclose()
    assert first.status_code == 200 and first.headers["content-type"] == "application/json"
    body = first.json()
    assert body["params"] == {"q": "公积金 社保&x=1", "auto_approval": "true", "page": "2"}
    assert body["custom"] == "yes" and body["request_id"] == "req-lean-1"
    token = body["authorization"].removeprefix("Bearer ")
    assert TOKENS.verify(token).subject == "u-lean"  # the person, as the kit's client sends it
    assert second.json()["params"] == {"flag": "false"}
    assert second.json()["authorization"] is None  # no person bound: none sent
    # Kept alive: the second GET came on the first one's connection.
    assert served.seen[0]["connection"] == served.seen[1]["connection"]


async def test_a_connection_the_service_closed_while_idle_is_replaced_without_a_retry(
    service: tuple[Service, str],
) -> None:
    served, url = service
    gets = _gets(url, retries=0)
    try:
        assert (await gets.get("/echo")).status_code == 200
        await asyncio.sleep(0.8)  # the server closes the kept connection meanwhile
        again = await gets.get("/echo")
    finally:
        await gets.aclose()
    assert again.status_code == 200
    assert served.seen[0]["connection"] != served.seen[1]["connection"]


async def test_chunked_and_closing_answers_are_read_whole(service: tuple[Service, str]) -> None:
    served, url = service
    gets = _gets(url)
    try:
        chunked = await gets.get("/chunked")
        assert chunked.content.decode().splitlines() == [f'{{"n":{n}}}' for n in range(50)]
        await gets.get("/closing")
        await gets.get("/closing")
    finally:
        await gets.aclose()
    # The service said "Connection: close": the next GET needed a new connection.
    assert served.seen[0]["connection"] != served.seen[1]["connection"]


async def test_a_service_that_does_not_answer_in_time_or_at_all_is_a_transport_error(
    service: tuple[Service, str],
) -> None:
    _, url = service
    # A second is far below the 5 s the slow route takes and far above what the quick one
    # needs, however loaded the machine running the test is.
    slow = _gets(url, timeout_s=1.0)
    nobody = _gets(f"http://127.0.0.1:{free_port()}", retries=2)
    try:
        with pytest.raises(TransportError):
            await slow.get("/slow")
        with pytest.raises(TransportError):
            await nobody.get("/echo")
        # The slow call's connection was dropped, not handed to the next call mid-answer.
        assert (await slow.get("/echo")).status_code == 200
    finally:
        await slow.aclose()
        await nobody.aclose()


async def test_busy_answers_are_retried_unless_the_service_asks_for_longer(
    service: tuple[Service, str],
) -> None:
    served, url = service
    gets = _gets(url, retries=2)
    try:
        served.unavailable = 2
        assert (await gets.get("/flaky")).status_code == 200  # third attempt
        served.unavailable = 3
        assert (await gets.get("/flaky")).status_code == 503  # retries used up
        served.unavailable, served.retry_after = 1, "30"
        busy = await gets.get("/flaky")
        assert busy.status_code == 503 and busy.headers["retry-after"] == "30"
        assert served.unavailable == 0  # answered at once, not asked again
    finally:
        await gets.aclose()


async def test_no_get_inside_a_transaction_and_no_line_break_in_a_header(
    service: tuple[Service, str], database: Database
) -> None:
    served, url = service
    gets = _gets(url)
    try:
        async with database.sessionmaker() as session:
            await session.execute(text("SELECT 1"))  # raw SQL: in the unit's transaction
            with pytest.raises(TransactionHeldAcrossCall) as refused:
                await gets.get("/echo")
            assert "gateway → catalog GET /echo" in str(refused.value)
            await session.rollback()
        with pytest.raises(ValueError):
            await gets.get("/echo", headers={"X-Custom": "a\r\nAuthorization: Bearer x"})
        with pytest.raises(ValueError):
            await gets.get("/echo\r\nHost: elsewhere")
    finally:
        await gets.aclose()
    assert served.seen == []


# --- the public catalogue's answers, kept -----------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _kept(status: int, body: bytes = b"{}") -> Kept:
    return Kept(status=status, body=body, headers={}, until=0.0)


async def test_a_kept_answer_is_served_until_it_is_too_old() -> None:
    clock = Clock()
    answers = PublicAnswers(ttl_s=5, clock=clock)
    asked: list[int] = []

    async def ask() -> Kept:
        asked.append(1)
        return _kept(200, b'{"n":%d}' % len(asked))

    first = await answers.get("q", ask, passed=lambda k: k)
    clock.now += 4.9
    assert (await answers.get("q", ask, passed=lambda k: k)).body == first.body == b'{"n":1}'
    clock.now += 0.2
    assert (await answers.get("q", ask, passed=lambda k: k)).json() == {"n": 2}
    assert len(asked) == 2


async def test_only_successes_are_kept_and_concurrent_misses_ask_once() -> None:
    answers = PublicAnswers(ttl_s=5)
    calls = 0
    release = asyncio.Event()

    async def slow_ok() -> Kept:
        nonlocal calls
        calls += 1
        await release.wait()
        return _kept(200)

    waiting = [
        asyncio.create_task(answers.get("hot", slow_ok, passed=lambda k: k)) for _ in range(20)
    ]
    await asyncio.sleep(0.05)
    release.set()
    assert {(await w).status for w in waiting} == {200} and calls == 1

    async def problem() -> Kept:
        nonlocal calls
        calls += 1
        return _kept(503)

    for _ in range(3):
        assert (await answers.get("down", problem, passed=lambda k: k)).status == 503
    assert calls == 4  # a problem is asked again every time


async def test_the_asker_going_away_leaves_the_waiters_to_ask_themselves() -> None:
    answers = PublicAnswers(ttl_s=5)
    started = asyncio.Event()

    async def never() -> Kept:
        started.set()
        await asyncio.sleep(60)
        raise AssertionError("not reached")

    async def ok() -> Kept:
        return _kept(200)

    asker = asyncio.create_task(answers.get("k", never, passed=lambda k: k))
    await started.wait()
    waiter = asyncio.create_task(answers.get("k", ok, passed=lambda k: k))
    await asyncio.sleep(0.01)
    asker.cancel()
    assert (await waiter).status == 200
    with pytest.raises(asyncio.CancelledError):
        await asker


async def test_the_table_is_bounded_and_zero_seconds_keeps_nothing() -> None:
    answers = PublicAnswers(ttl_s=5, max_entries=3)

    async def ok() -> Kept:
        return _kept(200)

    for n in range(10):
        await answers.get(n, ok, passed=lambda k: k)
    assert answers.calls == 10
    await answers.get(9, ok, passed=lambda k: k)  # kept
    await answers.get(0, ok, passed=lambda k: k)  # dropped long ago
    assert answers.calls == 11
    never = PublicAnswers(ttl_s=0)
    for _ in range(3):
        await never.get("q", ok, passed=lambda k: k)
    assert never.calls == 3


# --- through the gateway, on real ports ---------------------------------------------------------


async def test_search_and_first_screen_through_the_lean_client(
    infrastructure: Infrastructure, database: Database, tmp_path: Path
) -> None:
    person = PERSONAS[0]
    async with database.sessionmaker() as session, session.begin():
        # An item the first screen lists (全程网办: 网上办), whatever else the database holds.
        draft = await catalog.create_item_draft(
            session, content=item_content(implementing_code=f"TEST-HOT-{uuid.uuid4().hex[:10]}")
        )
        await catalog.publish_version(session, version_id=draft.id)
    async with running_gateway(infrastructure, database, data_dir=tmp_path) as gateway:
        settings: Settings = gateway.settings
        # The catalog and sharing are served on local ports (settings name their URLs): the
        # gateway reaches them as in production, intake and notify stay in-process.
        lean = Upstreams(
            settings,
            transports={
                name: httpx.ASGITransport(app=app)
                for name, app in gateway.services.items()
                if name not in ("catalog", "sharing")
            },
        )
        assert sorted(lean.gets) == ["catalog", "sharing"]
        in_process = gateway.app.state.upstreams
        gateway.app.state.upstreams = lean
        try:
            headers = await gateway.citizen(name=person.name, id_number=person.id_number)
            query = {"q": f"公积金{uuid.uuid4().hex[:4]}"}
            found = [await gateway.client.get("/api/v1/items", params=query) for _ in range(3)]
            assert [f.status_code for f in found] == [200] * 3
            assert found[0].content == found[1].content == found[2].content
            assert found[0].headers["content-type"] == "application/json"
            asked = lean.public.calls
            assert asked == 1  # the same search again: from the gateway's copy
            other = await gateway.client.get("/api/v1/items", params={"q": "社保"})
            assert other.status_code == 200 and lean.public.calls == asked + 1

            home = await gateway.client.get("/api/v1/home", headers=headers)
            assert home.status_code == 200, home.text
            assert home.headers["content-type"] == "application/json"
            screen = HomeOut.model_validate(home.json())
            assert screen.degraded == [] and screen.hot_items
            again = await gateway.client.get("/api/v1/home", headers=headers)
            assert again.json()["hot_items"] == home.json()["hot_items"]
            assert lean.public.calls == asked + 2  # the hot items asked once for both
            # A problem of the catalog passes through unchanged, with the gateway's path.
            missing = await gateway.client.get("/api/v1/items/NO-SUCH-ITEM-CODE")
            assert missing.status_code == 404
            assert missing.json()["instance"] == "/api/v1/items/NO-SUCH-ITEM-CODE"
        finally:
            gateway.app.state.upstreams = in_process
            await lean.close()
        # With the catalog gone, the first screen still answers, naming what it could not load
        # (the hot items are not kept in a new gateway).
        gone = Upstreams(
            settings.model_copy(
                update={"catalog_url": f"http://127.0.0.1:{free_port()}", "http_retries": 0}
            ),
            transports={
                name: httpx.ASGITransport(app=app)
                for name, app in gateway.services.items()
                if name != "catalog"
            },
        )
        gateway.app.state.upstreams = gone
        try:
            home = await gateway.client.get("/api/v1/home", headers=headers)
        finally:
            gateway.app.state.upstreams = in_process
            await gone.close()
        assert home.status_code == 200, home.text
        assert home.json()["degraded"] == ["hot_items"] and home.json()["hot_items"] == []


async def _published_bundle(database: Database) -> str:
    """A bundle of two published items, published; its bundle id."""
    codes = [f"TEST-BUNDLED-{uuid.uuid4().hex[:10]}" for _ in range(2)]
    async with database.sessionmaker() as session, session.begin():
        for code in codes:
            item = await catalog.create_item_draft(
                session, content=item_content(implementing_code=code)
            )
            await catalog.publish_version(session, version_id=item.id)
        draft = await catalog.create_bundle_draft(
            session,
            content=BundleContent.model_validate(
                {
                    "code": f"BUNDLE-LEAN-{uuid.uuid4().hex[:8]}",
                    "name": "高龄老人关爱一件事",
                    "members": [
                        {"implementing_code": c, "field_map": {"account": "bank_account"}}
                        for c in codes
                    ],
                    "form_schema": {
                        "type": "object",
                        "properties": {"account": {"type": "string", "title": "收款账号"}},
                        "required": ["account"],
                    },
                }
            ),
        )
        version = await catalog.publish_bundle(session, version_id=draft.id)
    return str(version.bundle_id)


async def test_bundles_are_read_from_the_kept_list_and_a_new_one_from_the_catalogue(
    infrastructure: Infrastructure, database: Database, tmp_path: Path
) -> None:
    first = await _published_bundle(database)
    async with running_gateway(infrastructure, database, data_dir=tmp_path) as gateway:
        upstreams: Upstreams = gateway.app.state.upstreams
        listed = [await gateway.client.get("/api/v1/bundles") for _ in range(2)]
        assert [a.status_code for a in listed] == [200, 200]
        assert first in {b["bundle_id"] for b in listed[0].json()}
        one = await gateway.client.get(f"/api/v1/bundles/{first}")
        assert one.status_code == 200 and one.json()["bundle_id"] == first
        assert upstreams.public.calls == 1  # the list asked once for all three
        # Published after the list was kept: not in the copy, so the catalogue is asked.
        later = await _published_bundle(database)
        found = await gateway.client.get(f"/api/v1/bundles/{later}")
        assert found.status_code == 200 and found.json()["bundle_id"] == later
        unknown = await gateway.client.get(f"/api/v1/bundles/{uuid.uuid4()}")
        assert unknown.status_code == 404
