"""Errors as RFC 9457 problem details (``application/problem+json``).

Every error a Wangban service returns — raised on purpose, found by request validation,
produced by routing, or unexpected — goes through one renderer here, so clients (the
citizen app, the window-clerk console, other services) handle a single shape with a
stable machine-readable ``type`` and a Chinese ``title``/``detail`` they can show.
"""

from __future__ import annotations

import errno
import functools
import json
import logging
import socket
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any, ClassVar, Final

import httpx
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.utils import is_body_allowed_for_status_code
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware import Middleware
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from wangban.observability import REQUEST_ID_HEADER, request_id_var

__all__ = [
    "PROBLEM_MEDIA_TYPE",
    "PROBLEM_TYPE_PREFIX",
    "BadRequest",
    "Conflict",
    "FieldError",
    "Forbidden",
    "InternalError",
    "MethodNotAllowed",
    "NotFound",
    "Problem",
    "ProblemDetails",
    "ProblemResponse",
    "ServiceUnavailable",
    "TooManyRequests",
    "Unauthorized",
    "ValidationFailed",
    "field_errors_from_validation",
    "install_problem_handlers",
    "is_unavailability",
    "problem_responses",
    "render_problem",
]

logger = logging.getLogger(__name__)

PROBLEM_TYPE_PREFIX: Final = "urn:wangban:problem:"
PROBLEM_MEDIA_TYPE: Final = "application/problem+json"
RETRY_AFTER_UNAVAILABLE_S: Final = 5


class Problem(Exception):
    """An error with a place in the API contract.

    Services subclass the classes below (``class ItemNotFound(NotFound): type_slug =
    "item-not-found"``) so that clients can branch on ``type`` rather than on wording.
    ``detail`` is shown to people, so it is Chinese and must not contain internal data.
    """

    status: ClassVar[int] = 500
    type_slug: ClassVar[str] = "internal-error"
    title: ClassVar[str] = "服务器内部错误"
    default_headers: ClassVar[Mapping[str, str]] = {}
    keeps_changes: ClassVar[bool] = False
    """When True, the request's unit of work commits what was flushed before this error was
    raised instead of rolling it back: for refusals that must leave a trace, such as the audit
    record of a denied data lookup. The service flushes only that trace before raising."""

    def __init__(
        self,
        detail: str | None = None,
        *,
        extra: dict[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail
        self.extra: dict[str, Any] = dict(extra or {})
        self.headers: dict[str, str] = {**self.default_headers, **(headers or {})}

    @property
    def type_uri(self) -> str:
        return PROBLEM_TYPE_PREFIX + self.type_slug

    def to_body(self, instance: str | None, request_id: str | None) -> dict[str, Any]:
        """The JSON body. ``extra`` members are RFC 9457 extensions; they can never
        overwrite the standard members clients depend on."""
        body: dict[str, Any] = {"type": self.type_uri, "title": self.title, "status": self.status}
        for name, value in (
            ("detail", self.detail),
            ("instance", instance),
            ("request_id", request_id),
        ):
            if value is not None:
                body[name] = value
        for name, value in self.extra.items():
            body.setdefault(name, value)
        return body


class BadRequest(Problem):
    status = 400
    type_slug = "bad-request"
    title = "请求参数有误"


class Unauthorized(Problem):
    status = 401
    type_slug = "unauthorized"
    title = "未登录或身份无效"
    # RFC 9110 requires a challenge on every 401.
    default_headers: ClassVar[Mapping[str, str]] = {"WWW-Authenticate": 'Bearer realm="wangban"'}


class Forbidden(Problem):
    status = 403
    type_slug = "forbidden"
    title = "无权访问"


class NotFound(Problem):
    status = 404
    type_slug = "not-found"
    title = "资源不存在"


class MethodNotAllowed(Problem):
    status = 405
    type_slug = "method-not-allowed"
    title = "不支持的请求方法"


class Conflict(Problem):
    status = 409
    type_slug = "conflict"
    title = "请求与当前状态冲突"


class ValidationFailed(Problem):
    status = 422
    type_slug = "validation-error"
    title = "提交的内容未通过校验"


class TooManyRequests(Problem):
    status = 429
    type_slug = "too-many-requests"
    title = "请求过于频繁"


class InternalError(Problem):
    status = 500
    type_slug = "internal-error"
    title = "服务器内部错误"


class ServiceUnavailable(Problem):
    status = 503
    type_slug = "service-unavailable"
    title = "服务暂时不可用"
    default_headers: ClassVar[Mapping[str, str]] = {"Retry-After": str(RETRY_AFTER_UNAVAILABLE_S)}


# ---------------------------------------------------------------------------------------
# Documented shape
# ---------------------------------------------------------------------------------------


class FieldError(BaseModel):
    """One invalid input, located by a JSON pointer into the request."""

    pointer: str = Field(
        description="出错位置（JSON Pointer），如 /body/applicant/name 或 /query/page",
        examples=["/body/applicant/name"],
    )
    detail: str = Field(description="可直接展示的中文说明", examples=["此项必填"])
    type: str = Field(description="pydantic 错误类型，供程序判断", examples=["missing"])


class ProblemDetails(BaseModel):
    """RFC 9457 problem details as Wangban returns them."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(
        description="错误类型 URI，程序据此判断", examples=["urn:wangban:problem:not-found"]
    )
    title: str = Field(description="错误类型的中文标题", examples=["资源不存在"])
    status: int = Field(description="HTTP 状态码", examples=[404])
    detail: str | None = Field(default=None, description="本次错误的中文说明")
    instance: str | None = Field(default=None, description="出错的请求路径")
    request_id: str | None = Field(default=None, description="请求编号，反馈问题时请提供")
    errors: list[FieldError] | None = Field(default=None, description="逐项的校验错误（仅 422）")


_SCHEMA_REF: Final = "#/components/schemas/{model}"


def problem_responses(*problem_classes: type[Problem]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` entries for the problems a route may return.

    Classes sharing a status are merged into one entry whose description lists their
    titles and ``type`` URIs. The schema is referenced, and ``install_problem_handlers``
    adds it to the document's components.
    """
    by_status: dict[int, list[type[Problem]]] = {}
    for cls in problem_classes:
        by_status.setdefault(cls.status, []).append(cls)
    responses: dict[int | str, dict[str, Any]] = {}
    for status, classes in sorted(by_status.items()):
        description = "；".join(
            f"{cls.title}（{PROBLEM_TYPE_PREFIX}{cls.type_slug}）" for cls in classes
        )
        responses[status] = {
            "description": description,
            "content": {
                PROBLEM_MEDIA_TYPE: {
                    "schema": {"$ref": _SCHEMA_REF.format(model=ProblemDetails.__name__)}
                }
            },
        }
    return responses


# ---------------------------------------------------------------------------------------
# Validation errors
# ---------------------------------------------------------------------------------------

_DATE_HINT = "，格式如 2024-01-31"
_DATETIME_HINT = "，格式如 2024-01-31T08:30:00+08:00"

# Messages for the pydantic error types people actually hit; the rest fall back to
# pydantic's English message, which is still better than nothing.
_MESSAGES: Final[dict[str, str]] = {
    "missing": "此项必填",
    "string_type": "应为字符串",
    "string_too_short": "长度不能少于 {min_length} 个字符",
    "string_too_long": "长度不能超过 {max_length} 个字符",
    "string_pattern_mismatch": "格式不正确（应匹配 {pattern}）",
    "too_short": "至少需要 {min_length} 项",
    "too_long": "最多只能有 {max_length} 项",
    "int_type": "应为整数",
    "int_parsing": "应为整数",
    "int_from_float": "应为整数，不能带小数",
    "float_type": "应为数字",
    "float_parsing": "应为数字",
    "decimal_parsing": "应为数字",
    "decimal_type": "应为数字",
    "decimal_max_digits": "数字总位数不能超过 {max_digits} 位",
    "decimal_max_places": "小数位数不能超过 {decimal_places} 位",
    "greater_than": "应大于 {gt}",
    "greater_than_equal": "应大于或等于 {ge}",
    "less_than": "应小于 {lt}",
    "less_than_equal": "应小于或等于 {le}",
    "multiple_of": "应为 {multiple_of} 的倍数",
    "literal_error": "应为以下值之一：{expected}",
    "enum": "应为以下值之一：{expected}",
    "json_invalid": "请求体不是合法的 JSON",
    "json_type": "应为 JSON 字符串",
    "bool_type": "应为布尔值（true 或 false）",
    "bool_parsing": "应为布尔值（true 或 false）",
    "uuid_type": "应为合法的 UUID",
    "uuid_parsing": "应为合法的 UUID",
    "date_type": "应为日期" + _DATE_HINT,
    "date_parsing": "应为合法的日期" + _DATE_HINT,
    "date_from_datetime_parsing": "应为合法的日期" + _DATE_HINT,
    "date_from_datetime_inexact": "应为日期，不能带时间" + _DATE_HINT,
    "date_past": "应为过去的日期",
    "date_future": "应为将来的日期",
    "datetime_type": "应为日期时间" + _DATETIME_HINT,
    "datetime_parsing": "应为合法的日期时间" + _DATETIME_HINT,
    "datetime_from_date_parsing": "应为合法的日期时间" + _DATETIME_HINT,
    "timezone_aware": "日期时间须带时区" + _DATETIME_HINT,
    "extra_forbidden": "不允许出现此字段",
    "model_type": "应为 JSON 对象",
    "model_attributes_type": "应为 JSON 对象",
    "dict_type": "应为 JSON 对象",
    "list_type": "应为数组",
    "url_parsing": "应为合法的网址",
    "url_type": "应为合法的网址",
}


def _pointer(loc: Sequence[str | int]) -> str:
    # RFC 6901 escaping, so a key containing "/" cannot shift the location.
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in loc)


def _message(error: Mapping[str, Any]) -> str:
    kind = str(error.get("type", ""))
    ctx: Mapping[str, Any] = error.get("ctx") or {}
    if kind in ("value_error", "assertion_error") and "error" in ctx:
        # Our own validators raise ValueError with a Chinese message meant for people.
        return str(ctx["error"])
    if kind == "string_too_short" and ctx.get("min_length") == 1:
        return "不能为空"
    template = _MESSAGES.get(kind)
    if template is not None:
        try:
            return template.format(**{k: str(v) for k, v in ctx.items()})
        except (KeyError, IndexError):
            pass
    return str(error.get("msg", "输入无效"))


def field_errors_from_validation(errors: Sequence[Mapping[str, Any]]) -> list[FieldError]:
    """Translate pydantic/FastAPI errors into pointers and Chinese messages.

    The submitted ``input`` is deliberately dropped: it may be an ID number.
    """
    result: list[FieldError] = []
    for error in errors:
        loc = tuple(error.get("loc", ()))
        kind = str(error.get("type", "value_error"))
        detail = _message(error)
        if kind == "json_invalid" and loc and isinstance(loc[-1], int):
            # The last element is a character offset, not a path segment.
            detail = f"{detail}（第 {loc[-1] + 1} 个字符附近）"
            loc = loc[:-1]
        result.append(FieldError(pointer=_pointer(loc), detail=detail, type=kind))
    return result


_SUMMARY_LIMIT = 3


def _summary(errors: Sequence[FieldError]) -> str:
    shown = "；".join(f"{e.pointer or '/'} {e.detail}" for e in errors[:_SUMMARY_LIMIT])
    more = " 等" if len(errors) > _SUMMARY_LIMIT else ""
    return f"请求中有 {len(errors)} 处错误：{shown}{more}"


# ---------------------------------------------------------------------------------------
# Unavailability
# ---------------------------------------------------------------------------------------


def _optional_classes() -> tuple[tuple[type[BaseException], ...], type[BaseException] | None]:
    # The kit must import even where the database stack is absent (e.g. a tool).
    classes: list[type[BaseException]] = []
    dbapi_error: type[BaseException] | None = None
    try:
        from sqlalchemy import exc as sa_exc

        # TimeoutError: no pooled connection came free in time (overload), not a bug.
        classes += [sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError]
        dbapi_error = sa_exc.DBAPIError
    except ImportError:  # pragma: no cover
        pass
    try:
        import asyncpg

        classes += [
            asyncpg.PostgresConnectionError,
            asyncpg.CannotConnectNowError,
            asyncpg.TooManyConnectionsError,
        ]
    except ImportError:  # pragma: no cover
        pass
    return tuple(classes), dbapi_error


_UNAVAILABLE_CLASSES, _DBAPI_ERROR = _optional_classes()
_NETWORK_ERRNOS: Final = frozenset(
    {
        errno.ECONNREFUSED,
        errno.ECONNRESET,
        errno.ECONNABORTED,
        errno.EHOSTUNREACH,
        errno.ENETUNREACH,
        errno.ETIMEDOUT,
        errno.EADDRNOTAVAIL,
    }
)


def is_unavailability(exc: BaseException) -> bool:
    """Whether ``exc`` means a dependency (database, another service) is unreachable,
    rather than a bug: the client should retry later, not report a fault.

    Follows ``__cause__`` because SQLAlchemy and httpx wrap the underlying socket error
    with ``raise ... from``. Not ``__context__``: a bug in an ``except TimeoutError``
    block is still a bug, not an outage.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if _is_unavailability_here(current):
            return True
        current = current.__cause__
    return False


def _is_unavailability_here(exc: BaseException) -> bool:
    if isinstance(exc, (*_UNAVAILABLE_CLASSES, ServiceUnavailable)):
        return True
    if (
        _DBAPI_ERROR is not None
        and isinstance(exc, _DBAPI_ERROR)
        and getattr(exc, "connection_invalidated", False)
    ):
        return True
    if isinstance(exc, httpx.ConnectError | httpx.TimeoutException):
        return True
    if isinstance(exc, ConnectionError | TimeoutError | socket.gaierror):
        return True
    if isinstance(exc, OSError):
        if exc.errno in _NETWORK_ERRNOS:
            return True
        # asyncio's create_connection reports failures against several addresses as a
        # plain OSError without errno; that is still "could not connect".
        return exc.errno is None and str(exc).startswith("Multiple exceptions:")
    return False


# ---------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------


class ProblemResponse(JSONResponse):
    media_type = PROBLEM_MEDIA_TYPE


def _request_id(request: Request) -> str | None:
    # The context variable is reset by the time the outermost error handler runs; the
    # middleware also leaves the id in the request state for that case.
    return request_id_var.get() or getattr(request.state, "request_id", None)


def render_problem(request: Request, problem: Problem) -> Response:
    """The single place a problem becomes an HTTP response."""
    request_id = _request_id(request)
    headers = dict(problem.headers)
    if request_id:
        headers[REQUEST_ID_HEADER] = request_id
    if not is_body_allowed_for_status_code(problem.status):
        return Response(status_code=problem.status, headers=headers)
    return ProblemResponse(
        problem.to_body(instance=request.url.path, request_id=request_id),
        status_code=problem.status,
        headers=headers,
    )


_BY_STATUS: Final[dict[int, type[Problem]]] = {
    cls.status: cls
    for cls in (
        BadRequest,
        Unauthorized,
        Forbidden,
        NotFound,
        MethodNotAllowed,
        Conflict,
        ValidationFailed,
        TooManyRequests,
        InternalError,
        ServiceUnavailable,
    )
}

_HTTP_DETAILS: Final[dict[int, str]] = {
    404: "找不到请求的地址",
    405: "此地址不支持该请求方法",
}

_OTHER_TITLES: Final[dict[int, str]] = {
    406: "无法提供请求的内容格式",
    408: "请求超时",
    410: "资源已不存在",
    411: "缺少请求长度",
    412: "前置条件不满足",
    413: "请求内容过大",
    414: "请求地址过长",
    415: "不支持的内容类型",
    428: "缺少前置条件",
    501: "功能尚未实现",
    502: "上游服务出错",
    504: "上游服务超时",
}


def _problem_for_http_exception(exc: StarletteHTTPException) -> Problem:
    status = exc.status_code
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = ""
    # Starlette fills ``detail`` with the English reason phrase when none was given;
    # that is replaced with our Chinese wording. A detail written by a route is kept.
    given = exc.detail if isinstance(exc.detail, str) and exc.detail != phrase else None
    detail = given or _HTTP_DETAILS.get(status)
    # A structured detail (FastAPI allows any JSON) travels as an extension member.
    extra: dict[str, Any] = {}
    if exc.detail is not None and not isinstance(exc.detail, str):
        extra["data"] = exc.detail
    headers = dict(exc.headers or {})
    cls = _BY_STATUS.get(status) or _problem_class_for(status, phrase)
    return cls(detail, extra=extra, headers=headers)


@functools.lru_cache(maxsize=64)
def _problem_class_for(status: int, phrase: str) -> type[Problem]:
    # Statuses without a class of ours (413, 415, ...) still get a stable type URI.
    return type(
        f"HTTP{status}Problem",
        (Problem,),
        {
            "status": status,
            "type_slug": f"http-{status}",
            "title": _OTHER_TITLES.get(status, phrase or "请求失败"),
        },
    )


async def _handle_problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Problem)
    if exc.status >= 500:
        level = logging.WARNING if isinstance(exc, ServiceUnavailable) else logging.ERROR
        logger.log(level, "%s: %s", exc.type_uri, exc, exc_info=exc)
    return render_problem(request, exc)


async def _handle_validation(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = field_errors_from_validation(exc.errors())
    problem = ValidationFailed(
        _summary(errors),
        extra={"errors": [e.model_dump() for e in errors]},
    )
    return render_problem(request, problem)


async def _handle_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    return render_problem(request, _problem_for_http_exception(exc))


async def _handle_unexpected(request: Request, exc: Exception) -> Response:
    if is_unavailability(exc):
        logger.warning(
            "dependency unavailable (%s) on %s %s",
            type(exc).__name__,
            request.method,
            request.url.path,
            exc_info=exc,
        )
        return render_problem(request, ServiceUnavailable("服务暂时不可用，请稍后重试"))
    logger.exception(
        "unhandled %s on %s %s",
        type(exc).__name__,
        request.method,
        request.url.path,
        exc_info=exc,
    )
    # Never the exception text: it may hold SQL, file paths or personal data.
    return render_problem(
        request, InternalError("服务器处理请求时出错，请稍后重试；如仍有问题请提供请求编号")
    )


class _UnhandledErrorMiddleware:
    """Turns an exception no handler claimed into a problem response, inside the user
    middleware stack.

    Starlette sends handlers registered for ``Exception`` to its outermost middleware,
    which re-raises after responding (uvicorn then logs every failure a second time) and
    runs after the request-context middleware has already finished with the request.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        response_started = False

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            if response_started:
                # Half a response is on the wire; all we can do is let the server abort.
                raise
            response = await _handle_unexpected(Request(scope, receive), exc)
            await response(scope, receive, send)


def install_problem_handlers(app: FastAPI) -> None:
    """Route every error of ``app`` through the problem renderer and document the
    problem schema in its OpenAPI document.

    Call before the app serves its first request (like ``add_middleware``).
    """
    app.add_exception_handler(Problem, _handle_problem)
    app.add_exception_handler(RequestValidationError, _handle_validation)
    app.add_exception_handler(StarletteHTTPException, _handle_http_exception)
    # Appended, not inserted at the front like add_middleware does: it must sit inside
    # every other middleware (request ids, metrics) whatever order they were added in.
    if not any(m.cls is _UnhandledErrorMiddleware for m in app.user_middleware):
        if app.middleware_stack is not None:
            raise RuntimeError("install_problem_handlers must run before the app starts")
        app.user_middleware.append(Middleware(_UnhandledErrorMiddleware))
    # Last resort for failures raised by middleware outside the one above.
    app.add_exception_handler(Exception, _handle_unexpected)
    _document_problems(app)


def _document_problems(app: FastAPI) -> None:
    original = app.openapi

    def openapi_with_problems() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = original()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        problem_schema = ProblemDetails.model_json_schema(ref_template=_SCHEMA_REF)
        for name, definition in problem_schema.pop("$defs", {}).items():
            components.setdefault(name, definition)
        components.setdefault(ProblemDetails.__name__, problem_schema)
        _replace_default_validation_responses(schema)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi_with_problems  # type: ignore[method-assign]


def _replace_default_validation_responses(schema: dict[str, Any]) -> None:
    # FastAPI documents 422 with its own {"detail": [...]} shape, which this service never
    # sends; describe what it does send.
    ours = problem_responses(ValidationFailed)[422]
    for path_item in schema.get("paths", {}).values():
        for operation in path_item.values():
            responses = operation.get("responses") if isinstance(operation, dict) else None
            if not responses or "422" not in responses:
                continue
            content = responses["422"].get("content", {})
            if "application/json" in content and PROBLEM_MEDIA_TYPE not in content:
                responses["422"] = dict(ours)
    components = schema.get("components", {}).get("schemas", {})
    # HTTPValidationError first: it is what references ValidationError.
    for name in ("HTTPValidationError", "ValidationError"):
        if name in components and _SCHEMA_REF.format(model=name) not in json.dumps(schema):
            del components[name]
