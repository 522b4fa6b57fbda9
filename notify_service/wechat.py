"""WeChat mini-program subscription messages (订阅消息) over WeChat's server API.

Two calls of WeChat's documented API are used:

* ``POST /cgi-bin/stable_token`` (getStableAccessToken) for the access token. Unlike the older
  ``GET /cgi-bin/token``, its normal mode hands every caller the *same* token while it is
  valid, so several workers asking at once do not invalidate each other's token. Its
  ``force_refresh`` mode does invalidate the previous token, and WeChat limits how often it may
  be used, so we force only after WeChat itself rejected the token we used.
* ``POST /cgi-bin/message/subscribe/send?access_token=…`` (subscribeMessage.send).

The token is shared by every worker through a :class:`TokenStore` (the service uses one in
PostgreSQL; :class:`MemoryTokenStore` serves one process and the tests). Each client also keeps
its own copy while it is fresh, so a send normally costs one HTTP call and no store read.

Privacy: the openid and the token never appear in a :class:`~notify_service.channels.SendResult`
or in our logs (we log the errcode only). WeChat insists on the token in the query string, and
httpx logs request URLs at INFO, so a logging filter on the ``httpx`` logger masks it there.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Protocol

import httpx
from pydantic import SecretStr

from notify_service.channels import SendResult

__all__ = [
    "PRODUCTION_BASE_URL",
    "MemoryTokenStore",
    "StoredToken",
    "TokenStore",
    "WeChatClient",
    "token_usable_until",
]

logger = logging.getLogger(__name__)

PRODUCTION_BASE_URL: Final = "https://api.weixin.qq.com"

_REFRESH_MARGIN: Final = timedelta(minutes=5)
_REFRESH_MARGIN_SHARE: Final = 0.1

# WeChat's answers to a token it does not accept: 40001 invalid or not the latest (another
# party force-refreshed), 40014 malformed, 42001 expired.
_TOKEN_ERRORS: Final = frozenset({40001, 40014, 42001})
_TEMPORARY: Final = {
    -1: "微信系统繁忙，请稍后重试（-1）",
    45009: "微信接口调用次数已达每日上限（45009）",
    45011: "微信接口调用过于频繁，请稍后重试（45011）",
}
_PERMANENT: Final = {
    40003: "openid 无效：该用户不是本小程序的用户（40003）",
    40037: "订阅消息模板 ID 无效（40037）",
    41030: "跳转页面 page 无效：页面不存在或小程序尚未发布该页面（41030）",
}
# 47003 names the offending keyword as "data.<key>.value" (e.g. "argument invalid!
# data.thing1.value invalid"); the key is what staff must fix in the template mapping.
_FIELD_IN_ERRMSG: Final = re.compile(r"\bdata\.([A-Za-z0-9_]+)\.value\b")
_ACCESS_TOKEN_IN_TEXT: Final = re.compile(r"(access_token=)[^&\s\"']+")
_MAX_ERRMSG: Final = 200


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class StoredToken:
    """An access token as the workers share it."""

    token: str = field(repr=False)
    expires_at: datetime
    """When workers stop using it (aware, UTC): WeChat's expiry less a safety margin (see
    :func:`token_usable_until`), so nobody sends with a token about to lapse in flight."""

    def __post_init__(self) -> None:
        if self.expires_at.tzinfo is None:
            raise ValueError("expires_at must be timezone-aware")

    def is_fresh(self, now: datetime) -> bool:
        return now < self.expires_at


def token_usable_until(fetched_at: datetime, expires_in: int) -> datetime:
    """When a token fetched at ``fetched_at`` with WeChat's ``expires_in`` should be replaced:
    5 minutes before it lapses, or 10 % of its life before when the life is short (a normal-mode
    call late in a token's life returns the same token with the little time it has left)."""
    life = timedelta(seconds=expires_in)
    margin = min(_REFRESH_MARGIN, life * _REFRESH_MARGIN_SHARE)
    return (fetched_at + life - margin).astimezone(UTC)


class TokenStore(Protocol):
    """Where all workers keep the one access token."""

    async def load(self) -> StoredToken | None: ...

    async def refresh(
        self, fetch: Callable[[], Awaitable[StoredToken]], *, replacing: str | None
    ) -> StoredToken:
        """Under a lock all workers share: if the stored token is not ``replacing`` and is
        still fresh, return it (another worker refreshed meanwhile); otherwise await
        ``fetch()``, store it and return it. An exception from ``fetch`` propagates and leaves
        the stored token as it was."""
        ...


class MemoryTokenStore:
    """A :class:`TokenStore` for one process (an ``asyncio.Lock``): tests, single workers."""

    def __init__(self, *, clock: Callable[[], datetime] = _utcnow) -> None:
        self._clock = clock
        self._lock = asyncio.Lock()
        self._token: StoredToken | None = None

    async def load(self) -> StoredToken | None:
        return self._token

    async def refresh(
        self, fetch: Callable[[], Awaitable[StoredToken]], *, replacing: str | None
    ) -> StoredToken:
        async with self._lock:
            current = self._token
            if (
                current is not None
                and current.token != replacing
                and current.is_fresh(self._clock())
            ):
                return current
            fetched = await fetch()
            self._token = fetched
            return fetched


class _HideAccessToken(logging.Filter):
    """Masks ``access_token=…`` in httpx's request log line (``HTTP Request: POST <url>``).

    The service's root handler redacts it too; this covers processes logging without that
    handler (scripts, test runs), since WeChat gives us no way to keep the token out of URLs.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken record is not ours to drop
            return True
        if "access_token=" in message:
            record.msg = _ACCESS_TOKEN_IN_TEXT.sub(r"\1***", message)
            record.args = None
        return True


def _install_httpx_log_filter() -> None:
    httpx_logger = logging.getLogger("httpx")
    if not any(isinstance(f, _HideAccessToken) for f in httpx_logger.filters):
        httpx_logger.addFilter(_HideAccessToken())


class _ExchangeFailed(Exception):
    """We could not get an answer we understand (network, timeout, 5xx, garbage) or the token
    endpoint refused us: a technical failure of this send."""

    def __init__(self, detail: str, *, code: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.code = code


class WeChatClient:
    """:class:`~notify_service.channels.WeChatChannel` against WeChat's server API.

    ``timeout_s`` bounds each HTTP exchange as a whole (httpx's own timeouts are per phase).
    ``transport`` lets a test or a deployment supply the httpx transport; ``clock`` is for
    tests that move time.
    """

    def __init__(
        self,
        *,
        base_url: str = PRODUCTION_BASE_URL,
        appid: str,
        secret: str | SecretStr,
        token_store: TokenStore,
        timeout_s: float = 5.0,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        url = httpx.URL(base_url)
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError("base_url must be an http(s) URL")
        secret_value = secret if isinstance(secret, SecretStr) else SecretStr(secret)
        if not appid.strip() or not secret_value.get_secret_value().strip():
            raise ValueError("appid and secret must not be empty")
        if timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        self.base_url = base_url.rstrip("/")
        self.appid = appid
        self.timeout_s = timeout_s
        self._secret = secret_value
        self._store = token_store
        self._clock = clock
        self._token: StoredToken | None = None
        # trust_env=False: the appid secret goes exactly where configured, not via an
        # environment proxy. No redirects: a 3xx would resend the token elsewhere.
        self._client = httpx.AsyncClient(
            transport=transport,
            timeout=httpx.Timeout(timeout_s),
            trust_env=False,
            follow_redirects=False,
        )
        _install_httpx_log_filter()

    def __repr__(self) -> str:
        return f"WeChatClient(base_url={self.base_url!r}, appid={self.appid!r})"

    async def close(self) -> None:
        await self._client.aclose()

    async def send_subscription(
        self,
        *,
        openid: str,
        template_id: str,
        page: str | None,
        data: dict[str, str],
        miniprogram_state: str,
        lang: str,
    ) -> SendResult:
        body: dict[str, Any] = {"touser": openid, "template_id": template_id}
        if page is not None:
            body["page"] = page
        body["data"] = {key: {"value": value} for key, value in data.items()}
        body["miniprogram_state"] = miniprogram_state
        body["lang"] = lang
        payload = json.dumps(body, ensure_ascii=False).encode()

        try:
            token = await self._usable_token()
            answer = await self._post_message(token, payload)
            errcode = _errcode(answer)
            if errcode in _TOKEN_ERRORS:
                # Expired, or replaced by someone's force refresh: get the newest token (which
                # may be one another worker fetched meanwhile) and try exactly once more.
                logger.info("wechat rejected the access token (errcode %s); refreshing", errcode)
                token = await self._replace_token(token)
                answer = await self._post_message(token, payload)
                errcode = _errcode(answer)
                if errcode in _TOKEN_ERRORS:
                    self._token = None
                    return self._technical(
                        f"刷新 access_token 后微信仍拒绝该凭证（{errcode}）", code=str(errcode)
                    )
        except _ExchangeFailed as exc:
            return self._technical(exc.detail, code=exc.code)
        return self._interpret(errcode, answer, openid=openid, token=token)

    # -- tokens -------------------------------------------------------------------------

    async def _usable_token(self) -> str:
        now = self._clock()
        if self._token is not None and self._token.is_fresh(now):
            return self._token.token
        stored = await self._store.load()
        if stored is None or not stored.is_fresh(now):
            stored = await self._store.refresh(self._fetch_normal, replacing=None)
        self._token = stored
        return stored.token

    async def _replace_token(self, rejected: str) -> str:
        self._token = None
        stored = await self._store.refresh(self._fetch_forced, replacing=rejected)
        self._token = stored
        return stored.token

    async def _fetch_normal(self) -> StoredToken:
        return await self._fetch_token(force_refresh=False)

    async def _fetch_forced(self) -> StoredToken:
        return await self._fetch_token(force_refresh=True)

    async def _fetch_token(self, *, force_refresh: bool) -> StoredToken:
        payload = json.dumps(
            {
                "grant_type": "client_credential",
                "appid": self.appid,
                "secret": self._secret.get_secret_value(),
                "force_refresh": force_refresh,
            }
        ).encode()
        fetched_at = self._clock()
        answer = await self._exchange("/cgi-bin/stable_token", payload, params=None)
        errcode = _errcode(answer)
        if errcode not in (None, 0):
            logger.warning("wechat stable_token refused: errcode %s", errcode)
            raise _ExchangeFailed(
                f"获取微信 access_token 失败（{errcode}），请检查 appid、secret 和 IP 白名单",
                code=str(errcode),
            )
        token = answer.get("access_token")
        expires_in = answer.get("expires_in")
        if (
            not isinstance(token, str)
            or not token
            or not isinstance(expires_in, int)
            or isinstance(expires_in, bool)
            or expires_in <= 0
        ):
            logger.warning("wechat stable_token answer lacks access_token or expires_in")
            raise _ExchangeFailed("微信 access_token 接口的应答无法识别")
        logger.info(
            "wechat access token fetched (force_refresh=%s, expires_in=%ss)",
            force_refresh,
            expires_in,
        )
        return StoredToken(token=token, expires_at=token_usable_until(fetched_at, expires_in))

    # -- the exchange -------------------------------------------------------------------

    async def _post_message(self, token: str, payload: bytes) -> dict[str, Any]:
        return await self._exchange(
            "/cgi-bin/message/subscribe/send", payload, params={"access_token": token}
        )

    async def _exchange(
        self, path: str, payload: bytes, *, params: dict[str, str] | None
    ) -> dict[str, Any]:
        """POST and return the answer as a JSON object, or raise :class:`_ExchangeFailed`.

        Exception texts are not passed on: httpx's can carry the URL, hence the token."""
        try:
            async with asyncio.timeout(self.timeout_s):
                response = await self._client.post(
                    f"{self.base_url}{path}",
                    content=payload,
                    params=params,
                    headers={"Content-Type": "application/json; charset=utf-8"},
                )
        except (TimeoutError, httpx.TimeoutException):
            logger.warning("wechat %s timed out after %gs", path, self.timeout_s)
            raise _ExchangeFailed(f"请求微信接口超时（{self.timeout_s:g} 秒）") from None
        except httpx.HTTPError as exc:
            logger.warning("wechat %s failed: %s", path, type(exc).__name__)
            raise _ExchangeFailed(f"无法连接微信接口（{type(exc).__name__}）") from None
        if response.status_code != 200:
            logger.warning("wechat %s answered HTTP %s", path, response.status_code)
            raise _ExchangeFailed(f"微信接口返回 HTTP {response.status_code}")
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            logger.warning("wechat %s answered something that is not a JSON object", path)
            raise _ExchangeFailed("微信接口的应答不是 JSON 对象")
        if "errcode" in answer and _errcode(answer) is None:
            logger.warning("wechat %s answered a non-integer errcode", path)
            raise _ExchangeFailed("微信接口的应答无法识别（errcode 不是整数）")
        return answer

    # -- answers ------------------------------------------------------------------------

    def _interpret(
        self, errcode: int | None, answer: dict[str, Any], *, openid: str, token: str
    ) -> SendResult:
        if errcode in (None, 0):
            msgid = answer.get("msgid")
            ref = str(msgid) if msgid is not None and not isinstance(msgid, bool) else None
            return SendResult(outcome="delivered", provider_ref=ref)
        assert errcode is not None
        code = str(errcode)
        logger.warning("wechat subscription message refused: errcode %s", errcode)
        if errcode == 43101:
            return SendResult(
                outcome="no-consent",
                code=code,
                detail="用户未订阅该消息模板、订阅次数已用完或已拒收（43101）",
            )
        if errcode == 47003:
            errmsg = answer.get("errmsg")
            match = _FIELD_IN_ERRMSG.search(errmsg) if isinstance(errmsg, str) else None
            if match is None:
                return SendResult(
                    outcome="permanent-failure",
                    code=code,
                    detail="模板数据不符合微信对模板字段的要求（47003）",
                )
            name = match.group(1)
            return SendResult(
                outcome="permanent-failure",
                code=code,
                field=name,
                detail=f"模板字段 {name} 的内容不符合微信对该类字段的要求（47003）",
            )
        if errcode in _TEMPORARY:
            return SendResult(outcome="temporary-failure", code=code, detail=_TEMPORARY[errcode])
        if errcode in _PERMANENT:
            return SendResult(outcome="permanent-failure", code=code, detail=_PERMANENT[errcode])
        errmsg = _scrub(answer.get("errmsg"), openid=openid, token=token)
        return SendResult(
            outcome="permanent-failure",
            code=code,
            detail=f"微信拒绝发送（错误码 {errcode}）" + (f"：{errmsg}" if errmsg else ""),
        )

    def _technical(self, detail: str, *, code: str | None) -> SendResult:
        return SendResult(outcome="technical-failure", code=code, detail=detail)


def _errcode(answer: dict[str, Any]) -> int | None:
    value = answer.get("errcode")
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"-?[0-9]+", value):
        return int(value)
    return None


def _scrub(errmsg: object, *, openid: str, token: str) -> str:
    """WeChat's own message for a code we have no text for, fit for staff: shortened, and
    without the openid or token should WeChat ever echo them."""
    if not isinstance(errmsg, str):
        return ""
    text = errmsg
    for secret in (openid, token):
        if secret:
            text = text.replace(secret, "***")
    text = _ACCESS_TOKEN_IN_TEXT.sub(r"\1***", text)
    return text[:_MAX_ERRMSG]
