"""Every query of the gateway."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.models import (
    Account,
    CompanyBinding,
    FaceVerification,
    LoginThrottle,
    RefreshToken,
    RevokedFamily,
    StaffAccount,
)


async def account(session: AsyncSession, subject: str, *, lock: bool = False) -> Account | None:
    """``lock``: the row as it is now (refreshing an account the session already holds, read
    before a remote call), locked for the rest of the transaction."""
    return await session.get(Account, subject, with_for_update=lock or None, populate_existing=lock)


async def account_by_openid(session: AsyncSession, openid: str) -> Account | None:
    return await session.scalar(select(Account).where(Account.openid == openid).with_for_update())


async def account_by_person(session: AsyncSession, person_ref: str) -> Account | None:
    return await session.scalar(select(Account).where(Account.person_ref == person_ref))


async def companies(session: AsyncSession, subject: str) -> list[CompanyBinding]:
    rows = await session.scalars(
        select(CompanyBinding)
        .where(CompanyBinding.subject == subject)
        .order_by(CompanyBinding.verified_at)
    )
    return list(rows)


async def company(session: AsyncSession, *, subject: str, uscc: str) -> CompanyBinding | None:
    return await session.scalar(
        select(CompanyBinding).where(CompanyBinding.subject == subject, CompanyBinding.uscc == uscc)
    )


async def face_verification(
    session: AsyncSession, verify_id: str, *, lock: bool = False
) -> FaceVerification | None:
    """``lock``: as it is now, locked for the rest of the transaction (see :func:`account`)."""
    return await session.get(
        FaceVerification, verify_id, with_for_update=lock or None, populate_existing=lock
    )


async def close_face_verifications(session: AsyncSession, *, subject: str, now: datetime) -> None:
    """End every face check of ``subject`` still open (without a result: none can be had)."""
    await session.execute(
        update(FaceVerification)
        .where(FaceVerification.subject == subject, FaceVerification.finished_at.is_(None))
        .values(finished_at=now)
    )


async def staff(session: AsyncSession, username: str) -> StaffAccount | None:
    return await session.get(StaffAccount, username, with_for_update=True)


async def staff_by_subject(session: AsyncSession, subject: str) -> StaffAccount | None:
    return await session.scalar(select(StaffAccount).where(StaffAccount.subject == subject))


async def refresh_token(session: AsyncSession, token_hash: str) -> RefreshToken | None:
    return await session.scalar(
        select(RefreshToken).where(RefreshToken.token_hash == token_hash).with_for_update()
    )


async def revoke_family(session: AsyncSession, *, family_id: str, now: datetime) -> None:
    await session.execute(
        update(RefreshToken)
        .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )


async def login_throttle(
    session: AsyncSession, *, username_hash: str, address: str
) -> LoginThrottle:
    """The failure count of this pair, created empty if there is none, locked until the
    transaction ends."""
    await session.execute(
        insert(LoginThrottle)
        .values(username_hash=username_hash, address=address, failures=0)
        .on_conflict_do_nothing(index_elements=[LoginThrottle.username_hash, LoginThrottle.address])
    )
    row = await session.scalar(
        select(LoginThrottle)
        .where(LoginThrottle.username_hash == username_hash, LoginThrottle.address == address)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    assert row is not None
    return row


async def forget_throttle(session: AsyncSession, throttle: LoginThrottle) -> None:
    await session.delete(throttle)


async def purge_login_throttles(session: AsyncSession, *, idle_since: datetime) -> None:
    """Forget pairs whose last failure is older than ``idle_since`` and not in a delay."""
    await session.execute(
        delete(LoginThrottle).where(
            LoginThrottle.last_failure_at < idle_since,
            (LoginThrottle.blocked_until.is_(None)) | (LoginThrottle.blocked_until < idle_since),
        )
    )


async def revoke_family_tokens(
    session: AsyncSession, *, family_id: str, now: datetime, until: datetime
) -> None:
    """Record that the access tokens of ``family_id`` are refused until ``until``."""
    await session.execute(
        insert(RevokedFamily)
        .values(family_id=family_id, revoked_at=now, expires_at=until)
        .on_conflict_do_nothing(index_elements=[RevokedFamily.family_id])
    )


async def revoked_families(session: AsyncSession, *, now: datetime) -> set[str]:
    """The families whose access tokens may still be alive and must be refused."""
    rows = await session.scalars(
        select(RevokedFamily.family_id).where(RevokedFamily.expires_at > now)
    )
    return set(rows)


async def purge_revoked_families(session: AsyncSession, *, now: datetime) -> None:
    await session.execute(delete(RevokedFamily).where(RevokedFamily.expires_at <= now))
