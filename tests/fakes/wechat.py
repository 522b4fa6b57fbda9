"""A local WeChat server for tests: the calls of WeChat's server API our services make, in the
documented shapes, over real sockets: the access token (``stable_token``), subscription
messages (notify), login (``jscode2session``) and face verification (``getverifyid`` /
``queryverifyinfo``; the gateway).

It runs uvicorn on 127.0.0.1 in the test's own event loop (``tests.serving.serve_asgi``), so
the clients are exercised with real HTTP. The handle it yields records what arrived and has
knobs to play every answer the clients must understand.

Token rules follow ``getStableAccessToken``: normal mode returns the current token while it is
valid and a new one otherwise; ``force_refresh`` always issues a new one and invalidates the
previous. A call with an unknown or invalidated token gets 40001, with an expired one 42001.

Login: the test registers the codes ``wx.login`` would have handed out
(``fake.login_codes["code-1"] = (openid, unionid_or_None)``); each works once, as at WeChat.
Face verification: ``getverifyid`` remembers the openid, out_seq_no and certificate of each
verify_id; the user's face check is played by ``fake.complete_face(openid, verify_ret)``, and
``queryverifyinfo`` answers the result only when the openid, out_seq_no and ``cert_hash`` match
what the verification was started with.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import itertools
import json
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.serving import serve_asgi

__all__ = [
    "SESSION_KEY",
    "FakeWeChat",
    "documented_cert_hash",
    "keyword_refusal",
    "serve_fake_wechat",
]

SESSION_KEY = "c2Vzc2lvbi1rZXktc2VjcmV0LWZha2U="
"""The session key every successful login answers with: clients must drop it."""
FACE_NOT_DONE = 90004
"""verify_ret before the user went through the face check (WeChat: user cancelled)."""


def documented_cert_hash(cert_type: str, cert_name: str, cert_no: str) -> str:
    """``cert_hash`` as WeChat's queryVerifyInfo documents it: each field's UTF-8 bytes in
    standard base64, joined as ``cert_type=…&cert_name=…&cert_no=…``, SHA-256, lowercase hex."""

    def b64(text: str) -> str:
        return base64.b64encode(text.encode()).decode()

    joined = f"cert_type={b64(cert_type)}&cert_name={b64(cert_name)}&cert_no={b64(cert_no)}"
    return hashlib.sha256(joined.encode()).hexdigest()


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
    refused_fields: list[str] = field(default_factory=list)
    """Keywords whose value broke WeChat's rules for its type (each answered 47003)."""
    tokens_used: list[str] = field(default_factory=list)
    """The access_token of every send and face request, in order."""
    login_calls: list[dict[str, str]] = field(default_factory=list)
    """The query of every jscode2session request, in order."""
    face_calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    """(``getverifyid`` | ``queryverifyinfo``, body) of every face request that passed the
    token check, in order."""

    # -- knobs ----------------------------------------------------------------------------
    openid_errors: dict[str, int] = field(default_factory=dict)
    """Answer this errcode to sends for this openid (43101, 40003, …)."""
    refused: set[tuple[str, str]] = field(default_factory=set)
    """(openid, template id): the user has no subscription to that template (they turned it
    off, or WeChat used it up): sends answered 43101."""
    invalid_templates: set[str] = field(default_factory=set)
    """Template ids answered with 40037."""
    templates: dict[str, set[str]] | None = None
    """Templates added to the mini-program on the WeChat platform: id → its keywords. When
    set, another id is answered 40037 and data with other keywords 47003, as WeChat does.
    Values are always checked against the keyword's type (thing ≤ 20 characters, phrase ≤ 5
    Chinese characters, …): one WeChat refuses is answered 47003 naming it."""
    reject_field: str | None = None
    """Answer 47003 naming ``data.<field>.value``."""
    errcode: int | None = None
    """Answer every (correctly authorised) send with this errcode (-1, 45009, 41030, …)."""
    errmsg: str = "injected failure"
    """The errmsg to answer with ``errcode``."""
    reject_tokens: int = 0
    """Answer the next N sends or face calls with 40001 whatever token they carry."""
    http_status: int | None = None
    """Answer every request (every route) with this status and a non-JSON body."""
    garbage: bool = False
    """Answer sends, logins and face calls with 200 and a body that is not JSON."""
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

    # -- login (code2Session) -------------------------------------------------------------
    login_codes: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    """Codes ``wx.login`` handed out: code → (openid, unionid or None). Each works once: a
    used code gets 40163 ("code been used", as WeChat answers), an unknown one 40029."""
    used_login_codes: set[str] = field(default_factory=set)
    """Codes already exchanged."""
    login_errcode: int | None = None
    """Answer every code2Session with this errcode (45011, 40226, -1, …)."""

    # -- face verification ----------------------------------------------------------------
    face_sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    """verify_id → what getVerifyId was given: openid, out_seq_no, and the certificate (kept
    as the cert_hash queryVerifyInfo must present)."""
    face_results: dict[str, int] = field(default_factory=dict)
    """verify_id or openid → the verify_ret queryVerifyInfo answers (a verify_id entry wins);
    neither: the user has not been through the check yet (90004)."""
    face_errcode: int | None = None
    """Answer every (correctly authorised) face call with this errcode."""
    _verify_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def complete_face(self, openid: str, verify_ret: int = 10000) -> None:
        """The user went through the mini-program's face check with this outcome (10000:
        recognised)."""
        self.face_results[openid] = verify_ret

    def expire_token(self) -> None:
        """The current token lapses: the next send with it gets 42001."""
        if self.current_token is not None:
            self.expired.add(self.current_token)

    def _issue(self) -> str:
        self.current_token = f"fake-token-{next(self._counter)}-{self.appid}"
        return self.current_token

    def _token_valid(self) -> bool:
        return self.current_token is not None and self.current_token not in self.expired


# WeChat's documented value rules for subscription-message keywords (written here from the
# documentation, not imported from notify's templates, so the two check each other). Time
# and date values: "15:01", "2019年10月1日 15:01", "2019年10月1日", "2019-10-01 15:01".
_CLOCK = r"([01]?[0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9])?"
_DAY = r"[0-9]{4}(年(0?[1-9]|1[0-2])月(0?[1-9]|[12][0-9]|3[01])日|-[0-9]{2}-[0-9]{2})"
_HAN = r"[\u4e00-\u9fff]"
_KEYWORD = re.compile(
    r"(thing|number|letter|symbol|character_string|time|date|amount|phone_number|car_number"
    r"|name|phrase)([0-9]+)"
)
_VALUE_RULES: dict[str, re.Pattern[str]] = {
    "thing": re.compile(r"(?s).{1,20}"),
    "number": re.compile(r"[0-9]{1,32}(\.[0-9]+)?"),
    "letter": re.compile(r"[A-Za-z]{1,32}"),
    "symbol": re.compile(r"[^0-9A-Za-z\s\u4e00-\u9fff]{1,5}"),
    "character_string": re.compile(r"[0-9A-Za-z!-/:-@\[-`{-~]{1,32}"),
    "time": re.compile(rf"({_DAY} )?{_CLOCK}|{_DAY}"),
    "date": re.compile(rf"{_DAY}( {_CLOCK})?"),
    "amount": re.compile(r"[¥$￥]?[0-9]{1,10}(\.[0-9]{1,2})?元?"),
    "phone_number": re.compile(r"[0-9+\-() ]{1,17}"),
    "car_number": re.compile(r"[0-9A-Za-z\u4e00-\u9fff]{1,8}"),
    "name": re.compile(rf"{_HAN}{{1,10}}|[A-Za-z ]{{1,20}}"),
    "phrase": re.compile(rf"{_HAN}{{1,5}}"),
}


def keyword_refusal(key: str, value: str) -> bool:
    """Whether WeChat refuses ``value`` for the keyword ``key`` (47003)."""
    match = _KEYWORD.fullmatch(key)
    if match is None:
        return True
    return _VALUE_RULES[match.group(1)].fullmatch(value) is None


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

    def token_refusal(request: Request) -> Response | None:
        """The access-token check of every call made with one (sends, face calls)."""
        access_token = request.query_params.get("access_token", "")
        state.tokens_used.append(access_token)
        if state.reject_tokens > 0:
            state.reject_tokens -= 1
            return _errcode(40001, "invalid credential, access_token is invalid or not latest")
        if access_token in state.expired:
            return _errcode(42001, "access_token expired")
        if not access_token or access_token != state.current_token:
            return _errcode(40001, "invalid credential, access_token is invalid or not latest")
        return None

    def broken() -> Response | None:
        if state.http_status is not None:
            return Response(b"injected failure", status_code=state.http_status)
        if state.garbage:
            return Response(b"<html>502 Bad Gateway</html>", media_type="text/html")
        return None

    async def send(request: Request) -> Response:
        state.send_calls += 1
        await pause()
        failure = broken()
        if failure is not None:
            return failure
        refused = token_refusal(request)
        if refused is not None:
            return refused
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
        if (body["touser"], body["template_id"]) in state.refused:
            return _errcode(43101, "user refuse to accept the msg")
        if body["template_id"] in state.invalid_templates:
            return _errcode(40037, "invalid template_id")
        if state.reject_field is not None:
            return _errcode(47003, f"argument invalid! data.{state.reject_field}.value invalid")
        registered = state.templates.get(body["template_id"]) if state.templates else None
        if state.templates is not None and registered is None:
            return _errcode(40037, "invalid template_id")
        if registered is not None and set(data) != registered:
            return _errcode(47003, "argument invalid! data does not match the template")
        refused = next((k for k, v in data.items() if keyword_refusal(k, v["value"])), None)
        if refused is not None:
            state.refused_fields.append(refused)
            return _errcode(47003, f"argument invalid! data.{refused}.value invalid")
        if state.errcode is not None:
            return _errcode(state.errcode, state.errmsg)
        state.sent.append(body)
        return JSONResponse({"errcode": 0, "errmsg": "ok", "msgid": next(state._msgids)})

    async def code2session(request: Request) -> Response:
        await pause()
        query = dict(request.query_params)
        state.login_calls.append(query)
        failure = broken()
        if failure is not None:
            return failure
        if query.get("appid") != state.appid:
            return _errcode(40013, "invalid appid")
        if query.get("secret") != state.secret:
            return _errcode(40125, "invalid appsecret")
        if query.get("grant_type") != "authorization_code":
            return _errcode(40002, "invalid grant_type")
        if state.login_errcode is not None:
            return _errcode(state.login_errcode, "injected login failure")
        code = query.get("js_code", "")
        if code in state.used_login_codes:
            return _errcode(40163, "code been used")
        known = state.login_codes.pop(code, None)
        if known is None:
            return _errcode(40029, "invalid code")
        state.used_login_codes.add(code)
        openid, unionid = known
        # As WeChat answers today: no errcode on success, and a session key to drop.
        answer: dict[str, Any] = {"session_key": SESSION_KEY, "openid": openid}
        if unionid is not None:
            answer["unionid"] = unionid
        return JSONResponse(answer)

    async def face_body(request: Request, name: str) -> dict[str, Any] | Response:
        """The JSON body of a face call that passed the failure knobs and the token check."""
        await pause()
        failure = broken()
        if failure is not None:
            return failure
        refused = token_refusal(request)
        if refused is not None:
            return refused
        try:
            body = json.loads(await request.body())
        except ValueError:
            return _errcode(47001, "data format error")
        if not isinstance(body, dict):
            return _errcode(47001, "data format error")
        state.face_calls.append((name, body))
        if state.face_errcode is not None:
            return _errcode(state.face_errcode, "injected face failure")
        return body

    async def get_verify_id(request: Request) -> Response:
        body = await face_body(request, "getverifyid")
        if isinstance(body, Response):
            return body
        cert = body.get("cert_info")
        if (
            not isinstance(cert, dict)
            or cert.get("cert_type") != "IDENTITY_CARD"
            or not all(isinstance(cert.get(k), str) and cert[k] for k in ("cert_name", "cert_no"))
            or not isinstance(body.get("openid"), str)
            or not isinstance(body.get("out_seq_no"), str)
            or not body["openid"]
            or not body["out_seq_no"]
        ):
            return _errcode(47001, "data format error")
        # Unique across runs: the gateway keeps verifications, and WeChat never reuses an id.
        verify_id = f"fake-verify-{next(state._verify_ids)}-{uuid.uuid4().hex}"
        state.face_sessions[verify_id] = {
            "openid": body["openid"],
            "out_seq_no": body["out_seq_no"],
            "cert_hash": documented_cert_hash("IDENTITY_CARD", cert["cert_name"], cert["cert_no"]),
        }
        return JSONResponse(
            {"errcode": 0, "errmsg": "ok", "verify_id": verify_id, "expires_in": 3600}
        )

    async def query_verify_info(request: Request) -> Response:
        body = await face_body(request, "queryverifyinfo")
        if isinstance(body, Response):
            return body
        verify_id = str(body.get("verify_id"))
        started = state.face_sessions.get(verify_id)
        if started is None:
            return _errcode(47001, "data format error: verify_id not found")
        if (
            body.get("openid") != started["openid"]
            or body.get("out_seq_no") != started["out_seq_no"]
            or body.get("cert_hash") != started["cert_hash"]
        ):
            return _errcode(47001, "data format error: does not match the verification")
        verify_ret = state.face_results.get(
            verify_id, state.face_results.get(started["openid"], FACE_NOT_DONE)
        )
        return JSONResponse({"errcode": 0, "errmsg": "ok", "verify_ret": verify_ret})

    return Starlette(
        routes=[
            Route("/sns/jscode2session", code2session, methods=["GET"]),
            Route("/cityservice/face/identify/getverifyid", get_verify_id, methods=["POST"]),
            Route(
                "/cityservice/face/identify/queryverifyinfo", query_verify_info, methods=["POST"]
            ),
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
