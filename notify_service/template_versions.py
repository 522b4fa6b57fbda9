"""Saving templates: every change is validated against the channel's rules, then becomes a new
version (the old ones stay, so a message always names the text it was sent with)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from notify_service import caches, repository, templates
from notify_service.delivery import context_from_json
from notify_service.models import Template
from wangban.errors import NotFound
from wangban.events import uuid7
from wangban.settings import Settings

SEEDED_BY = "seed"

SMS_KINDS = frozenset(
    {
        templates.NotificationKind.APPLICATION_NOT_ACCEPTED,
        templates.NotificationKind.APPLICATION_CORRECTION_REQUESTED,
        templates.NotificationKind.APPLICATION_DENIED,
        templates.NotificationKind.CERTIFICATE_ISSUED,
        templates.NotificationKind.SUPPLEMENT_REMINDER,
    }
)
"""Kinds that get an SMS template from the seed: those a citizen must act on, or the result.
An SMS costs money and a daily share of the number; the rest stay in WeChat and the inbox
unless an administrator adds an SMS template."""


class TemplateNotFound(NotFound):
    type_slug = "template-not-found"
    title = "模板不存在"


async def save(
    session: AsyncSession,
    *,
    kind: templates.NotificationKind,
    channel: str,
    body: dict[str, Any],
    by: str,
    settings: Settings,
) -> tuple[Template, bool]:
    """Validate ``body`` and make it the kind's current template on ``channel``. Returns the
    template and whether a new version was made (saving the current text again makes none)."""
    model = templates.parse_body(channel=channel, body=body)
    templates.validate_template(
        kind=kind,
        channel=channel,
        body=model,
        sms_sign_name=settings.sms_sign_name,
        sms_max_chars=settings.sms_max_chars,
    )
    normalised = model.model_dump(mode="json")
    await repository.lock_templates(session, kind=kind.value, channel=channel)
    current = await repository.current_template(session, kind=kind.value, channel=channel)
    if current is not None and current.body == normalised:
        return current, False
    template = Template(
        id=str(uuid7()),
        kind=kind.value,
        channel=channel,
        version=(current.version + 1) if current else 1,
        body=normalised,
        created_by=by,
    )
    session.add(template)
    await session.flush()
    await session.refresh(template)
    caches.template_saved(session, kind=kind.value, channel=channel)
    return template, True


def preview(
    *,
    kind: templates.NotificationKind,
    channel: str,
    body: dict[str, Any],
    context: dict[str, Any] | None,
    settings: Settings,
) -> dict[str, Any]:
    """Render ``body`` as a message of ``kind`` would be: with the kind's sample values, or
    those overridden by ``context`` (JSON: dates as ISO strings). Problems raise
    :class:`templates.TemplateInvalid` naming each field."""
    values = dict(templates.SAMPLE_CONTEXTS[kind])
    if context:
        values.update(context_from_json(context))
    rendered = templates.preview(
        kind=kind,
        channel=channel,
        body=templates.parse_body(channel=channel, body=body),
        context=values,
        sms_sign_name=settings.sms_sign_name,
        sms_max_chars=settings.sms_max_chars,
    )
    return asdict(rendered)


async def current(
    session: AsyncSession, *, kind: templates.NotificationKind, channel: str
) -> Template:
    template = await repository.current_template(session, kind=kind.value, channel=channel)
    if template is None:
        raise TemplateNotFound(f"“{kind.label}”没有{templates.CHANNEL_LABELS[channel]}模板")
    return template


async def seed_defaults(session: AsyncSession, settings: Settings) -> None:
    """The default templates (idempotent): for kinds and channels that have none yet, and as a
    new version where the current one is still the seed's and this release's default differs
    (the final notices gained the rating link so). A version an administrator saved is theirs:
    never replaced."""
    for kind, channel, body in templates.DEFAULT_TEMPLATES:
        if channel == "sms" and kind not in SMS_KINDS:
            continue
        latest = await repository.current_template(session, kind=kind.value, channel=channel)
        if latest is None or latest.created_by == SEEDED_BY:
            await save(
                session,
                kind=kind,
                channel=channel,
                body=body.model_dump(mode="json"),
                by=SEEDED_BY,
                settings=settings,
            )
