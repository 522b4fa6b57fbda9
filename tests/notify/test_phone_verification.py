"""A citizen's mobile number is used for SMS only once verified with the code sent to it: the
code is stored hashed, expires, survives a bounded number of wrong tries, and sending codes is
rate-limited per account; a code whose SMS did not go is void. (The whole path through the
gateway, with real SMS, is ``tests/platform/test_notifications_leave.py``.)"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from notify_service import phone_verification as pv
from notify_service import repository
from notify_service.sms import SmsGatewayClient
from tests.fakes.sms import serve_fake_sms
from wangban.crypto import BlindIndex, FieldCipher
from wangban.db import Database
from wangban.errors import Problem
from wangban.settings import Settings

MOBILE = "13987654321"
NOW = datetime(2026, 12, 7, 2, 0, tzinfo=UTC)


def _subject() -> str:
    return f"u-phone-{uuid.uuid4().hex}"


async def _issue(database: Database, settings: Settings, subject: str, now: datetime) -> str:
    async with database.sessionmaker() as session, session.begin():
        sent = await pv.issue_code(
            session,
            subject=subject,
            phone=MOBILE,
            cipher=FieldCipher.from_settings(settings),
            blind_index=BlindIndex.from_settings(settings),
            daily_limit_per_number=1000,
            now=now,
        )
    return sent.code


async def _confirm(
    database: Database, settings: Settings, subject: str, code: str, now: datetime
) -> str | None:
    """Like the route's unit of work: commits, or commits a refusal that keeps its changes.
    Returns the masked number on success."""
    async with database.sessionmaker() as session:
        try:
            recipient = await pv.confirm_code(
                session,
                subject=subject,
                code=code,
                blind_index=BlindIndex.from_settings(settings),
                now=now,
            )
        except Problem as problem:
            if problem.keeps_changes:
                await session.commit()
            raise
        await session.commit()
        return recipient.phone_masked


def _other(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


async def test_the_number_is_used_only_with_the_right_code_and_the_code_is_kept_hashed(
    database: Database, settings: Settings
) -> None:
    subject = _subject()
    code = await _issue(database, settings, subject, NOW)
    async with database.sessionmaker() as session:
        pending = await repository.phone_verification(session, subject)
        recipient = await repository.recipient(session, subject)
    assert pending is not None and pending.code_hash is not None
    stored = " ".join(str(getattr(pending, c)) for c in ("code_hash", "phone_enc", "out_id"))
    assert code not in stored and MOBILE not in stored
    assert recipient is not None and recipient.phone_enc is None  # not before the code
    assert await _confirm(database, settings, subject, code, NOW) == "139****4321"
    with pytest.raises(pv.PhoneCodeExpired):  # used once
        await _confirm(database, settings, subject, code, NOW)


async def test_wrong_tries_are_bounded_and_counted_across_requests(
    database: Database, settings: Settings
) -> None:
    subject = _subject()
    code = await _issue(database, settings, subject, NOW)
    for left in range(pv.MAX_ATTEMPTS - 1, -1, -1):
        with pytest.raises(pv.PhoneCodeWrong) as wrong:
            await _confirm(database, settings, subject, _other(code), NOW)
        assert wrong.value.extra["attempts_left"] == left
    with pytest.raises(pv.PhoneCodeExpired):  # even the right code: ask for a new one
        await _confirm(database, settings, subject, code, NOW)
    async with database.sessionmaker() as session:
        recipient = await repository.recipient(session, subject)
    assert recipient is not None and recipient.phone_enc is None


async def test_a_code_expires(database: Database, settings: Settings) -> None:
    subject = _subject()
    code = await _issue(database, settings, subject, NOW)
    later = NOW + pv.CODE_TTL + timedelta(seconds=1)
    with pytest.raises(pv.PhoneCodeExpired):
        await _confirm(database, settings, subject, code, later)


async def test_codes_are_rate_limited_per_account(database: Database, settings: Settings) -> None:
    subject = _subject()
    now = NOW
    await _issue(database, settings, subject, now)
    with pytest.raises(pv.PhoneCodeTooSoon) as soon:
        await _issue(database, settings, subject, now + timedelta(seconds=30))
    assert soon.value.headers["Retry-After"] == "30"
    for _ in range(pv.SENDS_PER_DAY - 1):
        now += pv.RESEND_AFTER
        await _issue(database, settings, subject, now)
    with pytest.raises(pv.PhoneCodeLimit):
        await _issue(database, settings, subject, now + pv.RESEND_AFTER)
    # A new code voids the earlier ones; a day later codes may be sent again.
    fresh = await _issue(database, settings, subject, NOW + timedelta(days=1))
    assert await _confirm(database, settings, subject, fresh, NOW + timedelta(days=1))


@pytest.mark.parametrize(
    ("gateway_code", "problem"),
    [("isv.MOBILE_NUMBER_ILLEGAL", pv.PhoneRefused), ("isp.SYSTEM_ERROR", pv.SmsUnavailable)],
)
async def test_a_code_whose_sms_did_not_go_is_void(
    database: Database, settings: Settings, gateway_code: str, problem: type[Problem]
) -> None:
    subject = _subject()
    secret = settings.sms_access_key_secret.get_secret_value()
    async with serve_fake_sms(
        access_key_id=settings.sms_access_key_id, secret=secret, sign_name="网办"
    ) as fake:
        fake.phone_errors[MOBILE] = gateway_code
        client = SmsGatewayClient(
            base_url=fake.base_url,
            access_key_id=settings.sms_access_key_id,
            access_key_secret=secret,
            sign_name="网办",
        )
        try:
            with pytest.raises(problem):
                await pv.send_code(
                    database,
                    sms=client,
                    template_code="SMS_WB_CODE",
                    subject=subject,
                    phone=MOBILE,
                    cipher=FieldCipher.from_settings(settings),
                    blind_index=BlindIndex.from_settings(settings),
                    daily_limit_per_number=1000,
                    now=NOW,
                )
            del fake.phone_errors[MOBILE]
            # Not sent, so asking again at once is allowed, and this time it goes.
            sent = await pv.send_code(
                database,
                sms=client,
                template_code="SMS_WB_CODE",
                subject=subject,
                phone=MOBILE,
                cipher=FieldCipher.from_settings(settings),
                blind_index=BlindIndex.from_settings(settings),
                daily_limit_per_number=1000,
                now=NOW + timedelta(seconds=1),
            )
        finally:
            await client.close()
    assert sent.phone_masked == "139****4321"
    assert [m["phone_number"] for m in fake.sent] == [MOBILE]
    code = fake.sent[0]["template_param"]["code"]
    assert await _confirm(database, settings, subject, code, NOW + timedelta(seconds=2))
