"""Rendering a template body: at send time (:func:`render_wechat`, :func:`render_sms`,
:func:`render_inbox`, raising :class:`RenderedValueInvalid` naming the field), and for an
administrator (:func:`preview`, and :func:`validate_template` on save, raising
:class:`TemplateInvalid` with every problem). The rules of each channel for a rendered value
are applied here: WeChat keyword rules, SMS parameters and length, inbox lengths."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

from notify_service.templates.bodies import (
    PLACEHOLDER_RE,
    InboxTemplateBody,
    SmsTemplateBody,
    TemplateBody,
    WeChatTemplateBody,
    body_model,
)
from notify_service.templates.kinds import (
    INBOX_BODY_MAX,
    INBOX_TITLE_MAX,
    SMS_PARAM_MAX,
    SMS_SEGMENT_MAX,
    SMS_SINGLE_MAX,
    NotificationKind,
)
from notify_service.templates.problems import FieldProblem, RenderedValueInvalid, TemplateInvalid
from notify_service.templates.samples import SAMPLE_CONTEXTS
from notify_service.templates.sandbox import SourceFailed, lint, render_source
from notify_service.templates.wechat_rules import (
    THING_MAX,
    is_control,
    keyword_value_problem,
    truncate_thing,
)


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


def _raise_first(problems: Sequence[FieldProblem]) -> None:
    if problems:
        first = problems[0]
        raise RenderedValueInvalid(first.field, first.message)


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
        return render_source(source, context)
    except SourceFailed as failure:
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
        elif any(is_control(ch) for ch in value):
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
    placeholders = set(PLACEHOLDER_RE.findall(body.text))
    if not problems and placeholders <= params.keys():
        # One pass over the registered text: a value containing "${x}" is not expanded again.
        text = sign + PLACEHOLDER_RE.sub(lambda m: params[m.group(1)], body.text)
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
        elif field == "title" and any(is_control(ch) for ch in value):
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
        problems += [FieldProblem(field, f"{label} {detail}") for detail in lint(source)]
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
