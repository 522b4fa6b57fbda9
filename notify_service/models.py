"""Tables of the notify service, all in its own PostgreSQL schema ``notify``.

A *notification* is what the citizen sees in the in-app inbox: one per triggering event and
recipient, always stored. A *message* is one attempt to push it outside the app, on one
channel (WeChat subscription message or SMS): one per notification and channel at most, which is
what keeps a redelivered or replayed event from messaging anyone twice.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from wangban.outbox import define_kit_tables
from wangban.wechat import define_wechat_token_table

metadata = MetaData(schema="notify")
kit_tables = define_kit_tables(metadata)


class Base(DeclarativeBase):
    metadata = metadata


class Recipient(Base):
    """How to reach an account: its WeChat openid (reported by the gateway at login), its mobile
    number (encrypted; given by the citizen) and what it prefers."""

    __tablename__ = "recipient"

    subject: Mapped[str] = mapped_column(String(128), primary_key=True)
    openid: Mapped[str | None] = mapped_column(String(128))
    phone_enc: Mapped[str | None] = mapped_column(Text)
    phone_index: Mapped[str | None] = mapped_column(String(64))
    """Blind index of the number: the per-number daily SMS limit counts by it."""
    phone_masked: Mapped[str | None] = mapped_column(String(16))
    wechat_enabled: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    fallback: Mapped[str] = mapped_column(String(8), server_default=text("'sms'"))
    """When WeChat cannot be used: ``sms`` (then the inbox) or ``inbox`` only."""
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class SubscriptionConsent(Base):
    """One accepted one-time subscription (``wx.requestSubscribeMessage`` answered "accept"):
    worth exactly one WeChat message with that template."""

    __tablename__ = "subscription_consent"
    __table_args__ = (
        Index(
            "ix_consent_unconsumed",
            "subject",
            "template_id",
            "granted_at",
            postgresql_where=text("consumed_at IS NULL"),
        ),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    subject: Mapped[str] = mapped_column(String(128))
    template_id: Mapped[str] = mapped_column(String(128))
    granted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    consumed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    message_id: Mapped[str | None] = mapped_column(String(36))


class ApplicationRecipient(Base):
    """Whom to tell about an application, learnt from ``application.submitted``: the later
    events carry only the application id."""

    __tablename__ = "application_recipient"

    application_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    subject: Mapped[str] = mapped_column(String(128), index=True)
    item_code: Mapped[str] = mapped_column(String(64))
    item_name: Mapped[str] = mapped_column(String(200))
    applicant_name_masked: Mapped[str] = mapped_column(String(64))
    """Only the masked name is kept (张*): templates never get the name itself."""
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class EarlyEvent(Base):
    """An event about an application that arrived before its ``application.submitted``.

    The submission and the later events come on different topics, and a consumer reads its
    topics' partitions independently: after a broker outage, or a notify replica that was down
    while both piled up, the certificate may be read before the submission that says whom to
    tell. Such an event waits here (what it would have said, keyed as its notification would
    be) and is told when the submission arrives. Events of applications nobody can be told
    about (no account, a bundle's member) are dropped by the sweeper once they have waited
    ``delivery.EARLY_EVENT_KEPT``."""

    __tablename__ = "early_event"

    event_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    """The notification's key (one per occurrence), so a redelivery waits only once."""
    application_id: Mapped[str] = mapped_column(String(36), index=True)
    kind: Mapped[str] = mapped_column(String(64))
    context: Mapped[dict[str, Any]] = mapped_column(JSONB)
    """Its time and facts, as notifications keep them (``delivery.context_to_json``)."""
    arrived_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class Template(Base):
    """One version of the template for a notification kind on a channel; the highest version is
    the one used. Versions are never changed, so a message names the exact text it was sent
    with."""

    __tablename__ = "template"
    __table_args__ = (UniqueConstraint("kind", "channel", "version"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    kind: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(8))
    version: Mapped[int] = mapped_column(Integer)
    body: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Notification(Base):
    """An entry of the citizen's in-app inbox (站内信)."""

    __tablename__ = "notification"
    __table_args__ = (
        UniqueConstraint("event_id", "subject"),
        Index("ix_notification_inbox", "subject", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(64))
    """The triggering event: the same event never makes two notifications for one person."""
    subject: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(64))
    application_id: Mapped[str | None] = mapped_column(String(36))
    title: Mapped[str] = mapped_column(String(100))
    body: Mapped[str] = mapped_column(Text)
    context: Mapped[dict[str, Any]] = mapped_column(JSONB)
    """What the templates render from (masked, no personal data): push messages are rendered
    from it at send time, with the template version they were created with."""
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    read_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Message(Base):
    """One push of a notification on one channel, and where it stands.

    ``created`` → ``sending`` → ``delivered`` | ``temporary-failure`` | ``permanent-failure`` |
    ``technical-failure``; the two retryable failures carry ``next_attempt_at`` until attempts or
    time run out.
    """

    __tablename__ = "message"
    __table_args__ = (
        UniqueConstraint("notification_id", "channel"),
        Index(
            "ix_message_due",
            "next_attempt_at",
            postgresql_where=text("next_attempt_at IS NOT NULL"),
        ),
        Index("ix_message_sending", "sending_since", postgresql_where=text("status = 'sending'")),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    notification_id: Mapped[str] = mapped_column(ForeignKey("notification.id"))
    subject: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(64))
    application_id: Mapped[str | None] = mapped_column(String(36))
    channel: Mapped[str] = mapped_column(String(8))
    template_version_id: Mapped[str] = mapped_column(ForeignKey("template.id"))
    status: Mapped[str] = mapped_column(String(24))
    attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    sending_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    provider_ref: Mapped[str | None] = mapped_column(String(128), index=True)
    failure_code: Mapped[str | None] = mapped_column(String(64))
    failure_detail: Mapped[str | None] = mapped_column(Text)
    failure_field: Mapped[str | None] = mapped_column(String(64))
    fallback_of: Mapped[str | None] = mapped_column(String(36))
    """The WeChat message this SMS replaces (the user had not subscribed)."""
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class SmsDailyCount(Base):
    """SMS sent to one number on one day (Beijing time), for the per-number limit."""

    __tablename__ = "sms_daily_count"

    phone_index: Mapped[str] = mapped_column(String(64), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    sent: Mapped[int] = mapped_column(Integer)


class PhoneVerification(Base):
    """A mobile number a citizen gave, waiting for the code sent to it by SMS: the number
    becomes the recipient's only once the code comes back (one pending number per account)."""

    __tablename__ = "phone_verification"

    subject: Mapped[str] = mapped_column(String(128), primary_key=True)
    phone_enc: Mapped[str] = mapped_column(Text)
    phone_index: Mapped[str] = mapped_column(String(64))
    phone_masked: Mapped[str] = mapped_column(String(16))
    code_hash: Mapped[str | None] = mapped_column(String(64))
    """Keyed HMAC of the code (bound to the account and number); null once used, given up
    after too many wrong tries, or when its SMS could not be sent."""
    out_id: Mapped[str] = mapped_column(String(36))
    """Our id of the SMS that carried the current code."""
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer)
    """Wrong codes entered against the current code."""
    last_sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    window_start: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    sends_in_window: Mapped[int] = mapped_column(Integer)
    """Codes sent to this account since ``window_start`` (a rolling day)."""


wechat_access_token = define_wechat_token_table(metadata)
"""The mini-program's access token, shared by every worker of the service: WeChat limits how
often a new one may be fetched, and a fresh one can invalidate the old."""
