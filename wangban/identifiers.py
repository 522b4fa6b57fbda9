"""Identifier checks: resident ID numbers (居民身份证号码, GB 11643-1999) and unified social
credit codes (统一社会信用代码, GB 32100-2015). Pure functions, no I/O.

Error messages are Chinese, for people, and never contain the number itself: they end up in
problem+json details and logs, where an ID number must not appear.

Two deliberate departures from python-stdnum, whose pieces are used otherwise:

* ``stdnum.cn.ric.validate`` also checks that the address code (地址码) existed in the
  holder's birth year. That rejects real numbers: the code is the one in force when the
  number was first issued, so a Dongguan resident born in 1950 holds ``441900…`` although
  东莞市 only got that code in 1988 (likewise 深圳福田 ``440304`` for anyone born before
  1990). For some codes it even raises ``KeyError`` instead of answering. We check the
  province part (省级代码) only.
* ``stdnum.cn.uscc.validate`` requires the first eight characters to be digits, so it
  rejects valid codes of registration authorities with letter codes, e.g. ``N2…`` (村级集体
  经济组织, registered by the agriculture department). We check the structure ourselves and
  take only stdnum's check character, which is computed over the full alphabet.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date
from typing import Final, Literal

from stdnum.cn import ric, uscc
from stdnum.exceptions import ValidationError
from stdnum.iso7064 import mod_11_2

from wangban.crypto import mask_resident_id, normalize_resident_id

__all__ = [
    "USCC_ALPHABET",
    "InvalidIdentifier",
    "age_on",
    "applicant_age_and_region",
    "birth_date_of",
    "gender_of",
    "is_valid_resident_id",
    "is_valid_uscc",
    "mask_id",
    "new_uscc",
    "organization_code",
    "region_of",
    "resident_id_check_char",
    "uscc_check_char",
    "validate_resident_id",
    "validate_uscc",
]


class InvalidIdentifier(ValueError):
    """An ID number or credit code that is malformed or fails its check character.

    The message is Chinese and safe to show or log: it never repeats the value."""


# --- resident ID number (居民身份证号码) ----------------------------------------------------

_RIC_BODY = re.compile(r"[0-9]{17}")
_RIC_FULL = re.compile(r"[0-9]{17}[0-9X]")

# Province-level parts of GB/T 2260 address codes, plus 81/82/83 used by the residence
# permits of Hong Kong, Macao and Taiwan residents (港澳台居民居住证), which share the
# format and are accepted wherever a resident ID number is.
_PROVINCES: Final = frozenset(
    "11 12 13 14 15 21 22 23 31 32 33 34 35 36 37 41 42 43 44 45 46 "
    "50 51 52 53 54 61 62 63 64 65 71 81 82 83".split()
)
_EARLIEST_BIRTH: Final = date(1900, 1, 1)


def resident_id_check_char(first17: str) -> str:
    """The check character (校验码, ``0``-``9`` or ``X``) of the 17-digit body (本体码)."""
    if not _RIC_BODY.fullmatch(first17):
        raise InvalidIdentifier("居民身份证号码本体码应为17位数字")
    return mod_11_2.calc_check_digit(first17)  # ISO 7064 MOD 11-2, as GB 11643 prescribes


def validate_resident_id(value: str, *, today: date | None = None) -> str:
    """The normalised 18-character number (full-width digits folded, whitespace removed,
    upper-case ``X``), or :class:`InvalidIdentifier`.

    Checks length and format, the province part of the address code, the check character
    (ISO 7064 MOD 11-2) and that the birth date (出生日期码) is a real date not before 1900;
    with ``today``, also that it is not in the future. 15-digit first-generation numbers are
    not accepted: they have been invalid since 2013.
    """
    number = normalize_resident_id(value)
    if len(number) != 18:
        raise InvalidIdentifier("居民身份证号码应为18位")
    if not _RIC_FULL.fullmatch(number):
        raise InvalidIdentifier("居民身份证号码格式不正确")
    if number[:2] not in _PROVINCES:
        raise InvalidIdentifier("居民身份证号码地址码不正确")
    if resident_id_check_char(number[:17]) != number[17]:
        raise InvalidIdentifier("居民身份证号码校验位不正确")
    try:
        born = ric.get_birth_date(number)
    except ValidationError:
        raise InvalidIdentifier("居民身份证号码出生日期不正确") from None
    if born < _EARLIEST_BIRTH or (today is not None and born > today):
        raise InvalidIdentifier("居民身份证号码出生日期不正确")
    return number


def is_valid_resident_id(value: str, *, today: date | None = None) -> bool:
    """Whether :func:`validate_resident_id` accepts the value (never raises)."""
    try:
        validate_resident_id(value, today=today)
    except InvalidIdentifier:
        return False
    return True


def birth_date_of(id_number: str) -> date:
    """The birth date encoded in a valid number (出生日期码)."""
    return ric.get_birth_date(validate_resident_id(id_number))


def gender_of(id_number: str) -> Literal["男", "女"]:
    """Gender from the sequence code (顺序码): odd for men, even for women."""
    return "男" if int(validate_resident_id(id_number)[16]) % 2 == 1 else "女"


def region_of(id_number: str) -> str:
    """The 6-digit address code (地址码): where the number was first issued.

    Not the current household registration (户籍地): people who move their 户口 keep their
    number. Rules about 户籍 must read ``gongan.huji.registered_region`` instead."""
    return validate_resident_id(id_number)[:6]


def age_on(id_number: str, *, today: date) -> int:
    """Age in completed years (周岁) on ``today``."""
    born = birth_date_of(id_number)
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


def applicant_age_and_region(*, kind: str, id_number: str, today: date) -> tuple[int | None, str]:
    """What 秒批 rules read of an applicant: age (persons) and the issuing region code (a
    credit code's registration authority code for companies). Derived where rules run, from
    the ID number that travels encrypted, so neither is published in clear."""
    if kind == "person":
        return age_on(id_number, today=today), region_of(id_number)
    return None, id_number[2:8]


def mask_id(value: str) -> str:
    """``441900********1234``: for display; the region and last four stay."""
    return mask_resident_id(value)


# --- unified social credit code (统一社会信用代码) --------------------------------------------

USCC_ALPHABET: Final = "0123456789ABCDEFGHJKLMNPQRTUWXY"
"""The 31 characters of GB 32100-2015: digits and capitals without I, O, S, V, Z."""
_USCC_VALUE: Final = {char: index for index, char in enumerate(USCC_ALPHABET)}
_USCC_SEPARATORS = re.compile(r"[\s\-]+")
_REGION = re.compile(r"[0-9]{6}")


def uscc_check_char(first17: str) -> str:
    """The check character (校验码) of the first 17 characters of a credit code."""
    if len(first17) != 17 or any(char not in _USCC_VALUE for char in first17):
        raise InvalidIdentifier("统一社会信用代码前17位应由数字和大写字母（不含I、O、S、V、Z）组成")
    # stdnum's checksum is over the whole alphabet; only its validate() insists on digits.
    return uscc.calc_check_digit(first17)


_ORG_WEIGHTS: Final = (3, 7, 9, 10, 5, 8, 4, 2)


def organization_code(body: str) -> str:
    """The 9-character 主体标识码 (组织机构代码, GB 11714): 8 characters and their check
    character, which is positions 9-17 of a credit code."""
    if len(body) != 8 or any(char not in _USCC_VALUE for char in body):
        raise InvalidIdentifier("组织机构代码本体应为8位数字或大写字母")
    total = sum(int(char, 36) * weight for char, weight in zip(body, _ORG_WEIGHTS, strict=True))
    check = 11 - total % 11
    return body + ("X" if check == 10 else "0" if check == 11 else str(check))


def new_uscc(*, authority: str, category: str, region: str, serial: int) -> str:
    """The credit code a registration authority assigns its ``serial``-th new entity (赋码):
    登记管理部门代码 + 机构类别代码 + the authority's 6-digit region, then a 主体标识码
    ``MA`` + the serial written in six characters of the credit-code alphabet (31^6, about
    887 million per authority and region) and its GB 11714 check character, then the GB 32100
    check character. ``MA`` marks codes assigned since credit codes replaced organisation
    codes, as the registration authorities' own do."""
    if not 0 <= serial < len(USCC_ALPHABET) ** 6:
        raise InvalidIdentifier("赋码序号超出范围")
    digits = []
    for _ in range(6):
        serial, digit = divmod(serial, len(USCC_ALPHABET))
        digits.append(USCC_ALPHABET[digit])
    first17 = authority + category + region + organization_code("MA" + "".join(reversed(digits)))
    code = first17 + uscc_check_char(first17)
    return validate_uscc(code)


def validate_uscc(code: str) -> str:
    """The normalised 18-character code (full-width folded, spaces and hyphens removed,
    upper case), or :class:`InvalidIdentifier`.

    Structure: position 1 登记管理部门代码 (``1`` 机构编制, ``5`` 民政, ``9`` 市场监管,
    ``N`` 农业农村, ``Y`` 其他 …) and position 2 机构类别代码 — any alphabet character, since
    the list of authorities grows; positions 3-8 a 6-digit 登记管理机关行政区划码; 9-17 the
    主体标识码 (organisation code); 18 the check character.
    """
    normalised = _USCC_SEPARATORS.sub("", unicodedata.normalize("NFKC", code)).upper()
    if len(normalised) != 18:
        raise InvalidIdentifier("统一社会信用代码应为18位")
    if any(char not in _USCC_VALUE for char in normalised):
        raise InvalidIdentifier("统一社会信用代码含有不允许的字符")
    if not _REGION.fullmatch(normalised[2:8]):
        raise InvalidIdentifier("统一社会信用代码第3至8位应为行政区划码")
    if uscc_check_char(normalised[:17]) != normalised[17]:
        raise InvalidIdentifier("统一社会信用代码校验位不正确")
    return normalised


def is_valid_uscc(code: str) -> bool:
    """Whether :func:`validate_uscc` accepts the code (never raises)."""
    try:
        validate_uscc(code)
    except InvalidIdentifier:
        return False
    return True
