"""Kafka clients built from settings, and topic creation from the event registry.

Topics are created explicitly (partition counts from the registry) rather than left to broker
auto-creation: auto-created topics get the broker's default partition count, and the embedded
broker forgets every topic when it restarts, so producers and consumers call
:func:`ensure_topics` on start and again after they lose the broker.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from wangban.events import TopicSpec, registry
from wangban.settings import Settings

log = logging.getLogger(__name__)


def common_config(settings: Settings, *, client_id: str) -> dict[str, Any]:
    """Connection and security options shared by producers, consumers and the admin client."""
    if not settings.kafka_bootstrap:
        raise RuntimeError(
            "WANGBAN_KAFKA_BOOTSTRAP is not set; `wangban up` starts the embedded broker"
        )
    config: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap,
        "client_id": f"{settings.kafka_client_id_prefix}-{client_id}",
        "security_protocol": settings.kafka_security_protocol,
        "request_timeout_ms": settings.kafka_request_timeout_ms,
    }
    if settings.kafka_security_protocol in ("SSL", "SASL_SSL"):
        context = ssl.create_default_context(
            cafile=str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None
        )
        config["ssl_context"] = context
    if settings.kafka_security_protocol.startswith("SASL"):
        config["sasl_mechanism"] = settings.kafka_sasl_mechanism or "PLAIN"
        config["sasl_plain_username"] = settings.kafka_sasl_username
        config["sasl_plain_password"] = (
            settings.kafka_sasl_password.get_secret_value()
            if settings.kafka_sasl_password
            else None
        )
    return config


def make_producer(settings: Settings, *, client_id: str) -> AIOKafkaProducer:
    # acks=all: a row leaves the outbox only once every in-sync replica has it.
    return AIOKafkaProducer(
        **common_config(settings, client_id=client_id),
        acks="all",
        enable_idempotence=settings.kafka_idempotence,
        linger_ms=0,
    )


def make_consumer(settings: Settings, *topics: str, group_id: str) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        *topics,
        **common_config(settings, client_id=group_id),
        group_id=group_id,
        enable_auto_commit=False,
        # Earliest: a new group, or one whose committed offsets a restarted embedded broker
        # forgot, reads from the start; the inbox makes the replay harmless.
        auto_offset_reset="earliest",
        fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
        session_timeout_ms=settings.kafka_session_timeout_ms,
        heartbeat_interval_ms=settings.kafka_heartbeat_interval_ms,
        max_poll_records=200,
    )


async def ensure_topics(settings: Settings, topics: Iterable[TopicSpec] | None = None) -> None:
    """Create the registry's topics that do not exist yet (idempotent)."""
    specs = list(topics) if topics is not None else list(registry.topics.values())
    admin = AIOKafkaAdminClient(**common_config(settings, client_id="admin"))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [s for s in specs if s.name not in existing]
        if not missing:
            return
        try:
            await admin.create_topics(
                [
                    NewTopic(
                        name=s.name,
                        num_partitions=s.partitions,
                        replication_factor=settings.kafka_replication_factor,
                    )
                    for s in missing
                ]
            )
        except TopicAlreadyExistsError:
            pass  # another process won the race; the topic is there, which is all we need
        log.info("created topics", extra={"fields": {"topics": [s.name for s in missing]}})
    finally:
        await admin.close()


async def broker_answers(settings: Settings, *, timeout_s: float = 3.0) -> bool:
    """Readiness probe: can we reach the broker and read cluster metadata?"""
    admin = AIOKafkaAdminClient(**common_config(settings, client_id="probe"))
    try:
        await asyncio.wait_for(admin.start(), timeout_s)
        await asyncio.wait_for(admin.list_topics(), timeout_s)
        return True
    except (KafkaError, TimeoutError, OSError):
        return False
    finally:
        await stop_quietly(admin)


def cancelled_from_outside() -> bool:
    """Whether the current task itself is being cancelled (shutdown), as opposed to a
    CancelledError leaking out of a client's internal future (aiokafka does that when a
    connection dies mid-request), which a retry loop must treat as one more broker error."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


async def stop_quietly(client: AIOKafkaProducer | AIOKafkaConsumer | AIOKafkaAdminClient) -> None:
    """Stop a client that may be half-broken, within a bounded time, never raising (except
    for our own cancellation)."""
    try:
        stop = client.close() if isinstance(client, AIOKafkaAdminClient) else client.stop()
        await asyncio.wait_for(stop, timeout=5)
    except asyncio.CancelledError:
        if cancelled_from_outside():
            raise
    except Exception as exc:  # a broken client may fail to stop in many ways; it is gone anyway
        log.debug("kafka client did not stop cleanly", extra={"fields": {"error": repr(exc)}})
