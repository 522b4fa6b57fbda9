"""Staff passwords: Argon2id hashes, the password policy and the lockout policy.

Hashes are PHC strings (``$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>``) that carry their
own parameters, so the cost can be raised later: old hashes still verify, and
:func:`needs_rehash` tells the login to store a new one after the next good password.

Passwords are compared after Unicode NFKC normalisation, so the same password typed with a
Chinese input method in full-width mode (``Ａｂｃ１２３``) or on a keyboard that composes
accents differently is still the same password (NIST SP 800-63B, 5.1.1.2).

Hashing costs tens of milliseconds of CPU and memory by design, and it runs in the calling
thread (the work releases the GIL: ``asyncio.to_thread`` keeps an event loop free).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from argon2 import PasswordHasher, Type, extract_parameters
from argon2.exceptions import InvalidHashError, VerificationError

__all__ = [
    "MAX_LENGTH",
    "MIN_LENGTH",
    "LockoutPolicy",
    "after_failure",
    "check_password_policy",
    "hash_password",
    "is_locked",
    "needs_rehash",
    "verify_dummy",
    "verify_password",
]

MIN_LENGTH: Final = 12
MAX_LENGTH: Final = 128

_HASHER: Final = PasswordHasher(
    # OWASP's Argon2id setting (19 MiB, 2 passes, 1 lane): about 45 ms on one core, so a
    # stolen table costs an attacker dearly while a staff login stays quick and a burst of
    # them (rate-limited per address) cannot exhaust the gateway's memory.
    time_cost=2,
    memory_cost=19 * 1024,
    parallelism=1,
    hash_len=32,
    salt_len=16,
    type=Type.ID,
)

# Limits on what a stored hash may demand before we run it: a corrupted or planted row must
# not make one login allocate gigabytes or spin for minutes.
_MAX_MEMORY_KIB: Final = 1024 * 1024
_MAX_TIME_COST: Final = 16
_MAX_PARALLELISM: Final = 16

_DUMMY_HASH: Final = (
    "$argon2id$v=19$m=19456,t=2,p=1$GgKPfsmqev1RBay6/LxlWQ"
    "$jedVscIloOu8jBimBhEEAnFePnBzXJAtrh/T2Zvy6cw"
)
"""The hash of a random password nobody knows, with the current parameters (a test keeps them
in step): verifying against it costs what a real check costs."""


def _normalise(password: str) -> str:
    return unicodedata.normalize("NFKC", password)


def hash_password(password: str) -> str:
    """A new Argon2id hash (random salt) of ``password``."""
    return _HASHER.hash(_normalise(password))


def verify_password(password_hash: str, password: str) -> bool:
    """Whether ``password`` is the one hashed. False for a wrong password and for a malformed
    or unreasonable hash; never raises for either."""
    if not isinstance(password_hash, str) or not _reasonable(password_hash):
        return False
    try:
        return _HASHER.verify(password_hash, _normalise(password))
    except (VerificationError, InvalidHashError):
        # VerifyMismatchError (wrong password) is a VerificationError; so is a hash whose
        # parts do not decode.
        return False


def verify_dummy(password: str) -> None:
    """Do the work of a real check, for a username that does not exist (or is disabled), so
    the time an answer takes does not tell which usernames do."""
    verify_password(_DUMMY_HASH, password)


def needs_rehash(password_hash: str) -> bool:
    """Whether the hash was made with other parameters than today's (or cannot be read), so
    the login should store a new one."""
    try:
        return _HASHER.check_needs_rehash(password_hash)
    except (InvalidHashError, VerificationError, ValueError):
        return True


def _reasonable(password_hash: str) -> bool:
    try:
        parameters = extract_parameters(password_hash)
    except (InvalidHashError, ValueError):
        return False
    return (
        parameters.memory_cost <= _MAX_MEMORY_KIB
        and parameters.time_cost <= _MAX_TIME_COST
        and parameters.parallelism <= _MAX_PARALLELISM
    )


# --- the password policy -------------------------------------------------------------------

_LETTER = re.compile(r"[A-Za-z]")
_DIGIT = re.compile(r"[0-9]")


def check_password_policy(password: str) -> list[str]:
    """What is wrong with a new password, in Chinese for the person choosing it; empty when
    it will do. Checked on the normalised form, as it will be hashed (full-width letters and
    digits count as letters and digits)."""
    normalised = _normalise(password)
    problems: list[str] = []
    if len(normalised) < MIN_LENGTH:
        problems.append(f"密码至少需要 {MIN_LENGTH} 个字符")
    elif len(normalised) > MAX_LENGTH:
        problems.append(f"密码不能超过 {MAX_LENGTH} 个字符")
    if not _LETTER.search(normalised):
        problems.append("密码须包含英文字母")
    if not _DIGIT.search(normalised):
        problems.append("密码须包含数字")
    return problems


# --- lockout -------------------------------------------------------------------------------


@dataclass(frozen=True)
class LockoutPolicy:
    """After ``max_failures`` wrong passwords in a row the account locks for
    ``lock_minutes``."""

    max_failures: int = 5
    lock_minutes: int = 15

    def __post_init__(self) -> None:
        if self.max_failures < 1 or self.lock_minutes < 1:
            raise ValueError("a lockout policy needs at least one failure and one minute")


def after_failure(
    *, failed_attempts: int, now: datetime, policy: LockoutPolicy
) -> tuple[int, datetime | None]:
    """The new count of failures in a row, and until when the account is locked (None: not
    locked), after one more wrong password.

    The count is not reset by a lock, only by a good password (the caller sets it to 0): once
    an account has been locked, each further failure locks it again. So guessing, after the
    first lock, gets one try per ``lock_minutes`` rather than ``max_failures``.
    """
    failed = max(failed_attempts, 0) + 1
    if failed >= policy.max_failures:
        return failed, now + timedelta(minutes=policy.lock_minutes)
    return failed, None


def is_locked(*, locked_until: datetime | None, now: datetime) -> bool:
    """Whether a lock is still in force at ``now`` (it ends at ``locked_until`` exactly)."""
    return locked_until is not None and now < locked_until
