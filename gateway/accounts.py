"""Who people are: mini-program accounts from WeChat login, raised to real-name (实名) and
real-person (实人) assurance; the companies they may act for (法人); staff logins.

The identity every service sees is built here, from what was verified here, never from what a
client says: the openid comes from WeChat's answer to a login code, the name and ID number from
the verification provider's match, the face check from WeChat's own result.
"""

from __future__ import annotations

import asyncio
import math
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from gateway import passwords, repository
from gateway.identity_provider import IdentityVerifier
from gateway.models import Account, CompanyBinding, FaceVerification, StaffAccount
from gateway.wechat import WeChatAuth, WeChatSession
from wangban.auth import AssuranceLevel, Identity, InsufficientAssurance
from wangban.crypto import BlindIndex, FieldCipher
from wangban.errors import (
    Forbidden,
    NotFound,
    TooManyRequests,
    Unauthorized,
    ValidationFailed,
)
from wangban.identifiers import InvalidIdentifier, validate_resident_id, validate_uscc

ACCOUNT_HOLDER_CONTEXT = "gateway.account"
"""Encryption context of an account's verified name and ID number at rest (the gateway's own;
not the events' ``contracts.intake.v1.HOLDER_CONTEXT``)."""
FACE_TTL = timedelta(minutes=10)


class AccountGone(Unauthorized):
    """The account a token names no longer exists (or the staff member was disabled): the
    client logs in again."""

    type_slug = "account-gone"
    title = "账号不可用"


class RealNameMismatch(ValidationFailed):
    """The name and ID number could not be bound: they do not match the register, or the
    person is already bound to another account. One answer for both (status, type, detail),
    or the route would tell anyone which ID numbers have an account here."""

    type_slug = "real-name-mismatch"
    title = "实名信息核验未通过"


REAL_NAME_REFUSED = (
    "实名信息核验未通过：请核对姓名与身份证号码；如确认无误，该证件可能已绑定其他微信账号，"
    "请联系客服"
)


class RealPersonFailed(ValidationFailed):
    """The face check did not pass; the attempt is recorded."""

    type_slug = "real-person-failed"
    title = "人脸核验未通过"
    keeps_changes = True


class FaceVerificationNotFound(NotFound):
    type_slug = "face-verification-not-found"
    title = "人脸核验记录不存在"


class NotCompanyRepresentative(Forbidden):
    type_slug = "not-company-representative"
    title = "无权代表该企业"


class CompanyNotBound(Forbidden):
    type_slug = "company-not-bound"
    title = "尚未绑定该企业"


class WrongCredentials(Unauthorized):
    """Wrong username or password; the failure is counted (per username and address)."""

    type_slug = "wrong-credentials"
    title = "用户名或密码错误"
    keeps_changes = True


class LoginThrottled(TooManyRequests):
    """Too many wrong passwords from this address for this username: wait ``Retry-After``
    seconds. The same for a username that does not exist."""

    type_slug = "login-throttled"
    title = "登录尝试过于频繁"


THROTTLE_PURPOSE = "gateway.staff-login"
"""Blind-index purpose of the usernames in :class:`~gateway.models.LoginThrottle`."""


# --- Identities ---------------------------------------------------------------------------


def citizen_identity(account: Account, *, acting_for: str | None = None) -> Identity:
    return Identity(
        subject=account.subject,
        kind="company" if acting_for else "citizen",
        assurance=AssuranceLevel(account.assurance),
        person_ref=account.person_ref,
        acting_for=acting_for,
    )


def staff_identity(staff: StaffAccount) -> Identity:
    return Identity(
        subject=staff.subject,
        kind="staff",
        roles=frozenset(staff.roles),
        department=staff.department,
        region=staff.region,
        assurance=AssuranceLevel.REAL_NAME,
    )


async def account_of(session: AsyncSession, identity: Identity) -> Account:
    """The signed-in citizen's account, read (no lock: see :func:`_locked_account`)."""
    account = await repository.account(session, identity.subject)
    if account is None:
        raise AccountGone("账号不存在，请重新登录")
    return account


async def _locked_account(session: AsyncSession, subject: str) -> Account:
    """The account as it is now, locked until the transaction ends: taken after the remote call,
    never before it (the register and WeChat answer with no transaction of ours open), so what
    the call was about is checked again under the lock."""
    account = await repository.account(session, subject, lock=True)
    if account is None:
        raise AccountGone("账号不存在，请重新登录")
    return account


async def identity_now(session: AsyncSession, *, principal: str, subject: str) -> Identity:
    """Who a login's subject is now, for a refreshed token: assurance, roles and department as
    they stand, not as they were at login; a disabled staff member or a deleted account is
    gone."""
    if principal == "staff":
        staff = await repository.staff_by_subject(session, subject)
        if staff is None or staff.disabled:
            raise AccountGone("账号不可用")
        return staff_identity(staff)
    account = await repository.account(session, subject)
    if account is None:
        raise AccountGone("账号不存在，请重新登录")
    return citizen_identity(account)


@dataclass(frozen=True)
class VerifiedPerson:
    """An account's verified name and ID number, decrypted for a call that needs them."""

    name: str
    id_number: str

    def __repr__(self) -> str:
        return "VerifiedPerson(***)"


def verified_person(account: Account, cipher: FieldCipher) -> VerifiedPerson:
    if account.name_enc is None or account.id_number_enc is None:
        raise InsufficientAssurance(
            "请先完成实名认证",
            extra={"required_assurance": "real_name", "current_assurance": "wechat"},
        )
    return VerifiedPerson(
        name=cipher.decrypt(account.name_enc, context=ACCOUNT_HOLDER_CONTEXT),
        id_number=cipher.decrypt(account.id_number_enc, context=ACCOUNT_HOLDER_CONTEXT),
    )


# --- WeChat login -------------------------------------------------------------------------


async def wechat_login(session: AsyncSession, *, wechat: WeChatSession, now: datetime) -> Account:
    """The account of this openid, created on first login.

    The route then reports the openid to the notification service (:mod:`gateway.recipients`,
    after this transaction commits): it is how notify learns where to send subscription
    messages. Reporting at every login rather than once repairs a binding notify lost or
    never received; binding is idempotent there."""
    account = await repository.account_by_openid(session, wechat.openid)
    if account is None:
        account = Account(
            subject=f"u-{uuid.uuid4().hex}",
            openid=wechat.openid,
            unionid=wechat.unionid,
            assurance=int(AssuranceLevel.WECHAT),
        )
        session.add(account)
    elif wechat.unionid:
        account.unionid = wechat.unionid
    account.last_login_at = now
    await session.flush()
    return account


async def development_login(
    session: AsyncSession,
    *,
    openid: str,
    assurance: str,
    name: str | None,
    id_number: str | None,
    verifier: IdentityVerifier,
    cipher: FieldCipher,
    blind_index: BlindIndex,
    now: datetime,
) -> Account:
    """The development login's account (the route answers it in local and test runs only): any
    openid, raised to ``assurance`` (``wechat``, ``real_name`` or ``real_person``); real-name is
    checked against the register as a real one is (before anything is written: no transaction
    waits for it), real-person needs no face."""
    checked: RealName | None = None
    if assurance != "wechat":
        if not (name and id_number):
            raise RealNameMismatch("开发登录需要姓名和身份证号码")
        checked = await check_real_name(
            name=name, id_number=id_number, verifier=verifier, blind_index=blind_index
        )
    account = await wechat_login(
        session, wechat=WeChatSession(openid=openid, unionid=None), now=now
    )
    if checked is None:
        return account
    await record_real_name(
        session, subject=account.subject, checked=checked, cipher=cipher, now=now
    )
    if assurance == "real_person":
        account.assurance = int(AssuranceLevel.REAL_PERSON)
        account.real_person_at = now
        await session.flush()
    return account


# --- Real name and real person ------------------------------------------------------------


@dataclass(frozen=True)
class RealName:
    """A name and resident ID number the register says go together: what binding may write."""

    name: str
    id_number: str
    person_ref: str

    def __repr__(self) -> str:
        return "RealName(***)"


async def check_real_name(
    *, name: str, id_number: str, verifier: IdentityVerifier, blind_index: BlindIndex
) -> RealName:
    """Ask the register whether ``name`` goes with ``id_number``; refused unless it matches.

    The register first, whatever we hold: every attempt asks it, so neither the answer nor the
    work done tells whether this ID number is bound here already."""
    try:
        id_number = validate_resident_id(id_number)
    except InvalidIdentifier as invalid:
        raise ValidationFailed(f"身份证号码有误：{invalid}") from None
    name = name.strip()
    check = await verifier.verify_person(name=name, id_number=id_number)
    if check.result != "match":
        raise RealNameMismatch(REAL_NAME_REFUSED)
    return RealName(name=name, id_number=id_number, person_ref=blind_index.resident_id(id_number))


async def record_real_name(
    session: AsyncSession, *, subject: str, checked: RealName, cipher: FieldCipher, now: datetime
) -> Account:
    """Bind what the register matched to the account, locked as it is now; one account per
    person. Two accounts binding the same person at once: the unique ``person_ref`` makes the
    second write wait for the first transaction and fail once it commits."""
    account = await _locked_account(session, subject)
    holder = await repository.account_by_person(session, checked.person_ref)
    if holder is not None and holder.subject != account.subject:
        raise RealNameMismatch(REAL_NAME_REFUSED)
    if account.person_ref is not None and account.person_ref != checked.person_ref:
        # Another person: the face WeChat checked was the previous one's, so 实人 goes (the
        # new person checks their own face), and so does any face check started for them.
        account.assurance = int(AssuranceLevel.REAL_NAME)
        account.real_person_at = None
        await repository.close_face_verifications(session, subject=account.subject, now=now)
    account.name_enc = cipher.encrypt(checked.name, context=ACCOUNT_HOLDER_CONTEXT)
    account.id_number_enc = cipher.encrypt(checked.id_number, context=ACCOUNT_HOLDER_CONTEXT)
    account.person_ref = checked.person_ref
    account.real_name_at = now
    # The same person again keeps what they proved (实人 included).
    account.assurance = max(account.assurance, int(AssuranceLevel.REAL_NAME))
    try:
        await session.flush()
    except IntegrityError:
        # Another account bound the same person at the same moment (unique person_ref).
        raise RealNameMismatch(REAL_NAME_REFUSED) from None
    return account


async def bind_real_name(
    session: AsyncSession,
    *,
    subject: str,
    name: str,
    id_number: str,
    verifier: IdentityVerifier,
    cipher: FieldCipher,
    blind_index: BlindIndex,
    now: datetime,
) -> Account:
    """实名: the name and ID number must match the register; one account per person.

    Read → ask the register → lock and write: the register may take its whole timeout, and
    no transaction, lock or pooled connection of ours waits for it. ``session`` must hold no
    transaction yet."""
    account = await repository.account(session, subject)
    if account is None:
        raise AccountGone("账号不存在，请重新登录")
    checked = await check_real_name(
        name=name, id_number=id_number, verifier=verifier, blind_index=blind_index
    )
    return await record_real_name(session, subject=subject, checked=checked, cipher=cipher, now=now)


async def start_real_person(
    session: AsyncSession,
    *,
    account: Account,
    wechat: WeChatAuth,
    cipher: FieldCipher,
    now: datetime,
) -> FaceVerification:
    """实人: ask WeChat for a face-verification id for this person; the mini-program runs the
    face check with it, then :func:`finish_real_person` asks WeChat how it went."""
    person = verified_person(account, cipher)
    out_seq_no = uuid.uuid4().hex
    started = await wechat.start_face_verification(
        openid=account.openid, name=person.name, id_number=person.id_number, out_seq_no=out_seq_no
    )
    verification = FaceVerification(
        verify_id=started.verify_id,
        subject=account.subject,
        out_seq_no=out_seq_no,
        created_at=now,
        expires_at=now + min(FACE_TTL, timedelta(seconds=started.expires_in or 600)),
    )
    session.add(verification)
    await session.flush()
    return verification


def _face_verification_open(
    verification: FaceVerification | None, *, subject: str, now: datetime
) -> FaceVerification:
    if (
        verification is None
        or verification.subject != subject
        or verification.finished_at is not None
        or verification.expires_at <= now
    ):
        raise FaceVerificationNotFound("人脸核验记录不存在或已过期，请重新发起")
    return verification


async def finish_real_person(
    session: AsyncSession,
    *,
    subject: str,
    verify_id: str,
    wechat: WeChatAuth,
    cipher: FieldCipher,
    now: datetime,
) -> Account:
    """Believe only WeChat: whatever the front end says, the result is queried here, and only
    ``verify_ret == 10000`` counts.

    Read → ask WeChat → lock and write (``session`` must hold no transaction yet). Under the
    locks the verification must still be open (a second request for it may have finished it
    meanwhile) and the account still bound to the person WeChat checked (a new real name bound
    meanwhile is not the face WeChat saw)."""
    account = await repository.account(session, subject)
    if account is None:
        raise AccountGone("账号不存在，请重新登录")
    verification = _face_verification_open(
        await repository.face_verification(session, verify_id), subject=subject, now=now
    )
    person_ref = account.person_ref
    person = verified_person(account, cipher)
    result = await wechat.face_result(
        verify_id=verify_id,
        out_seq_no=verification.out_seq_no,
        openid=account.openid,
        name=person.name,
        id_number=person.id_number,
    )
    account = await _locked_account(session, subject)
    verification = _face_verification_open(
        await repository.face_verification(session, verify_id, lock=True), subject=subject, now=now
    )
    if account.person_ref != person_ref:
        raise FaceVerificationNotFound("实名信息已变更，请重新发起人脸核验")
    verification.finished_at = now
    verification.verify_ret = result.verify_ret
    if not result.passed:
        await session.flush()
        raise RealPersonFailed(
            "人脸核验未通过，请在光线充足处重试", extra={"verify_ret": result.verify_ret}
        )
    account.real_person_at = now
    account.assurance = int(AssuranceLevel.REAL_PERSON)
    await session.flush()
    return account


# --- Companies ----------------------------------------------------------------------------


async def bind_company(
    session: AsyncSession,
    *,
    account: Account,
    uscc: str,
    verifier: IdentityVerifier,
    cipher: FieldCipher,
    now: datetime,
) -> CompanyBinding:
    """法人: the register must name this person as the company's legal representative or an
    authorised agent."""
    try:
        uscc = validate_uscc(uscc)
    except InvalidIdentifier as invalid:
        raise ValidationFailed(f"统一社会信用代码有误：{invalid}") from None
    person = verified_person(account, cipher)
    check = await verifier.company_role(uscc=uscc, name=person.name, id_number=person.id_number)
    if check.role is None or check.company_name is None:
        raise NotCompanyRepresentative("您不是该企业的法定代表人或授权经办人")
    binding = await repository.company(session, subject=account.subject, uscc=uscc)
    if binding is None:
        binding = CompanyBinding(id=str(uuid.uuid4()), subject=account.subject, uscc=uscc)
        session.add(binding)
    binding.company_name = check.company_name
    binding.role = check.role
    binding.verified_at = now
    await session.flush()
    return binding


async def company_to_act_for(
    session: AsyncSession, *, account: Account, uscc: str
) -> CompanyBinding:
    binding = await repository.company(session, subject=account.subject, uscc=uscc)
    if binding is None:
        raise CompanyNotBound("请先绑定该企业，再以企业名义办理")
    return binding


# --- Staff --------------------------------------------------------------------------------


async def staff_login(
    session: AsyncSession,
    *,
    username: str,
    password: str,
    address: str,
    blind_index: BlindIndex,
    now: datetime,
    policy: passwords.ThrottlePolicy | None = None,
) -> StaffAccount:
    """A staff member's account for a right password. Wrong passwords are counted per
    (username, client ``address``), with growing delays (:class:`passwords.ThrottlePolicy`);
    an unknown or disabled username goes through exactly the same steps and answers."""
    policy = policy or passwords.ThrottlePolicy()
    # Locked for the whole attempt: parallel guesses from one address wait for each other,
    # so each sees the failures before it.
    throttle = await repository.login_throttle(
        session,
        username_hash=blind_index.compute(username, purpose=THROTTLE_PURPOSE),
        address=address[:64],
    )
    if passwords.is_throttled(blocked_until=throttle.blocked_until, now=now):
        assert throttle.blocked_until is not None
        wait = max(math.ceil((throttle.blocked_until - now).total_seconds()), 1)
        # No figure in the detail: two answers a moment apart must read the same.
        raise LoginThrottled(
            "密码错误次数过多，请稍后再试",
            headers={"Retry-After": str(wait)},
            extra={"retry_after_s": wait},
        )
    staff = await repository.staff(session, username)
    # Argon2 takes tens of milliseconds of CPU: off the event loop (it releases the GIL). An
    # unknown username is checked against a dummy hash, so timing does not tell either.
    if staff is None or staff.disabled:
        await asyncio.to_thread(passwords.verify_dummy, password)
        right = False
    else:
        right = await asyncio.to_thread(passwords.verify_password, staff.password_hash, password)
    if not right or staff is None:
        throttle.failures = 1 + passwords.failures_in_a_row(
            failures=throttle.failures,
            last_failure_at=throttle.last_failure_at,
            now=now,
            policy=policy,
        )
        throttle.last_failure_at = now
        delay = passwords.delay_after(throttle.failures, policy=policy)
        throttle.blocked_until = now + delay if delay is not None else None
        await session.flush()
        raise WrongCredentials("用户名或密码错误")
    await repository.forget_throttle(session, throttle)
    if passwords.needs_rehash(staff.password_hash):
        staff.password_hash = await asyncio.to_thread(passwords.hash_password, password)
    await session.flush()
    return staff


async def create_staff(
    session: AsyncSession,
    *,
    username: str,
    display_name: str,
    password: str,
    roles: list[str],
    department: str | None,
    region: str | None,
) -> StaffAccount:
    problems = passwords.check_password_policy(password)
    if problems:
        raise ValidationFailed("；".join(problems))
    staff = StaffAccount(
        username=username,
        subject=f"s-{uuid.uuid4().hex}",
        display_name=display_name,
        password_hash=await asyncio.to_thread(passwords.hash_password, password),
        roles=sorted(roles),
        department=department,
        region=region,
    )
    session.add(staff)
    await session.flush()
    return staff
