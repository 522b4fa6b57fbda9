"""Kafka clients built from settings, and topic creation from the event registry.

Topics are created explicitly (partition counts from the registry) rather than left to broker
auto-creation: auto-created topics get the broker's default partition count, and the embedded
broker forgets every topic when it restarts, so producers and consumers call
:func:`ensure_topics` on start and again after they lose the broker.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import ssl
import time
from collections.abc import Awaitable, Iterable
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import IncompatibleBrokerVersion, KafkaError, TopicAlreadyExistsError

from wangban.events import TopicSpec, registry
from wangban.settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")


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


class IdleAwareConsumer(AIOKafkaConsumer):
    """A consumer whose fetch long-poll is short while records flow and long once idle.

    Neither embedded broker answers a fetch early when a record arrives (docs/performance.md,
    "The broker's idle cost"), so the wait bounds each hop's latency; but a short wait makes
    every idle consumer fetch a hundred times a second, most of an idle platform's CPU. After
    ``idle_after_s`` without a record the wait becomes ``idle_wait_ms``; the first record
    after that switches it back. aiokafka reads the wait from its fetcher each time it builds
    a fetch request and has no public setter, hence the private attribute
    (tests/platform/test_embedded_brokers.py fails if aiokafka renames it)."""

    def __init__(
        self, *topics: str, busy_wait_ms: int, idle_wait_ms: int, idle_after_s: float, **config: Any
    ):
        super().__init__(*topics, fetch_max_wait_ms=busy_wait_ms, **config)
        self.busy_wait_ms = busy_wait_ms
        self.idle_wait_ms = idle_wait_ms
        self.idle_after_s = idle_after_s
        self._last_record = time.monotonic()

    @property
    def fetch_wait_ms(self) -> int:
        """The wait of the fetch requests being made now."""
        fetcher = self._fetcher
        return int(fetcher._fetch_max_wait_ms) if fetcher is not None else self.busy_wait_ms

    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int = 0, max_records: int | None = None
    ) -> dict[TopicPartition, list[ConsumerRecord[Any, Any]]]:
        batches = await super().getmany(*partitions, timeout_ms=timeout_ms, max_records=max_records)
        now = time.monotonic()
        if batches:
            self._last_record = now
        idle = now - self._last_record >= self.idle_after_s
        fetcher = self._fetcher
        if fetcher is not None:
            fetcher._fetch_max_wait_ms = self.idle_wait_ms if idle else self.busy_wait_ms
        return batches


def make_consumer(settings: Settings, *topics: str, group_id: str) -> AIOKafkaConsumer:
    return IdleAwareConsumer(
        *topics,
        **common_config(settings, client_id=group_id),
        group_id=group_id,
        enable_auto_commit=False,
        # Earliest: a new group, or one whose committed offsets a restarted embedded broker
        # forgot, reads from the start; the inbox makes the replay harmless.
        auto_offset_reset="earliest",
        busy_wait_ms=settings.kafka_fetch_max_wait_ms,
        idle_wait_ms=max(settings.kafka_fetch_idle_wait_ms, settings.kafka_fetch_max_wait_ms),
        idle_after_s=settings.kafka_fetch_idle_after_s,
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
        except IncompatibleBrokerVersion:
            # No CreateTopics: librdkafka's mock cluster (the embedded `mock` broker), whose
            # bootstrap port takes the request as one JSON line instead (wangban.mock_broker).
            await _create_on_mock_cluster(settings, missing)
        log.info("created topics", extra={"fields": {"topics": [s.name for s in missing]}})
    finally:
        await admin.close()


async def _create_on_mock_cluster(settings: Settings, specs: list[TopicSpec]) -> None:
    assert settings.kafka_bootstrap is not None  # common_config checked it
    host, port = settings.kafka_bootstrap.split(",")[0].strip().rsplit(":", 1)
    request = {"create_topics": [{"name": s.name, "partitions": s.partitions} for s in specs]}
    timeout = settings.kafka_request_timeout_ms / 1000
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), timeout)
    try:
        writer.write(json.dumps(request).encode() + b"\n")
        answer = json.loads(await asyncio.wait_for(reader.readline(), timeout) or b"{}")
    finally:
        writer.close()
    if "created" not in answer:
        raise IncompatibleBrokerVersion(
            f"the broker creates no topics (CreateTopics unsupported): {answer.get('error')}"
        )


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


class BrokerRestarted(RuntimeError):
    """The broker restarted and forgot what it had acknowledged while a batch was in flight:
    the batch may be lost, so it is sent again (consumers' inboxes absorb the copies)."""


class CheckedProducer:
    """A producer for the kit's at-least-once senders (the outbox relay, sharing's audit
    stream) that notices a broker which restarted and forgot.

    A broker that keeps nothing across a restart (the embedded ones) acknowledges sends in flight
    across the restart into topics it no longer has, and loses them when the topics are created
    again. So the sender stamps the broker with an epoch (an offset committed for a group only
    this instance uses, ``epoch_group``) whenever it (re)creates its topics, and checks the stamp
    after every batch (:meth:`verify_same_broker`): a missing stamp means the batch may be lost.
    With Apache Kafka and acks=all this is redundant (``WANGBAN_KAFKA_VERIFY_WRITES=false``
    saves the round trip). Some aiokafka calls retry forever against a broker that lost its
    state; every call here is bounded by the request timeout."""

    def __init__(
        self,
        settings: Settings,
        *,
        client_id: str,
        epoch_group: str,
        topics: Iterable[TopicSpec],
        epoch_partition: TopicPartition,
    ) -> None:
        self.settings = settings
        self.client_id = client_id
        self.epoch_group = epoch_group
        self.topics = list(topics)
        self.epoch_partition = epoch_partition
        self._producer: AIOKafkaProducer | None = None
        self._epoch_client: AIOKafkaConsumer | None = None
        self._epoch: int | None = None
        self._topics_ready = False

    async def ready(self) -> AIOKafkaProducer:
        """The started producer, the topics created (again, after losing the broker: an
        embedded broker forgets its topics when it restarts) and the broker stamped."""
        if not self._topics_ready:
            await self.bounded(ensure_topics(self.settings, self.topics))
            if self.settings.kafka_verify_writes:
                await self.bounded(self._stamp_epoch())
            self._topics_ready = True
        if self._producer is None:
            producer = make_producer(self.settings, client_id=self.client_id)
            try:
                await self.bounded(producer.start())
            except BaseException:
                await stop_quietly(producer)
                raise
            self._producer = producer
        return self._producer

    async def verify_same_broker(self) -> None:
        """Raise :class:`BrokerRestarted` if the broker restarted since the topics were made."""
        if not self.settings.kafka_verify_writes:
            return
        client = self._epoch_client
        if client is None or self._epoch is None:
            raise BrokerRestarted("broker epoch not stamped yet")
        if await self.bounded(client.committed(self.epoch_partition)) != self._epoch:
            self._topics_ready = False
            raise BrokerRestarted("the broker restarted while the batch was in flight")

    async def close(self) -> None:
        """Stop the clients; the next :meth:`ready` makes the topics and stamps again."""
        producer, self._producer = self._producer, None
        epoch_client, self._epoch_client = self._epoch_client, None
        self._epoch = None
        self._topics_ready = False
        for client in (producer, epoch_client):
            if client is not None:
                await stop_quietly(client)

    async def bounded(self, operation: Awaitable[T]) -> T:
        return await asyncio.wait_for(operation, self.settings.kafka_request_timeout_ms / 1000)

    async def _stamp_epoch(self) -> None:
        if self._epoch_client is None:
            client = AIOKafkaConsumer(
                **common_config(self.settings, client_id=f"{self.client_id}-epoch"),
                # One group per instance: instances of one sender must not overwrite each
                # other's stamp (on Apache Kafka, idle groups expire with their offsets).
                group_id=self.epoch_group,
                enable_auto_commit=False,
            )
            try:
                await client.start()
                client.assign([self.epoch_partition])  # manual assignment: no group join needed
            except BaseException:
                await stop_quietly(client)
                raise
            self._epoch_client = client
        epoch = secrets.randbelow(2**31 - 2) + 1
        await self._epoch_client.commit({self.epoch_partition: epoch})
        self._epoch = epoch
