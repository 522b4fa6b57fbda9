"""Routes of the notify service: parse, authorise, call, return.

Citizens (through the gateway) read their inbox, report the subscriptions they accepted and set
how they want to be reached; the gateway reports which WeChat openid an account logged in with;
notification administrators keep the templates; staff watch delivery; the SMS gateway posts its
delivery receipts.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from pydantic import ValidationError

from notify_service import (
    delivery,
    phone_verification,
    recipients,
    repository,
    template_versions,
    templates,
)
from notify_service.models import Recipient, Template
from notify_service.schemas import (
    ConsentsOut,
    InboxOut,
    MessageOut,
    NotificationOut,
    PhoneCodeIn,
    PhoneCodeOut,
    PhoneIn,
    PreferencesIn,
    PreferencesOut,
    PreviewIn,
    PreviewOut,
    ReadOut,
    SubscriptionReportIn,
    SubscriptionTemplateOut,
    TemplateIn,
    TemplateOut,
    WeChatBindingIn,
)
from notify_service.simulated import code_seen_in_test_mode
from notify_service.sms import SmsReceipt, verify_receipt_signature
from wangban.auth import NOTIFY_ADMIN, OPS, Identity, require_kinds, require_roles
from wangban.crypto import BlindIndex, FieldCipher
from wangban.db import ReadSession, UnitOfWork
from wangban.errors import NotFound, Unauthorized, ValidationFailed, problem_responses
from wangban.settings import Settings

inbox_router = APIRouter(prefix="/me", tags=["my notifications"])
admin_router = APIRouter(tags=["notification templates and delivery"])
internal_router = APIRouter(prefix="/internal", tags=["internal"])
callback_router = APIRouter(prefix="/callbacks", tags=["provider callbacks"])

Citizen = Annotated[Identity, Depends(require_kinds("citizen", "company"))]
Gateway = Annotated[Identity, Depends(require_kinds("service"))]
TemplateAdmin = Annotated[Identity, Depends(require_roles(NOTIFY_ADMIN))]
DeliveryWatcher = Annotated[Identity, Depends(require_roles(NOTIFY_ADMIN, OPS))]

CHANNELS = ("wechat", "sms", "inbox")


class UnknownKind(NotFound):
    type_slug = "unknown-notification-kind"
    title = "没有这种通知"


class UnknownChannel(NotFound):
    type_slug = "unknown-channel"
    title = "没有这种通知渠道"


class MessageNotFound(NotFound):
    type_slug = "message-not-found"
    title = "消息不存在"


class ReceiptRejected(Unauthorized):
    type_slug = "receipt-rejected"
    title = "回执签名无效"


class UnknownReceipt(NotFound):
    type_slug = "unknown-receipt"
    title = "回执对应的短信不存在"


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _kind(kind: str) -> templates.NotificationKind:
    try:
        return templates.NotificationKind(kind)
    except ValueError:
        raise UnknownKind(
            f"没有“{kind}”这种通知",
            extra={"kinds": [k.value for k in templates.NotificationKind]},
        ) from None


def _channel(channel: str) -> str:
    if channel not in CHANNELS:
        raise UnknownChannel(f"没有“{channel}”这种渠道", extra={"channels": list(CHANNELS)})
    return channel


# --- The citizen's inbox and preferences --------------------------------------------------


@inbox_router.get("/notifications", summary="My in-app inbox, newest first")
async def my_inbox(
    session: ReadSession,
    citizen: Citizen,
    unread: bool = False,
    before: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> InboxOut:
    items, unread_count = await recipients.inbox_page(
        session, subject=citizen.subject, unread_only=unread, before=before, limit=limit
    )
    return InboxOut(
        items=[NotificationOut.model_validate(n, from_attributes=True) for n in items],
        unread=unread_count,
        next_before=items[-1].created_at if len(items) == limit else None,
    )


@inbox_router.post(
    "/notifications/{notification_id}/read",
    summary="Mark one of my notifications read",
    responses=problem_responses(recipients.NotificationNotFound),
)
async def read_one(notification_id: str, session: UnitOfWork, citizen: Citizen) -> ReadOut:
    marked = await recipients.mark_read(
        session, subject=citizen.subject, notification_id=notification_id, now=delivery.now_utc()
    )
    return ReadOut(
        marked=marked, unread=await repository.unread_count(session, subject=citizen.subject)
    )


@inbox_router.post("/notifications/read-all", summary="Mark all my notifications read")
async def read_all(session: UnitOfWork, citizen: Citizen) -> ReadOut:
    marked = await recipients.mark_read(
        session, subject=citizen.subject, notification_id=None, now=delivery.now_utc()
    )
    return ReadOut(marked=marked, unread=0)


@inbox_router.get(
    "/subscription-templates",
    summary="The WeChat template ids to ask my consent for (订阅消息), at most three",
)
async def subscription_templates(
    session: ReadSession, citizen: Citizen
) -> list[SubscriptionTemplateOut]:
    return [
        SubscriptionTemplateOut(kind=t.kind, label=t.label, template_id=t.template_id)
        for t in await recipients.subscription_templates(session)
    ]


@inbox_router.post(
    "/subscriptions",
    summary="Report what wx.requestSubscribeMessage answered (one-time subscriptions)",
)
async def report_subscriptions(
    body: SubscriptionReportIn, session: UnitOfWork, citizen: Citizen
) -> ConsentsOut:
    granted, unused = await recipients.record_subscriptions(
        session, subject=citizen.subject, results=dict(body.results), now=delivery.now_utc()
    )
    return ConsentsOut(granted=granted, unused=unused)


def _preferences_out(recipient: Recipient, unused: dict[str, int]) -> PreferencesOut:
    return PreferencesOut(
        wechat_bound=bool(recipient.openid),
        wechat_enabled=recipient.wechat_enabled,
        fallback="inbox" if recipient.fallback == "inbox" else "sms",
        phone_masked=recipient.phone_masked,
        unused_consents=unused,
    )


@inbox_router.get("/notification-preferences", summary="How I am reached")
async def my_preferences(session: ReadSession, citizen: Citizen) -> PreferencesOut:
    row = await recipients.preferences(session, subject=citizen.subject)
    unused = await repository.unconsumed_consents(session, citizen.subject)
    return _preferences_out(row, unused)


@inbox_router.put(
    "/notification-preferences",
    summary="Choose how I am reached: WeChat on or off, SMS or inbox only; remove my number",
)
async def set_my_preferences(
    body: PreferencesIn, session: UnitOfWork, citizen: Citizen, request: Request
) -> PreferencesOut:
    settings = _settings(request)
    row = await recipients.set_preferences(
        session,
        subject=citizen.subject,
        wechat_enabled=body.wechat_enabled,
        fallback=body.fallback,
        phone=body.phone,
        cipher=FieldCipher.from_settings(settings),
        blind_index=BlindIndex.from_settings(settings),
    )
    return _preferences_out(row, await repository.unconsumed_consents(session, citizen.subject))


@inbox_router.post(
    "/phone",
    summary="Give my mobile number for SMS: a 6-digit code is sent to it by SMS",
    responses=problem_responses(
        phone_verification.PhoneCodeTooSoon,
        phone_verification.PhoneCodeLimit,
        phone_verification.PhoneRefused,
        phone_verification.SmsUnavailable,
    ),
)
async def start_phone_verification(
    body: PhoneIn, citizen: Citizen, request: Request
) -> PhoneCodeOut:
    settings = _settings(request)
    sent = await phone_verification.send_code(
        request.app.state.database,
        sms=request.app.state.code_sms,
        template_code=settings.sms_code_template,
        subject=citizen.subject,
        phone=body.mobile,
        cipher=FieldCipher.from_settings(settings),
        blind_index=BlindIndex.from_settings(settings),
        daily_limit_per_number=settings.sms_daily_limit_per_number,
        now=delivery.now_utc(),
    )
    return PhoneCodeOut(
        phone_masked=sent.phone_masked,
        expires_in=sent.expires_in,
        resend_after=sent.resend_after,
        test_mode=settings.notify_test_mode,
        test_code=code_seen_in_test_mode(request.app.state.code_sms, sent.out_id),
    )


@inbox_router.post(
    "/phone/verify",
    summary="Type back the SMS code: the number becomes the one my SMS go to",
    responses=problem_responses(
        phone_verification.PhoneCodeWrong, phone_verification.PhoneCodeExpired
    ),
)
async def verify_phone(
    body: PhoneCodeIn, session: UnitOfWork, citizen: Citizen, request: Request
) -> PreferencesOut:
    row = await phone_verification.confirm_code(
        session,
        subject=citizen.subject,
        code=body.code,
        blind_index=BlindIndex.from_settings(_settings(request)),
        now=delivery.now_utc(),
    )
    return _preferences_out(row, await repository.unconsumed_consents(session, citizen.subject))


# --- The gateway --------------------------------------------------------------------------


@internal_router.put(
    "/recipients/{subject}/wechat",
    summary="The openid an account logged in with (called by the gateway after WeChat login)",
    status_code=204,
)
async def bind_wechat(
    subject: str, body: WeChatBindingIn, session: UnitOfWork, gateway: Gateway
) -> None:
    await recipients.bind_wechat(session, subject=subject, openid=body.openid)


# --- Templates ----------------------------------------------------------------------------


def _template_out(template: Template) -> TemplateOut:
    return TemplateOut.model_validate(template, from_attributes=True)


@admin_router.get("/templates", summary="The current template of every kind and channel")
async def list_templates(session: ReadSession, admin: TemplateAdmin) -> list[TemplateOut]:
    return [_template_out(t) for t in await repository.current_templates(session)]


@admin_router.get(
    "/templates/{kind}/{channel}/versions",
    summary="Every version of one template, newest first",
    responses=problem_responses(UnknownKind, UnknownChannel),
)
async def template_history(
    kind: str, channel: str, session: ReadSession, admin: TemplateAdmin
) -> list[TemplateOut]:
    versions = await repository.template_versions(
        session, kind=_kind(kind).value, channel=_channel(channel)
    )
    return [_template_out(t) for t in versions]


@admin_router.put(
    "/templates/{kind}/{channel}",
    summary="Save a template as a new version, after checking it against the channel's rules",
    responses=problem_responses(UnknownKind, UnknownChannel, templates.TemplateInvalid),
)
async def save_template(
    kind: str,
    channel: str,
    body: TemplateIn,
    session: UnitOfWork,
    admin: TemplateAdmin,
    request: Request,
) -> TemplateOut:
    template, _ = await template_versions.save(
        session,
        kind=_kind(kind),
        channel=_channel(channel),
        body=body.body,
        by=admin.subject,
        settings=_settings(request),
    )
    return _template_out(template)


@admin_router.post(
    "/templates/{kind}/{channel}/preview",
    summary="Render a template (the current one, or a draft) with the sample or given values",
    responses=problem_responses(
        UnknownKind, UnknownChannel, templates.TemplateInvalid, template_versions.TemplateNotFound
    ),
)
async def preview_template(
    kind: str,
    channel: str,
    body: PreviewIn,
    session: ReadSession,
    admin: TemplateAdmin,
    request: Request,
) -> PreviewOut:
    notification_kind, channel = _kind(kind), _channel(channel)
    source = body.body
    if source is None:
        source = (
            await template_versions.current(session, kind=notification_kind, channel=channel)
        ).body
    settings = _settings(request)
    rendered = template_versions.preview(
        kind=notification_kind,
        channel=channel,
        body=source,
        context=body.context,
        settings=settings,
    )
    return PreviewOut(kind=notification_kind.value, channel=channel, rendered=rendered)


# --- Delivery -----------------------------------------------------------------------------


@admin_router.get("/messages", summary="Push messages, newest first (no recipient data)")
async def list_messages(
    session: ReadSession,
    watcher: DeliveryWatcher,
    status: str | None = None,
    application_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[MessageOut]:
    rows = await repository.messages(
        session, status=status, application_id=application_id, limit=limit
    )
    return [MessageOut.model_validate(m, from_attributes=True) for m in rows]


@admin_router.get(
    "/messages/{message_id}",
    summary="One push message and where it stands",
    responses=problem_responses(MessageNotFound),
)
async def get_message(
    message_id: str, session: ReadSession, watcher: DeliveryWatcher
) -> MessageOut:
    message = await repository.message(session, message_id)
    if message is None:
        raise MessageNotFound("消息不存在")
    return MessageOut.model_validate(message, from_attributes=True)


# --- Provider callbacks -------------------------------------------------------------------


@callback_router.post(
    "/sms/receipts",
    summary="Delivery receipt from the SMS gateway (signed: docs/sms-gateway-protocol.md)",
    status_code=204,
    responses=problem_responses(ReceiptRejected, UnknownReceipt, ValidationFailed),
)
async def sms_receipt(request: Request, session: UnitOfWork) -> None:
    settings = _settings(request)
    raw = await request.body()
    if not verify_receipt_signature(
        body=raw,
        timestamp=request.headers.get("x-sms-timestamp", ""),
        authorization=request.headers.get("authorization", ""),
        access_key_id=settings.sms_access_key_id,
        secret=settings.sms_access_key_secret.get_secret_value(),
    ):
        raise ReceiptRejected("回执签名无效或已过期")
    try:
        receipt = SmsReceipt.model_validate_json(raw)
    except ValidationError as exc:
        raise ValidationFailed("回执格式不正确", extra={"errors": exc.error_count()}) from None
    found = await delivery.apply_receipt(
        session,
        out_id=receipt.out_id,
        biz_id=receipt.biz_id,
        delivered=receipt.status == "DELIVERED",
        code=receipt.err_code,
        settings=settings,
        now=delivery.now_utc(),
    )
    if not found:
        raise UnknownReceipt("没有与回执对应的短信")
