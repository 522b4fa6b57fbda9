"""Producing events: UUIDv7 ids and the envelope around a payload, carrying the current
request's ids. What an event *is* — the CloudEvents envelope, the ``Event`` base, the registry,
every event model — is contract, in :mod:`contracts`; the names below are re-exported from
there so the kit's modules read one vocabulary.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from datetime import UTC, datetime

import contracts
from contracts.events import CLOUDEVENTS_CONTENT_TYPE as CLOUDEVENTS_CONTENT_TYPE
from contracts.events import Envelope as Envelope
from contracts.events import Event as Event
from contracts.events import EventRegistry as EventRegistry
from contracts.events import EventT as EventT
from contracts.events import Payload as Payload
from contracts.events import TopicSpec as TopicSpec
from contracts.events import registry as registry
from contracts.events import schema_uri
from contracts.platform.v1 import DEAD_LETTER_TOPIC as DEAD_LETTER_TOPIC
from contracts.platform.v1 import EventDeadLettered as EventDeadLettered
from wangban.observability import current_context

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


def envelope_for(event: Event, *, source: str, subject: str | None = None) -> Envelope:
    """Wrap a payload, carrying the current request/event context as correlation and causation."""
    ctx = current_context()
    return Envelope(
        id=str(uuid7()),
        source=source,
        type=event.event_type,
        subject=subject if subject is not None else event.aggregate_key(),
        time=datetime.now(UTC),
        dataschema=schema_uri(event.event_type),
        data=event.model_dump(mode="json"),
        correlationid=ctx.get("correlation_id") or ctx.get("request_id"),
        causationid=ctx.get("causation_id") or ctx.get("request_id"),
        traceparent=ctx.get("traceparent"),
    )


def load_all_event_modules() -> EventRegistry:
    """The registry holding the whole platform: every contract module imported (no service
    code: the contracts describe every service's events)."""
    return contracts.load_all()
