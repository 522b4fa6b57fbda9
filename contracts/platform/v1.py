"""The kit's own events (version 1): what every service's consumers announce to operators."""

from __future__ import annotations

from typing import Any

from contracts.events import Event, registry

DEAD_LETTER_TOPIC = registry.topic(
    "wangban.platform.deadletter",
    partitions=3,
    description="Events a consumer could not process after its retries, for operators.",
    key_description="The original event's Kafka key (its aggregate id).",
)


@registry.event(
    type="cn.wangban.platform.event.deadlettered.v1", topic=DEAD_LETTER_TOPIC, key="key"
)
class EventDeadLettered(Event):
    """A consumer gave up on an event after its configured tries.

    The original envelope is kept whole so an operator can inspect it and replay it with
    ``wangban events dlq replay <dead_letter_id>``. Carries whatever personal data the original
    event carried, so the topic is for operators only.
    """

    dead_letter_id: str
    consumer: str
    key: str
    original_topic: str
    original_event_id: str
    original_type: str
    attempts: int
    error: str
    original: dict[str, Any]
