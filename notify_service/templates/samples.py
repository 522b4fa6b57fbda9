"""A realistic rendering context per kind (templates are checked against it when saved, and
previewed with it), and a Chinese default template for every kind on every channel."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any, Final

from notify_service.templates.bodies import (
    InboxTemplateBody,
    SmsTemplateBody,
    TemplateBody,
    WeChatField,
    WeChatTemplateBody,
)
from notify_service.templates.kinds import INBOX_TITLE_MAX, Channel, NotificationKind
from wangban import crypto


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
        "rating": False,
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
        rating=True,
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
        rating=True,
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
_RATING_PAGE = "pages/ratings/new?application={{ application.id }}"
_FINAL_PAGE = f"{{% if rating %}}{_RATING_PAGE}{{% else %}}{_APPLICATION_PAGE}{{% endif %}}"
"""The result opens the rating page (好差评) when it is the application's final notice."""
_RATE_US = "点击对本次服务进行“好差评”"
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
        _FINAL_PAGE,
        [
            _ITEM,
            _NUMBER,
            ("phrase3", "审批通过", False),
            ("time4", "{{ at|wechat_time }}", False),
            (
                "thing5",
                f"{{% if rating %}}{_RATE_US}{{% else %}}证照签发后将另行通知{{% endif %}}",
                False,
            ),
        ],
    ),
    _K.APPLICATION_DENIED: (
        _FINAL_PAGE,
        [
            _ITEM,
            _NUMBER,
            ("phrase3", "不予许可", False),
            ("thing4", f"{{{{ reason or '{_OR_DETAILS}' }}}}", True),
            ("time5", "{{ at|wechat_time }}", False),
        ],
    ),
    _K.CERTIFICATE_ISSUED: (
        f"{{% if rating %}}{_RATING_PAGE}{{% else %}}pages/certificates/index{{% endif %}}",
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
            (
                "thing5",
                "{% if rating %}证照见“我的证照”，欢迎评价"
                "{% else %}可在“我的证照”中查看和出示{% endif %}",
                False,
            ),
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
    _K.RECTIFICATION_REPLIED: (
        "您对“${item}”的评价已有整改回复：${reply}。详情请在小程序查看。",
        {"item": _SMS_ITEM, "reply": "{{ (outcome or reason or '详见整改回复')|clip(30) }}"},
    ),
}

_GREETING = "{{ applicant.name_masked or '申请人' }}，您好：\n"
_INVITATION = "诚邀您对本次服务进行“好差评”，您的评价将帮助我们改进服务。"
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
        "{% if rating %}" + _INVITATION + "{% else %}电子证照签发后将另行通知。{% endif %}",
    ),
    _K.APPLICATION_DENIED: (
        "不予许可",
        _GREETING + _YOUR_APPLICATION + "经审查决定不予许可。\n"
        f"原因：{{{{ reason|clip(200) if reason else '{_OR_DETAILS}' }}}}\n"
        "如对决定有异议，可依法申请行政复议或者提起行政诉讼。"
        "{% if rating %}\n" + _INVITATION + "{% endif %}",
    ),
    _K.CERTIFICATE_ISSUED: (
        "证照已签发",
        _GREETING + "您的{{ certificate.type_name }}已于{{ at|wechat_time }}签发"
        "（办理事项：{{ item.name }}），"
        "{% if certificate.valid_until %}有效期至{{ certificate.valid_until|wechat_date }}"
        "{% else %}长期有效{% endif %}。\n"
        "电子证照可在“我的证照”中查看和出示。"
        "{% if rating %}\n" + _INVITATION + "{% endif %}",
    ),
    _K.SUPPLEMENT_REMINDER: (
        "容缺材料待补交",
        _GREETING + _YOUR_APPLICATION + "以容缺方式受理，以下材料尚待补交：\n"
        f"{{{{ materials|join('、')|clip(200) or '{_OR_DETAILS}' }}}}\n"
        "请于{{ tolerated_until|wechat_date }}前补交，逾期未补交将影响办理结果。",
    ),
    _K.RECTIFICATION_REPLIED: (
        "整改已回复",
        _GREETING + "您对“{{ item.name }}”的评价已有整改回复：\n"
        "{{ (outcome or '详见整改回复')|clip(200) }}\n"
        "{% if reason %}说明：{{ reason|clip(150) }}\n{% endif %}"
        "如仍不满意，可在“我的评价”中继续反馈。",
    ),
}


_SMS_NUMBERS: Final[dict[NotificationKind, int]] = {
    _K.APPLICATION_ACCEPTED: 1,
    _K.APPLICATION_NOT_ACCEPTED: 2,
    _K.APPLICATION_CORRECTION_REQUESTED: 3,
    _K.APPLICATION_APPROVED: 4,
    _K.APPLICATION_DENIED: 5,
    _K.CERTIFICATE_ISSUED: 7,
    _K.SUPPLEMENT_REMINDER: 8,
    _K.RECTIFICATION_REPLIED: 10,
}
"""The default SMS template codes, as first numbered (6 and 9 were the retired kinds): a code is
what a deployment registers with its gateway, so it never moves."""


def _default_templates() -> list[tuple[NotificationKind, Channel, TemplateBody]]:
    defaults: list[tuple[NotificationKind, Channel, TemplateBody]] = []
    for kind in NotificationKind:
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
                SmsTemplateBody(
                    template_code=f"SMS_WB_{_SMS_NUMBERS[kind]:04d}", text=text, params=params
                ),
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
