"""Signed electronic certificates: canonical JSON, Ed25519 keys, signatures and QR payloads.

What is signed. A certificate body (id, type, holder, fields, issuer, validity …) is signed
with Ed25519 over the canonical JSON of::

    {"context": "wangban.certificate.v1", "document": <the body>, "kid": <key id>}

The key id is inside the signed bytes, so a signature cannot be re-labelled with another key
id (which matters once one key is listed under two ids, e.g. during a botched rotation, or
ids carry different authority). The context string keeps a certificate signature from ever
being valid for anything else the same key might sign later.

Canonical JSON. Sorted keys, no whitespace, UTF-8 without ``\\u`` escapes for non-ASCII.
Numbers are integers only: floats are refused, since two libraries can print the same float
differently and the verifier must rebuild the signed bytes exactly. Integers beyond
±(2**53 − 1) are refused too: a JavaScript verifier (the mini-program, a partner's portal)
would read them as rounded doubles. Amounts, areas and the like go into certificate fields as
strings (``"123.45"``). For the values it accepts, the output is the same as RFC 8785 (JSON
Canonicalization Scheme) — keys are ordered by UTF-16 code units as JCS requires, which only
differs from code-point order for characters outside the BMP — so a partner can verify with
an off-the-shelf JCS library.

QR payload. ``WBCERT:1:<certificate id>:<kid>:<signature>`` carries no certificate content:
it stays small enough for a phone camera, and a photograph of the code reveals no personal
data. A verifier parses it, fetches the stored certificate by id, checks the QR matches it
(:meth:`QrPayload.matches`: same id, key id and signature) and verifies the stored
certificate's signature (:func:`verify_signature`).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from sharing_service.certificate_ids import CertificateId, InvalidCertificateId

__all__ = [
    "SIGNATURE_CONTEXT",
    "InvalidQrPayload",
    "QrPayload",
    "SignedCertificate",
    "SigningKey",
    "VerificationOutcome",
    "VerificationResult",
    "VerifyingKey",
    "canonical_json",
    "parse_qr_payload",
    "qr_payload",
    "sign_certificate",
    "sign_statement",
    "signing_input",
    "verify_signature",
    "verify_statement",
]

SIGNATURE_CONTEXT: Final = "wangban.certificate.v1"
QR_PREFIX: Final = "WBCERT"
QR_VERSION: Final = "1"

# The same key-id alphabet as the field-encryption keys (wangban.crypto); it has no ':' or
# '.', so a key id can sit in the colon-separated QR payload unescaped.
_KID = re.compile(r"[A-Za-z0-9_-]{1,32}")
_B64URL = re.compile(r"[A-Za-z0-9_-]*")
_PRIVATE_KEY_BYTES: Final = 32
_PUBLIC_KEY_BYTES: Final = 32
_SIGNATURE_BYTES: Final = 64
_MAX_SAFE_INTEGER: Final = 2**53 - 1
_MAX_QR_LENGTH: Final = 512  # a valid payload is under 300 characters


# ---------------------------------------------------------------------------------------
# Canonical JSON
# ---------------------------------------------------------------------------------------


def _utf16_order(key: str) -> bytes:
    # RFC 8785 orders keys by UTF-16 code units; big-endian UTF-16 bytes compare the same way.
    return key.encode("utf-16-be", "surrogatepass")


def _check_text(value: str, *, path: str) -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(
            f"{path}: string holds a lone surrogate, which UTF-8 cannot carry"
        ) from exc
    # Exact str: a str subclass (an enum member, say) may print differently from its content.
    return str.__str__(value)


def _plain(value: object, *, path: str) -> Any:
    """``value`` as plain dicts, lists, str, int, bool and None, keys in canonical order;
    raises TypeError for a type canonical JSON does not carry, ValueError for a value."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        if not -_MAX_SAFE_INTEGER <= value <= _MAX_SAFE_INTEGER:
            raise ValueError(
                f"{path}: integer {value} is beyond ±(2**53 - 1), which JavaScript cannot hold "
                "exactly; put it in a string"
            )
        return int(value)
    if isinstance(value, float):
        raise TypeError(
            f"{path}: floats are not allowed in signed documents (their text form is not "
            "canonical); use an int or a decimal string"
        )
    if isinstance(value, str):
        return _check_text(value, path=path)
    if isinstance(value, Mapping):
        items: list[tuple[str, Any]] = []
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"{path}: object keys must be strings, not {type(key).__name__}")
            key_text = _check_text(key, path=path)
            items.append((key_text, _plain(item, path=f"{path}.{key_text}")))
        items.sort(key=lambda pair: _utf16_order(pair[0]))
        return dict(items)
    if isinstance(value, list | tuple):
        return [_plain(item, path=f"{path}[{index}]") for index, item in enumerate(value)]
    raise TypeError(f"{path}: {type(value).__name__} is not allowed in a signed document")


def canonical_json(document: Mapping[str, Any]) -> bytes:
    """The one byte string ``document`` signs as (see the module docstring for the rules).

    Raises TypeError for floats (NaN and infinities included), non-string keys and types
    JSON has no form for; ValueError for integers beyond ±(2**53 − 1) and lone surrogates.
    """
    if not isinstance(document, Mapping):
        raise TypeError(f"a signed document is a JSON object, not {type(document).__name__}")
    return json.dumps(
        _plain(document, path="$"),
        ensure_ascii=False,
        separators=(",", ":"),
        allow_nan=False,
    ).encode("utf-8")


def signing_input(document: Mapping[str, Any], *, kid: str) -> bytes:
    """The exact bytes a certificate signature covers: the document bound to the key id and
    to this purpose (see the module docstring)."""
    return canonical_json({"context": SIGNATURE_CONTEXT, "document": document, "kid": kid})


# ---------------------------------------------------------------------------------------
# Keys
# ---------------------------------------------------------------------------------------


def _b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode_exact(text: object, *, length: int) -> bytes | None:
    """``text`` decoded if it is the canonical unpadded base64url of exactly ``length``
    bytes, else None. Canonical matters: the last character has spare bits, and a lenient
    decoder would give one byte string several spellings."""
    if not isinstance(text, str) or not _B64URL.fullmatch(text):
        return None
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None
    if len(raw) != length or _b64url_encode(raw) != text:
        return None
    return raw


def _check_kid(kid: object) -> str:
    if not isinstance(kid, str) or not _KID.fullmatch(kid):
        raise ValueError(f"key id {kid!r} must be 1-32 characters of letters, digits, '_' or '-'")
    return kid


class SigningKey:
    """An issuer's Ed25519 private key and the key id its signatures carry."""

    __slots__ = ("_private_key", "kid")

    def __init__(self, *, kid: str, private_key: Ed25519PrivateKey) -> None:
        self.kid = _check_kid(kid)
        self._private_key = private_key

    @classmethod
    def generate(cls, *, kid: str) -> SigningKey:
        return cls(kid=kid, private_key=Ed25519PrivateKey.generate())

    @classmethod
    def from_private_bytes(cls, raw: bytes, *, kid: str) -> SigningKey:
        """From the 32-byte raw private key (the seed), as :meth:`private_bytes` gives."""
        if not isinstance(raw, bytes) or len(raw) != _PRIVATE_KEY_BYTES:
            raise ValueError(f"an Ed25519 private key is {_PRIVATE_KEY_BYTES} raw bytes")
        return cls(kid=kid, private_key=Ed25519PrivateKey.from_private_bytes(raw))

    def private_bytes(self) -> bytes:
        return self._private_key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())

    def public_key(self) -> VerifyingKey:
        raw = self._private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        return VerifyingKey(kid=self.kid, raw=raw)

    def _sign(self, message: bytes) -> bytes:
        return self._private_key.sign(message)

    def __repr__(self) -> str:
        # Never the key material, in logs or tracebacks.
        return f"SigningKey(kid={self.kid!r})"


@dataclass(frozen=True)
class VerifyingKey:
    """An Ed25519 public key (32 raw bytes) under its key id, as verifiers hold it."""

    kid: str
    raw: bytes

    def __post_init__(self) -> None:
        _check_kid(self.kid)
        if not isinstance(self.raw, bytes) or len(self.raw) != _PUBLIC_KEY_BYTES:
            raise ValueError(f"an Ed25519 public key is {_PUBLIC_KEY_BYTES} raw bytes")

    def to_b64(self) -> str:
        """The raw key as unpadded base64url (43 characters), for publishing key lists."""
        return _b64url_encode(self.raw)

    @classmethod
    def from_b64(cls, text: str, *, kid: str) -> VerifyingKey:
        raw = _b64url_decode_exact(text, length=_PUBLIC_KEY_BYTES)
        if raw is None:
            raise ValueError(
                f"public key {kid!r} is not the unpadded base64url of {_PUBLIC_KEY_BYTES} bytes"
            )
        return cls(kid=kid, raw=raw)

    def _verify(self, signature: bytes, message: bytes) -> bool:
        try:
            Ed25519PublicKey.from_public_bytes(self.raw).verify(signature, message)
        except (InvalidSignature, ValueError):
            return False
        return True


# ---------------------------------------------------------------------------------------
# Signing and verification
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SignedCertificate:
    """A certificate body with its signature.

    ``document`` is what :func:`sign_certificate` was given, copied into plain dicts and
    lists (keys in canonical order), so later changes to the caller's dict do not silently
    break the signature. ``signature`` is unpadded base64url of the 64-byte signature.
    """

    document: Mapping[str, Any]
    kid: str
    signature: str


class VerificationOutcome(StrEnum):
    VALID = "valid"
    UNKNOWN_KEY = "unknown_key"
    """No key under the certificate's key id (never issued here, or withdrawn)."""
    BAD_SIGNATURE = "bad_signature"
    """Document, key id or signature altered, malformed, or signed by another key."""


@dataclass(frozen=True)
class VerificationResult:
    outcome: VerificationOutcome
    kid: str

    @property
    def valid(self) -> bool:
        return self.outcome is VerificationOutcome.VALID


def sign_certificate(document: Mapping[str, Any], *, key: SigningKey) -> SignedCertificate:
    """Sign a certificate body. ``document["id"]`` must be a certificate identifier (see
    :mod:`sharing_service.certificate_ids`): the QR payload is built from it.

    Raises TypeError / ValueError for a document canonical JSON refuses, and
    :class:`~sharing_service.certificate_ids.InvalidCertificateId` for a bad id.
    """
    if not isinstance(document, Mapping):
        raise TypeError(f"a certificate body is a JSON object, not {type(document).__name__}")
    plain: dict[str, Any] = _plain(document, path="$")
    certificate_id = plain.get("id")
    if not isinstance(certificate_id, str):
        raise ValueError("a certificate body needs an 'id': the certificate identifier text")
    CertificateId.parse(certificate_id)
    signature = key._sign(signing_input(plain, kid=key.kid))
    return SignedCertificate(document=plain, kid=key.kid, signature=_b64url_encode(signature))


def verify_signature(
    signed: SignedCertificate, *, keys: Mapping[str, VerifyingKey]
) -> VerificationResult:
    """Check ``signed`` against the verifier's keys. Never raises: whatever is wrong with
    the input is one of the outcomes. The key id is looked up first, so an unknown key id
    reads as ``unknown_key`` even when the signature is malformed too."""
    kid = signed.kid if isinstance(signed.kid, str) else ""
    key = keys.get(kid) if kid else None
    # A key filed under another id than its own is a configuration slip; refusing it keeps
    # "this key id" meaning one thing.
    if key is None or key.kid != kid:
        return VerificationResult(VerificationOutcome.UNKNOWN_KEY, kid)
    signature = _b64url_decode_exact(signed.signature, length=_SIGNATURE_BYTES)
    if signature is None:
        return VerificationResult(VerificationOutcome.BAD_SIGNATURE, kid)
    try:
        message = signing_input(signed.document, kid=kid)
    except (TypeError, ValueError, RecursionError):
        # A document canonical JSON refuses was never signed by sign_certificate.
        return VerificationResult(VerificationOutcome.BAD_SIGNATURE, kid)
    if not key._verify(signature, message):
        return VerificationResult(VerificationOutcome.BAD_SIGNATURE, kid)
    return VerificationResult(VerificationOutcome.VALID, kid)


def sign_statement(statement: Mapping[str, Any], *, context: str, key: SigningKey) -> str:
    """Sign something other than a certificate (an audit chain checkpoint) with the same
    primitives: canonical JSON of ``{"context", "kid", "statement"}``. ``context`` names the
    purpose and must not be the certificate context, so a statement signature can never pass
    for a certificate signature and the other way round."""
    if context == SIGNATURE_CONTEXT:
        raise ValueError("a statement needs its own signing context")
    message = canonical_json({"context": context, "kid": key.kid, "statement": statement})
    return _b64url_encode(key._sign(message))


def verify_statement(
    statement: Mapping[str, Any], *, context: str, signature: object, key: VerifyingKey
) -> bool:
    """Whether ``signature`` is ``key``'s signature of ``statement`` under ``context``. Never
    raises for malformed input."""
    raw = _b64url_decode_exact(signature, length=_SIGNATURE_BYTES)
    if raw is None or context == SIGNATURE_CONTEXT:
        return False
    try:
        message = canonical_json({"context": context, "kid": key.kid, "statement": statement})
    except (TypeError, ValueError, RecursionError):
        return False
    return key._verify(raw, message)


# ---------------------------------------------------------------------------------------
# QR payload
# ---------------------------------------------------------------------------------------


class InvalidQrPayload(ValueError):
    """Not a certificate QR payload of ours. The message is Chinese and safe to show to the
    person who scanned it."""


@dataclass(frozen=True)
class QrPayload:
    certificate_id: CertificateId
    kid: str
    signature: str

    def __str__(self) -> str:
        return f"{QR_PREFIX}:{QR_VERSION}:{self.certificate_id}:{self.kid}:{self.signature}"

    def matches(self, signed: SignedCertificate) -> bool:
        """Whether ``signed`` (the stored certificate fetched by id) is the one this QR code
        was printed for. It does not verify the signature: call :func:`verify_signature` on
        ``signed`` as well."""
        return (
            signed.document.get("id") == str(self.certificate_id)
            and signed.kid == self.kid
            and signed.signature == self.signature
        )


def qr_payload(signed: SignedCertificate) -> str:
    """``WBCERT:1:<certificate id>:<kid>:<signature>`` for ``signed``. Raises ValueError if
    ``signed`` is not well formed (no valid id, bad key id or signature text)."""
    certificate_id = signed.document.get("id")
    if not isinstance(certificate_id, str):
        raise ValueError("the signed certificate has no 'id'")
    if _b64url_decode_exact(signed.signature, length=_SIGNATURE_BYTES) is None:
        raise ValueError("the signed certificate's signature is not a base64url Ed25519 signature")
    payload = QrPayload(
        certificate_id=CertificateId.parse(certificate_id),
        kid=_check_kid(signed.kid),
        signature=signed.signature,
    )
    return str(payload)


def parse_qr_payload(text: str) -> QrPayload:
    """The payload scanned as ``text``; raises :class:`InvalidQrPayload`.

    Surrounding blanks are dropped (scanners often append a line break); nothing else is
    forgiven.
    """
    if not isinstance(text, str) or len(text) > _MAX_QR_LENGTH:
        raise InvalidQrPayload("不是本平台的电子证照二维码")
    parts = text.strip().split(":")
    if len(parts) != 5 or parts[0] != QR_PREFIX:
        raise InvalidQrPayload("不是本平台的电子证照二维码")
    _, version, certificate_id, kid, signature = parts
    if version != QR_VERSION:
        raise InvalidQrPayload("电子证照二维码版本不受支持，请更新应用后重试")
    try:
        parsed_id = CertificateId.parse(certificate_id)
    except InvalidCertificateId as exc:
        raise InvalidQrPayload(f"二维码中的{exc}") from exc
    if not _KID.fullmatch(kid):
        raise InvalidQrPayload("二维码中的密钥标识格式不正确")
    if _b64url_decode_exact(signature, length=_SIGNATURE_BYTES) is None:
        raise InvalidQrPayload("二维码中的签名格式不正确")
    return QrPayload(certificate_id=parsed_id, kid=kid, signature=signature)
