"""Personal data at rest: field encryption, blind indexes and display masks.

PIPL treats resident ID numbers as sensitive personal information, so they (and phone
numbers) are stored encrypted per field. Equality lookups ("find the applications of this
ID number") go through a keyed blind index instead of decrypting every row, and screens
show masked values unless a person has a reason to see the whole number.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import unicodedata
from collections.abc import Mapping
from typing import TYPE_CHECKING, Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from wangban.settings import ConfigurationError

if TYPE_CHECKING:
    from wangban.settings import Settings

__all__ = [
    "BlindIndex",
    "DecryptionError",
    "FieldCipher",
    "mask_name",
    "mask_phone",
    "mask_resident_id",
    "normalize_phone",
    "normalize_resident_id",
]

TOKEN_VERSION: Final = "v1"
_NONCE_BYTES: Final = 12
_KEY_BYTES: Final = 32
_KEY_ID = re.compile(r"[A-Za-z0-9_-]{1,32}")


class DecryptionError(ValueError):
    """A token could not be decrypted: malformed, tampered with, bound to another
    context, or made with a key id this process does not hold."""


def _b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class FieldCipher:
    """AES-256-GCM for single columns, with key rotation.

    Tokens look like ``v1.<key_id>.<base64url(nonce || ciphertext+tag)>``: the key id
    travels with the data, so after a new active key is configured old rows keep
    decrypting with their old key until they are re-encrypted. The ``context`` (e.g.
    ``"applicant.resident_id"``) is authenticated but not stored, so a ciphertext copied
    into another column or used for another purpose fails to decrypt.
    """

    def __init__(self, keys: Mapping[str, bytes], *, active_key_id: str) -> None:
        if not keys:
            raise ConfigurationError("WANGBAN_FIELD_ENCRYPTION_KEYS holds no keys")
        for key_id, key in keys.items():
            if not _KEY_ID.fullmatch(key_id):
                raise ConfigurationError(
                    f"WANGBAN_FIELD_ENCRYPTION_KEYS: key id {key_id!r} must be 1-32 characters "
                    "of letters, digits, '_' or '-'"
                )
            if len(key) != _KEY_BYTES:
                raise ConfigurationError(
                    f"WANGBAN_FIELD_ENCRYPTION_KEYS: key {key_id!r} is {len(key)} bytes; "
                    f"AES-256 needs exactly {_KEY_BYTES} (base64 of 32 random bytes)"
                )
        if active_key_id not in keys:
            raise ConfigurationError(
                f"WANGBAN_FIELD_ENCRYPTION_ACTIVE_KEY {active_key_id!r} is not in "
                "WANGBAN_FIELD_ENCRYPTION_KEYS"
            )
        self._aeads = {key_id: AESGCM(key) for key_id, key in keys.items()}
        self.active_key_id = active_key_id

    @classmethod
    def from_settings(cls, settings: Settings) -> FieldCipher:
        keys: dict[str, bytes] = {}
        for key_id, secret in settings.field_encryption_keys.items():
            try:
                keys[key_id] = base64.b64decode(secret.get_secret_value(), validate=True)
            except (binascii.Error, ValueError) as exc:
                raise ConfigurationError(
                    f"WANGBAN_FIELD_ENCRYPTION_KEYS: key {key_id!r} is not valid base64"
                ) from exc
        return cls(keys, active_key_id=settings.field_encryption_active_key)

    @staticmethod
    def _associated_data(key_id: str, context: str) -> bytes:
        # The version and key id are authenticated too, so the readable header of a token
        # cannot be edited to point at another key.
        return f"wangban-field:{TOKEN_VERSION}:{key_id}:{context}".encode()

    def encrypt(self, plaintext: str, *, context: str = "") -> str:
        key_id = self.active_key_id
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._aeads[key_id].encrypt(
            nonce, plaintext.encode(), self._associated_data(key_id, context)
        )
        return f"{TOKEN_VERSION}.{key_id}.{_b64url_encode(nonce + sealed)}"

    def _parse(self, token: str) -> tuple[str, bytes]:
        parts = token.split(".")
        if len(parts) != 3 or parts[0] != TOKEN_VERSION:
            raise DecryptionError("not a field-encryption token (expected v1.<key id>.<data>)")
        _, key_id, payload = parts
        if key_id not in self._aeads:
            raise DecryptionError(
                f"token was encrypted with key id {key_id!r}, which is not in "
                "WANGBAN_FIELD_ENCRYPTION_KEYS"
            )
        try:
            raw = _b64url_decode(payload)
        except (binascii.Error, ValueError) as exc:
            raise DecryptionError("token payload is not valid base64url") from exc
        if len(raw) < _NONCE_BYTES + 16:
            raise DecryptionError("token payload is too short")
        return key_id, raw

    def decrypt(self, token: str, *, context: str = "") -> str:
        key_id, raw = self._parse(token)
        nonce, sealed = raw[:_NONCE_BYTES], raw[_NONCE_BYTES:]
        try:
            plaintext = self._aeads[key_id].decrypt(
                nonce, sealed, self._associated_data(key_id, context)
            )
        except InvalidTag as exc:
            raise DecryptionError(
                "token failed authentication: tampered with, or decrypted with the wrong context"
            ) from exc
        return plaintext.decode()

    def key_id_of(self, token: str) -> str:
        return self._parse(token)[0]

    def needs_rotation(self, token: str) -> bool:
        """Whether ``token`` was made with a key other than the active one."""
        return self.key_id_of(token) != self.active_key_id

    def reencrypt(self, token: str, *, context: str = "") -> str:
        """Re-encrypt under the active key (for a rotation job). A token already under the
        active key is checked and returned unchanged, so re-running the job is cheap."""
        plaintext = self.decrypt(token, context=context)
        if not self.needs_rotation(token):
            return token
        return self.encrypt(plaintext, context=context)


# ---------------------------------------------------------------------------------------
# Blind index
# ---------------------------------------------------------------------------------------

_SEPARATORS = re.compile(r"[\s\-()]+")


def normalize_resident_id(value: str) -> str:
    """Canonical form of a resident ID number: NFKC (full-width digits from IME input
    become ASCII), no whitespace, upper-case check character X."""
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", value)).upper()


def normalize_phone(value: str) -> str:
    """Canonical mainland mobile number: 11 digits without +86/0086/86, spaces or dashes."""
    digits = _SEPARATORS.sub("", unicodedata.normalize("NFKC", value))
    for prefix in ("+86", "0086", "86"):
        if digits.startswith(prefix) and len(digits) - len(prefix) == 11:
            return digits[len(prefix) :]
    return digits


class BlindIndex:
    """Keyed HMAC-SHA256 of a normalised value, for equality search on encrypted columns.

    Each ``purpose`` gets its own derived key, so the index of a string in the
    ``resident_id`` column never equals the index of the same string in ``phone``: one
    leaked index column cannot be joined against another.
    """

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ConfigurationError("WANGBAN_BLIND_INDEX_KEY must be at least 16 bytes")
        self._key = key
        self._purpose_keys: dict[str, bytes] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> BlindIndex:
        return cls(settings.blind_index_key.get_secret_value().encode())

    def _purpose_key(self, purpose: str) -> bytes:
        key = self._purpose_keys.get(purpose)
        if key is None:
            if not purpose:
                raise ValueError("a blind index needs a purpose, e.g. 'resident_id'")
            key = hmac.new(
                self._key, b"wangban-blind-index:" + purpose.encode(), hashlib.sha256
            ).digest()
            self._purpose_keys[purpose] = key
        return key

    def compute(self, value: str, *, purpose: str) -> str:
        """Hex index of ``value`` exactly as given; normalise first (see the helpers)."""
        return hmac.new(self._purpose_key(purpose), value.encode(), hashlib.sha256).hexdigest()

    def resident_id(self, value: str) -> str:
        return self.compute(normalize_resident_id(value), purpose="resident_id")

    def phone(self, value: str) -> str:
        return self.compute(normalize_phone(value), purpose="phone")


# ---------------------------------------------------------------------------------------
# Display masks
# ---------------------------------------------------------------------------------------


def _mask_middle(value: str, *, keep_start: int, keep_end: int) -> str:
    if len(value) <= keep_start + keep_end:
        # Too short to show anything safely: a malformed value is still personal data.
        return "*" * len(value)
    hidden = len(value) - keep_start - keep_end
    return value[:keep_start] + "*" * hidden + value[len(value) - keep_end :]


def mask_resident_id(value: str) -> str:
    """``110101199003071234`` → ``110101********1234``: region and last four stay, so
    a clerk can confirm a number with the applicant without seeing the birth date."""
    return _mask_middle(normalize_resident_id(value), keep_start=6, keep_end=4)


def mask_phone(value: str) -> str:
    """``13800138000`` → ``138****8000``, the form SMS notices and screens use."""
    return _mask_middle(normalize_phone(value), keep_start=3, keep_end=4)


def mask_name(value: str) -> str:
    """A name as screens and notifications show it: ``张三`` → ``张*``, ``张三丰`` → ``张**``,
    ``欧阳娜娜`` → ``欧阳**``.

    Names of up to three Chinese characters keep the surname; longer ones keep two, which
    covers compound surnames (欧阳, 司马) and reveals no more of the given name. A Latin name
    keeps its first letter and always gets three stars, so its length is not revealed. A
    single character is hidden entirely.
    """
    name = value.strip()
    if not name:
        return ""
    if len(name) == 1:
        return "*"
    if not name[0].isascii():
        name = "".join(name.split())
        keep = 1 if len(name) <= 3 else 2
        return name[:keep] + "*" * (len(name) - keep)
    return name[0] + "***"
