"""A local SMS gateway for tests, speaking ``docs/sms-gateway-protocol.md`` over real sockets.

It checks signatures and timestamps itself (an independent implementation of the protocol's
signing rule, so a client that signs wrongly fails here), de-duplicates on ``out_id``,
records what it accepted, and has knobs for every answer the client must understand. It can
also play the gateway's other half: POST a signed delivery receipt to a callback URL.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import itertools
import json
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.serving import serve_asgi

__all__ = ["FakeSmsGateway", "serve_fake_sms", "signed_headers"]

_PHONE = re.compile(r"1[3-9][0-9]{9}")
_MESSAGES = {
    "isv.BUSINESS_LIMIT_CONTROL": "business limit control: too many messages to this number",
    "isv.THROTTLED": "request rate over the account's limit",
    "isv.MOBILE_NUMBER_ILLEGAL": "phone_number is not a valid mainland mobile number",
    "isv.TEMPLATE_MISSING": "template_code not found or not approved",
    "isv.SMS_SIGNATURE_ILLEGAL": "sign_name not found or not approved",
    "isv.TEMPLATE_PARAMS_ILLEGAL": "template_param does not match the template",
    "isv.AMOUNT_NOT_ENOUGH": "account balance is not enough",
    "isp.SYSTEM_ERROR": "system error, try again later",
}


def signed_headers(
    body: bytes, *, access_key_id: str, secret: str, timestamp: int | None = None
) -> dict[str, str]:
    """Headers for a message signed per the protocol (written here from the document, not
    imported from the client, so the two implementations check each other)."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), f"{stamp}\n".encode() + body, hashlib.sha256).hexdigest()
    return {
        "Content-Type": "application/json; charset=utf-8",
        "X-Sms-Timestamp": stamp,
        "Authorization": f"Bearer {access_key_id}:{digest}",
    }


@dataclass(eq=False)
class FakeSmsGateway:
    """The running gateway: where it is, what it saw, and knobs to change how it answers."""

    access_key_id: str
    secret: str
    sign_name: str
    base_url: str = ""

    # -- what it saw ----------------------------------------------------------------------
    requests_seen: int = 0
    """Requests that reached the send route, whatever was answered."""
    sent: list[dict[str, Any]] = field(default_factory=list)
    """Bodies of the messages accepted (each one an SMS that went out), as received."""
    biz_ids: dict[str, str] = field(default_factory=dict)
    """out_id → biz_id of every accepted message."""

    # -- knobs ----------------------------------------------------------------------------
    templates: set[str] | None = None
    """Registered template codes; None accepts any."""
    phone_errors: dict[str, str] = field(default_factory=dict)
    """Answer this error code to sends to this number."""
    code: str | None = None
    """Answer every authorised send with this error code."""
    message: str | None = None
    """The message to answer with ``code`` (default: a fixed text per code)."""
    http_status: int | None = None
    """Answer every request with this status and a non-JSON body."""
    garbage: bool = False
    """Answer 200 with a body that is not JSON."""
    delay_s: float = 0.0

    _biz_counter: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _closing: asyncio.Event = field(default_factory=asyncio.Event)

    async def post_receipt(
        self,
        callback_url: str,
        *,
        out_id: str,
        delivered: bool = True,
        secret: str | None = None,
        timestamp: int | None = None,
        tamper: bool = False,
    ) -> httpx.Response:
        """POST the signed receipt for an accepted message to ``callback_url``.

        ``secret`` signs with another key, ``timestamp`` stamps another time, ``tamper``
        changes the body after signing: the ways a forged or replayed receipt looks."""
        accepted = next((m for m in self.sent if m["out_id"] == out_id), None)
        if accepted is None:
            raise KeyError(f"no accepted message with out_id {out_id!r}")
        receipt = {
            "biz_id": self.biz_ids[out_id],
            "out_id": out_id,
            "phone_number": accepted["phone_number"],
            "status": "DELIVERED" if delivered else "FAILED",
            "err_code": "DELIVRD" if delivered else "MK:0001",
            "report_time": datetime.now(UTC).isoformat(),
        }
        body = json.dumps(receipt, ensure_ascii=False).encode()
        headers = signed_headers(
            body,
            access_key_id=self.access_key_id,
            secret=self.secret if secret is None else secret,
            timestamp=timestamp,
        )
        if tamper:
            body = body.replace(b'"DELIVERED"', b'"FAILED"').replace(b'"MK:0001"', b'"DELIVRD"')
        async with httpx.AsyncClient(trust_env=False) as client:
            return await client.post(callback_url, content=body, headers=headers)


def _answer(code: str, state: FakeSmsGateway, status: int = 200) -> JSONResponse:
    message = state.message if state.message is not None else _MESSAGES.get(code, code)
    return JSONResponse({"code": code, "message": message}, status_code=status)


def _authorised(state: FakeSmsGateway, body: bytes, headers: dict[str, str]) -> bool:
    stamp = headers.get("x-sms-timestamp", "")
    if not stamp.isdigit() or abs(time.time() - int(stamp)) > 300:
        return False
    expected = signed_headers(
        body, access_key_id=state.access_key_id, secret=state.secret, timestamp=int(stamp)
    )["Authorization"]
    return hmac.compare_digest(headers.get("authorization", "").encode(), expected.encode())


def _build_app(state: FakeSmsGateway) -> Starlette:
    async def send(request: Request) -> Response:
        state.requests_seen += 1
        if state.delay_s > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(state._closing.wait(), state.delay_s)
        if state.http_status is not None:
            return Response(b"injected failure", status_code=state.http_status)
        if state.garbage:
            return Response(b"<html>gateway error</html>", media_type="text/html")
        raw = await request.body()
        headers = {k.lower(): v for k, v in request.headers.items()}
        if not _authorised(state, raw, headers):
            return JSONResponse(
                {"code": "isv.AUTH_FAILED", "message": "signature does not match"},
                status_code=401,
            )
        try:
            body = json.loads(raw)
        except ValueError:
            return _answer("isv.INVALID_PARAMETERS", state, 400)
        params = body.get("template_param") if isinstance(body, dict) else None
        if (
            not isinstance(body, dict)
            or not all(
                isinstance(body.get(k), str)
                for k in ("sign_name", "template_code", "phone_number", "out_id")
            )
            or not isinstance(params, dict)
            or not all(isinstance(v, str) for v in params.values())
        ):
            return _answer("isv.INVALID_PARAMETERS", state, 400)
        out_id = body["out_id"]
        if out_id in state.biz_ids:
            # Already accepted: the first answer again, and no second SMS.
            return JSONResponse({"code": "OK", "biz_id": state.biz_ids[out_id], "message": "OK"})
        if state.code is not None:
            return _answer(state.code, state)
        if body["phone_number"] in state.phone_errors:
            return _answer(state.phone_errors[body["phone_number"]], state)
        if not _PHONE.fullmatch(body["phone_number"]):
            return _answer("isv.MOBILE_NUMBER_ILLEGAL", state)
        if body["sign_name"] != state.sign_name:
            return _answer("isv.SMS_SIGNATURE_ILLEGAL", state)
        if state.templates is not None and body["template_code"] not in state.templates:
            return _answer("isv.TEMPLATE_MISSING", state)
        biz_id = f"{next(state._biz_counter):06d}^{int(time.time() * 1000)}"
        state.biz_ids[out_id] = biz_id
        state.sent.append(body)
        return JSONResponse({"code": "OK", "biz_id": biz_id, "message": "OK"})

    return Starlette(routes=[Route("/sms/send", send, methods=["POST"])])


@contextlib.asynccontextmanager
async def serve_fake_sms(
    *, access_key_id: str, secret: str, sign_name: str
) -> AsyncIterator[FakeSmsGateway]:
    """Serve a fake gateway for this key and signature on 127.0.0.1 until the block ends.
    Must be entered from a running event loop (uvicorn serves as a task of it)."""
    state = FakeSmsGateway(access_key_id=access_key_id, secret=secret, sign_name=sign_name)
    try:
        async with serve_asgi(_build_app(state)) as base_url:
            state.base_url = base_url
            yield state
            state._closing.set()
    finally:
        state._closing.set()
