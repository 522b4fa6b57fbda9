"""Tables of the gateway service, all in its own PostgreSQL schema ``gateway``.

The gateway is where people are authenticated: mini-program accounts (WeChat openid, then
real-name and real-person verification), their companies, staff accounts, the refresh tokens
of both (and the families ended early), the counters behind rate limits and staff-login
throttling.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from wangban.wechat import define_wechat_token_table

metadata = MetaData(schema="gateway")
# No kit tables: the gateway publishes and consumes no events (it tells notify of openids over
# HTTP, gateway.recipients). The outbox, inbox and dead_letter tables gateway_0001 created stay
# in the schema, unused, for this release: gateway pods of the previous release still write
# to the outbox at login while a roll-out replaces them (docs/operations.md, Upgrade). The
# next release's migration drops them.
wechat_access_token = define_wechat_token_table(metadata)
"""The access token of the mini-program for the face-verification API, shared by all workers."""


class Base(DeclarativeBase):
    metadata = metadata


class Account(Base):
    """A mini-program user: who WeChat says they are, and how far we have verified them."""

    __tablename__ = "account"

    subject: Mapped[str] = mapped_column(String(128), primary_key=True)
    """Our opaque user id: what every service sees (never the openid, never an ID number)."""
    openid: Mapped[str] = mapped_column(String(128), unique=True)
    unionid: Mapped[str | None] = mapped_column(String(128))
    assurance: Mapped[int] = mapped_column(Integer, server_default=text("1"))
    """:class:`wangban.auth.AssuranceLevel`: 1 WeChat, 2 real-name (实名), 3 real-person (实人)."""
    name_enc: Mapped[str | None] = mapped_column(Text)
    id_number_enc: Mapped[str | None] = mapped_column(Text)
    person_ref: Mapped[str | None] = mapped_column(String(64), unique=True)
    """Blind index of the verified ID number: one account per person."""
    real_name_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    real_person_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class CompanyBinding(Base):
    """A company an account may act for (法人): as its legal representative or an agent."""

    __tablename__ = "company_binding"
    __table_args__ = (UniqueConstraint("subject", "uscc"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    subject: Mapped[str] = mapped_column(String(128), index=True)
    uscc: Mapped[str] = mapped_column(String(18))
    company_name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(32))
    """``legal_representative`` or ``agent``."""
    verified_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class FaceVerification(Base):
    """A started real-person check: the ``verify_id`` WeChat gave us, for this account only,
    used once."""

    __tablename__ = "face_verification"

    verify_id: Mapped[str] = mapped_column(String(256), primary_key=True)
    subject: Mapped[str] = mapped_column(String(128), index=True)
    out_seq_no: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    verify_ret: Mapped[int | None] = mapped_column(Integer)


class StaffAccount(Base):
    """A staff login: password (Argon2id), roles, department and region. Wrong passwords are
    counted per username and client address (:class:`LoginThrottle`), never on the account:
    nobody can lock a colleague out by failing on purpose."""

    __tablename__ = "staff_account"

    username: Mapped[str] = mapped_column(String(64), primary_key=True)
    subject: Mapped[str] = mapped_column(String(128), unique=True)
    display_name: Mapped[str] = mapped_column(String(64))
    password_hash: Mapped[str] = mapped_column(Text)
    roles: Mapped[list[str]] = mapped_column(JSONB)
    department: Mapped[str | None] = mapped_column(String(100))
    region: Mapped[str | None] = mapped_column(String(12))
    disabled: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class RefreshToken(Base):
    """One refresh token (stored as a hash). Each use replaces it with the next of its family;
    presenting a used one again means it was stolen, and the whole family is revoked."""

    __tablename__ = "refresh_token"
    __table_args__ = (Index("ix_refresh_family", "family_id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    family_id: Mapped[str] = mapped_column(String(36))
    subject: Mapped[str] = mapped_column(String(128))
    principal: Mapped[str] = mapped_column(String(8))
    """``citizen`` (an account) or ``staff``."""
    claims: Mapped[dict[str, Any]] = mapped_column(JSONB)
    """What the next access token says (roles, assurance, acting_for) at the time of issue."""
    issued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class LoginThrottle(Base):
    """Consecutive wrong staff passwords from one address for one username, and until when
    that pair is refused (429). Kept for unknown usernames exactly as for real ones, so the
    answers do not tell them apart; the username is stored as a keyed hash (people type
    passwords into the username field)."""

    __tablename__ = "login_throttle"

    username_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    address: Mapped[str] = mapped_column(String(64), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    last_failure_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    blocked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class RevokedFamily(Base):
    """A refresh-token family ended by logout or by a refresh token's reuse: its access tokens
    are refused until ``expires_at``, when the last of them has expired anyway."""

    __tablename__ = "revoked_family"

    family_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    revoked_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class RateCounter(Base):
    """Requests counted per key (``login:ip:1.2.3.4``, ``submit:user:u-…``) per window."""

    __tablename__ = "rate_counter"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    window_start: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger)
