"""Every service app: probes, metrics, problem+json and the request unit of work, on the real
database and broker; readiness that a broker gone away after start does not take back."""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from pydantic import BaseModel, Field
from sqlalchemy import select

from catalog_service import repository as catalog_repository
from catalog_service import service as catalog
from catalog_service.schemas import ItemContent
from tests.infrastructure import Infrastructure, make_settings
from tests.kit.support import eventually
from wangban.app import ServiceSpec, create_service_app
from wangban.db import Database, UnitOfWork
from wangban.embedded import EmbeddedKafka, free_port
from wangban.errors import Conflict, problem_responses
from wangban.events import EventDeadLettered
from wangban.services import SERVICE_PACKAGES, load_spec
from wangban.settings import Settings

pytestmark = pytest.mark.slow  # left out of `./dev test --fast`


@asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
            yield client


@pytest.fixture
def own_broker(infrastructure: Infrastructure) -> Iterator[Settings]:
    """Settings with a broker of the test's own. A service is ready once it has read what its
    topics held when it started: on the suite's broker that is whatever earlier tests left
    there, events it may rightly hold until a dependency this test does not run answers (the
    catalogue, for a version approval has never seen)."""
    broker = EmbeddedKafka(free_port(), log_file=infrastructure.data_dir / "services-broker.log")
    try:
        yield make_settings(infrastructure, kafka_bootstrap=broker.start())
    finally:
        broker.stop()


@pytest.mark.parametrize("service", list(SERVICE_PACKAGES))
async def test_service_is_live_ready_and_measured(
    service: str, own_broker: Settings, database: Database
) -> None:
    spec = load_spec(service)
    app = create_service_app(spec, own_broker)
    async with running(app) as client:
        health = (await client.get("/healthz")).json()
        assert (health["status"], health["service"]) == ("ok", service)
        # Ready once each consumer has read what was on its topics when it started.
        await eventually(lambda: _answers_ready(client), timeout_s=60, interval_s=0.2)
        ready = await client.get("/readyz")
        checks = {"database": "ok"}
        if app.state.runtime.runners:
            checks["consumers"] = "ok"
        assert ready.json()["checks"] == checks
        metrics = await client.get("/metrics")
        assert metrics.status_code == 200
        text = metrics.text
        assert 'route="/healthz"' in text and "wangban_http_requests_total" in text
        assert "wangban_http_request_duration_seconds_bucket" in text
        openapi = (await client.get("/openapi.json")).json()
        assert {"/healthz", "/readyz", "/metrics"} <= set(openapi["paths"])
        if spec.outbox is None:
            # The gateway: no relay, no consumers, no dead letters, never a broker check.
            assert app.state.runtime.relay is None and not app.state.runtime.runners
            assert health["details"] == {}
            assert "/ops/dead-letters" not in openapi["paths"]
        else:
            assert "\nwangban_outbox_backlog " in text
            await eventually(lambda: _broker_is(client, "ok"), timeout_s=30, interval_s=0.2)
            assert "\nwangban_broker_up 1.0\n" in (await client.get("/metrics")).text


async def _answers_ready(client: httpx.AsyncClient) -> bool:
    return (await client.get("/readyz")).status_code == 200


async def _broker_is(client: httpx.AsyncClient, state: str) -> bool:
    health = await client.get("/healthz")
    assert health.status_code == 200  # liveness never depends on the broker
    return bool(health.json()["details"]["broker"]["state"] == state)


DEMO_ITEMS = Path(__file__).parents[2] / "catalog_service" / "demo" / "items.json"
ID_CARD_CODE = "11441900007330117Q-000107001000-01"  # 居民身份证换领


async def _published_id_card_item(database: Database) -> None:
    content = next(
        item
        for item in json.loads(DEMO_ITEMS.read_text("utf-8"))
        if item["implementing_code"] == ID_CARD_CODE
    )
    async with database.sessionmaker() as session, session.begin():
        if await catalog_repository.item_by_code(session, ID_CARD_CODE) is None:
            draft = await catalog.create_item_draft(
                session, content=ItemContent.model_validate(content)
            )
            await catalog.publish_version(session, version_id=draft.id)


async def test_a_broker_gone_after_start_leaves_services_ready_and_search_answering(
    infrastructure: Infrastructure, database: Database, tmp_path: Path
) -> None:
    """The broker stops once the services are up: /readyz stays 200 (the outbox keeps what
    they publish; their consumers caught up when they started), /healthz and
    wangban_broker_up say the broker is down, and catalogue search still answers."""
    await _published_id_card_item(database)
    broker = EmbeddedKafka(free_port(), log_file=tmp_path / "broker.log")
    settings = make_settings(
        infrastructure, kafka_bootstrap=broker.start(), broker_check_interval_s=0.3
    )
    try:
        catalog_app = create_service_app(load_spec("catalog"), settings)
        intake_app = create_service_app(load_spec("intake"), settings)
        async with running(catalog_app) as catalog_client, running(intake_app) as intake_client:
            clients = {"catalog": catalog_client, "intake": intake_client}
            for client in clients.values():
                await eventually(partial(_answers_ready, client), timeout_s=60, interval_s=0.2)
                await eventually(partial(_broker_is, client, "ok"), timeout_s=30)
            assert intake_app.state.runtime.runners  # readiness waited for its consumers

            broker.stop()

            for name, client in clients.items():
                await eventually(partial(_broker_is, client, "unavailable"), timeout_s=30)
                ready = await client.get("/readyz")
                assert ready.status_code == 200, ready.text
                assert "broker" not in ready.json()["checks"]
                metrics = (await client.get("/metrics")).text
                assert "\nwangban_broker_up 0.0\n" in metrics, name
            found = await catalog_client.get("/items", params={"q": "身份证换领"})
            assert found.status_code == 200, found.text
            assert ID_CARD_CODE in {i["implementing_code"] for i in found.json()["items"]}
    finally:
        broker.stop()


async def test_ready_without_a_broker_when_nothing_waits_for_one(
    infrastructure: Infrastructure, database: Database
) -> None:
    """HTTP only (no consumers to catch up): nothing about the broker decides readiness."""
    settings = make_settings(infrastructure, kafka_bootstrap=f"127.0.0.1:{free_port()}")
    app = create_service_app(load_spec("intake"), settings, background=False)
    async with running(app) as client:
        response = await client.get("/readyz")
        health = await client.get("/healthz")
    assert response.status_code == 200, response.text
    assert response.json()["checks"] == {"database": "ok"}
    assert health.status_code == 200 and health.json()["details"] == {}


async def test_unknown_route_is_problem_json(settings: Settings, database: Database) -> None:
    app = create_service_app(load_spec("catalog"), settings, background=False)
    async with running(app) as client:
        response = await client.get("/no/such/route")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == 404 and body["instance"] == "/no/such/route"
    assert body["detail"] == "找不到请求的地址"
    assert body["request_id"] == response.headers["x-request-id"]


class Applicant(BaseModel):
    name: str = Field(min_length=2, max_length=20)
    age: int = Field(ge=0, le=150)


class DuplicateApplicant(Conflict):
    type_slug = "duplicate-applicant"
    title = "申请人重复"


def _probe_app(settings: Settings) -> tuple[FastAPI, ServiceSpec]:
    """The intake service with two extra routes that write an event through the unit of work."""
    spec = load_spec("intake")
    router = APIRouter()

    async def record(session: UnitOfWork, applicant: Applicant) -> str:
        event = EventDeadLettered(
            dead_letter_id=str(uuid.uuid4()),
            consumer="probe",
            key=applicant.name,
            original_topic="probe",
            original_event_id="",
            original_type="probe",
            attempts=1,
            error="",
            original={},
        )
        assert spec.outbox is not None
        envelope = await spec.outbox.publish(session, event)
        return envelope.id

    @router.post("/probe/applicants", responses=problem_responses(DuplicateApplicant))
    async def create(applicant: Applicant, session: UnitOfWork) -> dict[str, str]:
        return {"event_id": await record(session, applicant)}

    @router.post("/probe/applicants-then-fail", responses=problem_responses(DuplicateApplicant))
    async def create_then_fail(applicant: Applicant, session: UnitOfWork) -> dict[str, str]:
        await record(session, applicant)
        raise DuplicateApplicant("该申请人已提交过申请")

    spec = dataclasses.replace(spec, routers=[router])
    return create_service_app(spec, settings, background=False), spec


async def test_validation_error_names_each_field_in_chinese(
    settings: Settings, database: Database
) -> None:
    app, _ = _probe_app(settings)
    async with running(app) as client:
        response = await client.post("/probe/applicants", json={"name": "张", "age": -1})
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    pointers = {error["pointer"]: error["detail"] for error in body["errors"]}
    assert set(pointers) == {"/body/name", "/body/age"}
    assert "2" in pointers["/body/name"] and "0" in pointers["/body/age"]
    assert all(any("\u4e00" <= ch <= "\u9fff" for ch in d) for d in pointers.values())


async def test_unit_of_work_commits_on_success_and_keeps_nothing_on_error(
    settings: Settings, database: Database
) -> None:
    app, spec = _probe_app(settings)
    assert spec.outbox is not None
    outbox = spec.outbox.tables.outbox
    async with running(app) as client:
        ok = await client.post("/probe/applicants", json={"name": "王五", "age": 30})
        failed = await client.post("/probe/applicants-then-fail", json={"name": "赵六", "age": 30})
        openapi = (await client.get("/openapi.json")).json()
    assert ok.status_code == 200
    assert failed.status_code == 409 and failed.json()["type"].endswith("duplicate-applicant")
    async with database.sessionmaker() as session:
        keys = (await session.execute(select(outbox.c.key, outbox.c.event_id))).all()
    assert ("王五", ok.json()["event_id"]) in keys
    assert "赵六" not in {key for key, _ in keys}
    declared = openapi["paths"]["/probe/applicants"]["post"]["responses"]
    assert "application/problem+json" in declared["409"]["content"]
