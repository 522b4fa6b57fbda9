"""A local WeChat server for tests: the token and subscription-message calls of WeChat's
server API, in the documented shapes, over real sockets.

It runs uvicorn on 127.0.0.1 in the test's own event loop (``tests.serving.serve_asgi``), so
``WeChatClient`` is exercised with real HTTP. The handle it yields records what arrived and
has knobs to play every answer the client must understand.

Token rules follow ``getStableAccessToken``: normal mode returns the current token while it is
valid and a new one otherwise; ``force_refresh`` always issues a new one and invalidates the
previous. A send with an unknown or invalidated token gets 40001, with an expired one 42001.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.serving import serve_asgi

__all__ = ["FakeWeChat", "serve_fake_wechat"]


@dataclass(eq=False)
class FakeWeChat:
    """The running server: where it is, what it saw, and knobs to change how it answers."""

    appid: str
    secret: str
    base_url: str = ""
    expires_in: int = 7200
    """What stable_token answers as the new token's life."""

    # -- what it saw ----------------------------------------------------------------------
    token_calls: list[bool] = field(default_factory=list)
    """One entry per stable_token call that passed the credential check: its force_refresh."""
    send_calls: int = 0
    """Send requests that reached the route, whatever was answered."""
    sent: list[dict[str, Any]] = field(default_factory=list)
    """Bodies of the sends answered with errcode 0, exactly as received."""
    tokens_used: list[str] = field(default_factory=list)
    """The access_token of every send request, in order."""

    # -- knobs ----------------------------------------------------------------------------
    openid_errors: dict[str, int] = field(default_factory=dict)
    """Answer this errcode to sends for this openid (43101, 40003, …)."""
    invalid_templates: set[str] = field(default_factory=set)
    """Template ids answered with 40037."""
    reject_field: str | None = None
    """Answer 47003 naming ``data.<field>.value``."""
    errcode: int | None = None
    """Answer every (correctly authorised) send with this errcode (-1, 45009, 41030, …)."""
    errmsg: str = "injected failure"
    """The errmsg to answer with ``errcode``."""
    reject_tokens: int = 0
    """Answer the next N sends with 40001 whatever token they carry."""
    http_status: int | None = None
    """Answer every request (both routes) with this status and a non-JSON body."""
    garbage: bool = False
    """Answer sends with 200 and a body that is not JSON."""
    token_errcode: int | None = None
    """Answer stable_token with this errcode."""
    delay_s: float = 0.0
    """Wait this long before answering any request."""

    # -- token state ----------------------------------------------------------------------
    current_token: str | None = None
    expired: set[str] = field(default_factory=set)
    _counter: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _msgids: itertools.count[int] = field(default_factory=lambda: itertools.count(2_000_000_001))
    _closing: asyncio.Event = field(default_factory=asyncio.Event)

    def expire_token(self) -> None:
        """The current token lapses: the next send with it gets 42001."""
        if self.current_token is not None:
            self.expired.add(self.current_token)

    def _issue(self) -> str:
        self.current_token = f"fake-token-{next(self._counter)}-{self.appid}"
        return self.current_token

    def _token_valid(self) -> bool:
        return self.current_token is not None and self.current_token not in self.expired


def _errcode(code: int, errmsg: str) -> JSONResponse:
    # Real answers end errmsg with a request id ("rid: …"); the client must cope with it.
    return JSONResponse({"errcode": code, "errmsg": f"{errmsg} rid: 6650e1f2-0a1b2c3d-4e5f6071"})


def _build_app(state: FakeWeChat) -> Starlette:
    async def pause() -> None:
        if state.delay_s > 0:
            # Interruptible, so leaving serve_fake_wechat does not wait out a long delay.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(state._closing.wait(), state.delay_s)

    def token_answer(*, appid: object, secret: object, force: bool) -> Response:
        if state.token_errcode is not None:
            return _errcode(state.token_errcode, "injected token failure")
        if appid != state.appid:
            return _errcode(40013, "invalid appid")
        if secret != state.secret:
            return _errcode(40125, "invalid appsecret")
        state.token_calls.append(force)
        token = (
            state.current_token
            if not force and state._token_valid() and state.current_token is not None
            else state._issue()
        )
        return JSONResponse({"access_token": token, "expires_in": state.expires_in})

    async def stable_token(request: Request) -> Response:
        await pause()
        if state.http_status is not None:
            return Response(b"injected failure", status_code=state.http_status)
        try:
            body = json.loads(await request.body())
        except ValueError:
            return _errcode(47001, "data format error")
        if not isinstance(body, dict) or body.get("grant_type") != "client_credential":
            return _errcode(40002, "invalid grant_type")
        force = body.get("force_refresh", False)
        if not isinstance(force, bool):
            return _errcode(47001, "data format error: force_refresh")
        return token_answer(appid=body.get("appid"), secret=body.get("secret"), force=force)

    async def token(request: Request) -> Response:
        # The older GET /cgi-bin/token; the client does not use it, but a deployment tool might.
        await pause()
        if request.query_params.get("grant_type") != "client_credential":
            return _errcode(40002, "invalid grant_type")
        return token_answer(
            appid=request.query_params.get("appid"),
            secret=request.query_params.get("secret"),
            force=True,
        )

    async def send(request: Request) -> Response:
        state.send_calls += 1
        await pause()
        if state.http_status is not None:
            return Response(b"injected failure", status_code=state.http_status)
        if state.garbage:
            return Response(b"<html>502 Bad Gateway</html>", media_type="text/html")
        access_token = request.query_params.get("access_token", "")
        state.tokens_used.append(access_token)
        if state.reject_tokens > 0:
            state.reject_tokens -= 1
            return _errcode(40001, "invalid credential, access_token is invalid or not latest")
        if access_token in state.expired:
            return _errcode(42001, "access_token expired")
        if not access_token or access_token != state.current_token:
            return _errcode(40001, "invalid credential, access_token is invalid or not latest")
        try:
            body = json.loads(await request.body())
        except ValueError:
            return _errcode(47001, "data format error")
        data = body.get("data") if isinstance(body, dict) else None
        if (
            not isinstance(body, dict)
            or not isinstance(body.get("touser"), str)
            or not isinstance(body.get("template_id"), str)
            or not isinstance(data, dict)
            or not all(
                isinstance(v, dict) and set(v) == {"value"} and isinstance(v["value"], str)
                for v in data.values()
            )
        ):
            return _errcode(47001, "data format error")
        openid_error = state.openid_errors.get(body["touser"])
        if openid_error == 43101:
            return _errcode(43101, "user refuse to accept the msg")
        if openid_error is not None:
            return _errcode(openid_error, "invalid openid")
        if body["template_id"] in state.invalid_templates:
            return _errcode(40037, "invalid template_id")
        if state.reject_field is not None:
            return _errcode(47003, f"argument invalid! data.{state.reject_field}.value invalid")
        if state.errcode is not None:
            return _errcode(state.errcode, state.errmsg)
        state.sent.append(body)
        return JSONResponse({"errcode": 0, "errmsg": "ok", "msgid": next(state._msgids)})

    return Starlette(
        routes=[
            Route("/cgi-bin/stable_token", stable_token, methods=["POST"]),
            Route("/cgi-bin/token", token, methods=["GET"]),
            Route("/cgi-bin/message/subscribe/send", send, methods=["POST"]),
        ]
    )


@contextlib.asynccontextmanager
async def serve_fake_wechat(*, appid: str, secret: str) -> AsyncIterator[FakeWeChat]:
    """Serve a fake WeChat for this appid and secret on 127.0.0.1 until the block ends.
    Must be entered from a running event loop (uvicorn serves as a task of it)."""
    state = FakeWeChat(appid=appid, secret=secret)
    try:
        async with serve_asgi(_build_app(state)) as base_url:
            state.base_url = base_url
            yield state
            state._closing.set()  # a delayed answer stops waiting before the server stops
    finally:
        state._closing.set()
