"""Electronic certificate identifiers (电子证照标识) and their ISO 7064 MOD 37,36 check character.

An identifier looks like::

    1.2.156.3005.2.BUSINESS_LICENSE.11440300MB2C92735X.0000000042.01.8

that is ``{OID arc}.{type code}.{issuer code}.{serial}.{version}.{check character}``:

- ``1.2.156.3005.2`` is the OID arc (1.2.156: China's ISO member-body arc) under which
  national e-certificate identifiers are written. This layout is our reading of the
  national practice, not a copy of a standard's text, and the type codes are our own
  catalogue's, not the national 证照类型代码.
- type code (证照类型代码): 2–32 of ``A-Z 0-9 _``, starting and ending with a letter or digit,
  no ``__``.
- issuer code: the issuing department's 18-character unified social credit code
  (统一社会信用代码, GB 32100 alphabet: digits and upper-case letters except I O S V Z).
- serial (流水号): 1 … 9 999 999 999, always 10 digits.
- version (版本号): 1 … 99, always 2 digits: the edition of the same certificate.
- check character: ISO 7064 MOD 37,36 over type + issuer + serial + version, with the
  underscores of the type code left out (the MOD 37,36 alphabet has no ``_``).

What the check character does and does not catch (it is for people copying ids by hand; the
signature, not this, is what stops forgery):

- every single-character substitution: always detected;
- adjacent transpositions: nearly all. At each position exactly one of the 630 unordered
  pairs of distinct characters escapes: a pair with consecutive values (``01``, ``9A``,
  ``Z0`` …), the one the running value there maps onto 18 and 19. ISO 7064 itself promises
  only "all or nearly all" transpositions for its hybrid systems;
- moving, adding or dropping an ``_`` in the type code: outside the check (a moved ``_``
  never changes it; an added or dropped one is caught 35 times in 36).

Changes that shift a ``.`` are always caught, because every field but the type code has a
fixed length. :meth:`CertificateId.parse` accepts only the canonical text (upper case, no
surrounding blanks), so one certificate has exactly one identifier string.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from stdnum.iso7064 import mod_37_36

__all__ = [
    "CERTIFICATE_OID_ARC",
    "CertificateId",
    "InvalidCertificateId",
    "mod37_36_check_char",
    "mod37_36_is_valid",
]

# ---------------------------------------------------------------------------------------
# ISO 7064 MOD 37,36
# ---------------------------------------------------------------------------------------

_ALPHABET: Final = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
"""MOD 37,36's characters (stdnum's default alphabet for it)."""


def _require_alphabet(text: str, *, what: str) -> None:
    for char in text:
        if char not in _ALPHABET:
            raise ValueError(f"{what} may only hold 0-9 and A-Z (upper case), not {char!r}")


def mod37_36_check_char(payload: str) -> str:
    """The MOD 37,36 check character (``0-9A-Z``) to append to ``payload``.

    ``payload`` must be non-empty and hold only ``0-9A-Z``; lower case is refused rather than
    folded, so a caller cannot compute a check over text it then stores differently.
    """
    if not payload:
        raise ValueError("MOD 37,36 needs a non-empty payload")
    _require_alphabet(payload, what="a MOD 37,36 payload")
    return mod_37_36.calc_check_digit(payload, _ALPHABET)


def mod37_36_is_valid(payload_with_check: str) -> bool:
    """Whether the last character is the MOD 37,36 check character of the ones before it.
    Never raises: anything malformed (too short, outside ``0-9A-Z``) is simply not valid."""
    if len(payload_with_check) < 2 or any(c not in _ALPHABET for c in payload_with_check):
        return False
    return mod_37_36.is_valid(payload_with_check, _ALPHABET)


# ---------------------------------------------------------------------------------------
# Certificate identifiers
# ---------------------------------------------------------------------------------------

CERTIFICATE_OID_ARC: Final = "1.2.156.3005.2"

_TYPE_CODE = re.compile(r"[A-Z0-9][A-Z0-9_]{0,30}[A-Z0-9]")
_ISSUER_CODE = re.compile(r"[0-9A-HJ-NP-RTUWXY]{18}")  # GB 32100: no I, O, S, V, Z
_SERIAL_TEXT = re.compile(r"[0-9]{10}")
_VERSION_TEXT = re.compile(r"[0-9]{2}")
_CHECK_TEXT = re.compile(r"[0-9A-Z]")
_MAX_SERIAL: Final = 9_999_999_999
_MAX_VERSION: Final = 99
_MAX_TEXT_LENGTH: Final = 128  # longer than any valid id; bounds the work on junk input
_ARC_PARTS: Final = len(CERTIFICATE_OID_ARC.split("."))


class InvalidCertificateId(ValueError):
    """Not a well-formed certificate identifier. The message is Chinese and safe to show to
    the person who typed or scanned it."""


def _field_problem(*, type_code: str, issuer_code: str, serial: int, version: int) -> str | None:
    """What is wrong with these fields, in Chinese, or ``None``."""
    if not isinstance(type_code, str) or not _TYPE_CODE.fullmatch(type_code):
        return "证照类型代码应为 2–32 位大写字母、数字或下划线，且首尾不能是下划线"
    if "__" in type_code:
        return "证照类型代码不能含连续下划线"
    if not isinstance(issuer_code, str) or not _ISSUER_CODE.fullmatch(issuer_code):
        return "颁发机构代码应为 18 位统一社会信用代码"
    # bool is an int subclass; True as a serial is a bug, not serial 1.
    if type(serial) is not int or not 1 <= serial <= _MAX_SERIAL:
        return f"流水号应为 1 至 {_MAX_SERIAL} 的整数"
    if type(version) is not int or not 1 <= version <= _MAX_VERSION:
        return f"版本号应为 1 至 {_MAX_VERSION} 的整数"
    return None


def _check_payload(*, type_code: str, issuer_code: str, serial: int, version: int) -> str:
    return type_code.replace("_", "") + issuer_code + f"{serial:010d}" + f"{version:02d}"


@dataclass(frozen=True)
class CertificateId:
    """A certificate identifier; every instance is valid (checked on construction).

    Make one with :meth:`build` (computes the check character) or :meth:`parse` (checks it);
    ``str()`` gives the canonical text.
    """

    type_code: str
    issuer_code: str
    serial: int
    version: int
    check_char: str

    def __post_init__(self) -> None:
        problem = _field_problem(
            type_code=self.type_code,
            issuer_code=self.issuer_code,
            serial=self.serial,
            version=self.version,
        )
        if problem is not None:
            raise InvalidCertificateId(f"证照标识格式不正确：{problem}")
        if not isinstance(self.check_char, str) or not _CHECK_TEXT.fullmatch(self.check_char):
            raise InvalidCertificateId("证照标识格式不正确：校验位应为一位数字或大写字母")
        if mod37_36_check_char(self.check_payload) != self.check_char:
            raise InvalidCertificateId("证照标识校验位不正确，请核对标识是否抄错")

    @property
    def check_payload(self) -> str:
        """The characters the check character protects: type code without ``_``, issuer
        code, 10-digit serial, 2-digit version."""
        return _check_payload(
            type_code=self.type_code,
            issuer_code=self.issuer_code,
            serial=self.serial,
            version=self.version,
        )

    @classmethod
    def build(
        cls, *, type_code: str, issuer_code: str, serial: int, version: int = 1
    ) -> CertificateId:
        """A new identifier with its check character. ``type_code`` and ``issuer_code`` are
        upper-cased first (``"business_license"`` → ``"BUSINESS_LICENSE"``)."""
        # Upper-case only ASCII: "ß".upper() is "SS", which would slip a non-ASCII code
        # through the pattern check below.
        if isinstance(type_code, str) and type_code.isascii():
            type_code = type_code.upper()
        if isinstance(issuer_code, str) and issuer_code.isascii():
            issuer_code = issuer_code.upper()
        problem = _field_problem(
            type_code=type_code, issuer_code=issuer_code, serial=serial, version=version
        )
        if problem is not None:
            raise InvalidCertificateId(f"证照标识格式不正确：{problem}")
        check_char = mod37_36_check_char(
            _check_payload(
                type_code=type_code, issuer_code=issuer_code, serial=serial, version=version
            )
        )
        return cls(
            type_code=type_code,
            issuer_code=issuer_code,
            serial=serial,
            version=version,
            check_char=check_char,
        )

    @classmethod
    def parse(cls, text: str) -> CertificateId:
        """The identifier written as ``text``; raises :class:`InvalidCertificateId` with
        "格式不正确" (malformed) or "校验位不正确" (check character wrong)."""
        if not isinstance(text, str) or len(text) > _MAX_TEXT_LENGTH:
            raise InvalidCertificateId("证照标识格式不正确")
        parts = text.split(".")
        if len(parts) != _ARC_PARTS + 5 or ".".join(parts[:_ARC_PARTS]) != CERTIFICATE_OID_ARC:
            raise InvalidCertificateId(
                f"证照标识格式不正确：应为 {CERTIFICATE_OID_ARC}.类型.颁发机构.流水号.版本号.校验位"
            )
        type_code, issuer_code, serial, version, check_char = parts[_ARC_PARTS:]
        # Exact widths, not just "digits": with fixed-width fields, moving a '.' by one
        # place always breaks the format instead of yielding another well-formed id.
        if not _SERIAL_TEXT.fullmatch(serial):
            raise InvalidCertificateId("证照标识格式不正确：流水号应为 10 位数字")
        if not _VERSION_TEXT.fullmatch(version):
            raise InvalidCertificateId("证照标识格式不正确：版本号应为 2 位数字")
        return cls(
            type_code=type_code,
            issuer_code=issuer_code,
            serial=int(serial),
            version=int(version),
            check_char=check_char,
        )

    def __str__(self) -> str:
        return (
            f"{CERTIFICATE_OID_ARC}.{self.type_code}.{self.issuer_code}."
            f"{self.serial:010d}.{self.version:02d}.{self.check_char}"
        )
