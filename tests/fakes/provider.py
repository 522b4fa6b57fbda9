"""A real provider over HTTP for tests: ``docs/provider-protocol.md`` in front of any
:class:`~sharing_service.providers.DataProvider`.

It runs uvicorn on 127.0.0.1 in the test's own event loop, so ``HttpProvider`` is exercised
over real sockets (connection pooling, timeouts, disconnects), and it can serve any
in-memory population (the sandbox included) to code that only speaks HTTP. The handle it
yields changes its behaviour while it runs, to play the misbehaving department.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sharing_service.providers import DataProvider, ProviderUnavailable, Subject
from tests.fakes.department import MisbehavingService, json_response, misbehave
from tests.serving import serve_asgi

__all__ = ["ProviderServer", "serve_provider"]


@dataclass(eq=False)
class ProviderServer(MisbehavingService):
    """The running server: where it is, what it saw, and knobs to change how it answers."""

    extra_fields: dict[str, Any] = field(default_factory=dict)
    _arrived: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def arrived(self) -> None:
        async with self._arrived:
            self._arrived.notify_all()

    async def wait_for_requests(self, count: int, *, timeout_s: float = 5.0) -> None:
        """Return once ``requests_seen`` reaches ``count`` (e.g. a request is in flight)."""
        async with asyncio.timeout(timeout_s), self._arrived:
            await self._arrived.wait_for(lambda: self.requests_seen >= count)

    def set_extra_fields(self, extra: Mapping[str, Any]) -> None:
        """Add these fields to every found record, asked for or not (a leaky provider)."""
        self.extra_fields = dict(extra)


def _to_json(value: object) -> object:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _json(status: int, body: object, headers: Mapping[str, str] | None = None) -> Response:
    return json_response(status, body, headers, default=_to_json)


def _build_app(provider: DataProvider, token: str, state: ProviderServer) -> Starlette:

    async def query(request: Request) -> Response:
        early = await misbehave(state, request, token=token)
        if early is not None:
            return early

        body = state.last_body
        subject = body.get("subject") if isinstance(body, dict) else None
        fields = body.get("fields") if isinstance(body, dict) else None
        if (
            not isinstance(subject, dict)
            or subject.get("kind") not in ("person", "company")
            or not isinstance(subject.get("id"), str)
            or not isinstance(fields, list)
            or not all(isinstance(f, str) for f in fields)
        ):
            return _json(400, {"error": "body must be {subject: {kind, id}, fields: [...]}"})
        try:
            record = await provider.fetch(
                dataset=request.path_params["dataset"],
                subject=Subject(kind=subject["kind"], id=subject["id"]),
                fields=fields,
                request_id=request.headers.get("x-request-id", ""),
            )
        except ProviderUnavailable as exc:
            return _json(503, {"error": exc.reason})
        if record is None:
            return _json(200, {"found": False})
        return _json(
            200,
            {
                "found": True,
                "record": {**record.values, **state.extra_fields},
                "updated_at": record.updated_at.isoformat(),
                "source": record.source,
            },
        )

    return Starlette(routes=[Route("/datasets/{dataset}/records:query", query, methods=["POST"])])


@contextlib.asynccontextmanager
async def serve_provider(
    provider: DataProvider,
    *,
    token: str,
    delay_s: float = 0,
    fail_with: int | None = None,
) -> AsyncIterator[ProviderServer]:
    """Serve ``provider`` over the provider protocol on 127.0.0.1 until the block ends.

    Yields the handle; its ``base_url`` is what ``HttpProvider`` is configured with. Must be
    entered from a running event loop (uvicorn serves as a task of it).
    """
    state = ProviderServer(delay_s=delay_s, fail_with=fail_with)
    try:
        async with serve_asgi(_build_app(provider, token, state)) as base_url:
            state.base_url = base_url
            yield state
            state._closing.set()  # a delayed answer stops waiting before the server stops
    finally:
        state._closing.set()
