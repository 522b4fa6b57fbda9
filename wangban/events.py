"""Domain events: the CloudEvents 1.0 envelope, one pydantic model per event type, and the
registry that maps each type to its Kafka topic.

Partner departments read these streams with their own tools, so every type is documented (the
model's docstring) and published as JSON Schema and AsyncAPI (``wangban events docs``). The type
string carries the version (``….v1``); a breaking change is a new type published side by side.
"""

from __future__ import annotations

import builtins
import os
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from wangban.observability import current_context

CLOUDEVENTS_CONTENT_TYPE = "application/cloudevents+json; charset=utf-8"
_TYPE_PATTERN = re.compile(r"^cn\.wangban\.[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+\.v[0-9]+$")

_uuid7_lock = threading.Lock()
_uuid7_last = 0


def uuid7() -> uuid.UUID:
    """A time-ordered UUID (RFC 9562 version 7), monotonic within this process.

    The 12 bits after the millisecond timestamp count up within one millisecond so ids made in
    a burst still sort in creation order.
    """
    global _uuid7_last
    with _uuid7_lock:
        candidate = time.time_ns() // 1_000_000 << 12
        # Same (or earlier) millisecond: continue the counter instead of going backwards.
        _uuid7_last = max(candidate, _uuid7_last + 1)
        stamp = _uuid7_last
    ms, counter = stamp >> 12, stamp & 0xFFF
    rand = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    value = (ms << 80) | (0x7 << 76) | (counter << 64) | (0b10 << 62) | rand
    return uuid.UUID(int=value)


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    description: str
    key_description: str


class Event(BaseModel):
    """Base of every event payload (the CloudEvents ``data``).

    Subclasses are registered with :meth:`EventRegistry.event`, which sets ``event_type``,
    ``topic`` and ``key_field`` (the payload field holding the aggregate id, the Kafka key).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_type: ClassVar[str]
    topic: ClassVar[str]
    topic_spec: ClassVar[TopicSpec]
    key_field: ClassVar[str]

    def aggregate_key(self) -> str:
        return str(getattr(self, self.key_field))


EventT = TypeVar("EventT", bound=Event)


class Envelope(BaseModel):
    """CloudEvents 1.0, structured JSON mode, with Wangban's tracing extensions."""

    model_config = ConfigDict(extra="allow")

    specversion: Literal["1.0"] = "1.0"
    id: str = Field(description="UUIDv7, time-ordered; consumers de-duplicate by it")
    source: str = Field(description="URI reference of the producing service, e.g. /wangban/intake")
    type: str = Field(description="Event type, e.g. cn.wangban.intake.application.submitted.v1")
    subject: str | None = Field(default=None, description="The aggregate the event is about")
    time: datetime
    datacontenttype: Literal["application/json"] = "application/json"
    dataschema: str | None = None
    data: dict[str, Any]
    correlationid: str | None = Field(default=None, description="Request that started the chain")
    causationid: str | None = Field(default=None, description="Event or request that caused it")
    traceparent: str | None = Field(default=None, description="W3C trace context")

    def to_bytes(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> Envelope:
        return cls.model_validate_json(raw)


@dataclass
class EventRegistry:
    """Event type → model and topic. Each service's ``events.py`` registers what it publishes."""

    topics: dict[str, TopicSpec] = field(default_factory=dict)
    events: dict[str, type[Event]] = field(default_factory=dict)

    def topic(
        self, name: str, *, partitions: int, description: str, key_description: str
    ) -> TopicSpec:
        spec = TopicSpec(name, partitions, description, key_description)
        existing = self.topics.get(name)
        if existing is not None and existing != spec:
            raise ValueError(f"topic {name!r} registered twice with different settings")
        self.topics[name] = spec
        return spec

    def event(
        self, *, type: str, topic: TopicSpec, key: str
    ) -> Callable[[builtins.type[EventT]], builtins.type[EventT]]:
        """Class decorator registering an :class:`Event` subclass."""
        if not _TYPE_PATTERN.match(type):
            raise ValueError(f"event type {type!r} must look like cn.wangban.<area>.<name>.v<N>")

        def register(model: builtins.type[EventT]) -> builtins.type[EventT]:
            if key not in model.model_fields:
                raise ValueError(f"{model.__name__} has no key field {key!r}")
            if not (model.__doc__ or "").strip():
                raise ValueError(f"{model.__name__} needs a docstring: partners read it")
            if type in self.events and self.events[type] is not model:
                raise ValueError(f"event type {type!r} registered twice")
            model.event_type = type
            model.topic = topic.name
            model.topic_spec = topic
            model.key_field = key
            self.events[type] = model
            return model

        return register

    def model_for(self, event_type: str) -> type[Event] | None:
        return self.events.get(event_type)


registry = EventRegistry()
"""The platform's registry. Import :func:`load_all_event_modules` to fill it completely."""


def envelope_for(event: Event, *, source: str, subject: str | None = None) -> Envelope:
    """Wrap a payload, carrying the current request/event context as correlation and causation."""
    ctx = current_context()
    return Envelope(
        id=str(uuid7()),
        source=source,
        type=event.event_type,
        subject=subject if subject is not None else event.aggregate_key(),
        time=datetime.now(UTC),
        data=event.model_dump(mode="json"),
        correlationid=ctx.get("correlation_id") or ctx.get("request_id"),
        causationid=ctx.get("causation_id") or ctx.get("request_id"),
        traceparent=ctx.get("traceparent"),
    )


# --- Platform events ------------------------------------------------------------------------

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


def load_all_event_modules() -> EventRegistry:
    """Import every service's ``events`` module so the registry holds the whole platform."""
    import importlib

    from wangban.services import SERVICE_PACKAGES

    for package in SERVICE_PACKAGES.values():
        importlib.import_module(f"{package}.events")
    return registry
