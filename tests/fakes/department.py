"""What every fake department system shares: a bearer-token check and the knobs that make it
misbehave (slow, failing, garbage), recorded requests, and JSON answers.

The sharing provider server and the real-name verification service are both such fakes; each
adds its own protocol routes on top of :func:`misbehave`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import Response


@dataclass(eq=False)
class MisbehavingService:
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

    async def arrived(self) -> None:
        """Called as each request arrives, before anything else (subclasses wake waiters)."""

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


def json_response(
    status: int,
    body: object,
    headers: Mapping[str, str] | None = None,
    *,
    default: Callable[[object], object] | None = None,
) -> Response:
    content = json.dumps(body, ensure_ascii=False, default=default).encode()
    return Response(content, status_code=status, media_type="application/json", headers=headers)


async def misbehave(state: MisbehavingService, request: Request, *, token: str) -> Response | None:
    """Record the request and apply the knobs and the token check; a response ends the
    exchange there, None lets the protocol route answer."""
    state.requests_seen += 1
    await state.arrived()
    state.last_headers = {k.lower(): v for k, v in request.headers.items()}
    raw = await request.body()
    try:
        state.last_body = json.loads(raw)
    except ValueError:
        state.last_body = None
    if state.delay_s > 0:
        # Interruptible, so leaving the serving block does not wait out a long delay.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(state._closing.wait(), state.delay_s)
    if state.fail_with is not None:
        return json_response(state.fail_with, {"error": "injected failure"})
    supplied = request.headers.get("authorization", "").encode()
    if not hmac.compare_digest(supplied, f"Bearer {token}".encode()):
        return json_response(401, {"error": "invalid_token"}, {"WWW-Authenticate": "Bearer"})
    if state.raw_response is not None:
        status, content, content_type = state.raw_response
        return Response(content, status_code=status, media_type=content_type)
    return None
