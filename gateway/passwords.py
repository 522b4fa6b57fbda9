"""Staff passwords: Argon2id hashes, the password policy and the throttling of wrong ones.

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
    "ThrottlePolicy",
    "check_password_policy",
    "delay_after",
    "failures_in_a_row",
    "hash_password",
    "is_throttled",
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


# --- throttling ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ThrottlePolicy:
    """Wrong passwords are counted per (username, client address). The first
    ``free_failures - 1`` in a row cost nothing; the ``free_failures``-th and each one after it
    make that pair wait, ``first_delay_s`` and then twice as long each time, up to
    ``max_delay_s``. A run of failures is forgotten ``forget_after_s`` after its last one.

    Per address, not per account: someone failing on purpose slows only themselves, never the
    colleague at their own desk. Guessing from many addresses is what the per-address rate
    limit of the login route and the password policy are for."""

    free_failures: int = 5
    first_delay_s: int = 30
    max_delay_s: int = 900
    forget_after_s: int = 86_400

    def __post_init__(self) -> None:
        if self.free_failures < 1 or self.first_delay_s < 1:
            raise ValueError("a throttle policy needs at least one failure and one second")
        if self.max_delay_s < self.first_delay_s or self.forget_after_s < self.max_delay_s:
            raise ValueError("max_delay_s must be ≥ first_delay_s and ≤ forget_after_s")


def delay_after(failures: int, *, policy: ThrottlePolicy) -> timedelta | None:
    """How long the pair waits after its ``failures``-th wrong password in a row (None: not
    at all)."""
    beyond = failures - policy.free_failures
    if beyond < 0:
        return None
    # Capped before exponentiating: a long run of failures must not build a huge integer.
    seconds = policy.first_delay_s * 2 ** min(beyond, 32)
    return timedelta(seconds=min(seconds, policy.max_delay_s))


def failures_in_a_row(
    *, failures: int, last_failure_at: datetime | None, now: datetime, policy: ThrottlePolicy
) -> int:
    """The count a new failure adds to: the stored one, unless the run is old enough to be
    forgotten."""
    if last_failure_at is None or now - last_failure_at >= timedelta(seconds=policy.forget_after_s):
        return 0
    return max(failures, 0)


def is_throttled(*, blocked_until: datetime | None, now: datetime) -> bool:
    """Whether a delay is still in force at ``now`` (it ends at ``blocked_until`` exactly)."""
    return blocked_until is not None and now < blocked_until
