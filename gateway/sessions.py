"""Client sessions: a short-lived access token (a JWT the gateway alone accepts) and a rotating
refresh token with reuse detection.

Each refresh token works once: using it gives a new pair, and the used one is kept (hashed) with
its family. Presenting a used one again can only mean two holders — the token was copied — so
the whole family is revoked and both must log in again.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from gateway import repository
from gateway.models import RefreshToken
from wangban.auth import Identity, InternalTokens
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
    session.add(
        RefreshToken(
            id=str(uuid7()),
            token_hash=_hash(refresh),
            family_id=family_id or str(uuid7()),
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
        access_token=tokens.issue(identity, issuer=ISSUER),
        refresh_token=refresh,
        expires_in=tokens.ttl_s,
    )


async def use_refresh_token(
    session: AsyncSession, *, refresh_token: str, now: datetime
) -> RefreshToken:
    """Spend a refresh token: its row (now used), to open the next session of its family."""
    row = await repository.refresh_token(session, _hash(refresh_token))
    if row is None or row.revoked_at is not None or row.expires_at <= now:
        raise SessionExpired("登录已失效，请重新登录")
    if row.used_at is not None:
        await repository.revoke_family(session, family_id=row.family_id, now=now)
        raise RefreshTokenReused("登录凭证已被使用过，为保护账号安全请重新登录")
    row.used_at = now
    await session.flush()
    return row


async def close_session(session: AsyncSession, *, refresh_token: str, now: datetime) -> None:
    """Log out: the family of this refresh token ends (an unknown token changes nothing)."""
    row = await repository.refresh_token(session, _hash(refresh_token))
    if row is not None:
        await repository.revoke_family(session, family_id=row.family_id, now=now)
