"""WeChat's server API, what every service calling it shares: the mini-program's access token
and one bounded JSON exchange.

The token (:class:`AccessTokens`) is fetched with ``POST /cgi-bin/stable_token``
(getStableAccessToken), kept in a :class:`TokenStore` all workers share
(:class:`PostgresTokenStore` in a service's own table, :class:`MemoryTokenStore` for one
process and tests) and, in each client, as an in-process copy while it is fresh, so a call
normally costs one HTTP request and no store read. In its normal mode getStableAccessToken
hands every caller the *same* token while it is valid, so workers asking at once do not
invalidate each other's; its ``force_refresh`` mode does, and WeChat limits it, so we force
only after WeChat rejected the token we used (:data:`TOKEN_ERRORS`).

WeChat insists on the token in the query string and httpx logs request URLs at INFO, so a
filter on the ``httpx`` logger masks it there. Services build their clients on
:class:`WeChatApi` (notify: subscription messages; gateway: login and face verification).
"""

from __future__ import annotations

import asyncio
import enum
import json
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Final, Protocol

import httpx
from pydantic import SecretStr
from sqlalchemy import Column, DateTime, MetaData, String, Table, Text, func, select
from sqlalchemy.dialects.postgresql import insert

from wangban.crypto import FieldCipher
from wangban.db import Database, advisory_lock
from wangban.http import external_client

__all__ = [
    "COMMON_ERRCODES",
    "PRODUCTION_BASE_URL",
    "TOKEN_ERRORS",
    "AccessTokens",
    "ExchangeFailed",
    "Fault",
    "MemoryTokenStore",
    "PostgresTokenStore",
    "StoredToken",
    "TokenStore",
    "WeChatApi",
    "define_wechat_token_table",
    "errcode_of",
    "exchange_json",
    "fault_of",
    "install_access_token_log_filter",
    "scrub",
    "token_usable_until",
    "wechat_http_client",
]

logger = logging.getLogger(__name__)

PRODUCTION_BASE_URL: Final = "https://api.weixin.qq.com"


class Fault(enum.Enum):
    """Whose fault a WeChat errcode is, which decides what we answer and who must act."""

    CLIENT = "client"
    """What the user's client sent is wrong or spent (a login code used or expired): the
    client must start again (call ``wx.login`` anew), not retry the same request."""
    REFUSED = "refused"
    """WeChat refuses this user (risk control): no retry helps, the person is told why."""
    RATE_LIMITED = "rate_limited"
    """This user (or this call) went over WeChat's per-minute frequency limit: retry later."""
    CONFIG = "config"
    """Our appid, secret, IP allow-list or permissions are wrong: not the citizen's fault and
    no retry helps until operations fix the configuration (logged at ERROR)."""
    TOKEN = "token"
    """WeChat does not accept the access token we sent: get the newest and retry once."""
    OUTAGE = "outage"
    """WeChat is busy, over its daily quota or said something we do not know: retry later."""


COMMON_ERRCODES: Final[Mapping[int, Fault]] = {
    -1: Fault.OUTAGE,  # system busy: WeChat asks callers to retry shortly
    40001: Fault.TOKEN,  # access_token invalid, or not the latest (someone force-refreshed)
    40014: Fault.TOKEN,  # access_token malformed
    42001: Fault.TOKEN,  # access_token expired
    40002: Fault.CONFIG,  # invalid grant_type: our request is built wrong
    40013: Fault.CONFIG,  # invalid appid
    40125: Fault.CONFIG,  # invalid appsecret
    40164: Fault.CONFIG,  # calling IP not on the mini-program's IP allow-list
    41002: Fault.CONFIG,  # appid missing
    41004: Fault.CONFIG,  # appsecret missing
    48001: Fault.CONFIG,  # api unauthorised: the mini-program lacks this interface
    61004: Fault.CONFIG,  # calling IP not registered (the allow-list, older wording)
    45009: Fault.OUTAGE,  # the appid's daily quota of this interface is spent: tomorrow
    45011: Fault.RATE_LIMITED,  # per-minute frequency limit
}
"""The errcodes every WeChat server interface may answer, each with its :class:`Fault`.
Interfaces add their own (code2Session's 40029, 40163, 40226…) in their own tables; an errcode
in neither is :attr:`Fault.OUTAGE` (see :func:`fault_of`)."""

TOKEN_ERRORS: Final = frozenset(c for c, f in COMMON_ERRCODES.items() if f is Fault.TOKEN)
"""WeChat's answers to a token it does not accept: 40001 invalid or not the latest (another
party force-refreshed), 40014 malformed, 42001 expired."""


def fault_of(errcode: int, specific: Mapping[int, Fault] | None = None) -> Fault:
    """Whose fault ``errcode`` is: the interface's own table first, then
    :data:`COMMON_ERRCODES`; an errcode neither knows is an outage (retry later, never the
    user's fault, since we cannot tell)."""
    if specific is not None and errcode in specific:
        return specific[errcode]
    return COMMON_ERRCODES.get(errcode, Fault.OUTAGE)


_REFRESH_MARGIN: Final = timedelta(minutes=5)
_REFRESH_MARGIN_SHARE: Final = 0.1
_MAX_ERRMSG: Final = 200
_ACCESS_TOKEN_IN_TEXT: Final = re.compile(r"(access_token=)[^&\s\"']+")
_CREDENTIALS_IN_URL: Final = re.compile(r"\b((?:access_token|secret|js_code)=)[^&\s\"']+")
"""What WeChat wants in query strings and nobody may read in a log: the access token, the app
secret and a login code (code2Session takes both in its query)."""


def _utcnow() -> datetime:
    return datetime.now(UTC)


# --- the token as workers share it -------------------------------------------------------


@dataclass(frozen=True)
class StoredToken:
    """An access token as the workers share it."""

    token: str = field(repr=False)
    expires_at: datetime
    """When workers stop using it (aware, UTC): WeChat's expiry less a safety margin (see
    :func:`token_usable_until`), so nobody calls with a token about to lapse in flight."""

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


def define_wechat_token_table(metadata: MetaData) -> Table:
    """The one-row-per-appid table a service keeps its shared access token in (in the
    metadata's schema): the token encrypted, and when workers stop using it."""
    return Table(
        "wechat_access_token",
        metadata,
        Column("appid", String(64), primary_key=True),
        Column("token_enc", Text, nullable=False),
        Column("expires_at", DateTime(timezone=True), nullable=False),
        Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    )


class PostgresTokenStore:
    """A :class:`TokenStore` in a table made by :func:`define_wechat_token_table` (any table
    with the columns appid, token_enc, expires_at, updated_at), shared by every worker and
    replica of the service.

    An advisory lock makes "check, else fetch and store" one step across processes; it is held
    across the call to WeChat on purpose, so the others wait for this token instead of fetching
    (and invalidating) their own. It is a session-level lock on a connection in autocommit, not
    a transaction's: no transaction is open while WeChat answers (the kit's guard refuses that),
    only this one connection waits. The token is a credential: it is stored encrypted with
    ``cipher`` under ``context``."""

    def __init__(
        self, database: Database, *, table: Table, appid: str, cipher: FieldCipher, context: str
    ) -> None:
        missing = {"appid", "token_enc", "expires_at", "updated_at"} - set(table.c.keys())
        if missing:
            raise ValueError(f"table {table.fullname} lacks columns {sorted(missing)}")
        self.database = database
        self.table = table
        self.appid = appid
        self.cipher = cipher
        self.context = context
        self._lock_key = f"wechat-token:{table.fullname}:{appid}"

    def __repr__(self) -> str:
        return f"PostgresTokenStore(table={self.table.fullname!r}, appid={self.appid!r})"

    def _stored(self, token_enc: str, expires_at: datetime) -> StoredToken:
        return StoredToken(
            token=self.cipher.decrypt(token_enc, context=self.context), expires_at=expires_at
        )

    def _select(self) -> Any:
        return select(self.table.c.token_enc, self.table.c.expires_at).where(
            self.table.c.appid == self.appid
        )

    async def load(self) -> StoredToken | None:
        async with self.database.read_sessionmaker() as session:
            row = (await session.execute(self._select())).first()
        return self._stored(row.token_enc, row.expires_at) if row is not None else None

    async def refresh(
        self, fetch: Callable[[], Awaitable[StoredToken]], *, replacing: str | None
    ) -> StoredToken:
        # Each statement on the lock's connection commits on its own, the upsert at once.
        async with advisory_lock(self.database.engine, self._lock_key) as connection:
            assert connection is not None  # a waiting lock is always taken
            row = (await connection.execute(self._select())).first()
            if row is not None:
                current = self._stored(row.token_enc, row.expires_at)
                if current.token != replacing and current.is_fresh(_utcnow()):
                    return current
            fetched = await fetch()
            values = {
                "token_enc": self.cipher.encrypt(fetched.token, context=self.context),
                "expires_at": fetched.expires_at,
            }
            await connection.execute(
                insert(self.table)
                .values(appid=self.appid, **values)
                .on_conflict_do_update(
                    index_elements=[self.table.c.appid],
                    set_={**values, "updated_at": func.now()},
                )
            )
            return fetched


# --- the exchange ------------------------------------------------------------------------


class _HideAccessToken(logging.Filter):
    """Masks ``access_token=…`` (and ``secret=…``, ``js_code=…``) in httpx's request log line
    (``HTTP Request: POST <url>``).

    The service's root handler redacts the token too; this covers processes logging without
    that handler (scripts, test runs), since WeChat gives us no way to keep these out of URLs.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken record is not ours to drop
            return True
        masked = _CREDENTIALS_IN_URL.sub(r"\1***", message)
        if masked != message:
            record.msg = masked
            record.args = None
        return True


def install_access_token_log_filter() -> None:
    """Put the credential-masking filter on the ``httpx`` logger (once per process)."""
    httpx_logger = logging.getLogger("httpx")
    if not any(isinstance(f, _HideAccessToken) for f in httpx_logger.filters):
        httpx_logger.addFilter(_HideAccessToken())


def wechat_http_client(
    *, caller: str, timeout_s: float, transport: httpx.AsyncBaseTransport | None = None
) -> httpx.AsyncClient:
    """The httpx client for WeChat, a kit outside-system client (``wangban.http``): no call
    while the calling task holds a database transaction. ``trust_env=False``: the app secret
    goes exactly where configured, not via an environment proxy. No redirects: a 3xx would
    resend the token (or the secret) elsewhere."""
    install_access_token_log_filter()
    return external_client(
        caller=caller, system="wechat", timeout=httpx.Timeout(timeout_s), transport=transport
    )


class ExchangeFailed(Exception):
    """We could not get an answer we understand (network, timeout, HTTP error, not a JSON
    object) or the token endpoint refused us. ``detail`` is Chinese and free of secrets."""

    def __init__(self, detail: str, *, code: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.code = code


def errcode_of(answer: dict[str, Any]) -> int | None:
    """WeChat's ``errcode`` as an int, or None when absent (or not a number)."""
    value = answer.get("errcode")
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"-?[0-9]+", value):
        return int(value)
    return None


def scrub(errmsg: object, *, openid: str, token: str) -> str:
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


async def exchange_json(
    client: httpx.AsyncClient,
    url: str,
    *,
    path: str,
    payload: bytes | None,
    params: dict[str, str] | None,
    timeout_s: float,
    method: str = "POST",
) -> dict[str, Any]:
    """Call WeChat and return the answer as a JSON object, or raise :class:`ExchangeFailed`.

    ``timeout_s`` bounds the exchange as a whole (httpx's own timeouts are per phase). Only
    ``path`` is logged, never the URL or the query (token, secret, login code), and exception
    texts are not passed on: httpx's can carry the URL."""
    try:
        async with asyncio.timeout(timeout_s):
            response = await client.request(
                method,
                url,
                content=payload,
                params=params,
                headers={"Content-Type": "application/json; charset=utf-8"}
                if payload is not None
                else None,
            )
    except (TimeoutError, httpx.TimeoutException):
        logger.warning("wechat %s timed out after %gs", path, timeout_s)
        raise ExchangeFailed(f"请求微信接口超时（{timeout_s:g} 秒）") from None
    except httpx.HTTPError as exc:
        logger.warning("wechat %s failed: %s", path, type(exc).__name__)
        raise ExchangeFailed(f"无法连接微信接口（{type(exc).__name__}）") from None
    if response.status_code != 200:
        logger.warning("wechat %s answered HTTP %s", path, response.status_code)
        raise ExchangeFailed(f"微信接口返回 HTTP {response.status_code}")
    try:
        answer = response.json()
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        logger.warning("wechat %s answered something that is not a JSON object", path)
        raise ExchangeFailed("微信接口的应答不是 JSON 对象")
    if "errcode" in answer and errcode_of(answer) is None:
        logger.warning("wechat %s answered a non-integer errcode", path)
        raise ExchangeFailed("微信接口的应答无法识别（errcode 不是整数）")
    return answer


# --- the access token --------------------------------------------------------------------


class AccessTokens:
    """The mini-program's access token for one client: "a usable token" and "replace the one
    WeChat rejected", over the shared :class:`TokenStore` and an in-process copy.

    :meth:`current` serves the in-process copy while it is fresh, else the store's token, else
    fetches one in normal mode (under the store's lock, so workers asking at once fetch once).
    :meth:`replace` forces a new token unless another worker already replaced the rejected one.
    Both raise :class:`ExchangeFailed` when WeChat cannot be reached or refuses the fetch."""

    def __init__(
        self,
        *,
        client: httpx.AsyncClient,
        base_url: str,
        appid: str,
        secret: str | SecretStr,
        store: TokenStore,
        clock: Callable[[], datetime] = _utcnow,
        timeout_s: float = 5.0,
    ) -> None:
        self._client = client
        self._url = f"{base_url.rstrip('/')}/cgi-bin/stable_token"
        self.appid = appid
        self._secret = secret if isinstance(secret, SecretStr) else SecretStr(secret)
        self._store = store
        self._clock = clock
        self._timeout_s = timeout_s
        self._token: StoredToken | None = None
        install_access_token_log_filter()

    def __repr__(self) -> str:
        return f"AccessTokens(appid={self.appid!r})"

    async def current(self) -> str:
        now = self._clock()
        if self._token is not None and self._token.is_fresh(now):
            return self._token.token
        stored = await self._store.load()
        if stored is None or not stored.is_fresh(now):
            stored = await self._store.refresh(self._fetch_normal, replacing=None)
        self._token = stored
        return stored.token

    async def replace(self, rejected: str) -> str:
        """A token other than ``rejected``: the one another worker fetched meanwhile, else
        WeChat's current one (normal mode), and only if WeChat hands back the rejected token
        a forced new one. Asking normally first matters when two services share the appid
        (notify and the gateway): a forced refresh by one ends the other's token, and if each
        answered that by forcing again they would keep ending each other's tokens."""
        self._token = None

        async def fetch() -> StoredToken:
            current = await self._fetch_normal()
            if current.token != rejected:
                return current
            return await self._fetch_forced()

        stored = await self._store.refresh(fetch, replacing=rejected)
        self._token = stored
        return stored.token

    def forget(self) -> None:
        """Drop the in-process copy: the next :meth:`current` asks the store again."""
        self._token = None

    async def _fetch_normal(self) -> StoredToken:
        return await self._fetch(force_refresh=False)

    async def _fetch_forced(self) -> StoredToken:
        return await self._fetch(force_refresh=True)

    async def _fetch(self, *, force_refresh: bool) -> StoredToken:
        payload = json.dumps(
            {
                "grant_type": "client_credential",
                "appid": self.appid,
                "secret": self._secret.get_secret_value(),
                "force_refresh": force_refresh,
            }
        ).encode()
        fetched_at = self._clock()
        answer = await exchange_json(
            self._client,
            self._url,
            path="/cgi-bin/stable_token",
            payload=payload,
            params=None,
            timeout_s=self._timeout_s,
        )
        errcode = errcode_of(answer)
        if errcode not in (None, 0):
            logger.warning("wechat stable_token refused: errcode %s", errcode)
            raise ExchangeFailed(
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
            raise ExchangeFailed("微信 access_token 接口的应答无法识别")
        logger.info(
            "wechat access token fetched (force_refresh=%s, expires_in=%ss)",
            force_refresh,
            expires_in,
        )
        return StoredToken(token=token, expires_at=token_usable_until(fetched_at, expires_in))


# --- a client ----------------------------------------------------------------------------


class WeChatApi:
    """A client of WeChat's server API for one mini-program (appid): its httpx client, its
    :class:`AccessTokens`, and calls with or without the token. ``timeout_s`` bounds each
    exchange as a whole; ``transport`` lets a test or a deployment supply httpx's transport;
    ``clock`` is for tests that move time."""

    caller: ClassVar[str] = "wangban"
    """The service calling (the gateway's and notify's subclasses name theirs): it labels the
    transaction guard's reports."""

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
        self._client = wechat_http_client(
            caller=self.caller, timeout_s=timeout_s, transport=transport
        )
        self.tokens = AccessTokens(
            client=self._client,
            base_url=self.base_url,
            appid=appid,
            secret=secret_value,
            store=token_store,
            clock=clock,
            timeout_s=timeout_s,
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.base_url!r}, appid={self.appid!r})"

    async def close(self) -> None:
        await self._client.aclose()

    async def _exchange(
        self,
        path: str,
        payload: bytes | None,
        *,
        params: dict[str, str] | None,
        method: str = "POST",
    ) -> dict[str, Any]:
        return await exchange_json(
            self._client,
            f"{self.base_url}{path}",
            path=path,
            payload=payload,
            params=params,
            timeout_s=self.timeout_s,
            method=method,
        )

    async def _call_with_token(self, path: str, payload: bytes) -> tuple[dict[str, Any], str]:
        """POST ``payload`` with the access token; when WeChat rejects the token (expired, or
        replaced by someone's force refresh) get the newest one and try exactly once more.
        Returns WeChat's answer and the token it was given. An answer still carrying one of
        :data:`TOKEN_ERRORS` means the replacement was refused too (the caller reports it;
        the in-process copy is dropped). Raises :class:`ExchangeFailed`."""
        token = await self.tokens.current()
        answer = await self._exchange(path, payload, params={"access_token": token})
        errcode = errcode_of(answer)
        if errcode in TOKEN_ERRORS:
            logger.info("wechat rejected the access token (errcode %s); refreshing", errcode)
            token = await self.tokens.replace(token)
            answer = await self._exchange(path, payload, params={"access_token": token})
            if errcode_of(answer) in TOKEN_ERRORS:
                self.tokens.forget()
        return answer, token
