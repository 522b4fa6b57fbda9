"""Calling the services behind the gateway.

Requests carry the caller's verified identity as the kit's internal token (the kit's service
client adds it from :data:`wangban.auth.identity_var`), so every service authorises the person
again. Answers pass through unchanged — status, body and the problem+json shape whatever
service answered — except a problem's ``instance``, which names the path the client asked the
gateway for rather than the service's own (``/applications/…`` means nothing outside); and a
service that cannot be reached is a 503 problem, never a 500.

GETs go through the lean client of :mod:`gateway.internal_http` (a tenth of httpx's CPU per
call), everything else through the kit's httpx client; the public catalogue's answers are kept
a few seconds (:mod:`gateway.public_answers`).
"""

from __future__ import annotations

import json as jsonlib
import logging
from collections.abc import Hashable, Mapping
from contextvars import ContextVar
from typing import Any, Protocol
from urllib.parse import quote

import httpx
from fastapi import Response

from gateway.internal_http import InternalGets, TransportError
from gateway.public_answers import Kept, PublicAnswers
from wangban.auth import InternalTokens
from wangban.errors import (
    PROBLEM_MEDIA_TYPE,
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    Problem,
    ServiceUnavailable,
    ValidationFailed,
)
from wangban.http import service_client
from wangban.settings import Settings

log = logging.getLogger(__name__)

SERVICES = ("catalog", "intake", "approval", "sharing", "notify")
PASSED_HEADERS = ("content-type", "retry-after", "location", "content-disposition", "etag")

gateway_path_var: ContextVar[str | None] = ContextVar("wangban_gateway_path", default=None)
"""The path of the request the gateway is answering (set by the routes' ``Services``
dependency): a forwarded problem's ``instance``."""


class ServiceAnswer(Protocol):
    """What the gateway reads of a service's answer: an ``httpx.Response``, or the lean
    client's :class:`gateway.internal_http.Answer`."""

    @property
    def status_code(self) -> int: ...

    @property
    def headers(self) -> Mapping[str, str]: ...

    @property
    def content(self) -> bytes: ...

    def json(self) -> Any: ...


def _with_gateway_instance(answer: ServiceAnswer) -> bytes:
    """The service's body, with the ``instance`` of a problem made the gateway's path."""
    path = gateway_path_var.get()
    if path is None or not answer.headers.get("content-type", "").startswith(PROBLEM_MEDIA_TYPE):
        return answer.content
    try:
        body = answer.json()
    except ValueError:
        return answer.content
    if not isinstance(body, dict):
        return answer.content
    body["instance"] = path
    # As the kit's ProblemResponse renders it.
    return jsonlib.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


class UpstreamUnavailable(ServiceUnavailable):
    type_slug = "upstream-unavailable"
    title = "服务暂不可用"


class NulCharacter(ValidationFailed):
    type_slug = "nul-character"
    title = "请求中含有空字符"


FORWARDED_PROBLEMS: tuple[type[Problem], ...] = (
    BadRequest,
    Forbidden,
    NotFound,
    Conflict,
    ValidationFailed,
    NulCharacter,
    UpstreamUnavailable,
)
"""The problems a pass-through route answers with besides the gateway's own: the service's
refusals (its roles and department check, an id it does not know, a state that does not allow
the action, a body it rejects) passed on unchanged, and the gateway's 503 when it is down."""


def segment(value: str) -> str:
    """``value`` as one path segment of a service's URL: percent-encoded, so a path parameter
    (already decoded by the gateway) can neither add segments (``/``), nor climb (``..``), nor
    make the URL unsendable (control characters)."""
    if value in (".", ".."):
        return value.replace(".", "%2E")
    return quote(value, safe="")


def _has_nul(value: Any) -> bool:
    # A stack, not recursion: however deep a value nests, this is no RecursionError (500).
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False


def refuse_nul(
    params: Mapping[str, Any], json: Any, content: bytes | None, headers: Mapping[str, str]
) -> None:
    """A NUL character in a query value or a JSON string is refused here (422): no form field
    holds one, and PostgreSQL text cannot store it, so a service would fail on it (500)."""
    if _has_nul(dict(params)) or _has_nul(json):
        raise NulCharacter("请求中含有空字符（U+0000），请删除后重试")
    content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
    if content and b"\\u0000" in content and "json" in content_type.lower():
        try:
            parsed = jsonlib.loads(content)
        except ValueError:
            return  # not JSON after all: the service refuses it as such
        if _has_nul(parsed):
            raise NulCharacter("请求中含有空字符（U+0000），请删除后重试")


class UpstreamProblem(Problem):
    """A service's problem answer, kept as it was when the gateway needs to raise it."""

    def __init__(self, status: int, body: Mapping[str, Any]) -> None:
        super().__init__(str(body.get("detail") or body.get("title") or ""))
        self.status = status  # type: ignore[misc]  # this instance's status is the service's
        self.body = dict(body)

    def to_body(self, instance: str | None, request_id: str | None) -> dict[str, Any]:
        body = dict(self.body)
        if instance is not None:
            body["instance"] = instance  # the gateway's path, not the service's
        if request_id is not None:
            body["request_id"] = request_id
        return body


class Upstreams:
    """One pooled client per service, opened at start-up and closed at shutdown: the kit's
    httpx client, and for a service reached over plain HTTP (not through one of the tests'
    in-process ``transports``) the lean client its GETs take."""

    def __init__(
        self,
        settings: Settings,
        *,
        transports: Mapping[str, httpx.AsyncBaseTransport] | None = None,
    ) -> None:
        transports = transports or {}
        self.clients = {
            name: service_client(settings, name, caller="gateway", transport=transports.get(name))
            for name in SERVICES
        }
        tokens = InternalTokens.from_settings(settings)
        self.gets = {
            name: InternalGets(
                base_url=settings.url_of(name),
                service=name,
                caller="gateway",
                tokens=tokens,
                timeout_s=settings.http_timeout_s,
                retries=settings.http_retries,
                guard=settings.transaction_guard,
            )
            for name in SERVICES
            if name not in transports and settings.url_of(name).startswith("http://")
        }
        self.public = PublicAnswers(ttl_s=settings.gateway_public_cache_s)

    async def close(self) -> None:
        for client in self.clients.values():
            await client.aclose()
        for gets in self.gets.values():
            await gets.aclose()

    async def send(
        self,
        service: str,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> ServiceAnswer:
        refuse_nul(params or {}, json, content, headers or {})
        kept = {k: v for k, v in (params or {}).items() if v is not None}
        gets = self.gets.get(service)
        if gets is not None and method == "GET" and json is None and not content:
            try:
                return await gets.get(path, params=kept, headers=headers)
            except TransportError as exc:
                log.warning("GET %s on %s failed: %s", path, service, exc)
                raise UpstreamUnavailable(
                    "服务暂时不可用，请稍后再试", extra={"service": service}
                ) from None
        try:
            return await self.clients[service].request(
                method,
                path,
                params=kept,
                json=json,
                content=content,
                headers=dict(headers or {}),
            )
        except httpx.HTTPError as exc:
            log.warning("%s %s on %s failed: %s", method, path, service, type(exc).__name__)
            raise UpstreamUnavailable(
                "服务暂时不可用，请稍后再试", extra={"service": service}
            ) from None

    async def forward(self, service: str, method: str, path: str, **kwargs: Any) -> Response:
        """The service's answer as the gateway's answer."""
        return _response(_passed(await self.send(service, method, path, **kwargs)))

    async def json(self, service: str, method: str, path: str, **kwargs: Any) -> Any:
        """The service's JSON answer, for the gateway's own use (aggregation, lookups); a
        problem answer is raised as the same problem."""
        return _json(await self.send(service, method, path, **kwargs))

    async def public_answer(
        self, service: str, path: str, *, params: Mapping[str, Any] | None = None
    ) -> Kept:
        """A GET that is the same for everyone (the public catalogue), kept a few seconds
        (:class:`gateway.public_answers.PublicAnswers`)."""
        kept = {k: v for k, v in (params or {}).items() if v is not None}
        key: Hashable = (service, path, tuple(sorted((k, str(v)) for k, v in kept.items())))
        return await self.public.get(
            key, lambda: self.send(service, "GET", path, params=kept), passed=_passed
        )

    async def forward_public(
        self, service: str, path: str, *, params: Mapping[str, Any] | None = None
    ) -> Response:
        """:meth:`forward` of a :meth:`public_answer`."""
        return _response(await self.public_answer(service, path, params=params))

    async def json_public(
        self, service: str, path: str, *, params: Mapping[str, Any] | None = None
    ) -> Any:
        """:meth:`json` of a :meth:`public_answer` (parsed once while it is kept)."""
        return _json(await self.public_answer(service, path, params=params))


def _passed(answer: ServiceAnswer) -> Kept:
    """What of a service's answer the gateway passes on."""
    return Kept(
        status=answer.status_code,
        body=_with_gateway_instance(answer),
        headers={h: answer.headers[h] for h in PASSED_HEADERS if h in answer.headers},
        until=0.0,
    )


def _response(kept: Kept) -> Response:
    return Response(content=kept.body, status_code=kept.status, headers=kept.headers)


def _json(answer: ServiceAnswer | Kept) -> Any:
    status = answer.status_code if not isinstance(answer, Kept) else answer.status
    body = answer.content if not isinstance(answer, Kept) else answer.body
    if status >= 400:
        try:
            problem = answer.json()
        except ValueError:
            problem = {"title": "服务暂不可用"}
        raise UpstreamProblem(status, problem if isinstance(problem, dict) else {})
    if status == 204 or not body:
        return None
    return answer.json()
