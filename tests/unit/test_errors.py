"""Problem+json rendering, driven through a real FastAPI app in process."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

import httpx
import pytest
from fastapi import FastAPI, HTTPException, Query
from pydantic import BaseModel, Field, field_validator
from sqlalchemy.exc import OperationalError

from wangban.errors import (
    PROBLEM_MEDIA_TYPE,
    Conflict,
    NotFound,
    ServiceUnavailable,
    TooManyRequests,
    install_problem_handlers,
    is_unavailability,
    problem_responses,
)
from wangban.observability import Metrics, RequestContextMiddleware


class ItemNotFound(NotFound):
    type_slug = "item-not-found"
    title = "事项不存在"


class ItemRetired(Conflict):
    type_slug = "item-retired"
    title = "事项已停办"


class Person(BaseModel):
    name: str = Field(min_length=2, max_length=20)
    age: int = Field(ge=0, le=150)


class Application(BaseModel):
    applicant: Person
    item_code: str = Field(pattern=r"^[0-9A-Z-]+$")
    copies: list[int] = Field(min_length=1)
    purpose: str

    @field_validator("purpose")
    @classmethod
    def _purpose_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("请填写办理用途")
        return value


SECRET_TEXT = "password=hunter2 at db.internal:5432"


def make_app() -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)
    app.add_middleware(RequestContextMiddleware, metrics=Metrics("test"), service="test")

    @app.post(
        "/applications",
        responses=problem_responses(ItemNotFound, NotFound, ItemRetired),
    )
    async def submit(
        application: Application, page: Annotated[int, Query(ge=1)] = 1
    ) -> dict[str, Any]:
        return {"ok": True}

    @app.get("/items/{code}")
    async def get_item(code: str) -> dict[str, str]:
        if code == "retired":
            raise ItemRetired("该事项已于 2024 年停办", extra={"replacement": "NEW-1"})
        raise ItemNotFound(f"找不到事项 {code}")

    @app.get("/route-detail")
    async def route_detail() -> None:
        raise HTTPException(status_code=404, detail="申请不存在")

    @app.get("/too-large")
    async def too_large() -> None:
        raise HTTPException(status_code=413)

    @app.get("/throttled")
    async def throttled() -> None:
        raise TooManyRequests("请 30 秒后再试", headers={"Retry-After": "30"})

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError(SECRET_TEXT)

    @app.get("/db-down")
    async def db_down() -> None:
        raise OperationalError("SELECT 1", {}, ConnectionRefusedError(111, "refused"))

    @app.get("/socket-down")
    async def socket_down() -> None:
        raise ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 5432)")

    return app


@pytest.fixture(scope="module")
async def client() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=make_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


def assert_problem(response: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
    body: dict[str, Any] = response.json()
    assert body["type"] == f"urn:wangban:problem:{slug}"
    assert body["status"] == status
    assert body["title"]
    assert body["request_id"] == response.headers["x-request-id"]
    return body


async def test_validation_error_lists_pointers_and_chinese_messages(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        "/applications?page=0",
        json={
            "applicant": {"name": "张", "age": 200},
            "item_code": "bad code",
            "copies": [],
            "purpose": "  ",
        },
    )
    body = assert_problem(response, 422, "validation-error")
    errors = {e["pointer"]: e for e in body["errors"]}
    assert errors["/query/page"]["detail"] == "应大于或等于 1"
    assert errors["/body/applicant/name"]["detail"] == "长度不能少于 2 个字符"
    assert errors["/body/applicant/name"]["type"] == "string_too_short"
    assert errors["/body/applicant/age"]["detail"] == "应小于或等于 150"
    assert errors["/body/item_code"]["detail"].startswith("格式不正确")
    assert errors["/body/copies"]["detail"] == "至少需要 1 项"
    assert errors["/body/purpose"]["detail"] == "请填写办理用途"
    assert body["detail"].startswith(f"请求中有 {len(errors)} 处错误：")
    assert body["instance"] == "/applications"
    # The submitted values are never echoed: they may be personal data.
    assert "input" not in json.dumps(body)


async def test_missing_fields_and_list_pointers(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/applications", json={"applicant": {"age": "x"}, "copies": [1, "two"]}
    )
    body = assert_problem(response, 422, "validation-error")
    errors = {e["pointer"]: e["detail"] for e in body["errors"]}
    assert errors["/body/applicant/name"] == "此项必填"
    assert errors["/body/applicant/age"] == "应为整数"
    assert errors["/body/copies/1"] == "应为整数"
    assert errors["/body/item_code"] == "此项必填"


async def test_invalid_json_body(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/applications", content=b'{"applicant": ', headers={"content-type": "application/json"}
    )
    body = assert_problem(response, 422, "validation-error")
    assert body["errors"][0]["pointer"] == "/body"
    assert body["errors"][0]["type"] == "json_invalid"
    assert "不是合法的 JSON" in body["errors"][0]["detail"]


async def test_unknown_route_is_not_found_problem(client: httpx.AsyncClient) -> None:
    response = await client.get("/no/such/place")
    body = assert_problem(response, 404, "not-found")
    assert body["detail"] == "找不到请求的地址"
    assert body["instance"] == "/no/such/place"


async def test_wrong_method_keeps_allow_header(client: httpx.AsyncClient) -> None:
    response = await client.delete("/applications")
    assert_problem(response, 405, "method-not-allowed")
    assert response.headers["allow"] == "POST"


async def test_raised_problem_subclass(client: httpx.AsyncClient) -> None:
    response = await client.get("/items/ABC-1")
    body = assert_problem(response, 404, "item-not-found")
    assert body["title"] == "事项不存在"
    assert body["detail"] == "找不到事项 ABC-1"

    response = await client.get("/items/retired")
    body = assert_problem(response, 409, "item-retired")
    assert body["replacement"] == "NEW-1"


async def test_route_http_exception_keeps_its_detail(client: httpx.AsyncClient) -> None:
    body = assert_problem(await client.get("/route-detail"), 404, "not-found")
    assert body["detail"] == "申请不存在"
    body = assert_problem(await client.get("/too-large"), 413, "http-413")
    assert body["title"] == "请求内容过大"


async def test_problem_headers_are_sent(client: httpx.AsyncClient) -> None:
    response = await client.get("/throttled")
    assert_problem(response, 429, "too-many-requests")
    assert response.headers["retry-after"] == "30"


async def test_unexpected_exception_is_500_without_its_text(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("ERROR", logger="wangban.errors"):
        response = await client.get("/boom")
    body = assert_problem(response, 500, "internal-error")
    assert "hunter2" not in response.text
    assert "RuntimeError" not in response.text
    assert "db.internal" not in response.text
    assert body["detail"]
    # It is logged for operators, with the traceback.
    assert any(r.exc_info and r.levelname == "ERROR" for r in caplog.records)


async def test_database_unavailability_is_503_with_retry_after(
    client: httpx.AsyncClient,
) -> None:
    for path in ("/db-down", "/socket-down"):
        response = await client.get(path)
        body = assert_problem(response, 503, "service-unavailable")
        assert int(response.headers["retry-after"]) > 0
        assert "5432" not in response.text
        assert body["detail"] == "服务暂时不可用，请稍后重试"


def test_unavailability_classification() -> None:
    assert is_unavailability(ConnectionRefusedError())
    assert is_unavailability(TimeoutError())
    assert is_unavailability(OSError("Multiple exceptions: [Errno 111] Connect call failed"))
    assert is_unavailability(httpx.ConnectError("refused"))
    wrapped = RuntimeError("outer")
    wrapped.__cause__ = ConnectionResetError()
    assert is_unavailability(wrapped)
    assert not is_unavailability(FileNotFoundError(2, "No such file"))
    assert not is_unavailability(ValueError("bad"))


def test_service_unavailable_problem_carries_retry_after() -> None:
    assert ServiceUnavailable().headers["Retry-After"].isdigit()


async def test_openapi_documents_problem_json(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    responses = document["paths"]["/applications"]["post"]["responses"]
    ref = {"$ref": "#/components/schemas/ProblemDetails"}
    assert responses["404"]["content"] == {PROBLEM_MEDIA_TYPE: {"schema": ref}}
    # Two classes with one status are merged and both named.
    assert "事项不存在" in responses["404"]["description"]
    assert "资源不存在" in responses["404"]["description"]
    assert responses["409"]["content"][PROBLEM_MEDIA_TYPE]["schema"] == ref
    # FastAPI's own 422 shape is replaced by what the service really sends.
    assert list(responses["422"]["content"]) == [PROBLEM_MEDIA_TYPE]
    schemas = document["components"]["schemas"]
    assert {"ProblemDetails", "FieldError"} <= set(schemas)
    assert "HTTPValidationError" not in schemas
    assert schemas["ProblemDetails"]["properties"]["errors"]["anyOf"][0]["items"] == {
        "$ref": "#/components/schemas/FieldError"
    }


def test_problem_responses_merges_by_status() -> None:
    responses = problem_responses(ItemNotFound, NotFound, ServiceUnavailable)
    assert set(responses) == {404, 503}
    assert "urn:wangban:problem:item-not-found" in responses[404]["description"]
