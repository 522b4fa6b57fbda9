"""Production's rule for the keys Wangban signs, MACs and encrypts with (issue 17, finding 8).

Which settings are keys: every ``SecretStr`` setting (or mapping of them) whose name ends in
``_key`` or ``_keys``, except :data:`NOT_OUR_KEYS` (credentials another system issues, whose
shape is theirs). A helper adding a key setting names it ``…_key`` and is covered; one that
must be named otherwise is listed in :data:`EXTRA_KEY_SETTINGS`.

What a key must be, in production:

* at least :data:`MIN_KEY_BYTES` bytes of key material. The value is read as hex when it is
  only hex digits (an even number), as base64 (standard or URL-safe, padding optional) when
  it is only base64 characters, and otherwise as its UTF-8 bytes: a value is judged by the
  entropy its alphabet can carry, so 64 hex digits or 43 base64 characters are the minimum.
  ``openssl rand -base64 48`` gives a suitable value;
* not low-entropy: at least :data:`MIN_DISTINCT_BYTES` distinct byte values in the material
  (32 random bytes have about 30) and not one short block repeated (``abcdabcd…``);
* not a placeholder from the deployment examples (``change-me…``);
* for :data:`RAW_32_BYTE_KEYS` (an AES-256 key, an Ed25519 seed): base64 of exactly 32 bytes;
* distinct: no two key settings (nor two ids of the field keys) share material, so a leaked
  token key does not also open the blind index.

Messages name the setting (the environment variable), never the value.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterator, Mapping
from typing import Any, Final

from pydantic import SecretStr

__all__ = [
    "EXTRA_KEY_SETTINGS",
    "MIN_DISTINCT_BYTES",
    "MIN_KEY_BYTES",
    "NOT_OUR_KEYS",
    "RAW_32_BYTE_KEYS",
    "key_material",
    "key_problems",
    "key_settings",
]

MIN_KEY_BYTES: Final = 32
MIN_DISTINCT_BYTES: Final = 16
NOT_OUR_KEYS: Final = frozenset({"s3_access_key", "s3_secret_key"})
"""Issued by the object store: we cannot choose their shape."""
EXTRA_KEY_SETTINGS: Final[frozenset[str]] = frozenset()
"""Key settings whose name does not end in ``_key``/``_keys``."""
RAW_32_BYTE_KEYS: Final = frozenset({"field_encryption_keys", "audit_checkpoint_key"})
"""Decoded as base64 by the code that uses them, which needs exactly 32 bytes."""
PLACEHOLDERS: Final = ("change-me", "changeme", "change_me")

_HEX: Final = re.compile(r"[0-9a-fA-F]+")
_BASE64: Final = re.compile(r"[A-Za-z0-9+/_-]+={0,2}")


def _env_name(name: str) -> str:
    return f"WANGBAN_{name.upper()}"


def key_settings(settings: Any) -> Iterator[tuple[str, str, str]]:
    """(setting name, what to call it in a message, value) for every key setting."""
    for name in type(settings).model_fields:
        is_key = name.endswith(("_key", "_keys")) or name in EXTRA_KEY_SETTINGS
        if not is_key or name in NOT_OUR_KEYS:
            continue
        value = getattr(settings, name)
        if isinstance(value, SecretStr):
            yield name, _env_name(name), value.get_secret_value()
        elif isinstance(value, Mapping):
            for key_id, item in value.items():
                if isinstance(item, SecretStr):
                    yield name, f"{_env_name(name)}[{key_id}]", item.get_secret_value()


def key_material(value: str) -> bytes:
    """The bytes a key value stands for (see the module's docstring for the encodings)."""
    text = value.strip()
    # Judged by its alphabet: 64 hex digits hold 32 bytes, not 64, whatever was meant.
    if len(text) % 2 == 0 and _HEX.fullmatch(text):
        return bytes.fromhex(text)
    if _BASE64.fullmatch(text):
        standard = text.rstrip("=").replace("-", "+").replace("_", "/")
        try:
            return base64.b64decode(standard + "=" * (-len(standard) % 4), validate=True)
        except (binascii.Error, ValueError):
            pass
    return text.encode()


def _strict_base64_32(value: str) -> bool:
    try:
        return len(base64.b64decode(value.strip(), validate=True)) == 32
    except (binascii.Error, ValueError):
        return False


def _periodic(material: bytes) -> bool:
    """One block repeated (the last copy possibly cut short): ``abcabcab``."""
    size = len(material)
    return any(
        material == (material[:period] * (size // period + 1))[:size]
        for period in range(1, size // 2 + 1)
    )


def _weakness(name: str, value: str) -> str | None:
    if any(p in value.lower() for p in PLACEHOLDERS):
        size = 32 if name in RAW_32_BYTE_KEYS else 48
        return f"still holds the example placeholder; generate a key (openssl rand -base64 {size})"
    if name in RAW_32_BYTE_KEYS:
        if not _strict_base64_32(value):
            return "must be base64 of exactly 32 random bytes (openssl rand -base64 32)"
        material = base64.b64decode(value.strip())
    else:
        material = key_material(value)
        if len(material) < MIN_KEY_BYTES:
            return (
                f"must decode to at least {MIN_KEY_BYTES} random bytes, has {len(material)} "
                "(openssl rand -base64 48)"
            )
    if len(set(material)) < MIN_DISTINCT_BYTES or _periodic(material):
        return "looks low-entropy (repeated or too few distinct characters); use random bytes"
    return None


def key_problems(settings: Any) -> list[str]:
    """What production must refuse about the keys of ``settings``, one message per problem."""
    problems: list[str] = []
    seen: dict[bytes, str] = {}
    for name, label, value in key_settings(settings):
        weakness = _weakness(name, value)
        if weakness is not None:
            problems.append(f"{label} {weakness}")
        material = key_material(value)
        first = seen.setdefault(material, label)
        if first != label:
            problems.append(f"{label} must differ from {first} (one key per purpose)")
    return problems
