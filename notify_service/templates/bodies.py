"""What an administrator saves, per channel: a WeChat body (each keyword → a Jinja source), an
SMS body (the registered text with ``${name}`` placeholders, each → a Jinja source) and an
inbox body (title and body sources); :func:`body_model` and :func:`parse_body`."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any, Final, Literal, TypeAlias, overload

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from notify_service.templates.problems import FieldProblem, TemplateInvalid
from notify_service.templates.wechat_rules import KEYWORD_TYPES, keyword_type
from wangban.errors import field_errors_from_validation

PLACEHOLDER_RE: Final = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
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
        placeholders = PLACEHOLDER_RE.findall(text)
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
