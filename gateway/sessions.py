"""Client sessions: a short-lived access token (a JWT the gateway alone accepts) and a rotating
refresh token with reuse detection.

Each refresh token works once: using it gives a new pair, and the used one is kept (hashed) with
its family. Presenting a used one again can only mean two holders — the token was copied — so
the whole family is revoked and both must log in again.

Access tokens carry their family (claim ``fam``). Ending a family — logout, or a refresh
token's reuse — records it in ``revoked_family``, and the gateway refuses the family's access
tokens from then on: at once in the worker that ended it, within
``WANGBAN_GATEWAY_REVOCATION_CACHE_S`` seconds in the others (each keeps a copy of the list of
families ended within the last access-token lifetime and reads it again when it is that old),
so checking a token costs no query in steady state.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from gateway import repository
from gateway.models import RefreshToken
from wangban.auth import CLOCK_LEEWAY_S, Identity, InternalTokens
from wangban.db import Database
from wangban.errors import Unauthorized
from wangban.events import uuid7
from wangban.settings import Settings

CLIENT_AUDIENCE = "wangban-client"
ISSUER = "gateway"


class SessionExpired(Unauthorized):
    type_slug = "session-expired"
    title = "登录已失效"


class RefreshTokenReused(Unauthorized):
    """A used refresh token came back: the family is revoked, and that must stick."""

    type_slug = "refresh-token-reused"
    title = "登录凭证已被使用"
    keeps_changes = True


def client_tokens(settings: Settings) -> InternalTokens:
    """Access tokens for clients: signed with the gateway's own key for its own audience, so a
    service never accepts one and the gateway never accepts an internal one."""
    return InternalTokens(
        settings.gateway_token_key.get_secret_value(),
        ttl_s=settings.gateway_access_token_ttl_s,
        audience=CLIENT_AUDIENCE,
    )


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int
    token_type: str = "Bearer"


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def open_session(
    session: AsyncSession,
    *,
    identity: Identity,
    principal: str,
    tokens: InternalTokens,
    settings: Settings,
    now: datetime,
    family_id: str | None = None,
) -> TokenPair:
    refresh = secrets.token_urlsafe(32)
    family_id = family_id or str(uuid7())
    session.add(
        RefreshToken(
            id=str(uuid7()),
            token_hash=_hash(refresh),
            family_id=family_id,
            subject=identity.subject,
            principal=principal,
            claims=identity.model_dump(mode="json", exclude={"roles"})
            | {"roles": sorted(identity.roles)},
            issued_at=now,
            expires_at=now + timedelta(seconds=settings.gateway_refresh_token_ttl_s),
        )
    )
    await session.flush()
    return TokenPair(
        access_token=tokens.issue(identity, issuer=ISSUER, family=family_id),
        refresh_token=refresh,
        expires_in=tokens.ttl_s,
    )


async def use_refresh_token(
    session: AsyncSession,
    *,
    refresh_token: str,
    revocations: RevocationList,
    now: datetime,
) -> RefreshToken:
    """Spend a refresh token: its row (now used), to open the next session of its family."""
    row = await repository.refresh_token(session, _hash(refresh_token))
    if row is None or row.revoked_at is not None or row.expires_at <= now:
        raise SessionExpired("登录已失效，请重新登录")
    if row.used_at is not None:
        await _end_family(session, family_id=row.family_id, revocations=revocations, now=now)
        raise RefreshTokenReused("登录凭证已被使用过，为保护账号安全请重新登录")
    row.used_at = now
    await session.flush()
    return row


async def close_session(
    session: AsyncSession, *, refresh_token: str, revocations: RevocationList, now: datetime
) -> None:
    """Log out: the family of this refresh token ends, its access tokens with it (an unknown
    token changes nothing)."""
    row = await repository.refresh_token(session, _hash(refresh_token))
    if row is not None:
        await _end_family(session, family_id=row.family_id, revocations=revocations, now=now)


async def _end_family(
    session: AsyncSession, *, family_id: str, revocations: RevocationList, now: datetime
) -> None:
    await repository.revoke_family(session, family_id=family_id, now=now)
    # Until the last access token of the family has expired (with the verifier's leeway).
    until = now + timedelta(seconds=revocations.access_ttl_s + CLOCK_LEEWAY_S)
    await repository.revoke_family_tokens(session, family_id=family_id, now=now, until=until)
    await session.flush()
    revocations.note(family_id)


class RevocationList:
    """This worker's copy of the families whose access tokens are refused.

    Read from ``revoked_family`` when the copy is older than ``cache_s`` seconds (0: on every
    check), one read at a time. Families this worker ended itself are remembered apart (for the
    access-token lifetime), so they are refused at once — also by a read that began before the
    ending committed."""

    def __init__(self, database: Database, *, cache_s: float, access_ttl_s: int) -> None:
        self._database = database
        self.cache_s = cache_s
        self.access_ttl_s = access_ttl_s
        self._families: frozenset[str] = frozenset()
        self._read_at: float | None = None
        self._noted: dict[str, float] = {}
        self._lock = asyncio.Lock()
        self.loads = 0
        """How many times the list was read (tests count them)."""

    async def is_revoked(self, family: str) -> bool:
        if family in self._noted:
            return True
        if self._stale():
            async with self._lock:
                if self._stale():  # another check may have read it while this one waited
                    await self._read()
        return family in self._families

    def note(self, family: str) -> None:
        """A family this worker has just ended."""
        self._noted[family] = time.monotonic()

    def clear(self) -> None:
        """Forget the copy: the next check reads the list again."""
        self._read_at = None

    def _stale(self) -> bool:
        return self._read_at is None or time.monotonic() - self._read_at >= self.cache_s

    async def _read(self) -> None:
        async with self._database.sessionmaker() as session:
            families = await repository.revoked_families(session, now=datetime.now(UTC))
        self._families = frozenset(families)
        self._read_at = time.monotonic()
        self.loads += 1
        # A noted family is in the table by now (or its ending was rolled back); keep it only
        # while its access tokens could live, which bounds the memory.
        horizon = self._read_at - self.access_ttl_s - CLOCK_LEEWAY_S
        self._noted = {f: at for f, at in self._noted.items() if at > horizon}


def revocations(app: FastAPI) -> RevocationList:
    """The app's revocation list, made on first use (it needs the database the app opens when
    it starts)."""
    state = app.state
    if getattr(state, "revocations", None) is None:
        settings: Settings = state.settings
        state.revocations = RevocationList(
            state.database,
            cache_s=settings.gateway_revocation_cache_s,
            access_ttl_s=settings.gateway_access_token_ttl_s,
        )
    revoked: RevocationList = state.revocations
    return revoked


async def purge(session: AsyncSession, *, now: datetime) -> None:
    """Forget ended families whose access tokens have all expired."""
    await repository.purge_revoked_families(session, now=now)
