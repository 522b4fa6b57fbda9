"""A real-name verification service over HTTP for tests: ``docs/identity-provider-protocol.md``
in front of any :class:`~gateway.identity_provider.IdentityVerifier` (the sandbox register,
usually).

It runs uvicorn on 127.0.0.1 in the test's own event loop, so ``HttpIdentityVerifier`` is
exercised over real sockets, and a gateway under test can be pointed at it by URL. It checks
the bearer token as the real service would; the handle it yields has knobs to play a
misbehaving service (failing statuses, slowness, garbage).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.identity_provider import COMPANY_PATH, PERSON_PATH, IdentityVerifier
from tests.fakes.department import MisbehavingService, json_response, misbehave
from tests.serving import serve_asgi

__all__ = ["FakeVerificationService", "serve_verifier"]


class FakeVerificationService(MisbehavingService):
    """The running service: where it is, what it saw, and knobs to change how it answers."""


def _strings(body: object, names: tuple[str, ...]) -> dict[str, str] | None:
    if not isinstance(body, dict) or not all(isinstance(body.get(n), str) for n in names):
        return None
    return {n: body[n] for n in names}


def _build_app(verifier: IdentityVerifier, token: str, state: FakeVerificationService) -> Starlette:
    async def received(request: Request) -> Response | None:
        return await misbehave(state, request, token=token)

    async def verify_person(request: Request) -> Response:
        early = await received(request)
        if early is not None:
            return early
        body = _strings(state.last_body, ("name", "id_number"))
        if body is None:
            return json_response(400, {"error": "body must be {name, id_number}"})
        check = await verifier.verify_person(**body)
        return json_response(200, {"result": check.result})

    async def company_role(request: Request) -> Response:
        early = await received(request)
        if early is not None:
            return early
        body = _strings(state.last_body, ("uscc", "name", "id_number"))
        if body is None:
            return json_response(400, {"error": "body must be {uscc, name, id_number}"})
        check = await verifier.company_role(**body)
        return json_response(200, {"company_name": check.company_name, "role": check.role})

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
