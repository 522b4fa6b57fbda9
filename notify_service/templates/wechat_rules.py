"""WeChat subscription-message keyword rules, and cutting text without breaking a character.

WeChat refuses the whole message (errcode 47003) when one value breaks the rule of its keyword
type (``thing`` ≤ 20 characters, ``phrase`` ≤ 5 Chinese characters, ``time``, ``date`` …), so
the rules are checked here, before sending. Cutting (:func:`truncate_thing`, and the ``clip``
filter of :mod:`notify_service.templates.sandbox`) never splits a character from its marks.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date
from typing import Final

THING_MAX: Final = 20
ELLIPSIS: Final = "…"


def _is_han(ch: str) -> bool:
    cp = ord(ch)
    return (
        0x4E00 <= cp <= 0x9FFF  # CJK Unified Ideographs
        or 0x3400 <= cp <= 0x4DBF  # Extension A
        or 0x20000 <= cp <= 0x3134F  # Extensions B–G: rare characters do occur in names
        or 0xF900 <= cp <= 0xFAFF  # Compatibility Ideographs
        or ch == "〇"
    )


# --- WeChat keyword rules ------------------------------------------------------------------

KEYWORD_TYPES: Final = (
    "thing",
    "number",
    "letter",
    "symbol",
    "character_string",
    "time",
    "date",
    "amount",
    "phone_number",
    "car_number",
    "name",
    "phrase",
)
# Longest names first so that "character_string4" is not read as something shorter.
_KEY_RE: Final = re.compile(
    r"(" + "|".join(sorted(KEYWORD_TYPES, key=len, reverse=True)) + r")(\d+)", re.ASCII
)
_DATE_RE: Final = re.compile(r"(\d{4})年(\d{1,2})月(\d{1,2})日|(\d{4})-(\d{1,2})-(\d{1,2})")
_CLOCK_RE: Final = re.compile(r"(\d{1,2}):(\d{2})")
_NUMBER_RE: Final = re.compile(r"[+-]?\d+(?:\.\d+)?", re.ASCII)
_AMOUNT_RE: Final = re.compile(r"[¥￥$€£]?\d{1,10}(?:\.\d{1,2})?元?", re.ASCII)


def keyword_type(key: str) -> str | None:
    """``thing1`` → ``thing``; ``None`` for a key that is not a WeChat keyword."""
    match = _KEY_RE.fullmatch(key)
    return match.group(1) if match else None


def _is_symbol(ch: str) -> bool:
    return unicodedata.category(ch)[0] in "PS"


def _is_ascii_letter(ch: str) -> bool:
    return ch.isascii() and ch.isalpha()


def _is_ascii_alnum(ch: str) -> bool:
    return ch.isascii() and ch.isalnum()


def is_control(ch: str) -> bool:
    return unicodedata.category(ch) in ("Cc", "Zl", "Zp")


def _valid_date(text: str) -> bool:
    match = _DATE_RE.fullmatch(text)
    if match is None:
        return False
    groups = match.groups()
    y, m, d = (int(g) for g in (groups[:3] if groups[0] is not None else groups[3:]))
    try:
        date(y, m, d)
    except ValueError:
        return False
    return True


def _valid_clock(text: str) -> bool:
    match = _CLOCK_RE.fullmatch(text)
    return match is not None and int(match.group(1)) <= 23 and int(match.group(2)) <= 59


def _valid_moment(text: str, *, date_required: bool) -> bool:
    """One point in time: ``[date] clock`` for time keywords, ``date [clock]`` for date ones."""
    # "2019年10月1日15:01" is common enough to accept: the 日 already separates the parts.
    parts = re.sub(r"日(?=\d)", "日 ", text.strip()).split()
    if len(parts) == 2:
        return _valid_date(parts[0]) and _valid_clock(parts[1])
    if len(parts) == 1:
        return _valid_date(parts[0]) if date_required else _valid_clock(parts[0])
    return False


def _valid_period(text: str, *, date_required: bool) -> bool:
    # WeChat accepts a single point or a period: two points joined by "~".
    points = text.split("~")
    return len(points) <= 2 and all(_valid_moment(p, date_required=date_required) for p in points)


def _shown(value: str) -> str:
    return value if len(value) <= 30 else value[:29] + ELLIPSIS


def _keyword_rule_problem(kind: str, value: str) -> str | None:
    """What is wrong with ``value`` for a keyword of type ``kind`` (the message's tail)."""
    n = len(value)
    if kind == "thing":
        return f"不能超过 {THING_MAX} 个字符，实际 {n} 个" if n > THING_MAX else None
    if kind == "number":
        if not _NUMBER_RE.fullmatch(value):
            return f"只能是数字（可带正负号和一个小数点），实际为“{_shown(value)}”"
        digits = sum(ch.isdigit() for ch in value)
        return f"不能超过 32 位数字，实际 {digits} 位" if digits > 32 else None
    if kind == "letter":
        if not all(_is_ascii_letter(ch) for ch in value):
            return f"只能是英文字母，实际为“{_shown(value)}”"
        return f"不能超过 32 个字母，实际 {n} 个" if n > 32 else None
    if kind == "symbol":
        if not all(_is_symbol(ch) for ch in value):
            return f"只能是符号，实际为“{_shown(value)}”"
        return f"不能超过 5 个符号，实际 {n} 个" if n > 5 else None
    if kind == "character_string":
        # Digits, letters and symbols as WeChat means them: printable ASCII, no spaces.
        if not all("!" <= ch <= "~" for ch in value):
            return f"只能是数字、英文字母或符号（不能有汉字或空格），实际为“{_shown(value)}”"
        return f"不能超过 32 个字符，实际 {n} 个" if n > 32 else None
    if kind == "time":
        if _valid_period(value, date_required=False):
            return None
        return (
            "应为 24 小时制时间，如 15:01、2019年10月1日 15:01 或 2019-10-01 15:01"
            f"（时间段用 ~ 连接），实际为“{_shown(value)}”"
        )
    if kind == "date":
        if _valid_period(value, date_required=True):
            return None
        return (
            "应为日期，如 2019年10月1日 或 2019-10-01（可带 24 小时制时间，时间段用 ~ 连接），"
            f"实际为“{_shown(value)}”"
        )
    if kind == "amount":
        if _AMOUNT_RE.fullmatch(value):
            return None
        return (
            "应为金额：可带一个币种符号，最多 10 位整数和 2 位小数，结尾可带“元”，"
            f"实际为“{_shown(value)}”"
        )
    if kind == "phone_number":
        if not all(ch.isascii() and (ch.isdigit() or _is_symbol(ch)) for ch in value):
            return f"只能是数字和符号，实际为“{_shown(value)}”"
        return f"不能超过 17 位，实际 {n} 位" if n > 17 else None
    if kind == "car_number":
        last = n - 1
        shape_ok = any(_is_ascii_alnum(ch) for ch in value) and all(
            _is_ascii_alnum(ch) or (_is_han(ch) and i in (0, last)) for i, ch in enumerate(value)
        )
        if not shape_ok:
            return f"应为车牌号：首尾可为汉字，其余为字母或数字，实际为“{_shown(value)}”"
        return f"不能超过 8 个字符，实际 {n} 个" if n > 8 else None
    if kind == "name":
        if any(_is_han(ch) for ch in value):
            # Mixed Chinese and letters counts as a Chinese name (WeChat's rule).
            if not all(_is_han(ch) or _is_ascii_letter(ch) or _is_symbol(ch) for ch in value):
                return f"只能是汉字、字母或符号，实际为“{_shown(value)}”"
            return f"中文姓名不能超过 10 个字，实际 {n} 个" if n > 10 else None
        if not all(_is_ascii_letter(ch) or _is_symbol(ch) or ch == " " for ch in value):
            return f"只能是汉字、字母或符号，实际为“{_shown(value)}”"
        return f"英文姓名不能超过 20 个字符，实际 {n} 个" if n > 20 else None
    if kind == "phrase":
        if not all(_is_han(ch) for ch in value):
            return f"只能是汉字，实际为“{_shown(value)}”"
        return f"不能超过 5 个汉字，实际 {n} 个" if n > 5 else None
    raise AssertionError(f"unhandled keyword type {kind}")  # pragma: no cover


def keyword_value_problem(*, key: str, value: str) -> str | None:
    """Why WeChat would refuse ``value`` for keyword ``key``, in Chinese; ``None`` if it fits.

    >>> keyword_value_problem(key="phrase3", value="已受理") is None
    True
    """
    kind = keyword_type(key)
    if kind is None:
        return f"字段 {key} 不是微信订阅消息的关键词（应为类型名加数字，如 thing1、time2）"
    where = f"字段 {key}（{kind}）"
    if not value:
        # WeChat refuses empty values for every type (errcode 47003).
        return f"{where}不能为空"
    if any(is_control(ch) for ch in value):
        return f"{where}不能包含换行或其他控制字符"
    problem = _keyword_rule_problem(kind, value)
    return None if problem is None else where + problem


# --- safe cutting --------------------------------------------------------------------------

_ZWJ: Final = "\u200d"


def _attaches_to_previous(ch: str) -> bool:
    """Whether ``ch`` is drawn as part of the character before it."""
    cp = ord(ch)
    return (
        unicodedata.category(ch) in ("Mn", "Mc", "Me")  # combining marks
        or ch == _ZWJ
        or 0xFE00 <= cp <= 0xFE0F  # variation selectors (text/emoji presentation)
        or 0xE0100 <= cp <= 0xE01EF
        or 0x1F3FB <= cp <= 0x1F3FF  # emoji skin-tone modifiers
    )


def cut(value: str, limit: int) -> str:
    """``value`` in at most ``limit`` characters, ending in ``…`` when it had to be cut.

    Python strings index code points, so no surrogate pair is ever split. What can still go
    wrong is a base character kept without the marks that follow it (é shown as e) or an emoji
    sequence cut at a joiner; the cut moves back to the start of such a cluster.
    """
    if len(value) <= limit:
        return value
    end = limit - len(ELLIPSIS)
    while end > 0 and (_attaches_to_previous(value[end]) or value[end - 1] == _ZWJ):
        end -= 1
    return value[:end].rstrip() + ELLIPSIS


def truncate_thing(value: str) -> str:
    """A ``thing`` value cut to WeChat's 20 characters, ending in ``…`` when it was longer."""
    return cut(value, THING_MAX)
