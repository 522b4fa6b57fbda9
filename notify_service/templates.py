"""Notification templates: what a citizen is told, per kind of event and per channel.

Like GOV.UK Notify, the wording lives in templates that administrators edit, not in code. A
template is saved for one :class:`NotificationKind` and one channel:

* ``wechat``: a WeChat mini-program subscription message. The template itself (its title and
  keywords) is chosen on the WeChat platform; ours maps each keyword (``thing1``, ``time4`` …)
  to a Jinja source. WeChat refuses the whole message (errcode 47003) when one value breaks the
  rule of its keyword type, so the rules are checked here, before sending;
* ``sms``: a text registered with the SMS gateway, with ``${name}`` placeholders; ours maps each
  placeholder to a Jinja source;
* ``inbox``: the in-app inbox, a title and a body, both Jinja sources.

Sources are rendered in a sandbox (:class:`jinja2.sandbox.ImmutableSandboxedEnvironment`) with
``StrictUndefined`` and without autoescaping: none of the outputs is HTML. ``None`` renders as
the empty string rather than ``"None"``.

The rendering context
---------------------
The notify service builds one context per message from the event it consumed::

    {
        "kind": str,                       # a NotificationKind value
        "item": {"name": str, "code": str},  # the service item (事项) and its implementing code
        "application": {"id": str, "short_id": str},  # short_id: the number people quote
        "applicant": {"name_masked": str},  # crypto.mask_name: the only personal data
        "at": datetime,                    # aware; when the event happened
        "reason": str | None,              # why: not accepted, correction, denial, rectification
        "materials": list[str],            # material names to correct or to supply (容缺)
        "due_date": date | None,           # committed completion (accepted), correction deadline
                                           # (correction_requested), end of rating (invitation)
        "tolerated_until": date | None,    # 容缺 deadline for the missing materials
        "certificate": {"type_name": str, "valid_until": date | None} | None,
        "outcome": str | None,             # the decision or the rectification reply, in words
    }

Personal data never enters the context except the masked name: no ID number, no phone number,
no full name, no address. Templates therefore cannot leak them, whoever edits them.

Filters beyond Jinja's own: ``wechat_time`` (aware datetime → ``2026年11月23日 14:09`` in China
time), ``wechat_date`` (date or aware datetime → ``2026年11月23日``), ``iso_date``
(→ ``2026-11-23``) and ``clip(n)`` (at most n characters, ending in ``…`` when cut).

Save time and send time
-----------------------
:func:`validate_template` renders a template against :data:`SAMPLE_CONTEXTS` of its kind and
reports every problem at once (:class:`TemplateInvalid`); :func:`preview` does the same for an
admin preview and returns the result. At send time :func:`render_wechat`, :func:`render_sms`
and :func:`render_inbox` raise :class:`RenderedValueInvalid` naming the field, which the
delivery code records as a permanent failure: the same message would fail again.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any, ClassVar, Final, Literal, TypeAlias, overload

from jinja2 import (
    StrictUndefined,
    Template,
    TemplateError,
    TemplateSyntaxError,
    UndefinedError,
    meta,
    nodes,
)
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.visitor import NodeTransformer
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from wangban import crypto, labels
from wangban.calendar import CHINA_TZ
from wangban.errors import ValidationFailed, field_errors_from_validation

__all__ = [
    "CHANNEL_LABELS",
    "DEFAULT_TEMPLATES",
    "INBOX_BODY_MAX",
    "INBOX_TITLE_MAX",
    "KEYWORD_TYPES",
    "SAMPLE_CONTEXTS",
    "SMS_PARAM_MAX",
    "THING_MAX",
    "Channel",
    "FieldProblem",
    "InboxTemplateBody",
    "NotificationKind",
    "Rendered",
    "RenderedInbox",
    "RenderedSms",
    "RenderedValueInvalid",
    "RenderedWeChat",
    "SmsTemplateBody",
    "TemplateBody",
    "TemplateInvalid",
    "WeChatField",
    "WeChatTemplateBody",
    "body_model",
    "keyword_type",
    "keyword_value_problem",
    "parse_body",
    "preview",
    "render_inbox",
    "render_sms",
    "render_wechat",
    "render_wechat_page",
    "sms_segments",
    "truncate_thing",
    "validate_template",
]

Channel: TypeAlias = Literal["wechat", "sms", "inbox"]
CHANNEL_LABELS: Final[dict[str, str]] = {
    c: labels.CHANNEL_LABELS[c] for c in ("wechat", "sms", "inbox")
}

THING_MAX: Final = 20
SMS_PARAM_MAX: Final = 35
SMS_SINGLE_MAX: Final = 70
SMS_SEGMENT_MAX: Final = 67
"""A long SMS is sent as concatenated parts, each losing 3 characters to the joining header."""
INBOX_TITLE_MAX: Final = 40
INBOX_BODY_MAX: Final = 500
ELLIPSIS: Final = "…"


# --- kinds ---------------------------------------------------------------------------------


class NotificationKind(StrEnum):
    APPLICATION_ACCEPTED = "application.accepted"
    APPLICATION_NOT_ACCEPTED = "application.not_accepted"
    APPLICATION_CORRECTION_REQUESTED = "application.correction_requested"
    APPLICATION_APPROVED = "application.approved"
    APPLICATION_DENIED = "application.denied"
    APPLICATION_COMPLETED = "application.completed"
    CERTIFICATE_ISSUED = "certificate.issued"
    SUPPLEMENT_REMINDER = "supplement.reminder"
    RATING_INVITATION = "rating.invitation"
    RECTIFICATION_REPLIED = "rectification.replied"

    @property
    def label(self) -> str:
        return _KIND_LABELS[self]


_KIND_LABELS: Final[dict[NotificationKind, str]] = {
    NotificationKind.APPLICATION_ACCEPTED: "申请已受理",
    NotificationKind.APPLICATION_NOT_ACCEPTED: "申请不予受理",
    NotificationKind.APPLICATION_CORRECTION_REQUESTED: "申请需补正材料",
    NotificationKind.APPLICATION_APPROVED: "审批通过",
    NotificationKind.APPLICATION_DENIED: "审批不予许可",
    NotificationKind.APPLICATION_COMPLETED: "办件已办结",
    NotificationKind.CERTIFICATE_ISSUED: "证照已签发",
    NotificationKind.SUPPLEMENT_REMINDER: "容缺材料补交提醒",
    NotificationKind.RATING_INVITATION: "服务评价邀请",
    NotificationKind.RECTIFICATION_REPLIED: "差评整改已回复",
}


# --- masking -------------------------------------------------------------------------------


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


def _is_control(ch: str) -> bool:
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
    if any(_is_control(ch) for ch in value):
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


def _cut(value: str, limit: int) -> str:
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
    return _cut(value, THING_MAX)


# --- the sandbox ---------------------------------------------------------------------------

_MAX_REPEAT: Final = 2000
_MAX_EXPONENT: Final = 100
_MAX_INT_BITS: Final = 4096
MAX_RENDER_STEPS: Final = 2000
"""Loop iterations plus macro and call-block calls in one rendering of one source. The
longest default template takes a handful; nested ``range`` loops would take millions."""
MAX_RANGE: Final = 200
"""Largest ``range(...)`` (the sandbox's own limit is 100 000)."""
MAX_TEXT: Final = 10_000
"""Longest string a template may build (by ``~``, ``+``, a filter or a call) or output. The
longest channel allows 500 characters."""

_STEP: Final = "_wangban_step"
_CONCAT: Final = "_wangban_concat"
_steps: ContextVar[list[int] | None] = ContextVar("template_steps", default=None)


def _step() -> str:
    """Called at the start of every loop iteration, macro and call block (the parser puts the
    call there, see :meth:`_TemplateEnvironment._parse`)."""
    counter = _steps.get()
    if counter is not None:
        counter[0] += 1
        if counter[0] > MAX_RENDER_STEPS:
            raise SecurityError(f"循环或宏的执行次数超过 {MAX_RENDER_STEPS} 次")
    return ""


def _checked_text(value: Any) -> Any:
    if isinstance(value, str | list | tuple) and len(value) > MAX_TEXT:
        raise SecurityError(f"生成的文本长度不能超过 {MAX_TEXT}")
    return value


def _concat(*parts: Any) -> str:
    r"""``a ~ b``, with the length checked before it is built: chained ``{% set %}``\ s of
    ``x ~ x`` double a string with each line."""
    texts = [str(part) for part in parts]
    if sum(len(text) for text in texts) > MAX_TEXT:
        raise SecurityError(f"生成的文本长度不能超过 {MAX_TEXT}")
    return "".join(texts)


def _range(*args: int) -> range:
    numbers = range(*args)
    if len(numbers) > MAX_RANGE:
        raise SecurityError(f"range 最多 {MAX_RANGE} 个数")
    return numbers


def _bounded_args(args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
    """Refuse numbers that size an allocation (``center(10**9)``, ``'x'.ljust(10**9)``)."""
    for value in (*args, *kwargs.values()):
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_TEXT:
            raise SecurityError(f"参数中的数字不能超过 {MAX_TEXT}")


def _bounded_filter(function: Any) -> Any:
    @functools.wraps(function)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        _bounded_args(args, kwargs)
        return _checked_text(function(*args, **kwargs))

    return bounded


def _bounded_replace(value: Any, old: Any, new: Any, count: Any = None) -> Any:
    text, old_text, new_text = str(value), str(old), str(new)
    if not old_text:
        raise SecurityError("replace 的被替换文本不能为空")
    if len(text) + (len(text) // len(old_text)) * len(new_text) > MAX_TEXT:
        raise SecurityError(f"替换后的长度可能超过 {MAX_TEXT}")
    return _ORIGINAL_REPLACE(value, old, new, count)


class _Counted(NodeTransformer):
    """Puts a step count at the start of every loop body, macro and call block, and turns
    ``a ~ b`` into a length-checked call."""

    def _count(self, node: nodes.Node) -> nodes.Node:
        self.generic_visit(node)
        step = nodes.Output([nodes.Call(nodes.Name(_STEP, "load"), [], [], None, None)])
        node.body = [step, *node.body]  # type: ignore[attr-defined]
        return node

    visit_For = visit_Macro = visit_CallBlock = _count

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        return nodes.Call(nodes.Name(_CONCAT, "load"), list(node.nodes), [], None, None)


class _TemplateEnvironment(ImmutableSandboxedEnvironment):
    """The sandbox, plus bounds on what one rendering may cost (issue 17, finding 5).

    The sandbox stops escapes (``__class__``, ``__globals__`` …) and, being immutable, stops a
    template from changing the lists and dicts of the context, which are shared (the sample
    contexts are module globals). It does not bound resources: ``'x' * 10**10`` would happily
    allocate and nested loops over ``range(1000)`` run a billion times. So ``*``, ``**``,
    ``%`` and ``+`` are intercepted; every loop iteration, macro and call block counts against
    :data:`MAX_RENDER_STEPS`; ``range`` is limited to :data:`MAX_RANGE` numbers; strings built by
    ``~``, ``+``, filters and calls, and the output, to :data:`MAX_TEXT` characters; numbers that
    size an allocation (``center(10**9)``) are refused, and so are ``str.format`` and the
    ``format`` filter (a width inside the format string). Save and preview render with the same
    limits as sending, so a template over them is refused when it is saved.
    """

    intercepted_binops = frozenset({"*", "**", "%", "+"})

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        tree = super()._parse(source, name, filename)
        counted = _Counted().visit(tree)
        assert isinstance(counted, nodes.Template)
        return counted

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if attr in ("format", "format_map"):
            return False
        return super().is_safe_attribute(obj, attr, value)

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        _bounded_args(args, kwargs)
        return _checked_text(super().call(__context, __obj, *args, **kwargs))

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "%" and isinstance(left, str):
            # printf formatting takes a width ("%999999999s"); templates never need it.
            raise SecurityError("模板中不能使用字符串 % 格式化")
        if operator == "**" and isinstance(right, int | float) and abs(right) > _MAX_EXPONENT:
            raise SecurityError(f"幂运算的指数不能超过 {_MAX_EXPONENT}")
        if operator in ("*", "**") and any(
            isinstance(v, int) and v.bit_length() > _MAX_INT_BITS for v in (left, right)
        ):
            raise SecurityError("模板中的数字过大")
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                if (
                    isinstance(seq, str | list | tuple)
                    and isinstance(times, int)
                    and len(seq) * times > _MAX_REPEAT
                ):
                    raise SecurityError(f"重复后的长度不能超过 {_MAX_REPEAT}")
        return _checked_text(super().call_binop(context, operator, left, right))


def _finalize(value: Any) -> Any:
    # "reason: None" in a message to a citizen is worse than an empty string; the empty value
    # is then refused where a value is required (every WeChat keyword, every SMS parameter).
    return "" if value is None else value


def _aware_in_china(value: datetime, filter_name: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        # Guessing the zone of a naive time would shift it by 8 hours one way or the other.
        raise ValueError(f"{filter_name} 需要带时区的日期时间，收到的是不带时区的 {value}")
    return value.astimezone(CHINA_TZ)


def _wechat_time(value: Any) -> str:
    if not isinstance(value, datetime):
        raise TypeError(f"wechat_time 需要日期时间（datetime），收到的是 {type(value).__name__}")
    local = _aware_in_china(value, "wechat_time")
    return f"{local.year}年{local.month}月{local.day}日 {local:%H:%M}"


def _as_date(value: Any, filter_name: str) -> date:
    if isinstance(value, datetime):
        return _aware_in_china(value, filter_name).date()
    if isinstance(value, date):
        return value
    raise TypeError(f"{filter_name} 需要日期（date 或 datetime），收到的是 {type(value).__name__}")


def _wechat_date(value: Any) -> str:
    day = _as_date(value, "wechat_date")
    return f"{day.year}年{day.month}月{day.day}日"


def _iso_date(value: Any) -> str:
    return _as_date(value, "iso_date").isoformat()


def _clip(value: Any, length: int = THING_MAX) -> str:
    if not isinstance(length, int) or length < 2:
        raise ValueError("clip 的长度至少为 2")
    return _cut("" if value is None else str(value), length)


_ENV: Final = _TemplateEnvironment(
    undefined=StrictUndefined,
    # None of the outputs is HTML: escaping would show "&amp;" to people.
    autoescape=False,
    finalize=_finalize,
    # No trim_blocks: these are short texts with inline {% if %}s, where a newline silently
    # eaten after "{% endif %}" surprises whoever writes the template.
)
_ENV.filters.update(
    wechat_time=_wechat_time, wechat_date=_wechat_date, iso_date=_iso_date, clip=_clip
)
# The format filter takes its width from the format string ("%999999999s"|format(1)).
del _ENV.filters["format"]
_ORIGINAL_REPLACE: Final = _ENV.filters["replace"]
_ENV.filters.update({name: _bounded_filter(f) for name, f in _ENV.filters.items()})
_ENV.filters["replace"] = _bounded_replace
_ENV.globals.update({_STEP: _step, _CONCAT: _concat, "range": _range})

_CONTEXT_NAMES: Final = frozenset(
    {
        "kind",
        "item",
        "application",
        "applicant",
        "at",
        "reason",
        "materials",
        "due_date",
        "tolerated_until",
        "certificate",
        "outcome",
    }
)
_KNOWN_NAMES: Final = _CONTEXT_NAMES | frozenset(_ENV.globals)


@functools.lru_cache(maxsize=1024)
def _compile(source: str) -> Template:
    # Rendering happens once per message; compiling once per distinct source. A syntax error
    # is raised (and not cached) every time, which only costs on broken templates.
    return _ENV.from_string(source)


@functools.lru_cache(maxsize=1024)
def _lint(source: str) -> tuple[str, ...]:
    """Problems visible without rendering, including in branches the sample does not take."""
    try:
        tree = _ENV.parse(source)
        _compile(source)
    except TemplateSyntaxError as exc:
        return (_describe(exc),)
    found: list[str] = []
    underscored: set[str] = set()
    unknown = sorted(meta.find_undeclared_variables(tree) - _KNOWN_NAMES)
    if unknown:
        found.append(
            f"引用了未知变量：{'、'.join(unknown)}（可用的变量：{'、'.join(sorted(_CONTEXT_NAMES))}）"
        )
    for node in tree.find_all((nodes.Getattr, nodes.Getitem, nodes.Filter)):
        name: object = None
        if isinstance(node, nodes.Getattr):
            name = node.attr
        elif isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
            name = node.arg.value
        elif isinstance(node, nodes.Filter) and node.name == "attr" and node.args:
            arg = node.args[0]
            name = arg.value if isinstance(arg, nodes.Const) else None
        # The sandbox refuses these at render time too, but only on the branch that runs;
        # nothing legitimate in our context starts with an underscore.
        if isinstance(name, str) and name.startswith("_"):
            underscored.add(name)
    if underscored:
        found.append(f"不能访问以下划线开头的属性：{'、'.join(sorted(underscored))}")
    return tuple(found)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TemplateSyntaxError):
        return f"模板语法错误（第 {exc.lineno} 行）：{exc.message}"
    if isinstance(exc, SecurityError):
        return f"使用了模板沙箱不允许的操作：{exc}"
    if isinstance(exc, UndefinedError):
        return f"引用了不存在的变量或属性：{exc.message}"
    if isinstance(exc, TemplateError):
        return f"模板渲染出错：{exc}"
    if isinstance(exc, RecursionError):
        return "模板渲染出错：递归过深"
    if isinstance(exc, TypeError | ValueError):
        # Our filters raise these with Chinese messages meant for the template's author.
        return f"模板渲染出错：{exc}"
    return f"模板渲染出错（{type(exc).__name__}）：{exc}"


class _SourceFailed(Exception):
    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


def _render_source(source: str, context: Mapping[str, Any]) -> str:
    token = _steps.set([0])
    try:
        parts: list[str] = []
        size = 0
        for part in _compile(source).generate(context):
            size += len(part)
            if size > MAX_TEXT:
                raise SecurityError(f"输出长度不能超过 {MAX_TEXT}")
            parts.append(part)
        return "".join(parts).strip()
    except Exception as exc:
        # The source is a program an administrator wrote: whatever it raises (a TypeError in a
        # filter, a SecurityError, a RecursionError from a macro) is a template problem to
        # report against its field, never a crash of the sender.
        raise _SourceFailed(_describe(exc)) from exc
    finally:
        _steps.reset(token)


# --- problems ------------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldProblem:
    field: str
    """``thing1`` (a WeChat keyword), ``page``, ``params.<name>`` or ``text`` (SMS),
    ``title`` or ``body`` (inbox); for a malformed body, the path of the field in it."""
    message: str
    """Chinese, naming the field and the rule."""


class TemplateInvalid(ValidationFailed):
    type_slug = "template-invalid"
    title = "通知模板有误"

    SHOWN: ClassVar[int] = 3

    @classmethod
    def of(cls, problems: Sequence[FieldProblem]) -> TemplateInvalid:
        shown = "；".join(p.message for p in problems[: cls.SHOWN])
        more = " 等" if len(problems) > cls.SHOWN else ""
        return cls(
            f"模板有 {len(problems)} 处问题：{shown}{more}",
            extra={"problems": [asdict(p) for p in problems]},
        )

    @property
    def problems(self) -> list[FieldProblem]:
        return [FieldProblem(**p) for p in self.extra.get("problems", [])]


class RenderedValueInvalid(Exception):
    """A message that cannot be sent as rendered; retrying would fail the same way."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def _raise_first(problems: Sequence[FieldProblem]) -> None:
    if problems:
        first = problems[0]
        raise RenderedValueInvalid(first.field, first.message)


# --- bodies --------------------------------------------------------------------------------

_PLACEHOLDER_RE: Final = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_PARAM_NAME_RE: Final = r"^[A-Za-z_][A-Za-z0-9_]*$"


class WeChatField(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    key: str = Field(
        description="微信订阅消息模板的关键词，类型名加数字，如 thing1、time2",
        examples=["thing1"],
    )
    source: str = Field(min_length=1, max_length=500, description="Jinja 模板源码")
    truncate: bool = Field(
        default=False, description="仅 thing 类型可用：超过 20 个字符时截断并以“…”结尾"
    )

    @field_validator("key")
    @classmethod
    def _key_is_keyword(cls, key: str) -> str:
        if keyword_type(key) is None:
            raise ValueError(
                f"{key} 不是微信订阅消息的关键词：应为类型名加数字，"
                f"类型为 {'、'.join(KEYWORD_TYPES)}"
            )
        return key

    @model_validator(mode="after")
    def _truncate_only_on_thing(self) -> WeChatField:
        kind = keyword_type(self.key)
        if self.truncate and kind != "thing":
            # Cutting a date, an amount or a number changes its meaning; only free text may
            # lose its tail.
            raise ValueError(f"只有 thing 类型的字段可以自动截断，{self.key} 是 {kind} 类型")
        return self


class WeChatTemplateBody(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    template_id: str = Field(min_length=1, max_length=128, description="微信订阅消息模板 ID")
    page: str | None = Field(
        default=None,
        max_length=512,
        description="点击消息后打开的小程序页面（Jinja 源码，可带参数）；为空则不跳转",
        examples=["pages/applications/detail?id={{ application.id }}"],
    )
    fields: list[WeChatField] = Field(min_length=1, max_length=20)

    @field_validator("fields")
    @classmethod
    def _keys_unique(cls, fields: list[WeChatField]) -> list[WeChatField]:
        repeated = [key for key, n in Counter(f.key for f in fields).items() if n > 1]
        if repeated:
            raise ValueError(f"关键词重复：{'、'.join(repeated)}")
        return fields


class SmsTemplateBody(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    template_code: str = Field(min_length=1, max_length=64, description="短信网关的模板编号")
    text: str = Field(
        min_length=1,
        max_length=500,
        description="在短信网关备案的模板正文，变量写作 ${name}",
        examples=["您申请的“${item}”已受理，办件编号${short_id}。"],
    )
    params: dict[str, str] = Field(description="每个变量对应的 Jinja 源码")

    @field_validator("params")
    @classmethod
    def _params_match_placeholders(
        cls, params: dict[str, str], info: ValidationInfo
    ) -> dict[str, str]:
        for name, source in params.items():
            if not re.match(_PARAM_NAME_RE, name):
                raise ValueError(f"变量名 {name} 不合法：只能由字母、数字和下划线组成")
            if not source or len(source) > 500:
                raise ValueError(f"变量 {name} 的模板源码应为 1 到 500 个字符")
        text = info.data.get("text")
        if text is None:  # the text itself is invalid and reported on its own
            return params
        placeholders = _PLACEHOLDER_RE.findall(text)
        if text.count("${") != len(placeholders):
            raise ValueError(
                "短信正文中有无法识别的占位符：变量应写作 ${name}，name 由字母、数字和下划线组成"
            )
        missing = [p for p in dict.fromkeys(placeholders) if p not in params]
        unused = [p for p in params if p not in placeholders]
        messages = []
        if missing:
            messages.append(f"正文中的变量 {'、'.join(missing)} 没有对应的参数")
        if unused:
            messages.append(f"参数 {'、'.join(unused)} 在正文中没有对应的变量")
        if messages:
            raise ValueError("；".join(messages))
        return params


class InboxTemplateBody(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    title: str = Field(min_length=1, max_length=500, description="站内信标题（Jinja 源码）")
    body: str = Field(min_length=1, max_length=4000, description="站内信正文（Jinja 源码）")


TemplateBody: TypeAlias = WeChatTemplateBody | SmsTemplateBody | InboxTemplateBody

_BODY_MODELS: Final[dict[str, type[TemplateBody]]] = {
    "wechat": WeChatTemplateBody,
    "sms": SmsTemplateBody,
    "inbox": InboxTemplateBody,
}


@overload
def body_model(channel: Literal["wechat"]) -> type[WeChatTemplateBody]: ...
@overload
def body_model(channel: Literal["sms"]) -> type[SmsTemplateBody]: ...
@overload
def body_model(channel: Literal["inbox"]) -> type[InboxTemplateBody]: ...
@overload
def body_model(channel: str) -> type[TemplateBody]: ...
def body_model(channel: str) -> type[TemplateBody]:
    """The body model of a channel."""
    try:
        return _BODY_MODELS[channel]
    except KeyError:
        raise ValueError(f"unknown channel {channel!r}") from None


def parse_body(*, channel: str, body: Any) -> TemplateBody:
    """``body`` (JSON) as the body model of ``channel``; malformed bodies raise
    :class:`TemplateInvalid` like any other template problem, not a bare pydantic error
    (which would reach the client as a 500 outside request validation)."""
    try:
        return body_model(channel).model_validate(body)
    except ValidationError as exc:
        problems = []
        for error in field_errors_from_validation(exc.errors()):
            where = error.pointer.strip("/").replace("/", ".") or "body"
            problems.append(FieldProblem(where, f"{where}：{error.detail}"))
        raise TemplateInvalid.of(problems) from None


# --- rendering -----------------------------------------------------------------------------


@dataclass(frozen=True)
class RenderedWeChat:
    template_id: str
    page: str | None
    data: dict[str, str]


@dataclass(frozen=True)
class RenderedSms:
    params: dict[str, str]
    """What the gateway is sent, by placeholder name."""
    text: str
    """What the phone shows: 【sign name】 followed by the text with the parameters in."""
    segments: int

    @property
    def length(self) -> int:
        return _sms_length(self.text)


@dataclass(frozen=True)
class RenderedInbox:
    title: str
    body: str


Rendered: TypeAlias = RenderedWeChat | RenderedSms | RenderedInbox


def _sources(body: TemplateBody) -> Iterator[tuple[str, str, str]]:
    """``(field, label for messages, source)`` of every Jinja source in ``body``."""
    if isinstance(body, WeChatTemplateBody):
        for f in body.fields:
            yield f.key, f"字段 {f.key}", f.source
        if body.page:
            yield "page", "跳转页面 page", body.page
    elif isinstance(body, SmsTemplateBody):
        for name, source in body.params.items():
            yield f"params.{name}", f"短信参数 {name}", source
    else:
        yield "title", "标题 title", body.title
        yield "body", "正文 body", body.body


def _render_one(
    field: str, label: str, source: str, context: Mapping[str, Any], problems: list[FieldProblem]
) -> str | None:
    try:
        return _render_source(source, context)
    except _SourceFailed as failure:
        problems.append(FieldProblem(field, f"{label} {failure.detail}"))
        return None


def _wechat(
    body: WeChatTemplateBody, context: Mapping[str, Any], skip: frozenset[str]
) -> tuple[RenderedWeChat, list[FieldProblem]]:
    problems: list[FieldProblem] = []
    data: dict[str, str] = {}
    for f in body.fields:
        if f.key in skip:
            continue
        value = _render_one(f.key, f"字段 {f.key}", f.source, context, problems)
        if value is None:
            continue
        if f.truncate and len(value) > THING_MAX:
            value = truncate_thing(value)
        problem = keyword_value_problem(key=f.key, value=value)
        if problem is not None:
            problems.append(FieldProblem(f.key, problem))
            continue
        data[f.key] = value
    page = None
    if body.page and "page" not in skip:
        page = _render_one("page", "跳转页面 page", body.page, context, problems) or None
        if page is not None and any(ch.isspace() for ch in page):
            problems.append(FieldProblem("page", "跳转页面 page 不能包含空白字符"))
    return RenderedWeChat(template_id=body.template_id, page=page, data=data), problems


def _sms_length(text: str) -> int:
    # SMS carries Chinese text as UCS-2: a character outside the BMP (an emoji, a rare name
    # character) takes two units, and gateways count and bill it as two.
    return len(text.encode("utf-16-le")) // 2


def sms_segments(text: str) -> int:
    """How many SMS the phone receives (and the gateway bills) for ``text``, sign included:
    one up to 70 characters, else one per 67."""
    length = _sms_length(text)
    if length == 0:
        return 0
    if length <= SMS_SINGLE_MAX:
        return 1
    return -(-length // SMS_SEGMENT_MAX)


def _sign(sign_name: str) -> str:
    name = sign_name.strip().removeprefix("【").removesuffix("】").strip()
    if not name:
        # A setting, not template content: fail loudly rather than send unsigned messages,
        # which every gateway refuses anyway.
        raise ValueError("the SMS sign name is empty")
    return f"【{name}】"


def _sms(
    body: SmsTemplateBody,
    context: Mapping[str, Any],
    skip: frozenset[str],
    *,
    sign_name: str,
    max_chars: int,
) -> tuple[RenderedSms, list[FieldProblem]]:
    sign = _sign(sign_name)
    problems: list[FieldProblem] = []
    params: dict[str, str] = {}
    for name, source in body.params.items():
        field = f"params.{name}"
        if field in skip:
            continue
        label = f"短信参数 {name}"
        value = _render_one(field, label, source, context, problems)
        if value is None:
            continue
        if not value:
            problems.append(FieldProblem(field, f"{label} 不能为空"))
        elif any(_is_control(ch) for ch in value):
            problems.append(FieldProblem(field, f"{label} 不能包含换行或其他控制字符"))
        elif len(value) > SMS_PARAM_MAX:
            problems.append(
                FieldProblem(
                    field, f"{label} 不能超过 {SMS_PARAM_MAX} 个字符，实际 {len(value)} 个"
                )
            )
        else:
            params[name] = value
    text = sign
    placeholders = set(_PLACEHOLDER_RE.findall(body.text))
    if not problems and placeholders <= params.keys():
        # One pass over the registered text: a value containing "${x}" is not expanded again.
        text = sign + _PLACEHOLDER_RE.sub(lambda m: params[m.group(1)], body.text)
        length = _sms_length(text)
        if length > max_chars:
            problems.append(
                FieldProblem(
                    "text",
                    f"短信全文（含签名{sign}）不能超过 {max_chars} 个字符，实际 {length} 个"
                    f"（{sms_segments(text)} 条）",
                )
            )
    elif not problems:
        missing = "、".join(sorted(placeholders - params.keys()))
        problems.append(FieldProblem("text", f"短信正文中的变量 {missing} 没有对应的参数"))
    return RenderedSms(params=params, text=text, segments=sms_segments(text)), problems


def _inbox(
    body: InboxTemplateBody, context: Mapping[str, Any], skip: frozenset[str]
) -> tuple[RenderedInbox, list[FieldProblem]]:
    problems: list[FieldProblem] = []
    rendered: dict[str, str] = {}
    for field, label, source, limit in (
        ("title", "标题 title", body.title, INBOX_TITLE_MAX),
        ("body", "正文 body", body.body, INBOX_BODY_MAX),
    ):
        if field in skip:
            continue
        value = _render_one(field, label, source, context, problems)
        if value is None:
            continue
        if not value:
            problems.append(FieldProblem(field, f"{label} 不能为空"))
        elif len(value) > limit:
            problems.append(
                FieldProblem(field, f"{label} 不能超过 {limit} 个字符，实际 {len(value)} 个")
            )
        elif field == "title" and any(_is_control(ch) for ch in value):
            problems.append(FieldProblem(field, f"{label} 不能包含换行或其他控制字符"))
        else:
            rendered[field] = value
    return RenderedInbox(rendered.get("title", ""), rendered.get("body", "")), problems


def render_wechat(body: WeChatTemplateBody, context: Mapping[str, Any]) -> dict[str, str]:
    """The ``data`` of a subscription message, keyword → value (the WeChat client wraps each
    value as ``{"value": …}``). Raises :class:`RenderedValueInvalid` naming the keyword."""
    rendered, problems = _wechat(body, context, frozenset())
    _raise_first(problems)
    return rendered.data


def render_wechat_page(body: WeChatTemplateBody, context: Mapping[str, Any]) -> str | None:
    """The mini-program page the message opens (``page`` is a Jinja source too, so that it
    can carry the application id); ``None`` when the message opens nothing."""
    if not body.page:
        return None
    problems: list[FieldProblem] = []
    page = _render_one("page", "跳转页面 page", body.page, context, problems)
    _raise_first(problems)
    return page or None


def render_sms(
    body: SmsTemplateBody, context: Mapping[str, Any], *, sign_name: str, max_chars: int
) -> RenderedSms:
    """The parameters for the gateway and the text the phone will show. Raises
    :class:`RenderedValueInvalid` naming ``params.<name>`` or ``text`` (too long)."""
    rendered, problems = _sms(body, context, frozenset(), sign_name=sign_name, max_chars=max_chars)
    _raise_first(problems)
    return rendered


def render_inbox(body: InboxTemplateBody, context: Mapping[str, Any]) -> RenderedInbox:
    """The inbox title and body. Raises :class:`RenderedValueInvalid` naming the field."""
    rendered, problems = _inbox(body, context, frozenset())
    _raise_first(problems)
    return rendered


def preview(
    *,
    kind: NotificationKind,
    channel: str,
    body: TemplateBody,
    context: Mapping[str, Any] | None = None,
    sms_sign_name: str,
    sms_max_chars: int,
) -> Rendered:
    """``body`` rendered for an administrator, against ``context`` or the sample of ``kind``.

    Raises :class:`TemplateInvalid` listing every problem: those visible in the source
    (syntax, unknown variables, underscore attributes, in any branch) and those of rendering
    and of the channel's rules.
    """
    if not isinstance(body, body_model(channel)):
        raise TypeError(f"a {type(body).__name__} is not a template body for channel {channel}")
    if context is None:
        context = SAMPLE_CONTEXTS[NotificationKind(kind)]
    problems: list[FieldProblem] = []
    for field, label, source in _sources(body):
        problems += [FieldProblem(field, f"{label} {detail}") for detail in _lint(source)]
    # A field already reported is not rendered: its render error would say the same again.
    skip = frozenset(p.field for p in problems)
    rendered: Rendered
    if isinstance(body, WeChatTemplateBody):
        rendered, more = _wechat(body, context, skip)
    elif isinstance(body, SmsTemplateBody):
        rendered, more = _sms(body, context, skip, sign_name=sms_sign_name, max_chars=sms_max_chars)
    else:
        rendered, more = _inbox(body, context, skip)
    problems += more
    if problems:
        raise TemplateInvalid.of(problems)
    return rendered


def validate_template(
    *,
    kind: NotificationKind,
    channel: str,
    body: TemplateBody,
    sms_sign_name: str,
    sms_max_chars: int,
) -> None:
    """Refuse to save a template that would fail at send time: raises
    :class:`TemplateInvalid` listing every problem found against the sample of ``kind``."""
    preview(
        kind=kind,
        channel=channel,
        body=body,
        sms_sign_name=sms_sign_name,
        sms_max_chars=sms_max_chars,
    )


# --- samples -------------------------------------------------------------------------------


def _sample(
    kind: NotificationKind,
    *,
    item: str,
    code: str,
    number: str,
    application_id: str,
    applicant: str,
    at: datetime,
    **details: Any,
) -> dict[str, Any]:
    context: dict[str, Any] = {
        "kind": str(kind),
        "item": {"name": item, "code": code},
        "application": {"id": application_id, "short_id": number},
        "applicant": {"name_masked": crypto.mask_name(applicant)},
        "at": at,
        "reason": None,
        "materials": [],
        "due_date": None,
        "tolerated_until": None,
        "certificate": None,
        "outcome": None,
    }
    unknown = details.keys() - context.keys()
    assert not unknown, unknown
    context.update(details)
    return context


_K = NotificationKind

SAMPLE_CONTEXTS: Final[dict[NotificationKind, dict[str, Any]]] = {
    _K.APPLICATION_ACCEPTED: _sample(
        _K.APPLICATION_ACCEPTED,
        item="食品经营许可证核发（新办）",
        code="330106-XK-0152",
        number="WB202611230042",
        application_id="5b0f3c1e-8a2d-4e6b-9c47-1d2e3f405a61",
        applicant="张三",
        at=datetime(2026, 11, 23, 6, 9, tzinfo=UTC),
        due_date=date(2026, 12, 7),
    ),
    _K.APPLICATION_NOT_ACCEPTED: _sample(
        _K.APPLICATION_NOT_ACCEPTED,
        item="个体工商户设立登记",
        code="330106-DJ-0031",
        number="WB202611230107",
        application_id="0c6a9d52-3e41-4f8b-a2c9-7b5e1f3d8e20",
        applicant="欧阳娜娜",
        at=datetime(2026, 11, 23, 8, 30, tzinfo=UTC),
        reason="经营场所位于住宅楼内，不符合登记条件",
    ),
    _K.APPLICATION_CORRECTION_REQUESTED: _sample(
        _K.APPLICATION_CORRECTION_REQUESTED,
        item="建设工程消防验收备案",
        code="330106-QT-0210",
        number="WB202611240015",
        application_id="9e2b7c40-15d3-4a8f-b6e1-2c3d4e5f6071",
        applicant="李建国",
        at=datetime(2026, 11, 24, 2, 15, tzinfo=UTC),
        reason="竣工验收报告缺少建设单位盖章",
        materials=["工程竣工验收报告", "消防验收申请表"],
        due_date=date(2026, 11, 30),
    ),
    _K.APPLICATION_APPROVED: _sample(
        _K.APPLICATION_APPROVED,
        item="公共场所卫生许可证核发",
        code="330106-XK-0087",
        number="WB202611200233",
        application_id="2f4d6b80-a1c3-4e5f-8b7d-9c0e1f2a3b4c",
        applicant="王芳",
        at=datetime(2026, 11, 25, 7, 42, tzinfo=UTC),
        outcome="准予许可",
    ),
    _K.APPLICATION_DENIED: _sample(
        _K.APPLICATION_DENIED,
        # Longer than a thing keyword allows: the defaults' truncation is exercised on save.
        item="城镇污水排入排水管网许可证核发（新办、延续）",
        code="330106-XK-0163",
        number="WB202611180009",
        application_id="7a8b9c0d-1e2f-4a3b-8c5d-6e7f8091a2b3",
        applicant="陈思远",
        at=datetime(2026, 11, 25, 9, 5, tzinfo=UTC),
        reason="排水水质检测结果超过纳管标准",
        outcome="不予许可",
    ),
    _K.APPLICATION_COMPLETED: _sample(
        _K.APPLICATION_COMPLETED,
        item="高龄老人津贴申领",
        code="330106-GG-0012",
        number="WB202611190301",
        application_id="3c5e7a91-b2d4-4f6a-8c0e-1a3b5c7d9e02",
        applicant="赵桂兰",
        at=datetime(2026, 11, 26, 1, 20, tzinfo=UTC),
        outcome="已办结，津贴自12月起按月发放",
    ),
    _K.CERTIFICATE_ISSUED: _sample(
        _K.CERTIFICATE_ISSUED,
        item="食品经营许可证核发（新办）",
        code="330106-XK-0152",
        number="WB202611230042",
        application_id="5b0f3c1e-8a2d-4e6b-9c47-1d2e3f405a61",
        applicant="张三",
        at=datetime(2026, 12, 1, 3, 0, tzinfo=UTC),
        certificate={"type_name": "食品经营许可证", "valid_until": date(2031, 11, 30)},
    ),
    _K.SUPPLEMENT_REMINDER: _sample(
        _K.SUPPLEMENT_REMINDER,
        item="药品零售企业开办许可",
        code="330106-XK-0118",
        number="WB202611210077",
        application_id="8d9e0f1a-2b3c-4d5e-9f60-7a8b9c0d1e2f",
        applicant="Jennifer Lawrence",
        at=datetime(2026, 11, 28, 0, 0, tzinfo=UTC),
        materials=["执业药师注册证（原件）"],
        tolerated_until=date(2026, 12, 4),
    ),
    _K.RATING_INVITATION: _sample(
        _K.RATING_INVITATION,
        item="不动产登记资料查询",
        code="330106-GG-0045",
        number="WB202611260012",
        application_id="1b2c3d4e-5f60-4718-8293-a4b5c6d7e8f9",
        applicant="刘洋",
        at=datetime(2026, 11, 26, 6, 30, tzinfo=UTC),
        due_date=date(2026, 12, 10),
    ),
    _K.RECTIFICATION_REPLIED: _sample(
        _K.RECTIFICATION_REPLIED,
        item="城市道路占用挖掘许可",
        code="330106-XK-0199",
        number="WB202611050088",
        application_id="6f7a8b9c-0d1e-4f2a-b3c4-d5e6f7a8b9c0",
        applicant="孙悦",
        at=datetime(2026, 11, 27, 8, 0, tzinfo=UTC),
        outcome="已整改：窗口增设帮办代办专员，现场等候时间缩短至15分钟以内",
    ),
}
"""A realistic context per kind, used to validate templates on save and for admin previews."""


# --- defaults ------------------------------------------------------------------------------

_ITEM = ("thing1", "{{ item.name }}", True)
_NUMBER = ("character_string2", "{{ application.short_id }}", False)
_APPLICATION_PAGE = "pages/applications/detail?id={{ application.id }}"
_OR_DETAILS = "详见办件详情"

# kind → (page, [(keyword, source, truncate)])
_WECHAT_DEFAULTS: Final[dict[NotificationKind, tuple[str, list[tuple[str, str, bool]]]]] = {
    _K.APPLICATION_ACCEPTED: (
        _APPLICATION_PAGE,
        [
            _ITEM,
            _NUMBER,
            ("phrase3", "已受理", False),
            ("time4", "{{ at|wechat_time }}", False),
            (
                "thing5",
                "{% if due_date %}预计{{ due_date|wechat_date }}前办结"
                "{% else %}可在小程序查看办理进度{% endif %}",
                True,
            ),
        ],
    ),
    _K.APPLICATION_NOT_ACCEPTED: (
        _APPLICATION_PAGE,
        [
            _ITEM,
            _NUMBER,
            ("phrase3", "不予受理", False),
            ("thing4", f"{{{{ reason or '{_OR_DETAILS}' }}}}", True),
            ("time5", "{{ at|wechat_time }}", False),
        ],
    ),
    _K.APPLICATION_CORRECTION_REQUESTED: (
        _APPLICATION_PAGE,
        [
            _ITEM,
            _NUMBER,
            ("thing3", f"{{{{ materials|join('、') or '{_OR_DETAILS}' }}}}", True),
            (
                "thing4",
                "{% if due_date %}请于{{ due_date|wechat_date }}前补正"
                "{% else %}请尽快补正{% endif %}",
                True,
            ),
            ("thing5", "{{ reason or '请按要求补正后重新提交' }}", True),
        ],
    ),
    _K.APPLICATION_APPROVED: (
        _APPLICATION_PAGE,
        [
            _ITEM,
            _NUMBER,
            ("phrase3", "审批通过", False),
            ("time4", "{{ at|wechat_time }}", False),
            ("thing5", "请留意办结及证照领取通知", False),
        ],
    ),
    _K.APPLICATION_DENIED: (
        _APPLICATION_PAGE,
        [
            _ITEM,
            _NUMBER,
            ("phrase3", "不予许可", False),
            ("thing4", f"{{{{ reason or '{_OR_DETAILS}' }}}}", True),
            ("time5", "{{ at|wechat_time }}", False),
        ],
    ),
    _K.APPLICATION_COMPLETED: (
        _APPLICATION_PAGE,
        [
            _ITEM,
            _NUMBER,
            ("phrase3", "已办结", False),
            ("time4", "{{ at|wechat_time }}", False),
            ("thing5", "欢迎对本次服务进行评价", False),
        ],
    ),
    _K.CERTIFICATE_ISSUED: (
        "pages/certificates/index",
        [
            ("thing1", "{{ certificate.type_name }}", True),
            ("thing2", "{{ item.name }}", True),
            ("time3", "{{ at|wechat_time }}", False),
            (
                "thing4",
                "{% if certificate.valid_until %}有效期至{{ certificate.valid_until|wechat_date }}"
                "{% else %}长期有效{% endif %}",
                True,
            ),
            ("thing5", "可在“我的证照”中查看和出示", False),
        ],
    ),
    _K.SUPPLEMENT_REMINDER: (
        _APPLICATION_PAGE,
        [
            _ITEM,
            _NUMBER,
            ("thing3", f"{{{{ materials|join('、') or '{_OR_DETAILS}' }}}}", True),
            ("date4", "{{ tolerated_until|wechat_date }}", False),
            ("thing5", "逾期未补交将影响办理结果", False),
        ],
    ),
    _K.RATING_INVITATION: (
        "pages/ratings/new?application={{ application.id }}",
        [
            _ITEM,
            _NUMBER,
            ("time3", "{{ at|wechat_time }}", False),
            ("thing4", "诚邀您对本次服务进行“好差评”", False),
        ],
    ),
    _K.RECTIFICATION_REPLIED: (
        _APPLICATION_PAGE,
        [
            _ITEM,
            _NUMBER,
            ("phrase3", "已回复", False),
            ("thing4", "{{ outcome or reason or '详见整改回复' }}", True),
            ("time5", "{{ at|wechat_time }}", False),
        ],
    ),
}

_SMS_ITEM = "{{ item.name|clip(20) }}"
_SMS_NUMBER = "{{ application.short_id }}"
_SMS_MATERIALS = f"{{{{ materials|join('、')|clip(30) or '{_OR_DETAILS}' }}}}"
_SMS_REASON = f"{{{{ reason|clip(30) if reason else '{_OR_DETAILS}' }}}}"

# kind → (registered text, params)
_SMS_DEFAULTS: Final[dict[NotificationKind, tuple[str, dict[str, str]]]] = {
    _K.APPLICATION_ACCEPTED: (
        "${name}，您申请的“${item}”已受理，办件编号${number}，${progress}。"
        "可在小程序查看办理进度。",
        {
            "name": "{{ applicant.name_masked or '申请人' }}",
            "item": _SMS_ITEM,
            "number": _SMS_NUMBER,
            "progress": "{% if due_date %}预计{{ due_date|wechat_date }}前办结"
            "{% else %}请留意后续通知{% endif %}",
        },
    ),
    _K.APPLICATION_NOT_ACCEPTED: (
        "您申请的“${item}”（办件编号${number}）不予受理，原因：${reason}。详情请在小程序查看。",
        {"item": _SMS_ITEM, "number": _SMS_NUMBER, "reason": _SMS_REASON},
    ),
    _K.APPLICATION_CORRECTION_REQUESTED: (
        "您申请的“${item}”（办件编号${number}）需补正材料：${materials}，${deadline}。"
        "请在小程序提交。",
        {
            "item": _SMS_ITEM,
            "number": _SMS_NUMBER,
            "materials": _SMS_MATERIALS,
            "deadline": "{% if due_date %}请于{{ due_date|wechat_date }}前补正"
            "{% else %}请尽快补正{% endif %}",
        },
    ),
    _K.APPLICATION_APPROVED: (
        "您申请的“${item}”（办件编号${number}）已审批通过，请留意办结及证照领取通知。",
        {"item": _SMS_ITEM, "number": _SMS_NUMBER},
    ),
    _K.APPLICATION_DENIED: (
        "您申请的“${item}”（办件编号${number}）经审查不予许可，原因：${reason}。"
        "如有异议，可依法申请行政复议或提起行政诉讼。",
        {"item": _SMS_ITEM, "number": _SMS_NUMBER, "reason": _SMS_REASON},
    ),
    _K.APPLICATION_COMPLETED: (
        "您申请的“${item}”（办件编号${number}）已办结，欢迎在小程序对本次服务进行评价。",
        {"item": _SMS_ITEM, "number": _SMS_NUMBER},
    ),
    _K.CERTIFICATE_ISSUED: (
        "您的${certificate}已签发，${validity}，可在小程序“我的证照”中查看和出示。",
        {
            "certificate": "{{ certificate.type_name|clip(20) }}",
            "validity": "{% if certificate.valid_until %}有效期至"
            "{{ certificate.valid_until|wechat_date }}{% else %}长期有效{% endif %}",
        },
    ),
    _K.SUPPLEMENT_REMINDER: (
        "您申请的“${item}”（办件编号${number}）有容缺材料待补交：${materials}，"
        "请于${deadline}前补交，逾期将影响办理结果。",
        {
            "item": _SMS_ITEM,
            "number": _SMS_NUMBER,
            "materials": _SMS_MATERIALS,
            "deadline": "{{ tolerated_until|wechat_date }}",
        },
    ),
    _K.RATING_INVITATION: (
        "您申请的“${item}”（办件编号${number}）已办结，诚邀您在小程序对本次服务进行“好差评”。",
        {"item": _SMS_ITEM, "number": _SMS_NUMBER},
    ),
    _K.RECTIFICATION_REPLIED: (
        "您对“${item}”的评价已有整改回复：${reply}。详情请在小程序查看。",
        {"item": _SMS_ITEM, "reply": "{{ (outcome or reason or '详见整改回复')|clip(30) }}"},
    ),
}

_GREETING = "{{ applicant.name_masked or '申请人' }}，您好：\n"
_YOUR_APPLICATION = "您申请的“{{ item.name }}”（办件编号 {{ application.short_id }}）"

# kind → (title prefix, body)
_INBOX_DEFAULTS: Final[dict[NotificationKind, tuple[str, str]]] = {
    _K.APPLICATION_ACCEPTED: (
        "已受理",
        _GREETING + _YOUR_APPLICATION + "已于{{ at|wechat_time }}受理。"
        "{% if due_date %}承诺办结日期为{{ due_date|wechat_date }}。{% endif %}\n"
        "您可在“我的办件”中随时查看办理进度。",
    ),
    _K.APPLICATION_NOT_ACCEPTED: (
        "不予受理",
        _GREETING + _YOUR_APPLICATION + "经审查不予受理。\n"
        f"原因：{{{{ reason or '{_OR_DETAILS}' }}}}\n"
        "如有疑问，请联系办理窗口。",
    ),
    _K.APPLICATION_CORRECTION_REQUESTED: (
        "需补正材料",
        _GREETING + _YOUR_APPLICATION + "需要补正材料。\n"
        f"需补正：{{{{ materials|join('、')|clip(200) or '{_OR_DETAILS}' }}}}\n"
        "{% if reason %}说明：{{ reason|clip(150) }}\n{% endif %}"
        "{% if due_date %}请于{{ due_date|wechat_date }}前提交补正材料。"
        "{% else %}请尽快提交补正材料。{% endif %}",
    ),
    _K.APPLICATION_APPROVED: (
        "审批通过",
        _GREETING + _YOUR_APPLICATION + "已于{{ at|wechat_time }}审批通过"
        "{% if outcome %}（{{ outcome|clip(30) }}）{% endif %}。\n"
        "后续办结及证照领取将另行通知。",
    ),
    _K.APPLICATION_DENIED: (
        "不予许可",
        _GREETING + _YOUR_APPLICATION + "经审查决定不予许可。\n"
        f"原因：{{{{ reason|clip(200) if reason else '{_OR_DETAILS}' }}}}\n"
        "如对决定有异议，可依法申请行政复议或者提起行政诉讼。",
    ),
    _K.APPLICATION_COMPLETED: (
        "已办结",
        _GREETING + _YOUR_APPLICATION + "已于{{ at|wechat_time }}办结。"
        "{% if outcome %}\n办理结果：{{ outcome|clip(150) }}{% endif %}\n"
        "欢迎对本次服务进行评价，您的意见将帮助我们改进。",
    ),
    _K.CERTIFICATE_ISSUED: (
        "证照已签发",
        _GREETING + "您的{{ certificate.type_name }}已于{{ at|wechat_time }}签发"
        "（办理事项：{{ item.name }}），"
        "{% if certificate.valid_until %}有效期至{{ certificate.valid_until|wechat_date }}"
        "{% else %}长期有效{% endif %}。\n"
        "电子证照可在“我的证照”中查看和出示。",
    ),
    _K.SUPPLEMENT_REMINDER: (
        "容缺材料待补交",
        _GREETING + _YOUR_APPLICATION + "以容缺方式受理，以下材料尚待补交：\n"
        f"{{{{ materials|join('、')|clip(200) or '{_OR_DETAILS}' }}}}\n"
        "请于{{ tolerated_until|wechat_date }}前补交，逾期未补交将影响办理结果。",
    ),
    _K.RATING_INVITATION: (
        "邀请您评价",
        _GREETING + _YOUR_APPLICATION + "已办结。诚邀您对本次服务进行“好差评”"
        "{% if due_date %}（{{ due_date|wechat_date }}前有效）{% endif %}，"
        "您的评价将帮助我们改进服务。",
    ),
    _K.RECTIFICATION_REPLIED: (
        "整改已回复",
        _GREETING + "您对“{{ item.name }}”的评价已有整改回复：\n"
        "{{ (outcome or '详见整改回复')|clip(200) }}\n"
        "{% if reason %}说明：{{ reason|clip(150) }}\n{% endif %}"
        "如仍不满意，可在“我的评价”中继续反馈。",
    ),
}


def _default_templates() -> list[tuple[NotificationKind, Channel, TemplateBody]]:
    defaults: list[tuple[NotificationKind, Channel, TemplateBody]] = []
    for number, kind in enumerate(NotificationKind, start=1):
        page, fields = _WECHAT_DEFAULTS[kind]
        defaults.append(
            (
                kind,
                "wechat",
                WeChatTemplateBody(
                    template_id="tmpl-" + kind.value.replace(".", "-").replace("_", "-"),
                    page=page,
                    fields=[WeChatField(key=k, source=s, truncate=t) for k, s, t in fields],
                ),
            )
        )
        text, params = _SMS_DEFAULTS[kind]
        defaults.append(
            (
                kind,
                "sms",
                SmsTemplateBody(template_code=f"SMS_WB_{number:04d}", text=text, params=params),
            )
        )
        prefix, body = _INBOX_DEFAULTS[kind]
        # The item name fills what the 40-character title has left after the prefix.
        room = INBOX_TITLE_MAX - len(prefix) - 1
        title = f"{prefix}：{{{{ item.name|clip({room}) }}}}"
        defaults.append((kind, "inbox", InboxTemplateBody(title=title, body=body)))
    return defaults


DEFAULT_TEMPLATES: Final[list[tuple[NotificationKind, Channel, TemplateBody]]] = (
    _default_templates()
)
"""A Chinese default for every kind on every channel. The WeChat template ids and SMS codes
are placeholders: each deployment registers its own and edits them in."""
