"""Domain events: the CloudEvents 1.0 envelope, the base of every event model, and the registry
that maps each type to its Kafka topic.

Partner departments read these streams with their own tools, so every type is documented (the
model's docstring) and published as JSON Schema and AsyncAPI (``wangban events docs``). The type
string carries the version (``….v1``); a breaking change is a new type published side by side.

Within a version changes are additive (a new optional field), so the two sides of a topic read a
model differently: whoever *builds* an event is held to the model exactly (an unknown field or a
wrong type is refused where the event is made, before anything is written), and whoever *reads*
one (:meth:`Event.read`) ignores fields its code does not know yet — an event from a newer
producer, during a rolling upgrade or before a consumer is upgraded, is applied, not
dead-lettered.
"""

from __future__ import annotations

import builtins
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal, Self, TypeVar

from pydantic import BaseModel, ConfigDict, Field

CLOUDEVENTS_CONTENT_TYPE = "application/cloudevents+json; charset=utf-8"
_TYPE_PATTERN = re.compile(r"^cn\.wangban\.[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+\.v[0-9]+$")


Timestamp = Annotated[
    str, Field(json_schema_extra={"format": "date-time"}, description="ISO 8601 with offset")
]
"""A moment in an event's data, as its ISO 8601 text (documented ``format: date-time``)."""
CalendarDate = Annotated[
    str, Field(json_schema_extra={"format": "date"}, description="ISO 8601 date (China)")
]
"""A calendar day in an event's data, ``YYYY-MM-DD`` (documented ``format: date``)."""


def schema_uri(event_type: str) -> str:
    """The envelope's ``dataschema``: the ``$id`` of the type's JSON Schema in the partner
    documentation (``docs/events/<type>.json``)."""
    return f"urn:wangban:event:{event_type}"


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    description: str
    key_description: str


class Payload(BaseModel):
    """Base of the models nested in an event's data (a material's outcome, …): strict when
    built, read tolerantly as part of the event (:meth:`Event.read`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class Event(BaseModel):
    """Base of every event payload (the CloudEvents ``data``).

    Subclasses are registered with :meth:`EventRegistry.event`, which sets ``event_type``,
    ``topic`` and ``key_field`` (the payload field holding the aggregate id, the Kafka key).

    Building one is strict (``extra="forbid"``): a producer cannot publish a field the contract
    does not define. Reading one is tolerant: use :meth:`read`.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_type: ClassVar[str]
    topic: ClassVar[str]
    topic_spec: ClassVar[TopicSpec]
    key_field: ClassVar[str]

    def aggregate_key(self) -> str:
        return str(getattr(self, self.key_field))

    @classmethod
    def read(cls, data: Mapping[str, Any]) -> Self:
        """The tolerant reader: ``data`` as this code's model of the type, ignoring fields (at
        any depth) that a newer producer added and this code does not know. A missing required
        field or a wrong type still fails: that is a breaking change, which gets a new type."""
        return cls.model_validate(data, extra="ignore")


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
    """Event type → model and topic. Each module of :mod:`contracts` registers what one service
    publishes (``contracts.intake.v1``)."""

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


registry = EventRegistry()
"""The platform's registry. :func:`contracts.load_all` fills it completely."""
