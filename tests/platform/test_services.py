"""Every service app: probes, metrics, problem+json and the request unit of work, on the real
database and broker."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from pydantic import BaseModel, Field
from sqlalchemy import select

from tests.infrastructure import Infrastructure, make_settings
from tests.kit.support import eventually
from wangban.app import ServiceSpec, create_service_app
from wangban.db import Database, UnitOfWork
from wangban.embedded import free_port
from wangban.errors import Conflict, problem_responses
from wangban.events import EventDeadLettered
from wangban.services import SERVICE_PACKAGES, load_spec
from wangban.settings import Settings


@asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
            yield client


@pytest.mark.parametrize("service", list(SERVICE_PACKAGES))
async def test_service_is_live_ready_and_measured(
    service: str, settings: Settings, database: Database
) -> None:
    app = create_service_app(load_spec(service), settings)
    async with running(app) as client:
        assert (await client.get("/healthz")).json() == {"status": "ok", "service": service}
        # Ready once each consumer has read what was on its topics when it started.
        await eventually(lambda: _answers_ready(client), timeout_s=60, interval_s=0.2)
        ready = await client.get("/readyz")
        checks = {"database": "ok", "broker": "ok"}
        if app.state.runtime.runners:
            checks["consumers"] = "ok"
        assert ready.json()["checks"] == checks
        metrics = await client.get("/metrics")
        assert metrics.status_code == 200
        text = metrics.text
        assert 'route="/healthz"' in text and "wangban_http_requests_total" in text
        assert "wangban_http_request_duration_seconds_bucket" in text
        assert "wangban_outbox_backlog" in text
        openapi = (await client.get("/openapi.json")).json()
        assert {"/healthz", "/readyz", "/metrics"} <= set(openapi["paths"])


async def _answers_ready(client: httpx.AsyncClient) -> bool:
    return (await client.get("/readyz")).status_code == 200


async def test_not_ready_when_the_broker_is_unreachable(
    infrastructure: Infrastructure, database: Database
) -> None:
    settings = make_settings(infrastructure, kafka_bootstrap=f"127.0.0.1:{free_port()}")
    app = create_service_app(load_spec("intake"), settings, background=False)
    async with running(app) as client:
        response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["type"].endswith("not-ready")
    assert body["checks"] == {"database": "ok", "broker": "unavailable"}


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
