"""Field encryption, blind indexes and display masks."""

from __future__ import annotations

import base64
import os

import pytest
from pydantic import SecretStr

from wangban.crypto import (
    BlindIndex,
    DecryptionError,
    FieldCipher,
    mask_name,
    mask_phone,
    mask_resident_id,
    normalize_phone,
    normalize_resident_id,
)
from wangban.settings import ConfigurationError, Environment, Settings

from .synthetic import PHONE, resident_id, resident_id_ending_in_x

ID = resident_id()


def new_key() -> SecretStr:
    return SecretStr(base64.b64encode(os.urandom(32)).decode())


def settings_with(keys: dict[str, SecretStr], active: str) -> Settings:
    return Settings(
        env=Environment.TEST, field_encryption_keys=keys, field_encryption_active_key=active
    )


@pytest.fixture(scope="module")
def old_key() -> SecretStr:
    return new_key()


@pytest.fixture
def cipher(old_key: SecretStr) -> FieldCipher:
    return FieldCipher.from_settings(settings_with({"k1": old_key}, "k1"))


def test_round_trip_and_token_shape(cipher: FieldCipher) -> None:
    token = cipher.encrypt(ID, context="applicant.resident_id")
    version, key_id, payload = token.split(".")
    assert (version, key_id) == ("v1", "k1")
    assert ID not in token
    assert "=" not in payload  # base64url without padding, safe in URLs and CSV
    assert cipher.decrypt(token, context="applicant.resident_id") == ID
    # A fresh nonce every time: equal plaintexts do not give equal ciphertexts.
    assert cipher.encrypt(ID, context="applicant.resident_id") != token
    assert cipher.decrypt(cipher.encrypt("张三丰")) == "张三丰"


def test_context_is_bound(cipher: FieldCipher) -> None:
    token = cipher.encrypt(ID, context="applicant.resident_id")
    with pytest.raises(DecryptionError):
        cipher.decrypt(token, context="agent.resident_id")
    with pytest.raises(DecryptionError):
        cipher.decrypt(token)


def test_tampering_is_detected(cipher: FieldCipher) -> None:
    token = cipher.encrypt(ID)
    prefix, payload = token.rsplit(".", 1)
    raw = bytearray(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    raw[-1] ^= 0x01
    tampered = prefix + "." + base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
    with pytest.raises(DecryptionError, match="authentication"):
        cipher.decrypt(tampered)
    for malformed in ("", "plain text", "v2.k1.abcd", "v1.k1.@@@", "v1.k1.AAAA"):
        with pytest.raises(DecryptionError):
            cipher.decrypt(malformed)


def test_unknown_key_id(cipher: FieldCipher) -> None:
    other = FieldCipher.from_settings(settings_with({"k9": new_key()}, "k9"))
    with pytest.raises(DecryptionError, match="k9"):
        cipher.decrypt(other.encrypt(ID))


def test_rotation(old_key: SecretStr) -> None:
    before = FieldCipher.from_settings(settings_with({"k1": old_key}, "k1"))
    old_token = before.encrypt(ID, context="c")
    assert not before.needs_rotation(old_token)

    after = FieldCipher.from_settings(settings_with({"k1": old_key, "k2": new_key()}, "k2"))
    assert after.decrypt(old_token, context="c") == ID
    assert after.needs_rotation(old_token)
    rotated = after.reencrypt(old_token, context="c")
    assert rotated.split(".")[1] == "k2"
    assert not after.needs_rotation(rotated)
    assert after.decrypt(rotated, context="c") == ID
    assert after.reencrypt(rotated, context="c") == rotated
    # The context is still enforced during rotation.
    with pytest.raises(DecryptionError):
        after.reencrypt(old_token, context="other")


def test_key_validation_names_the_variable() -> None:
    short = SecretStr(base64.b64encode(b"too short").decode())
    with pytest.raises(ConfigurationError, match="WANGBAN_FIELD_ENCRYPTION_KEYS"):
        FieldCipher.from_settings(settings_with({"k1": short}, "k1"))
    with pytest.raises(ConfigurationError, match="WANGBAN_FIELD_ENCRYPTION_KEYS"):
        FieldCipher.from_settings(settings_with({"k1": SecretStr("not base64!")}, "k1"))
    with pytest.raises(ConfigurationError, match="key id"):
        FieldCipher({"a.b": os.urandom(32)}, active_key_id="a.b")


def test_default_settings_give_a_working_cipher() -> None:
    cipher = FieldCipher.from_settings(Settings(env=Environment.TEST))
    assert cipher.decrypt(cipher.encrypt(PHONE)) == PHONE


# --- blind index ---------------------------------------------------------------------------


@pytest.fixture
def index() -> BlindIndex:
    return BlindIndex.from_settings(Settings(env=Environment.TEST))


def test_blind_index_is_deterministic_and_normalised(index: BlindIndex) -> None:
    x_id = resident_id_ending_in_x()
    assert index.resident_id(x_id) == index.resident_id(x_id.lower())
    assert index.resident_id(f" {x_id[:6]} {x_id[6:]} ") == index.resident_id(x_id)
    assert index.resident_id(ID) != index.resident_id(x_id)
    assert index.phone("+86 138-0013-8000") == index.phone(PHONE)
    assert index.phone("8613800138000") == index.phone(PHONE)
    assert len(index.phone(PHONE)) == 64
    int(index.phone(PHONE), 16)


def test_blind_index_separates_purposes_and_keys(index: BlindIndex) -> None:
    value = "13800138000"
    assert index.compute(value, purpose="phone") != index.compute(value, purpose="resident_id")
    other = BlindIndex(b"another-blind-index-key-for-tests")
    assert other.phone(value) != index.phone(value)
    with pytest.raises(ValueError, match="purpose"):
        index.compute(value, purpose="")


def test_normalisers() -> None:
    assert normalize_resident_id("１１０１０１ 19900307918x") == "11010119900307918X"
    assert normalize_phone("+86 (138) 0013-8000") == PHONE
    assert normalize_phone("0086 13800138000") == PHONE
    assert normalize_phone("010-12345678") == "01012345678"  # a landline is left as is


# --- masks ---------------------------------------------------------------------------------


def test_masks() -> None:
    assert mask_resident_id(ID) == ID[:6] + "********" + ID[-4:]
    assert mask_resident_id("110101199003071234") == "110101********1234"
    assert mask_phone("13800138000") == "138****8000"
    assert mask_phone("+86 138 0013 8000") == "138****8000"
    assert mask_name("张三丰") == "张**"
    assert mask_name("李四") == "李*"
    assert mask_name("王") == "*"
    assert mask_name("") == ""
    assert mask_resident_id("12345") == "*****"
