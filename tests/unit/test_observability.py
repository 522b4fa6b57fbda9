"""Context ids, redaction, JSON logging and metrics."""

from __future__ import annotations

import io
import json
import logging
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from wangban.errors import install_problem_handlers
from wangban.observability import (
    ID_PLACEHOLDER,
    PHONE_PLACEHOLDER,
    SECRET_PLACEHOLDER,
    TOKEN_PLACEHOLDER,
    Metrics,
    RequestContextMiddleware,
    bound_context,
    configure_logging,
    current_context,
    is_valid_traceparent,
    redact,
)

from .synthetic import PHONE, resident_id, resident_id_ending_in_x

ID = resident_id()
ID_X = resident_id_ending_in_x()
JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"
    ".eyJzdWIiOiJ1LTEiLCJhdWQiOiJ3YW5nYmFuLWludGVybmFsIn0"
    ".c2lnbmF0dXJlLW5vdC1yZWFsbHktYS1zaWduYXR1cmU"
)
ITEM_CODE = "511A0138000000-511602000000-000-115113010833722043-1-00"
CREDIT_CODE = "91510100MA6CXXXX3K"
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


# --- redaction ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"申请人身份证号{ID}，请核对", f"申请人身份证号{ID_PLACEHOLDER}，请核对"),
        (f"id={ID_X.lower()}", f"id={ID_PLACEHOLDER}"),
        (f"old {ID[:6]}{ID[8:14]}{ID[14:17]} card", f"old {ID_PLACEHOLDER} card"),
        (f"手机{PHONE}", f"手机{PHONE_PLACEHOLDER}"),
        ("call +86 138 0013 8000 now", f"call {PHONE_PLACEHOLDER} now"),
        ("tel: 86-138-0013-8000", f"tel: {PHONE_PLACEHOLDER}"),
        ("tel 8613800138000", f"tel {PHONE_PLACEHOLDER}"),
        # Logged request paths are percent-encoded: an escape's hex digits are a boundary.
        (
            f"GET /items/%E5%8F%B7{ID}?q=%20{PHONE}",
            f"GET /items/%E5%8F%B7{ID_PLACEHOLDER}?q=%20{PHONE_PLACEHOLDER}",
        ),
        ("Authorization: Bearer abc.def-ghi_1==", f"Authorization: Bearer {TOKEN_PLACEHOLDER}"),
        (f"token in body {JWT} end", f"token in body {TOKEN_PLACEHOLDER} end"),
        ("login password=hunter2 ok", f"login password={SECRET_PLACEHOLDER} ok"),
        ('{"password": "hun\\"ter2"}', f'{{"password": "{SECRET_PLACEHOLDER}"}}'),
        ("{'client_secret': 'abc'}", f"{{'client_secret': '{SECRET_PLACEHOLDER}'}}"),
        (f"files/apply-{ID}-photo.jpg", f"files/apply-{ID_PLACEHOLDER}-photo.jpg"),
    ],
)
def test_redacts_personal_data_and_credentials(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "amount=13800.50 fee 1380013800",
        "created_at_ms=1732345678901",
        f"request {uuid.UUID(int=0x138001380001101011990030712349).hex}",
        str(uuid.UUID("13800138-0000-4101-a199-003071234999")),
        f"item {ITEM_CODE} accepted",
        f"company {CREDIT_CODE}",
        "date 2024-01-31T08:30:00+08:00, page 13, size 100",
        "price 0.13800138000",
        "tokens_total=5",
    ],
)
def test_leaves_ordinary_identifiers_alone(text: str) -> None:
    assert redact(text) == text


# --- context -------------------------------------------------------------------------------


def test_bound_context_sets_and_restores() -> None:
    assert current_context()["correlation_id"] is None
    with bound_context(correlation_id="c-1", causation_id="e-1"):
        assert current_context()["correlation_id"] == "c-1"
        with bound_context(causation_id="e-2"):
            assert current_context() == {
                "request_id": None,
                "correlation_id": "c-1",
                "causation_id": "e-2",
                "traceparent": None,
            }
        assert current_context()["causation_id"] == "e-1"
    assert current_context()["correlation_id"] is None


def test_bound_context_restores_after_error_and_rejects_unknown_names() -> None:
    with pytest.raises(RuntimeError), bound_context(request_id="r-1"):
        raise RuntimeError
    assert current_context()["request_id"] is None
    with pytest.raises(TypeError), bound_context(tenant="x"):
        pass


def test_traceparent_validation() -> None:
    assert is_valid_traceparent(TRACEPARENT)
    assert not is_valid_traceparent("00-" + "0" * 32 + "-b7ad6b7169203331-01")
    assert not is_valid_traceparent("ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
    assert not is_valid_traceparent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331")
    assert not is_valid_traceparent(None)


# --- logging -------------------------------------------------------------------------------


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    """configure_logging on a private stream; the root logger is restored afterwards."""
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    uvicorn_saved = {
        name: (list(logging.getLogger(name).handlers), logging.getLogger(name).propagate)
        for name in ("uvicorn", "uvicorn.error", "uvicorn.access")
    }
    stream = io.StringIO()
    configure_logging(service="unit", level="DEBUG", json_format=True, stream=stream)
    try:
        yield stream
    finally:
        for handler in list(root.handlers):
            if handler not in saved_handlers:
                root.removeHandler(handler)
        root.setLevel(saved_level)
        for name, (handlers, propagate) in uvicorn_saved.items():
            logging.getLogger(name).handlers[:] = handlers
            logging.getLogger(name).propagate = propagate


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line]


def test_json_line_redacts_message_args_and_fields(log_stream: io.StringIO) -> None:
    log = logging.getLogger("wangban.test")
    with bound_context(request_id="req-123", correlation_id="corr-9", causation_id="evt-7"):
        log.info(
            "申请人 %s 手机 %s",
            ID,
            PHONE,
            extra={
                "fields": {
                    "applicant": {"resident_id": ID, "phones": [PHONE, int(PHONE)]},
                    "password": "hunter2",
                    "item_code": ITEM_CODE,
                    "count": 3,
                    "message": "reserved keys are not overwritten",
                }
            },
        )
    [line] = lines(log_stream)
    assert line["message"] == f"申请人 {ID_PLACEHOLDER} 手机 {PHONE_PLACEHOLDER}"
    assert line["service"] == "unit"
    assert line["level"] == "INFO"
    assert line["logger"] == "wangban.test"
    assert line["time"].endswith("+00:00")
    assert (line["request_id"], line["correlation_id"], line["causation_id"]) == (
        "req-123",
        "corr-9",
        "evt-7",
    )
    assert line["applicant"] == {
        "resident_id": ID_PLACEHOLDER,
        "phones": [PHONE_PLACEHOLDER, PHONE_PLACEHOLDER],
    }
    assert line["password"] == SECRET_PLACEHOLDER
    assert line["item_code"] == ITEM_CODE
    assert line["count"] == 3
    assert line["extra_message"] == "reserved keys are not overwritten"
    assert ID not in log_stream.getvalue()
    assert PHONE not in log_stream.getvalue()


def test_tracebacks_are_redacted(log_stream: io.StringIO) -> None:
    log = logging.getLogger("wangban.test")
    try:
        raise ValueError(f"duplicate applicant {ID}, Authorization: Bearer {JWT}")
    except ValueError:
        log.exception("could not save")
    [line] = lines(log_stream)
    assert "ValueError: duplicate applicant" in line["exc_info"]
    assert ID_PLACEHOLDER in line["exc_info"]
    assert ID not in line["exc_info"]
    assert JWT not in line["exc_info"]


def test_configure_logging_is_idempotent_and_covers_uvicorn(log_stream: io.StringIO) -> None:
    configure_logging(service="unit", level="DEBUG", stream=log_stream)
    ours = [h for h in logging.getLogger().handlers if getattr(h, "_wangban", False)]
    assert len(ours) == 1
    logging.getLogger("uvicorn.access").info(
        '%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET", f"/lookup?phone={PHONE}", "1.1", 200
    )
    [line] = lines(log_stream)
    assert line["logger"] == "uvicorn.access"
    assert PHONE_PLACEHOLDER in line["message"]


# --- middleware and metrics ---------------------------------------------------------------


def make_app(metrics: Metrics) -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)
    app.add_middleware(RequestContextMiddleware, metrics=metrics, service="unit")

    @app.get("/items/{item_id}")
    async def item(item_id: str) -> dict[str, Any]:
        return {"item_id": item_id, "context": current_context()}

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/fail")
    async def fail() -> None:
        raise RuntimeError("boom")

    return app


async def test_middleware_binds_and_echoes_ids(log_stream: io.StringIO) -> None:
    metrics = Metrics("unit")
    transport = httpx.ASGITransport(app=make_app(metrics))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get(
            "/items/42",
            headers={"X-Request-ID": "abc-DEF-123-x", "traceparent": TRACEPARENT},
        )
        context = response.json()["context"]
        assert context["request_id"] == "abc-DEF-123-x"
        assert context["correlation_id"] == "abc-DEF-123-x"  # defaults to the request id
        assert context["traceparent"] == TRACEPARENT
        assert response.headers["x-request-id"] == "abc-DEF-123-x"
        assert response.headers["x-correlation-id"] == "abc-DEF-123-x"

        # Unsafe or oversized ids are replaced, never echoed.
        # So are ids that hold a personal number (a client using an ID number as its id) and
        # characters outside letters, digits and dashes.
        for bad in (
            "has space",
            "x" * 65,
            "new\\nline",
            "abc.DEF_1",
            ID,
            f"order-{ID_X}",
            PHONE,
            "req138-0013-8000",
        ):
            response = await client.get(
                "/items/1",
                headers={"X-Request-ID": bad, "X-Correlation-ID": "flow-7", "traceparent": "junk"},
            )
            context = response.json()["context"]
            assert context["request_id"] != bad
            assert len(response.headers["x-request-id"]) == 32
            assert context["correlation_id"] == "flow-7"
            assert context["traceparent"] is None

        # A well-formed trace context whose trace id spells a mobile number is dropped too.
        spelled = f"00-{PHONE}{'a' * 21}-b7ad6b7169203331-01"
        assert is_valid_traceparent(spelled)
        response = await client.get("/items/1", headers={"traceparent": spelled})
        assert response.json()["context"]["traceparent"] is None

    # Context does not leak out of the request.
    assert current_context()["request_id"] is None

    access = [line for line in lines(log_stream) if line["logger"] == "wangban.access"]
    first = access[0]
    assert first["request_id"] == "abc-DEF-123-x"
    assert first["route"] == "/items/{item_id}"
    assert first["status"] == 200
    assert first["method"] == "GET"
    assert first["duration_ms"] >= 0
    assert first["level"] == "INFO"


async def test_metrics_use_route_templates(log_stream: io.StringIO) -> None:
    metrics = Metrics("unit")
    transport = httpx.ASGITransport(app=make_app(metrics))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        for item_id in ("1", "2", "3"):
            assert (await client.get(f"/items/{item_id}")).status_code == 200
        assert (await client.get("/nowhere/4")).status_code == 404
        assert (await client.get("/healthz")).status_code == 200
        failed = await client.get("/fail")
        assert failed.status_code == 500
        assert failed.headers["x-request-id"] == failed.json()["request_id"]

    def count(route: str, status: str) -> float | None:
        return metrics.registry.get_sample_value(
            "wangban_http_requests_total",
            {"method": "GET", "route": route, "status": status},
        )

    assert count("/items/{item_id}", "200") == 3
    assert count("unmatched", "404") == 1
    assert count("/fail", "500") == 1
    assert (
        metrics.registry.get_sample_value(
            "wangban_http_request_duration_seconds_count",
            {"method": "GET", "route": "/items/{item_id}"},
        )
        == 3
    )
    body, content_type = metrics.render()
    assert content_type.startswith("text/plain")
    assert b'route="/items/{item_id}"' in body
    assert b"/items/1" not in body

    health = [
        line
        for line in lines(log_stream)
        if line["logger"] == "wangban.access" and line["route"] == "/healthz"
    ]
    assert health and health[0]["level"] == "DEBUG"


def test_metrics_registries_are_independent() -> None:
    first, second = Metrics("a"), Metrics("a")
    first.outbox_backlog.set(7)
    first.events_consumed_total.labels("c", "t", "handled").inc()
    first.consumer_lag.labels("c", "topic", "0").set(3)
    first.dead_letters_total.labels("c").inc()
    first.outbox_published_total.inc(2)
    assert first.registry.get_sample_value("wangban_outbox_backlog") == 7
    assert second.registry.get_sample_value("wangban_outbox_backlog") == 0
