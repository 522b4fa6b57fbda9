"""Notification templates, without a database: WeChat keyword rules, thing truncation, the
sandbox, save-time validation that lists every problem, send-time failures that name the field,
SMS placeholders and length, masking, and the default set."""

from __future__ import annotations

import json
import re
import unicodedata
from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from notify_service import templates as t
from notify_service.templates import (
    DEFAULT_TEMPLATES,
    SAMPLE_CONTEXTS,
    FieldProblem,
    InboxTemplateBody,
    NotificationKind,
    RenderedInbox,
    RenderedSms,
    RenderedValueInvalid,
    RenderedWeChat,
    SmsTemplateBody,
    TemplateInvalid,
    WeChatField,
    WeChatTemplateBody,
    keyword_value_problem,
    parse_body,
    preview,
    render_inbox,
    render_sms,
    render_wechat,
    render_wechat_page,
    sandbox,
    sms_segments,
    truncate_thing,
    validate_template,
)
from wangban.crypto import mask_name

SIGN = "杭州市政务服务网"
MAX_CHARS = 210
ACCEPTED = NotificationKind.APPLICATION_ACCEPTED
CONTEXT = SAMPLE_CONTEXTS[ACCEPTED]


def wechat(
    *fields: tuple[str, str] | tuple[str, str, bool], page: str | None = None
) -> WeChatTemplateBody:
    """A WeChat body from ``(key, source[, truncate])`` tuples."""
    return WeChatTemplateBody(
        template_id="tmpl-test",
        page=page,
        fields=[WeChatField(key=f[0], source=f[1], truncate=f[-1] is True) for f in fields],
    )


def sms(text: str, **params: str) -> SmsTemplateBody:
    return SmsTemplateBody(template_code="SMS_TEST", text=text, params=params)


def save(channel: t.Channel, body: t.TemplateBody, *, max_chars: int = MAX_CHARS) -> None:
    validate_template(
        kind=ACCEPTED, channel=channel, body=body, sms_sign_name=SIGN, sms_max_chars=max_chars
    )


def refused(channel: t.Channel, body: t.TemplateBody, *, max_chars: int = MAX_CHARS) -> list:
    with pytest.raises(TemplateInvalid) as caught:
        save(channel, body, max_chars=max_chars)
    return caught.value.problems


# --- kinds ---------------------------------------------------------------------------------


def test_every_kind_has_a_chinese_label_and_a_sample() -> None:
    assert {k.value for k in NotificationKind} == {
        "application.accepted",
        "application.not_accepted",
        "application.correction_requested",
        "application.approved",
        "application.denied",
        "certificate.issued",
        "supplement.reminder",
        "rectification.replied",
    }
    for kind in NotificationKind:
        assert re.search(r"[\u4e00-\u9fff]", kind.label)
        assert SAMPLE_CONTEXTS[kind]["kind"] == kind.value


# --- WeChat keyword rules ------------------------------------------------------------------

VALID = [
    ("thing1", "食品经营许可证核发（新办）"),
    ("thing1", "a" * 20),
    ("number2", "42"),
    ("number2", "-3.14"),
    ("number2", "1" * 32),
    ("letter3", "ABCxyz"),
    ("symbol4", "★-+"),
    ("symbol4", "…？"),
    ("character_string5", "WB202611230042"),
    ("character_string5", "A-1_b/2#" + "9" * 24),
    ("time6", "15:01"),
    ("time6", "2019年10月1日 15:01"),
    ("time6", "2019-10-01 15:01"),
    ("time6", "2019年10月1日15:01"),
    ("time6", "15:01~16:30"),
    ("date7", "2019年10月1日"),
    ("date7", "2019-10-01"),
    ("date7", "2019年10月1日 15:01"),
    ("date7", "2019年10月1日~2019年10月7日"),
    ("amount8", "¥1234.50"),
    ("amount8", "1234567890元"),
    ("amount8", "0.5"),
    ("phone_number9", "+86-0571-88808880"),
    ("phone_number9", "138****1234"),
    ("car_number10", "粤A8Z888挂"),
    ("car_number10", "浙A12345"),
    ("name11", "张*"),
    ("name11", "欧阳娜娜"),
    ("name11", "买买提·艾力"),
    ("name11", "J***"),
    ("name11", "Jennifer Lawrence"),
    ("phrase12", "已受理"),
    ("phrase12", "货物配送中"),
    ("number01", "339208499"),  # WeChat's own example writes keys with a leading zero
]

INVALID = [
    ("thing1", "a" * 21, "不能超过 20 个字符，实际 21 个"),
    ("thing1", "第一行\n第二行", "控制字符"),
    ("number2", "12a", "只能是数字"),
    ("number2", "1.2.3", "只能是数字"),
    ("number2", "1" * 33, "不能超过 32 位数字，实际 33 位"),
    ("letter3", "abc1", "只能是英文字母"),
    ("letter3", "a" * 33, "不能超过 32 个字母"),
    ("symbol4", "abc", "只能是符号"),
    ("symbol4", "!!!!!!", "不能超过 5 个符号，实际 6 个"),
    ("character_string5", "办件WB1", "不能有汉字"),
    ("character_string5", "AB 12", "不能有汉字或空格"),
    ("character_string5", "x" * 33, "不能超过 32 个字符"),
    ("time6", "3pm", "24 小时制时间"),
    ("time6", "25:01", "24 小时制时间"),
    ("time6", "2019年10月1日", "24 小时制时间"),
    ("time6", "2019/10/01 15:01", "24 小时制时间"),
    ("date7", "15:01", "应为日期"),
    ("date7", "2019年2月30日", "应为日期"),
    ("date7", "十月一日", "应为日期"),
    ("amount8", "12345678901", "应为金额"),
    ("amount8", "1.234", "应为金额"),
    ("amount8", "一百元", "应为金额"),
    ("phone_number9", "0571-8880888a", "只能是数字和符号"),
    ("phone_number9", "1" * 18, "不能超过 17 位，实际 18 位"),
    ("car_number10", "粤A8Z8888挂", "不能超过 8 个字符，实际 9 个"),
    ("car_number10", "A粤8Z888", "应为车牌号"),
    ("name11", "张三1", "只能是汉字、字母或符号"),
    ("name11", "张" * 11, "中文姓名不能超过 10 个字"),
    ("name11", "A" * 21, "英文姓名不能超过 20 个字符"),
    ("phrase12", "OK", "只能是汉字"),
    ("phrase12", "审批已经通过了", "不能超过 5 个汉字，实际 7 个"),
]


@pytest.mark.parametrize(("key", "value"), VALID)
def test_keyword_rule_accepts(key: str, value: str) -> None:
    assert keyword_value_problem(key=key, value=value) is None
    # Through rendering too: a literal source renders to itself.
    assert render_wechat(wechat((key, value)), CONTEXT) == {key: value}


@pytest.mark.parametrize(("key", "value", "rule"), INVALID)
def test_keyword_rule_refuses(key: str, value: str, rule: str) -> None:
    problem = keyword_value_problem(key=key, value=value)
    assert problem is not None
    kind = t.keyword_type(key)
    assert problem.startswith(f"字段 {key}（{kind}）")
    assert rule in problem
    with pytest.raises(RenderedValueInvalid) as caught:
        render_wechat(wechat((key, "{{ value }}")), {**CONTEXT, "value": value})
    assert caught.value.field == key
    assert rule in caught.value.message


@pytest.mark.parametrize("kind", t.KEYWORD_TYPES)
def test_empty_value_refused_for_every_type(kind: str) -> None:
    assert keyword_value_problem(key=f"{kind}1", value="") == f"字段 {kind}1（{kind}）不能为空"
    # None renders as "", so a missing optional value is refused rather than sent as "None".
    with pytest.raises(RenderedValueInvalid) as caught:
        render_wechat(wechat((f"{kind}1", "{{ reason }}")), CONTEXT)
    assert caught.value.field == f"{kind}1"
    assert "不能为空" in caught.value.message


def test_the_message_names_field_type_rule_and_length() -> None:
    assert (
        keyword_value_problem(key="thing1", value="一" * 23)
        == "字段 thing1（thing）不能超过 20 个字符，实际 23 个"
    )


@pytest.mark.parametrize("key", ["keyword1", "thing", "Thing1", "thing_1", "const1", "1thing"])
def test_a_key_must_be_a_wechat_keyword(key: str) -> None:
    with pytest.raises(ValidationError, match="不是微信订阅消息的关键词"):
        WeChatField(key=key, source="x")


def test_keys_are_unique() -> None:
    with pytest.raises(ValidationError, match="关键词重复：thing1"):
        wechat(("thing1", "a"), ("time2", "15:01"), ("thing1", "b"))


# --- thing truncation ----------------------------------------------------------------------


def test_a_long_thing_is_truncated_only_where_allowed() -> None:
    long_name = "城镇污水排入排水管网许可证核发（新办、延续）"
    assert len(long_name) > 20
    context = {**CONTEXT, "item": {"name": long_name, "code": "X"}}

    data = render_wechat(wechat(("thing1", "{{ item.name }}", True)), context)
    assert len(data["thing1"]) <= 20
    assert data["thing1"].endswith("…")
    assert long_name.startswith(data["thing1"][:-1])

    with pytest.raises(RenderedValueInvalid) as caught:
        render_wechat(wechat(("thing1", "{{ item.name }}")), context)
    assert caught.value.field == "thing1"
    assert f"实际 {len(long_name)} 个" in caught.value.message


def test_a_short_thing_is_left_alone() -> None:
    data = render_wechat(wechat(("thing1", "{{ item.name }}", True)), CONTEXT)
    assert data["thing1"] == CONTEXT["item"]["name"]


@pytest.mark.parametrize(
    "value",
    [
        "一" * 18 + "e\u0301" + "尾巴",  # e + combining acute across the cut
        "一" * 18 + "\U0001f468\u200d\U0001f469\u200d\U0001f467" + "尾巴",  # ZWJ family emoji
        "一" * 18 + "\U0001f44d\U0001f3fd" + "尾巴",  # thumbs up + skin tone
        "\U00020000" * 25,  # characters outside the BMP (surrogate pairs in UTF-16)
    ],
)
def test_truncation_never_leaves_half_a_character(value: str) -> None:
    cut = truncate_thing(value)
    assert len(cut) <= 20
    assert cut.endswith("…")
    kept = cut[:-1]
    assert value.startswith(kept)
    following = value[len(kept)]
    # What was dropped starts a new character: no mark, joiner or modifier was cut off it.
    assert not unicodedata.combining(following)
    assert following not in ("\u200d", "\U0001f3fd")
    assert not kept.endswith("\u200d")
    assert keyword_value_problem(key="thing1", value=cut) is None


def test_truncate_on_a_non_thing_field_is_refused_at_save() -> None:
    with pytest.raises(ValidationError, match="只有 thing 类型的字段可以自动截断，time2 是 time"):
        WeChatField(key="time2", source="{{ at|wechat_time }}", truncate=True)
    with pytest.raises(TemplateInvalid) as caught:
        parse_body(
            channel="wechat",
            body={
                "template_id": "tmpl-x",
                "fields": [{"key": "character_string2", "source": "x", "truncate": True}],
            },
        )
    [problem] = caught.value.problems
    assert problem.field == "fields.0"
    assert "character_string2" in problem.message


# --- save-time validation ------------------------------------------------------------------


def test_an_unknown_variable_is_refused_naming_the_field() -> None:
    problems = refused("wechat", wechat(("thing1", "{{ item.name }}"), ("thing2", "{{ itme }}")))
    assert [p.field for p in problems] == ["thing2"]
    assert "未知变量：itme" in problems[0].message


def test_an_unknown_variable_in_a_branch_the_sample_does_not_take_is_refused() -> None:
    body = wechat(("thing1", "{% if reason %}{{ resaon }}{% else %}无{% endif %}"))
    assert CONTEXT["reason"] is None
    [problem] = refused("wechat", body)
    assert problem.field == "thing1"
    assert "resaon" in problem.message


def test_an_unknown_attribute_is_refused_naming_the_field() -> None:
    [problem] = refused("inbox", InboxTemplateBody(title="{{ item.title }}", body="正文"))
    assert problem.field == "title"
    assert "title" in problem.message and "不存在" in problem.message


def test_a_syntax_error_is_refused_naming_the_field() -> None:
    [problem] = refused("inbox", InboxTemplateBody(title="标题", body="第一行\n{% if x %}"))
    assert problem.field == "body"
    assert problem.message.startswith("正文 body 模板语法错误（第 2 行）")


def test_every_problem_is_listed_at_once() -> None:
    body = wechat(
        ("thing1", "{{ nope }}"),
        ("time2", "{{ at|wechat_date }}"),  # a date where a time is required
        ("phrase3", "{% if %}"),
        ("character_string4", "{{ application.short_id }}"),
    )
    with pytest.raises(TemplateInvalid) as caught:
        save("wechat", body)
    assert [p.field for p in caught.value.problems] == ["thing1", "phrase3", "time2"]
    body_json = caught.value.to_body(instance=None, request_id=None)
    assert body_json["type"] == "urn:wangban:problem:template-invalid"
    assert body_json["status"] == 422
    assert body_json["problems"][0] == {
        "field": "thing1",
        "message": caught.value.problems[0].message,
    }
    assert "模板有 3 处问题" in (caught.value.detail or "")


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ ''['__class__'] }}",
        "{{ ''|attr('__class__') }}",
        "{{ cycler.__init__.__globals__ }}",
        "{% if false %}{{ item.__class__ }}{% endif %}",
    ],
)
def test_a_sandbox_escape_is_refused_at_save(source: str) -> None:
    [problem] = refused("wechat", wechat(("thing1", source)))
    assert problem.field == "thing1"
    assert "下划线" in problem.message


@pytest.mark.parametrize(
    "source",
    ["{{ ''.__class__.__mro__ }}", "{{ ''|attr('__class__') }}", "{{ materials.append('x') }}"],
)
def test_the_sandbox_refuses_at_send_time_too(source: str) -> None:
    with pytest.raises(RenderedValueInvalid) as caught:
        render_wechat(wechat(("thing1", source)), CONTEXT)
    assert caught.value.field == "thing1"
    assert "沙箱" in caught.value.message
    assert CONTEXT["materials"] == []  # the shared sample was not changed


@pytest.mark.parametrize(
    "source",
    ["{{ 'x' * 100000 }}", "{{ [1, 2] * 5000 }}", "{{ 9 ** 1000 }}", "{{ '%9999s' % 1 }}"],
)
def test_memory_bombs_are_refused(source: str) -> None:
    [problem] = refused("wechat", wechat(("thing1", source)))
    assert "沙箱" in problem.message


def test_autoescape_is_off() -> None:
    context = {**CONTEXT, "item": {"name": "A&B <公司>", "code": "X"}}
    assert render_wechat(wechat(("thing1", "{{ item.name }}")), context) == {"thing1": "A&B <公司>"}


# --- filters -------------------------------------------------------------------------------


def test_times_are_shown_in_china_time() -> None:
    at = datetime(2026, 11, 23, 22, 9, tzinfo=UTC)  # already 24 November in China
    body = wechat(
        ("time1", "{{ at|wechat_time }}"),
        ("date2", "{{ at|wechat_date }}"),
        ("date3", "{{ at|iso_date }}"),
        ("date4", "{{ due_date|wechat_date }}"),
    )
    data = render_wechat(body, {**CONTEXT, "at": at, "due_date": date(2026, 1, 5)})
    assert data == {
        "time1": "2026年11月24日 06:09",
        "date2": "2026年11月24日",
        "date3": "2026-11-24",
        "date4": "2026年1月5日",
    }
    other_zone = at.astimezone(timezone(timedelta(hours=-5)))
    assert render_wechat(wechat(("time1", "{{ at|wechat_time }}")), {**CONTEXT, "at": other_zone})[
        "time1"
    ] == ("2026年11月24日 06:09")


def test_a_naive_time_is_refused_rather_than_guessed() -> None:
    with pytest.raises(RenderedValueInvalid) as caught:
        render_wechat(
            wechat(("time4", "{{ at|wechat_time }}")), {**CONTEXT, "at": datetime(2026, 11, 23)}
        )
    assert caught.value.field == "time4"
    assert "带时区" in caught.value.message


def test_clip_cuts_to_length() -> None:
    body = InboxTemplateBody(title="{{ item.name|clip(8) }}", body="{{ reason|clip(5) }}x")
    rendered = render_inbox(
        body, {**CONTEXT, "item": {"name": "一二三四五六七八九十", "code": "X"}}
    )
    assert rendered == RenderedInbox(title="一二三四五六七…", body="x")


# --- send-time failures --------------------------------------------------------------------


def test_render_time_failures_name_the_field() -> None:
    no_due_date = {**CONTEXT, "due_date": None}
    with pytest.raises(RenderedValueInvalid) as caught:
        render_wechat(wechat(("date4", "{{ due_date|wechat_date }}")), no_due_date)
    assert caught.value.field == "date4"
    assert "wechat_date" in caught.value.message

    with pytest.raises(RenderedValueInvalid) as caught:
        render_sms(
            sms("截止${due}", due="{{ due_date|wechat_date }}"),
            no_due_date,
            sign_name=SIGN,
            max_chars=MAX_CHARS,
        )
    assert caught.value.field == "params.due"

    with pytest.raises(RenderedValueInvalid) as caught:
        render_inbox(InboxTemplateBody(title="标题", body="{{ certificate.type_name }}"), CONTEXT)
    assert caught.value.field == "body"

    with pytest.raises(RenderedValueInvalid) as caught:
        render_wechat_page(
            wechat(("thing1", "x"), page="pages/x?id={{ application.nope }}"), CONTEXT
        )
    assert caught.value.field == "page"


def test_a_missing_context_key_fails_at_send_time_naming_the_field() -> None:
    context = {k: v for k, v in CONTEXT.items() if k != "applicant"}
    with pytest.raises(RenderedValueInvalid) as caught:
        render_inbox(InboxTemplateBody(title="{{ applicant.name_masked }}", body="x"), context)
    assert caught.value.field == "title"
    assert "applicant" in caught.value.message


def test_the_page_is_rendered() -> None:
    body = wechat(("thing1", "x"), page="pages/applications/detail?id={{ application.id }}")
    assert render_wechat_page(body, CONTEXT) == (
        f"pages/applications/detail?id={CONTEXT['application']['id']}"
    )
    assert render_wechat_page(wechat(("thing1", "x")), CONTEXT) is None


# --- SMS -----------------------------------------------------------------------------------


def test_sms_renders_params_and_full_text() -> None:
    body = sms(
        "您申请的“${item}”已受理，办件编号${number}。",
        item="{{ item.name }}",
        number="{{ application.short_id }}",
    )
    rendered = render_sms(body, CONTEXT, sign_name=f"【{SIGN}】", max_chars=MAX_CHARS)
    assert rendered.params == {"item": "食品经营许可证核发（新办）", "number": "WB202611230042"}
    assert (
        rendered.text
        == f"【{SIGN}】您申请的“食品经营许可证核发（新办）”已受理，办件编号WB202611230042。"
    )
    assert rendered.segments == 1
    assert rendered.length == len(rendered.text)


def test_a_param_value_is_not_expanded_again() -> None:
    body = sms("${a}和${b}", a="{{ '${b}' }}", b="乙")
    assert (
        render_sms(body, CONTEXT, sign_name=SIGN, max_chars=MAX_CHARS).text
        == f"【{SIGN}】${{b}}和乙"
    )


@pytest.mark.parametrize(
    ("text", "params", "message"),
    [
        ("您好${name}，${item}已受理", {"name": "x"}, "正文中的变量 item 没有对应的参数"),
        ("您好${name}", {"name": "x", "extra": "y"}, "参数 extra 在正文中没有对应的变量"),
        ("您好${ name }", {}, "无法识别的占位符"),
        ("您好${1name}", {}, "无法识别的占位符"),
    ],
)
def test_sms_placeholder_param_mismatch_is_refused(
    text: str, params: dict[str, str], message: str
) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        SmsTemplateBody(template_code="SMS_X", text=text, params=params)
    with pytest.raises(TemplateInvalid) as caught:
        parse_body(channel="sms", body={"template_code": "SMS_X", "text": text, "params": params})
    [problem] = caught.value.problems
    assert problem.field == "params"
    assert message in problem.message


def test_a_long_sms_param_is_refused_naming_it() -> None:
    body = sms("回复：${reply}", reply="{{ outcome }}")
    context = {
        **CONTEXT,
        "outcome": "已整改：窗口增设帮办代办专员，对全体窗口人员开展服务规范培训，并公开监督电话",
    }
    assert len(context["outcome"]) > 35
    with pytest.raises(RenderedValueInvalid) as caught:
        render_sms(body, context, sign_name=SIGN, max_chars=MAX_CHARS)
    assert caught.value.field == "params.reply"
    assert f"不能超过 35 个字符，实际 {len(context['outcome'])} 个" in caught.value.message


def test_an_empty_sms_param_is_refused() -> None:
    [problem] = refused("sms", sms("原因：${reason}", reason="{{ reason }}"))
    assert problem == FieldProblem("params.reason", "短信参数 reason 不能为空")


def test_a_too_long_sms_is_refused_with_its_length() -> None:
    body = sms("您申请的“${item}”已受理。", item="{{ item.name }}")
    full = f"【{SIGN}】您申请的“{CONTEXT['item']['name']}”已受理。"
    [problem] = refused("sms", body, max_chars=len(full) - 1)
    assert problem.field == "text"
    assert f"不能超过 {len(full) - 1} 个字符，实际 {len(full)} 个" in problem.message
    save("sms", body, max_chars=len(full))


@pytest.mark.parametrize(
    ("length", "segments"), [(0, 0), (1, 1), (70, 1), (71, 2), (134, 2), (135, 3), (210, 4)]
)
def test_sms_segments(length: int, segments: int) -> None:
    assert sms_segments("字" * length) == segments


def test_an_emoji_counts_twice_in_an_sms() -> None:
    assert sms_segments("字" * 69 + "\U0001f600") == 2


# --- inbox ---------------------------------------------------------------------------------


def test_inbox_limits() -> None:
    [problem] = refused("inbox", InboxTemplateBody(title="题" * 41, body="正文"))
    assert problem == FieldProblem("title", "标题 title 不能超过 40 个字符，实际 41 个")
    [problem] = refused("inbox", InboxTemplateBody(title="标题", body="{{ 'x' * 501 }}"))
    assert problem == FieldProblem("body", "正文 body 不能超过 500 个字符，实际 501 个")
    [problem] = refused("inbox", InboxTemplateBody(title="{{ reason }}", body="正文"))
    assert problem == FieldProblem("title", "标题 title 不能为空")


def test_none_renders_as_empty_text() -> None:
    body = InboxTemplateBody(title="标题", body="原因：{{ reason }}。")
    assert render_inbox(body, CONTEXT).body == "原因：。"


# --- preview -------------------------------------------------------------------------------


def test_preview_uses_the_sample_or_a_given_context() -> None:
    body = wechat(("thing1", "{{ item.name }}"), page="p?id={{ application.short_id }}")
    shown = preview(
        kind=ACCEPTED, channel="wechat", body=body, sms_sign_name=SIGN, sms_max_chars=MAX_CHARS
    )
    assert shown == RenderedWeChat(
        template_id="tmpl-test",
        page="p?id=WB202611230042",
        data={"thing1": CONTEXT["item"]["name"]},
    )
    other = {**CONTEXT, "item": {"name": "高龄老人津贴申领", "code": "X"}}
    shown = preview(
        kind=ACCEPTED,
        channel="wechat",
        body=body,
        context=other,
        sms_sign_name=SIGN,
        sms_max_chars=MAX_CHARS,
    )
    assert isinstance(shown, RenderedWeChat)
    assert shown.data == {"thing1": "高龄老人津贴申领"}


def test_a_body_of_another_channel_is_a_programming_error() -> None:
    with pytest.raises(TypeError):
        save("sms", InboxTemplateBody(title="a", body="b"))
    with pytest.raises(ValueError, match="unknown channel"):
        t.body_model("fax")
    assert t.body_model("sms") is SmsTemplateBody
    assert set(t.CHANNEL_LABELS) == {"wechat", "sms", "inbox"}


def test_sources_are_compiled_once() -> None:
    source = "{{ item.code }}-compiled-once"
    body = InboxTemplateBody(title=source, body="x")
    render_inbox(body, CONTEXT)
    before = sandbox._compile.cache_info()
    render_inbox(body, CONTEXT)
    after = sandbox._compile.cache_info()
    assert after.misses == before.misses
    assert after.hits == before.hits + 2  # title and body


# --- masking -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "masked"),
    [
        ("张三", "张*"),
        ("张三丰", "张**"),
        ("欧阳娜娜", "欧阳**"),
        ("司马相如", "司马**"),
        ("买买提·艾力", "买买****"),
        (" 李 四 ", "李*"),
        ("王", "*"),
        ("Jennifer Lawrence", "J***"),
        ("Li", "L***"),
        ("", ""),
        ("   ", ""),
    ],
)
def test_masked_names_are_valid_wechat_name_values(name: str, masked: str) -> None:
    assert mask_name(name) == masked
    if masked:
        assert keyword_value_problem(key="name1", value=masked) is None


# --- samples and defaults ------------------------------------------------------------------

RESIDENT_ID = re.compile(r"(?<![0-9A-Za-z])\d{17}[\dXx](?![0-9A-Za-z])")
MOBILE = re.compile(r"(?<!\d)1[3-9]\d{9}(?!\d)")


@pytest.mark.parametrize("kind", list(NotificationKind))
def test_samples_hold_no_personal_data(kind: NotificationKind) -> None:
    sample = SAMPLE_CONTEXTS[kind]
    text = json.dumps(sample, default=str, ensure_ascii=False)
    assert not RESIDENT_ID.search(text)
    assert not MOBILE.search(text)
    assert sample["applicant"].keys() == {"name_masked"}
    assert "*" in sample["applicant"]["name_masked"]
    assert sample["at"].tzinfo is not None


def test_the_id_pattern_would_catch_an_id_number() -> None:
    # The masking test above is only worth something if its pattern matches a real shape.
    assert RESIDENT_ID.search('{"reason": "身份证 11010519491231002X 有误"}')


def test_defaults_cover_every_kind_on_every_channel() -> None:
    pairs = [(kind, channel) for kind, channel, _ in DEFAULT_TEMPLATES]
    assert len(pairs) == len(set(pairs)) == len(NotificationKind) * 3
    codes = [b.template_code for _, _, b in DEFAULT_TEMPLATES if isinstance(b, SmsTemplateBody)]
    assert len(set(codes)) == len(codes)
    assert all(re.fullmatch(r"SMS_WB_\d{4}", c) for c in codes)
    ids = [b.template_id for _, _, b in DEFAULT_TEMPLATES if isinstance(b, WeChatTemplateBody)]
    assert "tmpl-application-accepted" in ids
    assert len(set(ids)) == len(ids)


@pytest.mark.parametrize(
    ("kind", "channel", "body"),
    DEFAULT_TEMPLATES,
    ids=[f"{kind}-{channel}" for kind, channel, _ in DEFAULT_TEMPLATES],
)
def test_every_default_template_is_valid(
    kind: NotificationKind, channel: t.Channel, body: t.TemplateBody
) -> None:
    validate_template(
        kind=kind, channel=channel, body=body, sms_sign_name=SIGN, sms_max_chars=MAX_CHARS
    )
    rendered = preview(
        kind=kind, channel=channel, body=body, sms_sign_name=SIGN, sms_max_chars=MAX_CHARS
    )
    text = json.dumps(rendered.__dict__, ensure_ascii=False)
    assert "None" not in text
    if isinstance(rendered, RenderedSms):
        assert rendered.text.startswith(f"【{SIGN}】")
        assert rendered.length <= MAX_CHARS


def test_defaults_survive_the_absence_of_optional_values() -> None:
    # At send time reason, materials, due_date and outcome may be missing even for kinds whose
    # sample has them; the defaults fall back to wording instead of failing the message.
    for kind, channel, body in DEFAULT_TEMPLATES:
        if kind in (NotificationKind.SUPPLEMENT_REMINDER, NotificationKind.CERTIFICATE_ISSUED):
            continue  # their subject (the 容缺 deadline, the certificate) is the event itself
        bare = {
            **SAMPLE_CONTEXTS[kind],
            "reason": None,
            "materials": [],
            "due_date": None,
            "outcome": None,
        }
        preview(
            kind=kind,
            channel=channel,
            body=body,
            context=bare,
            sms_sign_name=SIGN,
            sms_max_chars=MAX_CHARS,
        )
