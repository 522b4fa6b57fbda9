"""A real-name verification service over HTTP for tests: ``docs/identity-provider-protocol.md``
in front of any :class:`~gateway.identity_provider.IdentityVerifier` (the sandbox register,
usually).

It runs uvicorn on 127.0.0.1 in the test's own event loop, so ``HttpIdentityVerifier`` is
exercised over real sockets, and a gateway under test can be pointed at it by URL. It checks
the bearer token as the real service would; the handle it yields has knobs to play a
misbehaving service (failing statuses, slowness, garbage).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.identity_provider import COMPANY_PATH, PERSON_PATH, IdentityVerifier
from tests.serving import serve_asgi

__all__ = ["FakeVerificationService", "serve_verifier"]


@dataclass(eq=False)
class FakeVerificationService:
    """The running service: where it is, what it saw, and knobs to change how it answers."""

    base_url: str = ""
    requests_seen: int = 0
    """Requests that reached a protocol route, whatever was answered."""
    last_headers: dict[str, str] = field(default_factory=dict)
    """Headers of the last request, names lower-cased."""
    last_body: Any = None
    """The last request body as parsed JSON (None if it was not JSON)."""
    delay_s: float = 0.0
    fail_with: int | None = None
    raw_response: tuple[int, bytes, str] | None = None
    _closing: asyncio.Event = field(default_factory=asyncio.Event)

    def set_delay(self, seconds: float) -> None:
        """Wait this long before answering each request."""
        self.delay_s = seconds

    def set_failure(self, status: int | None) -> None:
        """Answer every request with this status and a non-protocol body; None: behave."""
        self.fail_with = status

    def set_raw_response(
        self, body: bytes | None, *, status: int = 200, content_type: str = "application/json"
    ) -> None:
        """Answer authorised requests with exactly this (garbage, say); None: behave."""
        self.raw_response = None if body is None else (status, body, content_type)


def _json(status: int, body: object, headers: Mapping[str, str] | None = None) -> Response:
    content = json.dumps(body, ensure_ascii=False).encode()
    return Response(content, status_code=status, media_type="application/json", headers=headers)


def _strings(body: object, names: tuple[str, ...]) -> dict[str, str] | None:
    if not isinstance(body, dict) or not all(isinstance(body.get(n), str) for n in names):
        return None
    return {n: body[n] for n in names}


def _build_app(verifier: IdentityVerifier, token: str, state: FakeVerificationService) -> Starlette:
    expected = f"Bearer {token}".encode()

    async def received(request: Request) -> Response | None:
        """Record the request and apply the knobs; a response ends the exchange there."""
        state.requests_seen += 1
        state.last_headers = {k.lower(): v for k, v in request.headers.items()}
        raw = await request.body()
        try:
            state.last_body = json.loads(raw)
        except ValueError:
            state.last_body = None
        if state.delay_s > 0:
            # Interruptible, so leaving serve_verifier does not wait out a long delay.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(state._closing.wait(), state.delay_s)
        if state.fail_with is not None:
            return _json(state.fail_with, {"error": "injected failure"})
        supplied = request.headers.get("authorization", "").encode()
        if not hmac.compare_digest(supplied, expected):
            return _json(401, {"error": "invalid_token"}, {"WWW-Authenticate": "Bearer"})
        if state.raw_response is not None:
            status, content, content_type = state.raw_response
            return Response(content, status_code=status, media_type=content_type)
        return None

    async def verify_person(request: Request) -> Response:
        early = await received(request)
        if early is not None:
            return early
        body = _strings(state.last_body, ("name", "id_number"))
        if body is None:
            return _json(400, {"error": "body must be {name, id_number}"})
        check = await verifier.verify_person(**body)
        return _json(200, {"result": check.result})

    async def company_role(request: Request) -> Response:
        early = await received(request)
        if early is not None:
            return early
        body = _strings(state.last_body, ("uscc", "name", "id_number"))
        if body is None:
            return _json(400, {"error": "body must be {uscc, name, id_number}"})
        check = await verifier.company_role(**body)
        return _json(200, {"company_name": check.company_name, "role": check.role})

    return Starlette(
        routes=[
            Route(PERSON_PATH, verify_person, methods=["POST"]),
            Route(COMPANY_PATH, company_role, methods=["POST"]),
        ]
    )


@contextlib.asynccontextmanager
async def serve_verifier(
    verifier: IdentityVerifier, *, token: str
) -> AsyncIterator[FakeVerificationService]:
    """Serve ``verifier`` over the protocol on 127.0.0.1 until the block ends.

    Yields the handle; its ``base_url`` is what ``HttpIdentityVerifier`` (or the gateway's
    ``WANGBAN_IDENTITY_PROVIDER_URL``) is configured with. Must be entered from a running
    event loop (uvicorn serves as a task of it).
    """
    state = FakeVerificationService()
    try:
        async with serve_asgi(_build_app(verifier, token, state)) as base_url:
            state.base_url = base_url
            yield state
            state._closing.set()  # a delayed answer stops waiting before the server stops
    finally:
        state._closing.set()
