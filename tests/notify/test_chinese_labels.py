"""Every text a citizen reads is Chinese: no state or outcome code (``approved``, ``denied``,
``under_review`` …) leaks into an inbox message, a WeChat message or an SMS.

The check runs over every notification kind: real events go through the notify consumer, and
each notification it makes is rendered with the default template of every channel. A new kind
without an event here fails the test, so it is covered too."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta

from approval_service.events import CaseApproved, CaseCorrectionRequested, CaseDenied
from intake_service.events import (
    ApplicationAccepted,
    ApplicationNotAccepted,
    RectificationReplied,
    SupplementReminderDue,
)
from notify_service import templates
from notify_service.delivery import context_from_json
from notify_service.templates import (
    DEFAULT_TEMPLATES,
    SAMPLE_CONTEXTS,
    InboxTemplateBody,
    NotificationKind,
    SmsTemplateBody,
    WeChatTemplateBody,
)
from sharing_service.events import CertificateIssued
from tests.infrastructure import Infrastructure
from tests.notify.support import (
    clean_notify,
    handle,
    notifications_of,
    notify_settings,
    seed_templates,
    submitted,
)
from wangban import labels
from wangban.db import Database
from wangban.events import Event

__all__ = ["clean_notify"]

_WORD = re.compile(r"[A-Za-z_]+")


def leaked_codes(text: str) -> set[str]:
    """The state/outcome/channel codes that appear as words in ``text``."""
    words = set(_WORD.findall(text))
    return {w for w in words if w.lower() in labels.VOCABULARY}


def rendered_texts(kind: NotificationKind, context: dict[str, object]) -> list[str]:
    """``context`` through the default template of every channel of ``kind``."""
    texts = []
    for template_kind, _channel, body in DEFAULT_TEMPLATES:
        if template_kind != kind:
            continue
        if isinstance(body, InboxTemplateBody):
            inbox = templates.render_inbox(body, context)
            texts += [inbox.title, inbox.body]
        elif isinstance(body, SmsTemplateBody):
            texts.append(templates.render_sms(body, context, sign_name="网办", max_chars=500).text)
        elif isinstance(body, WeChatTemplateBody):
            texts += list(templates.render_wechat(body, context).values())
    return texts


def test_the_vocabulary_holds_the_codes_and_their_words() -> None:
    assert {"approved", "denied", "under_review", "review", "wechat"} <= labels.VOCABULARY
    assert leaked_codes("审批通过（approved）") == {"approved"}
    assert leaked_codes("办件编号 WB2026 编码 330106-XK-0152") == set()


def test_every_kind_renders_its_sample_in_chinese() -> None:
    assert set(SAMPLE_CONTEXTS) == set(NotificationKind)
    for kind, context in SAMPLE_CONTEXTS.items():
        for text in rendered_texts(kind, context):
            assert not leaked_codes(text), (kind, text)


async def test_what_real_events_tell_the_applicant_is_chinese_on_every_channel(
    clean_notify: Database, infrastructure: Infrastructure
) -> None:
    database = clean_notify
    settings = notify_settings(infrastructure)
    await seed_templates(database, settings)
    subject = f"u-{uuid.uuid4().hex[:8]}"
    first, second = submitted(settings, subject=subject), submitted(settings, subject=subject)
    for application in (first, second):
        await handle(database, settings, application)
    now = datetime.now(UTC)
    at = now.isoformat()
    soon = (now + timedelta(days=5)).date().isoformat()
    a, b = first.application_id, second.application_id
    events: list[Event] = [
        ApplicationAccepted(
            application_id=a,
            item_version_id=first.item_version_id,
            item_code=first.item_code,
            accepted_at=at,
            accepted_by="system",
            due_date=soon,
            tolerated_until=soon,
            tolerated_materials=["户口簿"],
        ),
        SupplementReminderDue(application_id=a, tolerated_until=soon, materials=["户口簿"]),
        CaseCorrectionRequested(
            application_id=a,
            requested_at=at,
            reviewer="r-1",
            reason="照片不清晰",
            materials=["户口簿"],
        ),
        CaseApproved(
            application_id=a,
            item_id="i",
            item_version_id=first.item_version_id,
            item_code=first.item_code,
            decided_at=at,
            decided_by="auto",
            result_kind="certificate",
        ),
        CertificateIssued(
            certificate_id="c-1",
            type_code="elderly_allowance_notice",
            type_name="高龄津贴发放通知书",
            issuer_code="441900",
            application_id=a,
            holder_kind="person",
            issued_at=at,
            valid_until=None,
        ),
        RectificationReplied(
            rectification_id=str(uuid.uuid4()),
            application_id=a,
            department=first.department,
            replied_at=at,
            due_date=soon,
            on_time=True,
        ),
        ApplicationNotAccepted(
            application_id=b, item_code=second.item_code, at=at, reason="重复申请"
        ),
        CaseDenied(application_id=b, decided_at=at, decided_by="auto", reason="年龄未满80周岁"),
    ]
    for event in events:
        await handle(database, settings, event)
    stored = await notifications_of(database, subject)
    # Every kind is made by some event above: a new kind must be added here to be checked.
    assert {n.kind for n in stored} == {k.value for k in NotificationKind}
    for notification in stored:
        assert not leaked_codes(notification.title + notification.body), notification.body
        context = context_from_json(notification.context)
        for text in rendered_texts(NotificationKind(notification.kind), context):
            assert not leaked_codes(text), (notification.kind, text)
    # The outcome codes in the words the citizen reads.
    approved = next(n for n in stored if n.kind == "application.approved")
    assert "（准予许可）" in approved.body
    denied = next(n for n in stored if n.kind == "application.denied")
    assert "不予许可" in denied.title + denied.body


def test_the_labels_name_every_state_of_intake() -> None:
    from intake_service.applications.states import TRANSITIONS

    states = set(TRANSITIONS) | {s for targets in TRANSITIONS.values() for s in targets}
    assert states <= set(labels.STATUS_LABELS)
    assert labels.outcome_label("approved") == "准予许可"
    assert labels.outcome_label("已整改") == "已整改"
