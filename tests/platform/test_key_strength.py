"""Production refuses weak, short, repeated, placeholder and reused keys (issue 17, finding 8).

Every ``*_key`` secret setting must decode to at least 32 random bytes and differ from every
other; the messages name the setting, never the value."""

from __future__ import annotations

import base64
import re
import secrets
import string
from typing import Any

import pytest

from tests.production_keys import production_keys
from wangban.key_strength import key_material, key_settings
from wangban.settings import ConfigurationError, Environment, Settings

OTHERS: dict[str, Any] = {
    "env": Environment.PRODUCTION,
    "database_url": "postgresql://wangban@db.internal/wangban",
    "kafka_bootstrap": "kafka-0.internal:9093",
    "notify_test_mode": False,
    "wechat_app_secret": "w" * 32,
    "sms_access_key_secret": "s" * 32,
    "identity_provider_url": "https://verify.gov.internal",
    "identity_provider_token": "t" * 32,
}


def _production(**keys: Any) -> Settings:
    values = {**OTHERS, **production_keys(field_key_id="k1"), **keys}
    return Settings(field_encryption_active_key="k1", **values)


def _refusal(**keys: Any) -> str:
    with pytest.raises(ConfigurationError) as refused:
        _production(**keys)
    return str(refused.value)


def test_strong_distinct_keys_are_accepted() -> None:
    settings = _production()
    names = {name for name, _, _ in key_settings(settings)}
    # The naming rule finds every key this platform signs, MACs or encrypts with.
    assert {
        "internal_token_key",
        "gateway_token_key",
        "blind_index_key",
        "field_encryption_keys",
    } <= names
    assert "s3_secret_key" not in names  # the object store's credential, not our key
    # Hex and raw forms are accepted too when they carry 32 random bytes.
    raw = "".join(secrets.choice(string.printable[:94]) for _ in range(40)) + "!"
    _production(internal_token_key=secrets.token_hex(32), blind_index_key=raw)


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("k" * 48, "low-entropy"),  # what the old tests used: 48 characters, one of them
        ("abcdefghijklmnopqrstuvwx" * 3, "low-entropy"),  # a block repeated
        # Random, under a fixed id: parallel workers must collect the same test names.
        pytest.param(secrets.token_urlsafe(16), "at least 32 random bytes", id="short"),
        pytest.param(secrets.token_hex(16), "at least 32 random bytes", id="16-bytes-in-hex"),
        ("0123456789abcdef" * 4, "low-entropy"),  # hex with few distinct bytes
        ("change-me-internal-token-key-at-least-32-characters", "placeholder"),
    ],
)
def test_weak_keys_are_refused_naming_the_setting(value: str, says: str) -> None:
    message = _refusal(internal_token_key=value)
    assert "WANGBAN_INTERNAL_TOKEN_KEY" in message and says in message
    assert value not in message


def test_field_and_signing_seeds_must_be_32_bytes_of_base64() -> None:
    message = _refusal(field_encryption_keys={"k1": secrets.token_urlsafe(48)})
    assert "WANGBAN_FIELD_ENCRYPTION_KEYS[k1] must be base64 of exactly 32 random bytes" in message
    weak = base64.b64encode(b"A" * 32).decode()
    assert "WANGBAN_FIELD_ENCRYPTION_KEYS[k1] looks low-entropy" in _refusal(
        field_encryption_keys={"k1": weak}
    )


def test_reused_keys_are_refused() -> None:
    shared = secrets.token_urlsafe(48)
    message = _refusal(internal_token_key=shared, gateway_token_key=shared)
    pair = r"WANGBAN_(GATEWAY|INTERNAL)_TOKEN_KEY must differ from WANGBAN_(INTERNAL|GATEWAY)_"
    assert re.search(pair, message)
    assert shared not in message
    # The same bytes written differently are the same key.
    raw = secrets.token_bytes(32)
    assert key_material(raw.hex()) == key_material(base64.b64encode(raw).decode()) == raw
    message = _refusal(
        blind_index_key=raw.hex(),
        field_encryption_keys={"k1": base64.b64encode(raw).decode()},
    )
    assert "must differ from" in message and "WANGBAN_BLIND_INDEX_KEY" in message


def test_local_and_test_keep_their_development_keys() -> None:
    assert Settings(env=Environment.TEST).internal_token_key.get_secret_value()
