"""Staff passwords: Argon2id hashing, the password policy, and the delays after failures."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from argon2 import PasswordHasher, Type

from gateway import passwords
from gateway.passwords import (
    ThrottlePolicy,
    check_password_policy,
    delay_after,
    failures_in_a_row,
    hash_password,
    is_throttled,
    needs_rehash,
    verify_dummy,
    verify_password,
)

GOOD = "Window-clerk-2026"
NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


# --- hashing -------------------------------------------------------------------------------


def test_a_hash_verifies_its_password_and_only_that() -> None:
    stored = hash_password(GOOD)
    assert stored.startswith("$argon2id$") and GOOD not in stored
    assert verify_password(stored, GOOD)
    assert not verify_password(stored, "Window-clerk-2027")
    assert not verify_password(stored, GOOD.lower())
    assert not verify_password(stored, "")


def test_the_same_password_hashes_differently_each_time() -> None:
    first, second = hash_password(GOOD), hash_password(GOOD)
    assert first != second
    assert verify_password(first, GOOD) and verify_password(second, GOOD)


def test_full_width_input_is_the_same_password() -> None:
    # A Chinese input method left in full-width mode types these.
    stored = hash_password("Window-clerk-2026")
    assert verify_password(stored, "Ｗｉｎｄｏｗ－ｃｌｅｒｋ－２０２６")


@pytest.mark.parametrize(
    "malformed",
    [
        "",
        "not a hash",
        "$argon2id$v=19$m=19456,t=2,p=1$not-base64!$also-not",
        "$argon2id$v=19$m=19456,t=2,p=1$YWJj$YWJj",  # decodes, but far too short
        "scrypt$16384$8$1$c2FsdA==$a2V5",
        "$2b$12$abcdefghijklmnopqrstuuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ01",  # bcrypt
        # Well formed, but would want 4 GiB of memory to check.
        "$argon2id$v=19$m=4194304,t=2,p=1$GgKPfsmqev1RBay6/LxlWQ"
        "$jedVscIloOu8jBimBhEEAnFePnBzXJAtrh/T2Zvy6cw",
    ],
    ids=["empty", "words", "bad-base64", "short", "scrypt", "bcrypt", "huge-memory"],
)
def test_a_malformed_hash_is_false_never_an_error(malformed: str) -> None:
    assert verify_password(malformed, GOOD) is False
    assert needs_rehash(malformed)


def test_a_hash_made_with_older_parameters_verifies_and_asks_for_a_rehash() -> None:
    weaker = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1, type=Type.ID)
    old = weaker.hash(GOOD)
    assert verify_password(old, GOOD)
    assert needs_rehash(old)
    assert not needs_rehash(hash_password(GOOD))


def test_the_dummy_check_does_the_work_of_a_real_one() -> None:
    # Same parameters as today's hashes, hence the same cost; and it answers nothing.
    assert not needs_rehash(passwords._DUMMY_HASH)
    verify_dummy(GOOD)  # runs a real Argon2id check, raises nothing
    assert not verify_password(passwords._DUMMY_HASH, GOOD)


# --- the password policy -------------------------------------------------------------------


def test_a_good_password_has_no_problems() -> None:
    assert check_password_policy(GOOD) == []
    assert check_password_policy("abcdefghij12") == []  # exactly 12


@pytest.mark.parametrize(
    ("password", "problems"),
    [
        ("abcdefghij1", ["密码至少需要 12 个字符"]),
        ("abcdefghijkl", ["密码须包含数字"]),
        ("123456789012", ["密码须包含英文字母"]),
        ("", ["密码至少需要 12 个字符", "密码须包含英文字母", "密码须包含数字"]),
        ("窗口办事员密码很长很长很长", ["密码须包含英文字母", "密码须包含数字"]),
        ("a1" * 65, ["密码不能超过 128 个字符"]),
    ],
    ids=["short", "no-digit", "no-letter", "empty", "chinese-only", "too-long"],
)
def test_the_policy_names_each_problem_in_chinese(password: str, problems: list[str]) -> None:
    assert check_password_policy(password) == problems


def test_full_width_letters_and_digits_count() -> None:
    assert check_password_policy("ｗｉｎｄｏｗｃｌｅｒｋ２０２６") == []


# --- throttling ----------------------------------------------------------------------------


def test_the_first_failures_cost_nothing_then_the_delay_doubles_up_to_its_cap() -> None:
    policy = ThrottlePolicy()
    assert [delay_after(n, policy=policy) for n in range(1, 5)] == [None] * 4
    delays = [delay_after(n, policy=policy) for n in range(5, 12)]
    assert [int(d.total_seconds()) for d in delays if d] == [30, 60, 120, 240, 480, 900, 900]
    assert delay_after(10_000, policy=policy) == timedelta(seconds=900)


def test_a_delay_ends_at_its_instant() -> None:
    blocked_until = NOW + timedelta(seconds=30)
    assert is_throttled(blocked_until=blocked_until, now=NOW)
    assert not is_throttled(blocked_until=blocked_until, now=blocked_until)
    assert not is_throttled(blocked_until=None, now=NOW)


def test_an_old_run_of_failures_is_forgotten() -> None:
    policy = ThrottlePolicy()
    recent = NOW - timedelta(hours=1)
    assert failures_in_a_row(failures=7, last_failure_at=recent, now=NOW, policy=policy) == 7
    old = NOW - timedelta(days=1)
    assert failures_in_a_row(failures=7, last_failure_at=old, now=NOW, policy=policy) == 0
    assert failures_in_a_row(failures=0, last_failure_at=None, now=NOW, policy=policy) == 0


def test_the_policy_can_be_tuned() -> None:
    policy = ThrottlePolicy(free_failures=3, first_delay_s=60, max_delay_s=3600)
    assert delay_after(2, policy=policy) is None
    assert delay_after(3, policy=policy) == timedelta(minutes=1)
    assert delay_after(4, policy=policy) == timedelta(minutes=2)
    with pytest.raises(ValueError):
        ThrottlePolicy(free_failures=0)
    with pytest.raises(ValueError):
        ThrottlePolicy(first_delay_s=60, max_delay_s=30)
