"""What the notify service publishes (version 1).

Partner systems learn how each push message ended (delivered, or failed for good) from
``wangban.notify.deliveries``. The payloads carry ids and outcomes only: no openid, no number,
no name, no message text.
"""

from __future__ import annotations

from contracts.events import Event, Timestamp, registry

DELIVERIES_TOPIC = registry.topic(
    "wangban.notify.deliveries",
    partitions=3,
    description="How each message pushed to a citizen (WeChat or SMS) ended.",
    key_description="The notification id: all messages of one notification arrive in order.",
)


@registry.event(
    type="cn.wangban.notify.message.delivered.v1",
    topic=DELIVERIES_TOPIC,
    key="notification_id",
)
class MessageDelivered(Event):
    """WeChat took the subscription message, or the SMS gateway reported it delivered."""

    message_id: str
    notification_id: str
    kind: str
    """What the citizen was told: ``application.approved``, ``certificate.issued``, …"""
    channel: str
    """``wechat`` or ``sms``."""
    application_id: str | None
    attempts: int
    delivered_at: Timestamp
    test_mode: bool = False
    """Sent in test mode: nothing really reached anyone."""


@registry.event(
    type="cn.wangban.notify.message.failed.v1",
    topic=DELIVERIES_TOPIC,
    key="notification_id",
)
class MessageFailed(Event):
    """A message will not be delivered: a permanent failure, retries exhausted, or no answer.

    The notification itself stays in the citizen's in-app inbox; a WeChat message refused for
    lack of a subscription (``no-consent``) is followed by an SMS where the citizen allows it.
    """

    message_id: str
    notification_id: str
    kind: str
    channel: str
    application_id: str | None
    status: str
    """``permanent-failure``, ``temporary-failure`` or ``technical-failure`` (the last two when
    no further attempt will be made)."""
    code: str | None
    """The provider's code (``43101``, ``47003``, ``isv.MOBILE_NUMBER_ILLEGAL``) or ours
    (``no-consent``, ``daily-limit``, ``render``, ``no-receipt``, ``lost``)."""
    field: str | None
    """The template field at fault, when one was."""
    attempts: int
    failed_at: Timestamp
    test_mode: bool = False
