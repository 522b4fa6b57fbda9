"""Strong, distinct keys for every key setting, as production requires them
(``wangban.key_strength``): for tests that build production settings."""

from __future__ import annotations

import base64
import secrets
from typing import Any

from wangban.key_strength import RAW_32_BYTE_KEYS, key_settings
from wangban.settings import Settings


def production_keys(*, field_key_id: str = "k1") -> dict[str, Any]:
    """Setting name → a fresh random value (a mapping for ``field_encryption_keys``)."""
    values: dict[str, Any] = {}
    # Built without validation or the environment: only the defaults' shapes are read.
    for name, _, _ in key_settings(Settings.model_construct()):
        if name == "field_encryption_keys":
            values[name] = {field_key_id: base64.b64encode(secrets.token_bytes(32)).decode()}
        elif name in RAW_32_BYTE_KEYS:
            values[name] = base64.b64encode(secrets.token_bytes(32)).decode()
        else:
            values[name] = secrets.token_urlsafe(48)
    return values
