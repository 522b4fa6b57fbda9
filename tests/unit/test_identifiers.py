"""Resident ID numbers and unified social credit codes: checksums, structure, normalisation,
and the two places where we deliberately differ from python-stdnum."""

from __future__ import annotations

import random
from datetime import date

import pytest
from stdnum.cn import ric, uscc

from tests.unit.synthetic import resident_id, resident_id_ending_in_x
from wangban.identifiers import (
    USCC_ALPHABET,
    InvalidIdentifier,
    age_on,
    birth_date_of,
    gender_of,
    is_valid_resident_id,
    is_valid_uscc,
    mask_id,
    region_of,
    resident_id_check_char,
    uscc_check_char,
    validate_resident_id,
    validate_uscc,
)


def _rid(body: str) -> str:
    return body + resident_id_check_char(body)


def _wrong_check(number: str) -> str:
    """The same number with a different, wrong check character."""
    right = number[-1]
    return number[:-1] + ("0" if right != "0" else "1")


# --- resident ID numbers ------------------------------------------------------------------


@pytest.mark.parametrize(
    "number",
    [
        "11010519491231002X",  # the example of GB 11643-1999 itself
        "360426199101010071",  # python-stdnum's doctest
        resident_id(),
        resident_id_ending_in_x(),
    ],
)
def test_known_valid_numbers(number: str) -> None:
    assert validate_resident_id(number) == number
    assert is_valid_resident_id(number)


def test_normalisation_lower_case_x_whitespace_and_full_width_digits() -> None:
    number = resident_id_ending_in_x()
    assert validate_resident_id(f"  {number[:-1]}x \n") == number
    full_width = "".join(chr(ord(c) + 0xFEE0) if c.isdigit() else c for c in number)
    assert validate_resident_id(full_width) == number
    assert validate_resident_id(f"{number[:6]} {number[6:14]} {number[14:]}") == number


def test_wrong_check_character_is_rejected_without_echoing_the_number() -> None:
    number = _wrong_check(resident_id())
    assert not is_valid_resident_id(number)
    with pytest.raises(InvalidIdentifier) as caught:
        validate_resident_id(number)
    assert str(caught.value) == "居民身份证号码校验位不正确"
    assert number not in str(caught.value) and number[:14] not in str(caught.value)
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize(
    ("number", "message"),
    [
        ("44190019900101123", "居民身份证号码应为18位"),
        ("441900900101123", "居民身份证号码应为18位"),  # first generation, 15 digits
        ("4419001990010112345", "居民身份证号码应为18位"),
        ("44190019900101A23X", "居民身份证号码格式不正确"),
        ("44190019900101123Y", "居民身份证号码格式不正确"),
        (_rid("99190019900101123"), "居民身份证号码地址码不正确"),
        (_rid("00190019900101123"), "居民身份证号码地址码不正确"),
        (_rid("44190019900230123"), "居民身份证号码出生日期不正确"),  # 30 February
        (_rid("44190018991231123"), "居民身份证号码出生日期不正确"),  # before 1900
        ("", "居民身份证号码应为18位"),
    ],
)
def test_malformed_numbers(number: str, message: str) -> None:
    with pytest.raises(InvalidIdentifier, match=f"^{message}$"):
        validate_resident_id(number)
    assert not is_valid_resident_id(number)


def test_future_birth_date_is_rejected_only_when_today_is_given() -> None:
    number = _rid("44190020300101123")
    assert is_valid_resident_id(number)
    assert not is_valid_resident_id(number, today=date(2029, 12, 31))
    assert is_valid_resident_id(number, today=date(2030, 1, 1))


def test_check_character_agrees_with_stdnum() -> None:
    rng = random.Random(11643)
    for _ in range(2000):
        body = "".join(rng.choice("0123456789") for _ in range(17))
        assert resident_id_check_char(body) == ric.calc_check_digit(body + "0")


@pytest.mark.parametrize("body", ["4419001990010112", "44190019900101123X", "4419001990010112a"])
def test_check_character_needs_seventeen_digits(body: str) -> None:
    with pytest.raises(InvalidIdentifier):
        resident_id_check_char(body)


def test_older_residents_with_current_address_codes_are_valid() -> None:
    # 东莞市 got 441900 in 1988, yet residents born before keep numbers issued with it;
    # stdnum's birth-place check would turn them away (e.g. from 高龄老人津贴).
    number = _rid("44190019440315031")
    assert is_valid_resident_id(number)
    assert not ric.is_valid(number)


def test_unknown_county_code_in_a_known_province_is_answered_not_raised() -> None:
    assert is_valid_resident_id(_rid("44199919900101123")) is True


def test_parts_of_a_number() -> None:
    man = _rid("44190019440315031")
    woman = _rid("43010219970214028")
    assert birth_date_of(man) == date(1944, 3, 15)
    assert gender_of(man) == "男"
    assert gender_of(woman) == "女"
    assert region_of(woman) == "430102"
    assert age_on(man, today=date(2024, 3, 14)) == 79
    assert age_on(man, today=date(2024, 3, 15)) == 80
    with pytest.raises(InvalidIdentifier):
        birth_date_of(_wrong_check(man))


def test_mask_keeps_region_and_last_four() -> None:
    number = resident_id_ending_in_x()
    assert mask_id(number) == number[:6] + "*" * 8 + number[-4:]
    assert mask_id(number[:-1] + "x") == number[:6] + "*" * 8 + number[-4:]
    assert mask_id("12345") == "*****"


# --- unified social credit codes ----------------------------------------------------------


def _uscc(first17: str) -> str:
    return first17 + uscc_check_char(first17)


def test_known_valid_credit_code() -> None:
    assert validate_uscc("91440300708461136T") == "91440300708461136T"
    assert is_valid_uscc("91440300708461136T")
    assert uscc.is_valid("91440300708461136T")


def test_letter_first_codes_are_valid_although_stdnum_rejects_them() -> None:
    village_collective = _uscc("N2441900MA51QH6T0")  # 村级集体经济组织, 农业农村部门
    other = _uscc("Y1441900MA4UXXQ27")  # 其他登记管理部门
    for code in (village_collective, other):
        assert validate_uscc(code) == code
        assert not uscc.is_valid(code)


def test_checksum_agrees_with_stdnum_where_stdnum_applies() -> None:
    rng = random.Random(32100)
    for _ in range(2000):
        first17 = (
            rng.choice("159")
            + rng.choice("123")
            + "".join(rng.choice("0123456789") for _ in range(6))
            + "".join(rng.choice(USCC_ALPHABET) for _ in range(9))
        )
        code = _uscc(first17)
        assert uscc.is_valid(code)
        assert uscc.calc_check_digit(first17) == code[-1]


def test_wrong_check_character_is_rejected() -> None:
    code = "91440300708461136T"
    for wrong in set(USCC_ALPHABET) - {"T"}:
        assert not is_valid_uscc(code[:-1] + wrong)
    with pytest.raises(InvalidIdentifier, match=r"^统一社会信用代码校验位不正确$"):
        validate_uscc(code[:-1] + "U")


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("91440300708461136", "统一社会信用代码应为18位"),
        ("91440300708461136TT", "统一社会信用代码应为18位"),
        ("9144030070846113IT", "统一社会信用代码含有不允许的字符"),  # I is not in the alphabet
        ("9144030070846113OT", "统一社会信用代码含有不允许的字符"),
        ("91440300708461136Z", "统一社会信用代码含有不允许的字符"),
        ("9144A300708461136T", "统一社会信用代码第3至8位应为行政区划码"),
    ],
)
def test_malformed_credit_codes(code: str, message: str) -> None:
    with pytest.raises(InvalidIdentifier, match=f"^{message}$"):
        validate_uscc(code)
    assert not is_valid_uscc(code)


def test_credit_code_normalisation() -> None:
    assert validate_uscc(" 91440300708461136t ") == "91440300708461136T"
    assert validate_uscc("91-440300-708461136T") == "91440300708461136T"
    assert validate_uscc("９１４４０３００７０８４６１１３６Ｔ") == "91440300708461136T"


def test_credit_check_character_needs_seventeen_alphabet_characters() -> None:
    with pytest.raises(InvalidIdentifier):
        uscc_check_char("9144030070846113")
    with pytest.raises(InvalidIdentifier):
        uscc_check_char("9144030070846113I")


# --- the check characters, against the standards' own arithmetic --------------------------


def _gb11643_check(first17: str) -> str:
    """GB 11643-1999: Σ aᵢ·Wᵢ with Wᵢ = 2^(18-i) mod 11, the check from 1 0 X 9 8 7 6 5 4 3 2."""
    total = sum(int(d) * pow(2, 17 - i, 11) for i, d in enumerate(first17))
    return "10X98765432"[total % 11]


def _gb32100_check(first17: str) -> str:
    """GB 32100-2015: Σ Cᵢ·Wᵢ with Wᵢ = 3^(i-1) mod 31, the check 31 − (Σ mod 31)."""
    total = sum(USCC_ALPHABET.index(c) * pow(3, i, 31) for i, c in enumerate(first17))
    return USCC_ALPHABET[(31 - total % 31) % 31]


def test_check_characters_are_those_the_standards_compute() -> None:
    """The check characters come from python-stdnum's ISO 7064 code; over 20,000 random
    bodies they are the ones GB 11643 and GB 32100 compute, letters of the credit-code
    alphabet in every position included (stdnum's own validate() refuses some of those)."""
    rng = random.Random(23)
    for _ in range(20_000):
        digits = "".join(rng.choice("0123456789") for _ in range(17))
        assert resident_id_check_char(digits) == _gb11643_check(digits), digits
        code = "".join(rng.choice(USCC_ALPHABET) for _ in range(17))
        assert uscc_check_char(code) == _gb32100_check(code), code
