"""The HTTP edge (issue 17, "Trust"): whose address a rate limit counts, which correlation ids a
client may choose, how deep a JSON body may nest, and what the public port shows in production.

Rate limits are checked through a real socket, served with the options ``wangban serve`` uses:
how uvicorn treats ``X-Forwarded-For`` is part of what is tested.
"""

from __future__ import annotations

import io
import json
import logging
import random
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import func, select

from catalog_service.models import Item
from gateway.api import deps
from gateway.models import RateCounter
from intake_service.models import Application
from intake_service.models import kit_tables as intake_tables
from tests.gateway.support import Gateway, running_gateway
from tests.infrastructure import Infrastructure
from tests.intake import factories
from tests.serving import serve_asgi
from tests.unit.synthetic import PHONE, resident_id
from wangban.app import create_service_app
from wangban.db import Database
from wangban.observability import configure_logging
from wangban.server import uvicorn_options
from wangban.services import load_spec
from wangban.settings import SERVICE_NAMES, Environment, Settings

ID_NUMBER = resident_id(region="441900", birth="19560312", sequence="127")
STAFF_LOGIN_LIMIT = 3


@pytest.fixture(scope="module")
async def gateway(infrastructure: Infrastructure, database: Database) -> AsyncIterator[Gateway]:
    async with running_gateway(
        infrastructure, database, gateway_staff_login_per_minute_per_ip=STAFF_LOGIN_LIMIT
    ) as gw:
        yield gw


@pytest.fixture(scope="module")
async def behind_proxies(
    infrastructure: Infrastructure, database: Database
) -> AsyncIterator[Gateway]:
    """A gateway as production runs it: behind an ingress (the local peer and 10.20.0.0/16),
    API docs off, metrics on their own port."""
    async with running_gateway(
        infrastructure,
        database,
        gateway_staff_login_per_minute_per_ip=STAFF_LOGIN_LIMIT,
        trusted_proxies=["127.0.0.1", "10.20.0.0/16"],
        expose_api_docs=False,
        metrics_port=0,
    ) as gw:
        yield gw


@pytest.fixture
def one_window(monkeypatch: pytest.MonkeyPatch) -> datetime:
    """Every attempt of the test in one rate-limit window no other test uses."""
    frozen = datetime(2031, 1, 1, tzinfo=UTC) + timedelta(minutes=random.randrange(10**6))
    monkeypatch.setattr(deps, "utcnow", lambda: frozen)
    return frozen


async def _counts(gw: Gateway, window: datetime) -> dict[str, int]:
    async with gw.database.sessionmaker() as session:
        rows = await session.execute(
            select(RateCounter.key, RateCounter.count).where(
                RateCounter.key.startswith("staff-login:ip:"),
                RateCounter.window_start == window.replace(second=0, microsecond=0),
            )
        )
        return {key.removeprefix("staff-login:ip:"): count for key, count in rows}


async def _staff_logins(gw: Gateway, forwarded_for: list[str]) -> list[int]:
    """One failed staff login per ``X-Forwarded-For`` value, from 127.0.0.1 over a socket."""
    options = uvicorn_options("gateway", gw.settings)
    statuses = []
    async with serve_asgi(gw.app, **options) as url, httpx.AsyncClient(base_url=url) as client:
        for value in forwarded_for:
            answer = await client.post(
                "/api/v1/auth/staff",
                json={"username": f"nobody-{uuid.uuid4().hex[:8]}", "password": "wrong"},
                headers={"X-Forwarded-For": value} if value else {},
            )
            statuses.append(answer.status_code)
    return statuses


# --- 6: X-Forwarded-For is believed only from trusted proxies --------------------------------


async def test_a_forged_forwarded_for_does_not_escape_the_per_ip_login_limit(
    gateway: Gateway, one_window: datetime
) -> None:
    rotating = [f"1.2.3.{n}" for n in range(STAFF_LOGIN_LIMIT + 2)]
    statuses = await _staff_logins(gateway, rotating)
    assert [s == 429 for s in statuses] == [False] * STAFF_LOGIN_LIMIT + [True, True]
    # Counted against the socket's peer; no forged address has a counter.
    assert await _counts(gateway, one_window) == {"127.0.0.1": STAFF_LOGIN_LIMIT + 2}


async def test_behind_a_trusted_proxy_the_right_most_untrusted_hop_is_the_client(
    behind_proxies: Gateway, one_window: datetime
) -> None:
    client, other = "203.0.113.7", "198.51.100.23"
    # Whatever the client writes on the left, the ingress appends the address it saw, and the
    # internal hop (10.20.x.x, trusted) is skipped.
    forged = [f"1.2.3.{n}, {client}, 10.20.5.6" for n in range(STAFF_LOGIN_LIMIT + 1)]
    statuses = await _staff_logins(behind_proxies, [*forged, f"9.9.9.9, {other}", ""])
    assert [s == 429 for s in statuses] == [False] * STAFF_LOGIN_LIMIT + [True, False, False]
    assert await _counts(behind_proxies, one_window) == {
        client: STAFF_LOGIN_LIMIT + 1,
        other: 1,
        "127.0.0.1": 1,  # no header: the proxy itself
    }


# --- 9: correlation ids of a safe shape only ---------------------------------------------------


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    stream = io.StringIO()
    configure_logging(service="gateway", level="DEBUG", json_format=True, stream=stream)
    try:
        yield stream
    finally:
        for handler in list(root.handlers):
            if handler not in saved_handlers:
                root.removeHandler(handler)
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)


async def _submitted_application(gw: Gateway, headers: dict[str, str]) -> str:
    me = (await gw.client.get("/api/v1/me", headers=headers)).json()
    async with gw.database.sessionmaker() as session, session.begin():
        row = await factories.application(
            session,
            department=factories.unique("edge"),
            status="submitted",
            applicant_subject=me["subject"],
        )
        return row.id


async def test_an_id_number_as_correlation_id_is_replaced_everywhere(
    gateway: Gateway, log_stream: io.StringIO
) -> None:
    headers = await gateway.citizen(assurance="wechat")
    application_id = await _submitted_application(gateway, headers)
    answer = await gateway.client.post(
        f"/api/v1/applications/{application_id}/withdraw",
        json={},
        headers={**headers, "X-Correlation-Id": ID_NUMBER, "X-Request-Id": PHONE},
    )
    assert answer.status_code == 200, answer.text
    correlation = answer.headers["x-correlation-id"]
    assert ID_NUMBER not in correlation and PHONE not in answer.headers["x-request-id"]

    logged = log_stream.getvalue()
    assert correlation in logged  # the request was logged, under the generated id
    assert ID_NUMBER not in logged and PHONE not in logged

    async with gateway.database.sessionmaker() as session:
        envelopes = (
            await session.scalars(
                select(intake_tables.outbox.c.envelope).where(
                    intake_tables.outbox.c.key == application_id
                )
            )
        ).all()
    assert [e["type"] for e in envelopes] == ["cn.wangban.intake.application.withdrawn.v1"]
    assert envelopes[0]["correlationid"] == correlation
    assert ID_NUMBER not in json.dumps(envelopes[0]) and PHONE not in json.dumps(envelopes[0])


# --- 10: JSON nesting is bounded --------------------------------------------------------------

DEEP = "[" * 10_000 + "]" * 10_000


async def _problem(answer: httpx.Response) -> dict[str, object]:
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    body: dict[str, object] = answer.json()
    assert body["type"] == "urn:wangban:problem:json-too-deep"
    return body


async def test_deeply_nested_json_is_refused_before_anything_reads_it(gateway: Gateway) -> None:
    citizen = await gateway.citizen(assurance="wechat")
    application_id = await _submitted_application(gateway, citizen)
    admin = gateway.staff("catalog_admin")

    async def counts() -> tuple[int, int]:
        async with gateway.database.sessionmaker() as session:
            items = await session.scalar(select(func.count()).select_from(Item))
            outbox = await session.scalar(select(func.count()).select_from(intake_tables.outbox))
            status = await session.scalar(
                select(Application.status).where(Application.id == application_id)
            )
        assert status == "submitted"
        return int(items or 0), int(outbox or 0)

    before = await counts()
    json_type = {"Content-Type": "application/json"}
    requests = [
        # a typed body the gateway reads itself
        (
            "/api/v1/applications",
            '{"item_code": "x", "form": {"a": ' + DEEP + "}}",
            {**citizen, "Idempotency-Key": str(uuid.uuid4())},
        ),
        # bodies passed through to a service
        (f"/api/v1/applications/{application_id}/supplement", '{"form": ' + DEEP + "}", citizen),
        ("/api/v1/staff/catalog/items", '{"name": ' + DEEP + "}", admin),
        ("/api/v1/staff/rules/dry-run", DEEP, gateway.staff("reviewer")),
        # no content type: FastAPI would parse it as JSON
        (f"/api/v1/applications/{application_id}/withdraw", DEEP, citizen),
    ]
    for path, content, headers in requests:
        answer = await gateway.client.post(path, content=content, headers={**json_type, **headers})
        body = await _problem(answer)
        assert "32" in str(body["detail"]) and "嵌套" in str(body["detail"]), body
    # Brackets inside strings are text, not nesting.
    text = await gateway.client.post(
        "/api/v1/staff/catalog/items",
        content=json.dumps({"name": "[" * 100}),
        headers={**json_type, **admin},
    )
    assert text.status_code == 422 and "json-too-deep" not in text.text
    assert await counts() == before


# --- 18: what the public port shows -------------------------------------------------------------


async def test_production_hides_docs_and_serves_metrics_on_an_internal_port(
    behind_proxies: Gateway, gateway: Gateway
) -> None:
    public = behind_proxies.client
    for path in ("/docs", "/redoc", "/openapi.json", "/metrics"):
        assert (await public.get(path)).status_code == 404, path
    port = behind_proxies.app.state.metrics_port
    assert port
    async with httpx.AsyncClient() as client:
        scraped = await client.get(f"http://127.0.0.1:{port}/metrics")
    assert scraped.status_code == 200
    assert "wangban_http_requests_total" in scraped.text
    # Locally (and in tests) the documents stay where developers expect them.
    assert (await gateway.client.get("/openapi.json")).status_code == 200
    assert (await gateway.client.get("/docs")).status_code == 200


@pytest.mark.parametrize("service", SERVICE_NAMES)
async def test_in_production_no_service_port_shows_docs_or_metrics(service: str) -> None:
    local = Settings(env=Environment.TEST)
    assert local.api_docs_exposed and local.metrics_on_service_port
    # Production defaults (model_copy: the production key checks are tested elsewhere).
    production = local.model_copy(update={"env": Environment.PRODUCTION})
    assert not production.api_docs_exposed and not production.metrics_on_service_port
    assert production.model_copy(update={"expose_api_docs": True}).api_docs_exposed
    app = create_service_app(load_spec(service), production, background=False)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://service"
    ) as client:
        for path in ("/docs", "/redoc", "/openapi.json", "/metrics"):
            assert (await client.get(path)).status_code == 404, path
        assert (await client.get("/healthz")).status_code == 200


async def test_catalog_statistics_need_a_staff_identity(gateway: Gateway) -> None:
    catalog = gateway.services["catalog"]
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=catalog), base_url="http://catalog"
    ) as direct:
        assert (await direct.get("/statistics")).status_code == 401
    citizen = await gateway.citizen(assurance="wechat")
    assert (await gateway.client.get("/api/v1/stats/catalog", headers=citizen)).status_code == 403
    staff = await gateway.client.get("/api/v1/stats/catalog", headers=gateway.staff("auditor"))
    assert staff.status_code == 200, staff.text
