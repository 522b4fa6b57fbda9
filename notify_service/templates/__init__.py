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

Where things are
----------------
* :mod:`~notify_service.templates.kinds`: :class:`NotificationKind`, the channels, the SMS and
  inbox length limits;
* :mod:`~notify_service.templates.wechat_rules`: the WeChat keyword value rules
  (:func:`keyword_value_problem`) and cutting (:func:`truncate_thing`);
* :mod:`~notify_service.templates.sandbox`: the Jinja environment, its filters and its bounds on
  what one rendering may cost;
* :mod:`~notify_service.templates.problems`: :class:`FieldProblem`, :class:`TemplateInvalid`,
  :class:`RenderedValueInvalid`;
* :mod:`~notify_service.templates.bodies`: the bodies per channel, :func:`body_model`,
  :func:`parse_body`;
* :mod:`~notify_service.templates.rendering`: ``render_*``, :func:`preview`,
  :func:`validate_template`, :func:`sms_segments`;
* :mod:`~notify_service.templates.samples`: :data:`SAMPLE_CONTEXTS` and
  :data:`DEFAULT_TEMPLATES`.

Everything other modules use is importable from this package.
"""

from __future__ import annotations

from notify_service.templates.bodies import (
    InboxTemplateBody,
    SmsTemplateBody,
    TemplateBody,
    WeChatField,
    WeChatTemplateBody,
    body_model,
    parse_body,
)
from notify_service.templates.kinds import (
    CHANNEL_LABELS,
    INBOX_BODY_MAX,
    INBOX_TITLE_MAX,
    SMS_PARAM_MAX,
    Channel,
    NotificationKind,
)
from notify_service.templates.problems import FieldProblem, RenderedValueInvalid, TemplateInvalid
from notify_service.templates.rendering import (
    Rendered,
    RenderedInbox,
    RenderedSms,
    RenderedWeChat,
    preview,
    render_inbox,
    render_sms,
    render_wechat,
    render_wechat_page,
    sms_segments,
    validate_template,
)
from notify_service.templates.samples import DEFAULT_TEMPLATES, SAMPLE_CONTEXTS
from notify_service.templates.sandbox import MAX_RANGE, MAX_RENDER_STEPS, MAX_TEXT
from notify_service.templates.wechat_rules import (
    KEYWORD_TYPES,
    THING_MAX,
    keyword_type,
    keyword_value_problem,
    truncate_thing,
)

__all__ = [
    "CHANNEL_LABELS",
    "DEFAULT_TEMPLATES",
    "INBOX_BODY_MAX",
    "INBOX_TITLE_MAX",
    "KEYWORD_TYPES",
    "MAX_RANGE",
    "MAX_RENDER_STEPS",
    "MAX_TEXT",
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
