"""The WeChat access token in PostgreSQL, shared by every worker and replica of the service.

WeChat allows only so many token fetches a day, and with ``/cgi-bin/token`` a new token ends
the old one within minutes: workers that each fetched their own would keep invalidating each
other. One row per appid holds the token (encrypted: it is a credential); a transaction-scoped
advisory lock makes "check, else fetch and store" one step across processes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert

from notify_service.delivery import now_utc
from notify_service.models import WeChatAccessToken
from notify_service.wechat import StoredToken
from wangban.crypto import FieldCipher
from wangban.db import Database

TOKEN_CONTEXT = "notify.wechat_token"


class PostgresTokenStore:
    """A :class:`notify_service.wechat.TokenStore` in the ``notify.wechat_access_token`` table."""

    def __init__(self, database: Database, *, appid: str, cipher: FieldCipher) -> None:
        self.database = database
        self.appid = appid
        self.cipher = cipher

    def _stored(self, row: WeChatAccessToken) -> StoredToken:
        token = self.cipher.decrypt(row.token_enc, context=TOKEN_CONTEXT)
        return StoredToken(token=token, expires_at=row.expires_at)

    async def load(self) -> StoredToken | None:
        async with self.database.read_sessionmaker() as session:
            row = await session.get(WeChatAccessToken, self.appid)
            return self._stored(row) if row is not None else None

    async def refresh(
        self, fetch: Callable[[], Awaitable[StoredToken]], *, replacing: str | None
    ) -> StoredToken:
        async with self.database.sessionmaker() as session, session.begin():
            # Held across the call to WeChat on purpose: the other workers wait for this
            # token instead of fetching (and invalidating) their own. Bounded by the timeout.
            await session.execute(
                select(func.pg_advisory_xact_lock(func.hashtext(f"notify.wechat:{self.appid}")))
            )
            row = await session.get(WeChatAccessToken, self.appid, populate_existing=True)
            if row is not None:
                current = self._stored(row)
                if current.token != replacing and current.is_fresh(now_utc()):
                    return current
            fetched = await fetch()
            values = {
                "token_enc": self.cipher.encrypt(fetched.token, context=TOKEN_CONTEXT),
                "expires_at": fetched.expires_at,
            }
            await session.execute(
                insert(WeChatAccessToken)
                .values(appid=self.appid, **values)
                .on_conflict_do_update(
                    index_elements=[WeChatAccessToken.appid],
                    set_={**values, "updated_at": func.now()},
                )
            )
            return fetched
