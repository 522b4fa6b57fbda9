"""One 秒批 application, followed as ONE OpenTelemetry trace: from the gateway's request through
intake, approval, sharing and notify, across every outbox and broker hop, to the issued
certificate and the citizen's message; exported over OTLP/HTTP to a local receiver, with no
personal data in any span.

Every service is real (its app, relay and consumers, real PostgreSQL and broker), each with the
tracer provider the app factory sets up from the ``OTEL_*`` variables, as in production (one
service per process there: here each service's spans still carry its own ``service.name``).
``WANGBAN_SAVE_SCREENSHOTS=1`` also writes the trace to
``docs/screenshots/operations/trace.json`` (``tools/trace_picture.py`` draws it)."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from approval_service.models import ItemVersionCopy as ApprovalCopy
from catalog_service import repository as catalog_repository
from catalog_service import service as catalog
from catalog_service.schemas import ItemContent
from gateway.internal_http import InternalGets
from intake_service.models import ItemVersionCopy as IntakeCopy
from sandbox import ELDERLY_ALLOWANCE, persona_for
from sharing_service.models import ItemVersionCopy as SharingCopy
from sharing_service.registry import seed_registry
from tests.gateway.support import running_gateway
from tests.grant_limits import set_aside_earlier_applications
from tests.infrastructure import Infrastructure
from tests.kit.support import eventually
from tests.otlp_receiver import otlp_receiver
from tests.serving import serve_asgi
from wangban import tracing
from wangban.auth import InternalTokens
from wangban.db import Database

ROOT = Path(__file__).parents[2]
DEMO_ITEMS = ROOT / "catalog_service" / "demo" / "items.json"
SAVED_TRACE = ROOT / "docs" / "screenshots" / "operations" / "trace.json"
TAKING_PART = {
    "wangban-gateway",
    "wangban-intake",
    "wangban-approval",
    "wangban-sharing",
    "wangban-notify",
}


@pytest.fixture
def tracing_to(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Set the standard variables to export to ``url`` (before the apps are built)."""

    def export_to(url: str) -> None:
        for name in list(os.environ):
            if name.startswith("OTEL_"):
                monkeypatch.delenv(name)
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", url)
        monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")  # ms: the test waits less

    return export_to


async def _publish_allowance(database: Database) -> dict[str, Any]:
    content = next(
        i
        for i in json.loads(DEMO_ITEMS.read_text("utf-8"))
        if i["implementing_code"] == ELDERLY_ALLOWANCE
    )
    async with database.sessionmaker() as session, session.begin():
        await seed_registry(session)
        if await catalog_repository.item_by_code(session, ELDERLY_ALLOWANCE) is None:
            draft = await catalog.create_item_draft(
                session, content=ItemContent.model_validate(content)
            )
            await catalog.publish_version(session, version_id=draft.id)
    return dict(content)


def _complete(spans: list[dict[str, Any]]) -> bool:
    """Every span's parent has arrived (a parent ends, and is exported, after its children)."""
    ids = {s["span_id"] for s in spans}
    return all(s["parent_span_id"] is None or s["parent_span_id"] in ids for s in spans)


@pytest.mark.slow  # every service, one application end to end
async def test_one_auto_approved_application_is_one_trace_across_every_service(
    infrastructure: Infrastructure, database: Database, tracing_to: Any
) -> None:
    content = await _publish_allowance(database)
    elder = persona_for(ELDERLY_ALLOWANCE)
    async with otlp_receiver() as receiver:
        tracing_to(receiver.url)
        async with running_gateway(infrastructure, database, background=True) as gateway:
            api = gateway.client

            async def item_known_everywhere() -> bool:
                async with database.sessionmaker() as session:
                    version_id = (
                        await session.execute(
                            select(IntakeCopy.version_id).where(
                                IntakeCopy.implementing_code == ELDERLY_ALLOWANCE
                            )
                        )
                    ).first()
                    if version_id is None:
                        return False
                    return all(
                        [
                            await session.get(ApprovalCopy, version_id[0]) is not None,
                            await session.get(SharingCopy, version_id[0]) is not None,
                        ]
                    )

            await eventually(item_known_everywhere, timeout_s=60)
            headers = await gateway.citizen(name=elder.name, id_number=elder.id_number)
            await api.post(
                "/api/v1/subscriptions",
                json={"results": {"tmpl-certificate-issued": "accept"}},
                headers=headers,
            )
            await set_aside_earlier_applications(
                database, gateway.settings, id_number=elder.id_number, item_code=ELDERLY_ALLOWANCE
            )
            spans_before = len(receiver.spans)
            applied = await api.post(
                "/api/v1/applications",
                json={
                    "item_code": ELDERLY_ALLOWANCE,
                    "form": elder.form(ELDERLY_ALLOWANCE, today=date.today()),
                    "materials": [
                        {"index": i, "commitment": True}
                        for i, m in enumerate(content["materials"])
                        if m["source"] == "commitment"
                    ],
                },
                headers={**headers, "Idempotency-Key": str(uuid.uuid4())},
            )
            assert applied.status_code == 201, applied.text
            application_id = applied.json()["id"]

            async def delivered() -> bool:
                answer = await api.get(f"/api/v1/applications/{application_id}", headers=headers)
                return bool(answer.json()["status"] == "delivered")

            await eventually(delivered, timeout_s=60)

            async def told() -> bool:
                inbox = (await api.get("/api/v1/messages", headers=headers)).json()
                return "certificate.issued" in {m["kind"] for m in inbox["items"]}

            await eventually(told, timeout_s=30)

            def request_span() -> dict[str, Any] | None:
                return next(
                    (
                        s
                        for s in receiver.spans[spans_before:]
                        if s["service"] == "wangban-gateway"
                        and s["kind"] == "server"
                        and s["attributes"].get("http.route") == "/api/v1/applications"
                        and s["name"].startswith("POST")
                    ),
                    None,
                )

            async def whole_trace_exported() -> bool:
                root = request_span()
                if root is None:
                    return False
                spans = receiver.trace(root["trace_id"])
                return TAKING_PART <= {s["service"] for s in spans} and _complete(spans)

            try:
                await eventually(whole_trace_exported, timeout_s=60, interval_s=0.2)
            except AssertionError:
                root = request_span()
                found = receiver.trace(root["trace_id"]) if root else []
                raise AssertionError(
                    f"the request's trace holds {sorted({s['service'] for s in found})}, "
                    f"complete: {_complete(found)}; expected {sorted(TAKING_PART)}"
                ) from None
        # The apps have stopped: every provider has flushed what it held.
        root = request_span()
        assert root is not None
        spans = receiver.trace(root["trace_id"])
    _check_trace(spans, root, elder_name=elder.name, elder_id=elder.id_number)
    if os.environ.get("WANGBAN_SAVE_SCREENSHOTS") == "1":
        SAVED_TRACE.parent.mkdir(parents=True, exist_ok=True)
        SAVED_TRACE.write_text(
            json.dumps(sorted(spans, key=lambda s: s["start_ns"]), ensure_ascii=False, indent=1)
            + "\n",
            "utf-8",
        )


def _check_trace(
    spans: list[dict[str, Any]], root: dict[str, Any], *, elder_name: str, elder_id: str
) -> None:
    by_id = {s["span_id"]: s for s in spans}
    # One trace, rooted at the citizen's request to the gateway; every other span hangs from it.
    assert [s for s in spans if s["parent_span_id"] is None] == [root]
    assert _complete(spans)
    assert TAKING_PART <= {s["service"] for s in spans}

    # Across the broker: each hop's handling is a child of a span in the service that wrote
    # the event (through its relay's send, a sibling under the same writer).
    consumers = [s for s in spans if s["kind"] == "consumer"]
    crossing = {
        s["service"] for s in consumers if by_id[s["parent_span_id"]]["service"] != s["service"]
    }
    assert {"wangban-approval", "wangban-notify"} <= crossing, crossing
    sends = [s for s in spans if s["kind"] == "producer"]
    assert sends and all(by_id[s["parent_span_id"]] for s in sends)

    # A consumer's own events go on: some consumer span has a consumer span as an ancestor.
    def ancestors(span: dict[str, Any]) -> list[dict[str, Any]]:
        chain = []
        while span["parent_span_id"] is not None:
            span = by_id[span["parent_span_id"]]
            chain.append(span)
        return chain

    assert any(any(a["kind"] == "consumer" for a in ancestors(s)) for s in consumers), (
        "no consumer's event was handled by a further consumer in the same trace"
    )
    handled = {s["attributes"].get("wangban.event.type") for s in consumers}
    assert any("certificate" in str(t) and "issued" in str(t) for t in handled), handled
    # Statements from the services' databases, inside the trace.
    assert any(s["kind"] == "client" and "db.system" in json.dumps(s["attributes"]) for s in spans)

    # No personal data anywhere in what left the processes.
    exported = json.dumps(spans, ensure_ascii=False)
    assert elder_id not in exported
    assert elder_name not in exported


async def test_the_gateways_lean_reads_send_their_own_client_span_as_traceparent(
    tracing_to: Any,
) -> None:
    """The gateway's GETs skip httpx (gateway.internal_http): they make their client span
    themselves, send it as the traceparent, and record the path without the query."""
    seen: list[str | None] = []

    async def service(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        seen.append(dict(scope["headers"]).get(b"traceparent", b"").decode() or None)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    async with otlp_receiver() as receiver, serve_asgi(service) as url:
        tracing_to(receiver.url)
        caller = f"lean-{uuid.uuid4().hex[:8]}"
        assert tracing.setup(caller) is not None
        gets = InternalGets(
            base_url=url,
            service="catalog",
            caller=caller,
            tokens=InternalTokens("tracing-test-key-0123456789abcdef0123", ttl_s=60),
            timeout_s=5.0,
            retries=0,
        )
        try:
            answer = await gets.get("/items", params={"q": "张三"})
        finally:
            await gets.aclose()
            await asyncio.to_thread(tracing.shutdown, caller)  # exports the span
        assert answer.status_code == 200
        (span,) = [s for s in receiver.spans if s["service"] == f"wangban-{caller}"]
    assert span["kind"] == "client" and span["parent_span_id"] is None
    (sent,) = seen
    assert sent is not None and sent.startswith(f"00-{span['trace_id']}-{span['span_id']}-")
    assert span["attributes"]["url.path"] == "/items"
    assert span["attributes"]["http.response.status_code"] == 200
    assert "张三" not in json.dumps(span, ensure_ascii=False)
