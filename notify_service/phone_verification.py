"""A citizen's mobile number for the SMS fallback, verified by a code sent to it (短信验证码).

A number is used for notifications only once its owner has typed back the 6-digit code we sent
to it, so nobody can point our SMS at someone else's phone. The code is kept only as a keyed
HMAC (the blind-index key, its own purpose) bound to the account and the number, expires after
:data:`CODE_TTL`, survives :data:`MAX_ATTEMPTS` wrong tries, and a new one may be asked for
every :data:`RESEND_AFTER`, at most :data:`SENDS_PER_DAY` times a day per account; each code
SMS also counts against the number's daily SMS share (``WANGBAN_SMS_DAILY_LIMIT_PER_NUMBER``).

:func:`send_code` calls the SMS gateway with no transaction open: it commits the new code in
one transaction, sends, and in a second transaction withdraws the code if the SMS did not go.
"""

from __future__ import annotations

import hmac
import math
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from notify_service import caches, repository
from notify_service.channels import SendResult, SmsChannel
from notify_service.delivery import BEIJING, PHONE_CONTEXT
from notify_service.models import PhoneVerification, Recipient
from wangban.crypto import BlindIndex, FieldCipher, mask_phone, normalize_phone
from wangban.db import Database
from wangban.errors import ServiceUnavailable, TooManyRequests, ValidationFailed

CODE_TTL = timedelta(minutes=5)
RESEND_AFTER = timedelta(seconds=60)
SENDS_PER_DAY = 5
MAX_ATTEMPTS = 5
CODE_PURPOSE = "phone-code"
"""Blind-index purpose of the codes' HMAC: its own derived key."""


class PhoneCodeTooSoon(TooManyRequests):
    type_slug = "phone-code-too-soon"
    title = "验证码发送过于频繁"


class PhoneCodeLimit(TooManyRequests):
    type_slug = "phone-code-limit"
    title = "今日验证码发送次数已达上限"


class PhoneCodeWrong(ValidationFailed):
    """A wrong code: the try is counted (kept), and after too many the code is void."""

    type_slug = "phone-code-wrong"
    title = "验证码不正确"
    keeps_changes = True


class PhoneCodeExpired(ValidationFailed):
    """No live code: none was asked for, it expired, was used, or had too many wrong tries."""

    type_slug = "phone-code-expired"
    title = "验证码已失效"


class PhoneRefused(ValidationFailed):
    """The SMS gateway will never deliver to this number (or our template is refused)."""

    type_slug = "phone-refused"
    title = "无法向该号码发送短信"


class SmsUnavailable(ServiceUnavailable):
    type_slug = "sms-unavailable"
    title = "短信暂时无法发送"


@dataclass(frozen=True)
class CodeSent:
    phone_masked: str
    expires_in: int
    resend_after: int
    out_id: str
    """The SMS's id at the gateway (test mode reads the simulated message back by it)."""


@dataclass(frozen=True)
class Outgoing:
    phone: str = field(repr=False)
    code: str = field(repr=False)
    out_id: str
    phone_masked: str


def _code_hash(blind_index: BlindIndex, *, subject: str, phone_index: str, code: str) -> str:
    return blind_index.compute(f"{subject}\x1f{phone_index}\x1f{code}", purpose=CODE_PURPOSE)


def _retry_after(seconds: float) -> dict[str, str]:
    return {"Retry-After": str(max(1, math.ceil(seconds)))}


async def issue_code(
    session: AsyncSession,
    *,
    subject: str,
    phone: str,
    cipher: FieldCipher,
    blind_index: BlindIndex,
    daily_limit_per_number: int,
    now: datetime,
) -> Outgoing:
    """A new code for this account and number, stored (hashed) in the session's transaction.
    Any earlier code of the account is void from now on."""
    phone = normalize_phone(phone)
    await repository.lock_recipient(session, subject)
    pending = await repository.phone_verification(session, subject)
    if pending is not None and pending.last_sent_at is not None:
        wait = (pending.last_sent_at + RESEND_AFTER - now).total_seconds()
        if wait > 0:
            raise PhoneCodeTooSoon(
                f"验证码已发送，请 {math.ceil(wait)} 秒后再试", headers=_retry_after(wait)
            )
    if pending is not None and now - pending.window_start < timedelta(days=1):
        if pending.sends_in_window >= SENDS_PER_DAY:
            wait = (pending.window_start + timedelta(days=1) - now).total_seconds()
            raise PhoneCodeLimit(
                f"今日验证码已发送 {SENDS_PER_DAY} 次，请明天再试", headers=_retry_after(wait)
            )
        window_start, sends = pending.window_start, pending.sends_in_window + 1
    else:
        window_start, sends = now, 1
    phone_index = blind_index.phone(phone)
    if not await repository.count_sms(
        session,
        phone_index=phone_index,
        day=now.astimezone(BEIJING).date(),
        limit=daily_limit_per_number,
    ):
        raise PhoneCodeLimit("该号码今日短信已达上限，请明天再试", headers=_retry_after(24 * 3600))
    code = f"{secrets.randbelow(1_000_000):06d}"
    values = {
        "phone_enc": cipher.encrypt(phone, context=PHONE_CONTEXT),
        "phone_index": phone_index,
        "phone_masked": mask_phone(phone),
        "code_hash": _code_hash(blind_index, subject=subject, phone_index=phone_index, code=code),
        "out_id": str(uuid.uuid4()),
        "expires_at": now + CODE_TTL,
        "attempts": 0,
        "last_sent_at": now,
        "window_start": window_start,
        "sends_in_window": sends,
    }
    if pending is None:
        session.add(PhoneVerification(subject=subject, **values))
    else:
        for name, value in values.items():
            setattr(pending, name, value)
    await session.flush()
    return Outgoing(
        phone=phone,
        code=code,
        out_id=str(values["out_id"]),
        phone_masked=str(values["phone_masked"]),
    )


async def withdraw_code(session: AsyncSession, *, subject: str, out_id: str) -> None:
    """The SMS carrying the code did not go: the code is void, and asking again at once is
    allowed (the send still counted towards the day's limits)."""
    pending = await repository.phone_verification(session, subject)
    if pending is not None and pending.out_id == out_id:
        pending.code_hash = None
        pending.last_sent_at = None
        await session.flush()


def _refusal(result: SendResult) -> PhoneRefused | SmsUnavailable:
    if result.outcome == "permanent-failure":
        return PhoneRefused(
            "无法向该号码发送短信，请核对号码" + (f"（{result.code}）" if result.code else "")
        )
    return SmsUnavailable("短信暂时无法发送，请稍后再试")


async def send_code(
    database: Database,
    *,
    sms: SmsChannel,
    template_code: str,
    subject: str,
    phone: str,
    cipher: FieldCipher,
    blind_index: BlindIndex,
    daily_limit_per_number: int,
    now: datetime,
) -> CodeSent:
    """Issue a code (committed), SMS it with no transaction open, withdraw it if not sent.

    Commits itself, unlike the other rules: the SMS gateway must not be called while a
    transaction holds the account's lock and a pooled connection."""
    async with database.sessionmaker() as session, session.begin():
        outgoing = await issue_code(
            session,
            subject=subject,
            phone=phone,
            cipher=cipher,
            blind_index=blind_index,
            daily_limit_per_number=daily_limit_per_number,
            now=now,
        )
    result = await sms.send_sms(
        phone=outgoing.phone,
        template_code=template_code,
        params={"code": outgoing.code},
        out_id=outgoing.out_id,
    )
    if result.outcome not in ("accepted", "delivered"):
        async with database.sessionmaker() as session, session.begin():
            await withdraw_code(session, subject=subject, out_id=outgoing.out_id)
        raise _refusal(result)
    return CodeSent(
        phone_masked=outgoing.phone_masked,
        expires_in=int(CODE_TTL.total_seconds()),
        resend_after=int(RESEND_AFTER.total_seconds()),
        out_id=outgoing.out_id,
    )


async def confirm_code(
    session: AsyncSession,
    *,
    subject: str,
    code: str,
    blind_index: BlindIndex,
    now: datetime,
) -> Recipient:
    """The code typed back: the pending number becomes the account's SMS number."""
    await repository.lock_recipient(session, subject)
    pending = await repository.phone_verification(session, subject)
    if (
        pending is None
        or pending.code_hash is None
        or pending.expires_at <= now
        or pending.attempts >= MAX_ATTEMPTS
    ):
        raise PhoneCodeExpired("验证码已失效，请重新获取")
    expected = _code_hash(
        blind_index, subject=subject, phone_index=pending.phone_index, code=code.strip()
    )
    if not hmac.compare_digest(expected, pending.code_hash):
        pending.attempts += 1
        left = MAX_ATTEMPTS - pending.attempts
        if left <= 0:
            pending.code_hash = None
        await session.flush()
        raise PhoneCodeWrong(
            f"验证码不正确，还可再试 {left} 次" if left > 0 else "验证码不正确，请重新获取",
            extra={"attempts_left": max(left, 0)},
        )
    await repository.save_recipient(
        session,
        subject,
        phone_enc=pending.phone_enc,
        phone_index=pending.phone_index,
        phone_masked=pending.phone_masked,
    )
    caches.recipient_changed(session, subject)
    await repository.delete_phone_verification(session, subject)
    recipient = await repository.recipient(session, subject)
    assert recipient is not None
    await session.refresh(recipient)
    return recipient
