"""Every query of the gateway."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.models import Account, CompanyBinding, FaceVerification, RefreshToken, StaffAccount


async def account(session: AsyncSession, subject: str, *, lock: bool = False) -> Account | None:
    return await session.get(Account, subject, with_for_update=lock or None)


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


async def face_verification(session: AsyncSession, verify_id: str) -> FaceVerification | None:
    return await session.get(FaceVerification, verify_id, with_for_update=True)


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
