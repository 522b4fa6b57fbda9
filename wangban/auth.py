"""Who is calling: the identity the gateway establishes and services pass to each other.

The gateway authenticates people (WeChat login, real-name and real-person checks) and
then hands every internal service a short-lived HS256 token describing the caller.
Services never see the user's own credentials, and a leaked internal token is useless
after ``internal_token_ttl_s`` seconds.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from datetime import UTC, datetime, timedelta
from enum import IntEnum
from typing import Annotated, Any, Final, Literal

import jwt
from fastapi import Depends, Request
from fastapi.dependencies.models import Dependant
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from wangban.errors import Forbidden, Unauthorized
from wangban.settings import Settings

__all__ = [
    "APPROVER",
    "AUDITOR",
    "CATALOG_ADMIN",
    "CATALOG_APPROVER",
    "DATA_ADMIN",
    "INTERNAL_AUDIENCE",
    "NOTIFY_ADMIN",
    "OPS",
    "PLATFORM_CATALOG_ADMIN",
    "REVIEWER",
    "WINDOW_CLERK",
    "AssuranceLevel",
    "Identity",
    "InsufficientAssurance",
    "InternalTokens",
    "check_assurance",
    "current_identity",
    "identity_var",
    "require_assurance",
    "require_kinds",
    "require_roles",
]

INTERNAL_AUDIENCE: Final = "wangban-internal"
CLOCK_LEEWAY_S: Final = 5

# Roles of staff identities.
WINDOW_CLERK: Final = "window_clerk"
"""Service-hall window clerk: accepts applications on behalf of applicants."""
REVIEWER: Final = "reviewer"
"""Reviews (and, where the item's workflow says so, decides) applications of their department."""
APPROVER: Final = "approver"
"""Decides applications of their department at a workflow step that requires it (决定签发)."""
CATALOG_ADMIN: Final = "catalog_admin"
"""Maintains the service-item catalogue of their own department (and region): drafts, revisions,
submissions for review, withdrawals, bundles of their department's items."""
CATALOG_APPROVER: Final = "catalog_approver"
"""事项审核: approves or rejects a submitted item version of their own department (四眼原则:
never one they authored, last edited or submitted)."""
PLATFORM_CATALOG_ADMIN: Final = "platform_catalog_admin"
"""Rare, platform-wide catalogue role: search synonyms, imports across departments, bundles
spanning departments. Approving a change still takes a department's ``catalog_approver``."""
AUDITOR: Final = "auditor"
"""Reads audit trails and data-sharing records; changes nothing."""
DATA_ADMIN: Final = "data_admin"
"""Maintains the data-sharing registry: providers, datasets and the access policy."""
NOTIFY_ADMIN: Final = "notify_admin"
"""Maintains the notification templates (WeChat, SMS, inbox) and watches their delivery."""
OPS: Final = "ops"
"""Operations: dead letters, replays, health."""


class AssuranceLevel(IntEnum):
    """How sure we are that the person is who they claim to be. Ordered: a higher level
    satisfies every requirement for a lower one."""

    WECHAT = 1
    """Logged in with WeChat only."""
    REAL_NAME = 2
    """实名: name and ID number checked against the population register."""
    REAL_PERSON = 3
    """实人: real-name plus face liveness check."""


_LEVEL_NAMES: Final[dict[AssuranceLevel, str]] = {
    AssuranceLevel.WECHAT: "登录",
    AssuranceLevel.REAL_NAME: "实名认证",
    AssuranceLevel.REAL_PERSON: "实人认证",
}

# Same shape as an 18-digit resident ID number; see Identity.subject.
_LOOKS_LIKE_ID_NUMBER = re.compile(r"[0-9]{17}[0-9Xx]")


class Identity(BaseModel):
    """The caller of a request, as established by the gateway."""

    model_config = ConfigDict(frozen=True)

    subject: str = Field(min_length=1, max_length=128)
    """Opaque user id. Never an ID number: it is logged and copied into events."""
    kind: Literal["citizen", "company", "staff", "service"]
    roles: frozenset[str] = frozenset()
    department: str | None = None
    region: str | None = None
    """Administrative division code the identity belongs to (staff) or lives in."""
    assurance: AssuranceLevel
    acting_for: str | None = None
    person_ref: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    """Blind index (:meth:`wangban.crypto.BlindIndex.resident_id`) of the person's resident ID
    number, set by the gateway once real-name verification has established it. Lets a service
    find the caller's own records (their wallet, who used their data) without the number
    itself ever travelling in a token."""
    """Company id when a citizen acts on behalf of a company (法人代办)."""

    @field_validator("subject")
    @classmethod
    def _not_an_id_number(cls, value: str) -> str:
        if _LOOKS_LIKE_ID_NUMBER.fullmatch(value):
            raise ValueError("subject must be an opaque user id, not a resident ID number")
        return value

    def has_any_role(self, *roles: str) -> bool:
        return not self.roles.isdisjoint(roles)


identity_var: ContextVar[Identity | None] = ContextVar("wangban_identity", default=None)
"""The identity of the request being handled, so outgoing service calls can carry it."""


class InternalTokens:
    """Issues and verifies the identity tokens services pass to each other."""

    algorithm: Final = "HS256"

    def __init__(self, key: str, *, ttl_s: int, audience: str = INTERNAL_AUDIENCE) -> None:
        if not key:
            raise ValueError("WANGBAN_INTERNAL_TOKEN_KEY is empty")
        self._key = key
        self.ttl_s = ttl_s
        self.audience = audience
        # Signing and checking a JWT costs tens of microseconds of pure Python each, on every
        # call between services; both sides remember recent tokens instead. A token is reused
        # only in the first half of its life, and a remembered one is still refused once it
        # expires, so neither changes what a token is worth to someone who steals it.
        self._issued: dict[tuple[Identity, str, str | None], tuple[str, float]] = {}
        self._verified: dict[str, tuple[Identity, float, str | None]] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> InternalTokens:
        return cls(
            settings.internal_token_key.get_secret_value(), ttl_s=settings.internal_token_ttl_s
        )

    def issue(self, identity: Identity, *, issuer: str, family: str | None = None) -> str:
        """A token for ``identity``: a recent one for the same caller while it has more than
        half its lifetime left, else a new one. ``family`` (claim ``fam``) names the login
        session a client token belongs to, so the gateway can refuse it once that ends."""
        remembered = self._issued.get((identity, issuer, family))
        if remembered is not None and remembered[1] - time.time() > self.ttl_s / 2:
            return remembered[0]
        token = self._sign(identity, issuer=issuer, family=family)
        _remember(self._issued, (identity, issuer, family), (token, time.time() + self.ttl_s))
        return token

    def _sign(self, identity: Identity, *, issuer: str, family: str | None = None) -> str:
        now = datetime.now(UTC)
        claims: dict[str, Any] = {
            "iss": issuer,
            "aud": self.audience,
            "sub": identity.subject,
            "iat": now,
            "exp": now + timedelta(seconds=self.ttl_s),
            "jti": uuid.uuid4().hex,
            "kind": identity.kind,
            "roles": sorted(identity.roles),
            "assurance": int(identity.assurance),
        }
        for name in ("department", "region", "acting_for", "person_ref"):
            value = getattr(identity, name)
            if value is not None:
                claims[name] = value
        if family is not None:
            claims["fam"] = family
        return jwt.encode(claims, self._key, algorithm=self.algorithm)

    def verify(self, token: str) -> Identity:
        """The identity in ``token``; :class:`Unauthorized` if it is expired, forged,
        meant for another audience or malformed."""
        return self.verify_session(token)[0]

    def verify_session(self, token: str) -> tuple[Identity, str | None]:
        """:meth:`verify`, with the token's ``family`` (None if it names none)."""
        remembered = self._verified.get(token)
        if remembered is not None and time.time() <= remembered[1] + CLOCK_LEEWAY_S:
            return remembered[0], remembered[2]
        identity, expires_at, family = self._check(token)
        _remember(self._verified, token, (identity, expires_at, family))
        return identity, family

    def _check(self, token: str) -> tuple[Identity, float, str | None]:
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=[self.algorithm],
                audience=self.audience,
                leeway=CLOCK_LEEWAY_S,
                options={"require": ["exp", "iat", "iss", "aud", "sub", "jti"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthorized("身份令牌已过期，请重新登录") from exc
        except jwt.InvalidTokenError as exc:
            raise Unauthorized("身份令牌无效") from exc
        try:
            identity = Identity.model_validate(
                {
                    "subject": claims["sub"],
                    "kind": claims.get("kind"),
                    "roles": frozenset(claims.get("roles") or ()),
                    "department": claims.get("department"),
                    "region": claims.get("region"),
                    "assurance": claims.get("assurance"),
                    "acting_for": claims.get("acting_for"),
                    "person_ref": claims.get("person_ref"),
                }
            )
        except (ValidationError, TypeError) as exc:
            raise Unauthorized("身份令牌无效") from exc
        family = claims.get("fam")
        if family is not None and not isinstance(family, str):
            raise Unauthorized("身份令牌无效")
        return identity, float(claims["exp"]), family


_REMEMBERED_TOKENS = 4096


def _remember(cache: dict[Any, Any], key: Any, value: Any) -> None:
    """Bounded memory: forget the oldest entry (dicts keep insertion order) when full."""
    if len(cache) >= _REMEMBERED_TOKENS:
        del cache[next(iter(cache))]
    cache[key] = value


_BEARER = re.compile(r"Bearer\s+(\S+)", re.IGNORECASE)


def _tokens_for(request: Request) -> InternalTokens:
    # Built once per app: the key does not change while the process runs.
    state = request.app.state
    tokens: InternalTokens | None = getattr(state, "internal_tokens", None)
    if tokens is None:
        settings: Settings = state.settings
        tokens = InternalTokens.from_settings(settings)
        state.internal_tokens = tokens
    return tokens


async def current_identity(request: Request) -> Identity:
    """FastAPI dependency: the verified identity of the caller.

    Also binds it in :data:`identity_var` so calls this request makes to other services
    forward it. Each request runs in its own task context, so the value does not outlive
    the request under a real server.
    """
    header = request.headers.get("authorization")
    if not header:
        raise Unauthorized("缺少身份令牌")
    match = _BEARER.fullmatch(header.strip())
    if match is None:
        raise Unauthorized("身份令牌无效")
    identity = _tokens_for(request).verify(match.group(1))
    identity_var.set(identity)
    return identity


CurrentIdentity = Annotated[Identity, Depends(current_identity)]


def require_roles(*roles: str) -> Callable[[Identity], Awaitable[Identity]]:
    """Dependency factory: the caller must hold at least one of ``roles``.

    Use as ``identity: Annotated[Identity, Depends(require_roles(REVIEWER))]``.
    """
    if not roles:
        raise ValueError("require_roles needs at least one role")
    wanted = frozenset(roles)

    async def dependency(identity: CurrentIdentity) -> Identity:
        if identity.roles.isdisjoint(wanted):
            raise Forbidden("无权执行此操作", extra={"required_roles": sorted(wanted)})
        return identity

    # Read back by required_roles(): the service's OpenAPI document states each operation's
    # roles, so the gateway can tell the staff console what a staff member may do.
    dependency.required_roles = wanted  # type: ignore[attr-defined]
    return dependency


ROLES_EXTENSION: Final = "x-wangban-roles"
"""An operation's roles (the caller needs one), in the service's OpenAPI document."""


def required_roles(dependant: Dependant) -> frozenset[str] | None:
    """The roles an operation requires (one of them), from its ``require_roles`` dependencies;
    None when it requires none. Two such dependencies on one operation both apply."""
    found: frozenset[str] | None = None
    pending = [dependant]
    while pending:
        current = pending.pop()
        roles = getattr(current.call, "required_roles", None)
        if isinstance(roles, frozenset):
            found = roles if found is None else found & roles
        pending.extend(current.dependencies)
    return found


_KIND_NAMES: Final = {
    "citizen": "个人用户",
    "company": "法人用户",
    "staff": "工作人员",
    "service": "平台服务",
}


def require_kinds(*kinds: str) -> Callable[[Identity], Awaitable[Identity]]:
    """Dependency factory: the caller must be one of these kinds of identity (a citizen's own
    inbox, a route only the gateway calls)."""
    if not kinds:
        raise ValueError("require_kinds needs at least one kind")
    wanted = frozenset(kinds)

    async def dependency(identity: CurrentIdentity) -> Identity:
        if identity.kind not in wanted:
            allowed = "、".join(_KIND_NAMES.get(k, k) for k in sorted(wanted))
            raise Forbidden(f"仅限{allowed}使用", extra={"required_kinds": sorted(wanted)})
        return identity

    return dependency


class InsufficientAssurance(Forbidden):
    """The person is known but not verified strongly enough; the client should start
    the verification named in ``required_assurance`` rather than show a dead end."""

    type_slug = "insufficient-assurance"
    title = "身份认证等级不足"


def check_assurance(identity: Identity, level: AssuranceLevel) -> None:
    """Raise :class:`InsufficientAssurance` unless ``identity`` is verified to ``level``."""
    needed = AssuranceLevel(level)
    if identity.assurance < needed:
        raise InsufficientAssurance(
            f"此事项需要完成{_LEVEL_NAMES[needed]}"
            if needed > AssuranceLevel.WECHAT
            else "此事项需要先登录",
            extra={
                "required_assurance": needed.name.lower(),
                "current_assurance": identity.assurance.name.lower(),
            },
        )


def require_assurance(level: AssuranceLevel) -> Callable[[Identity], Awaitable[Identity]]:
    """Dependency factory: the caller's assurance must be at least ``level``."""
    needed = AssuranceLevel(level)

    async def dependency(identity: CurrentIdentity) -> Identity:
        check_assurance(identity, needed)
        return identity

    return dependency
