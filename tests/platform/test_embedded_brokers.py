"""The embedded brokers (``wangban.embedded``): librdkafka's mock cluster does what the kit needs
of a broker with the production producer settings, which Tansu cannot.

The mock cluster is the broker of the CI lane that runs the kit and reliability tests with
idempotent producers (``./dev test-idempotent``, docs/operations.md); these tests keep what that
lane relies on true in the main suite: topics created with the partition counts we ask for
(the mock has no CreateTopics: its bootstrap port takes the request), idempotent acks=all
producers accepted, each key's records read back in order, and a restart on the same port found
again by new clients. Tansu refusing idempotent producers is why the lane needs it.

And the consumers' fetch wait, short while records flow and long once idle, which is what keeps
an idle platform cheap on brokers that answer no long-poll early (docs/performance.md)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from tests.infrastructure import Infrastructure, make_settings
from wangban.embedded import EmbeddedKafka, free_port
from wangban.events import TopicSpec, load_all_event_modules, registry
from wangban.kafka import (
    IdleAwareConsumer,
    ensure_topics,
    make_consumer,
    make_producer,
    stop_quietly,
)
from wangban.settings import Settings

pytestmark = pytest.mark.slow  # left out of `./dev test --fast`


async def until(check: Callable[[], bool], *, timeout_s: float = 30.0) -> None:
    async with asyncio.timeout(timeout_s):
        while True:
            if check():
                return
            await asyncio.sleep(0.01)


def _producer_id(producer: Any) -> int:
    # aiokafka keeps the id InitProducerId gave it in its transaction manager (None when
    # idempotence is off); no public accessor.
    manager = producer._txn_manager
    return -1 if manager is None else int(manager.producer_id)


async def _partitions(settings: Settings, *topics: str) -> dict[str, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics(list(topics))
    finally:
        await admin.close()
    return {t["topic"]: len(t["partitions"]) for t in described}


async def _read(settings: Settings, topic: str, count: int) -> list[tuple[bytes, bytes]]:
    reader = AIOKafkaConsumer(
        topic,
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=f"reader-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        fetch_max_wait_ms=10,
    )
    await reader.start()
    seen: list[tuple[bytes, bytes]] = []
    try:
        async with asyncio.timeout(30):
            while len(seen) < count:
                for records in (await reader.getmany(timeout_ms=500)).values():
                    seen.extend((r.key or b"", r.value or b"") for r in records)
    finally:
        await stop_quietly(reader)
    return seen


async def test_the_mock_cluster_takes_idempotent_producers_and_our_partition_counts(
    infrastructure: Infrastructure, tmp_path: Path
) -> None:
    broker = EmbeddedKafka(free_port(), log_file=tmp_path / "mock.log", kind="mock")
    settings = make_settings(infrastructure, kafka_bootstrap=broker.start(), kafka_idempotence=True)
    try:
        load_all_event_modules()
        # The registry's topics are there from the start, with the registry's partitions.
        expected = {spec.name: spec.partitions for spec in registry.topics.values()}
        assert await _partitions(settings, *expected) == expected
        # Another topic: created through the bootstrap port, with its own count, once.
        spec = TopicSpec(f"wangban.test.mock-{uuid.uuid4().hex[:6]}", 5, "test", "key")
        await ensure_topics(settings, [spec])
        await ensure_topics(settings, [spec])
        assert await _partitions(settings, spec.name) == {spec.name: 5}

        producer = make_producer(settings, client_id="lane")
        await producer.start()
        try:
            assert _producer_id(producer) >= 0  # the broker gave it a producer id
            sends = [
                await producer.send(spec.name, f"{key}-{i}".encode(), key=key.encode())
                for i in range(20)
                for key in ("a", "b", "c")
            ]
            await asyncio.gather(*sends)
        finally:
            await stop_quietly(producer)
        seen = await _read(settings, spec.name, 60)
        for key in (b"a", b"b", b"c"):
            assert [v for k, v in seen if k == key] == [
                f"{key.decode()}-{i}".encode() for i in range(20)
            ]
        assert len(seen) == 60  # each once

        # Restarted on the same port (memory gone, the registry's topics made again): a new
        # client finds it through the same bootstrap address.
        broker.stop()
        broker.start()
        assert await _partitions(settings, *expected) == expected
    finally:
        broker.stop()


async def test_tansu_refuses_idempotent_producers(
    infrastructure: Infrastructure, tmp_path: Path
) -> None:
    broker = EmbeddedKafka(free_port(), log_file=tmp_path / "tansu.log", kind="tansu")
    settings = make_settings(
        infrastructure,
        kafka_bootstrap=broker.start(),
        kafka_idempotence=True,
        kafka_request_timeout_ms=3000,
    )
    producer = make_producer(settings, client_id="lane")
    try:
        with pytest.raises(KafkaError):
            async with asyncio.timeout(20):
                await producer.start()
                await producer.send_and_wait("wangban.platform.deadletter", b"x")
    finally:
        await stop_quietly(producer)
        broker.stop()


async def test_a_consumer_fetches_often_while_records_flow_and_rarely_once_idle(
    infrastructure: Infrastructure,
) -> None:
    """The fetch wait switches (``IdleAwareConsumer``): counted in fetch requests sent, so a
    wait aiokafka no longer reads from where we set it fails here."""
    settings = make_settings(
        infrastructure,
        kafka_fetch_max_wait_ms=10,
        kafka_fetch_idle_wait_ms=500,
        kafka_fetch_idle_after_s=1.0,
    )
    spec = TopicSpec(f"wangban.test.idle-{uuid.uuid4().hex[:6]}", 1, "test", "key")
    await ensure_topics(settings, [spec])
    consumer = make_consumer(settings, spec.name, group_id=f"idle-{uuid.uuid4().hex[:6]}")
    assert isinstance(consumer, IdleAwareConsumer)
    fetches = 0
    received: list[bytes] = []

    await consumer.start()
    client = consumer._client
    send = client.send

    async def counting(node_id: Any, request: Any, **kwargs: Any) -> Any:
        nonlocal fetches
        if type(request).__name__.startswith("FetchRequest"):
            fetches += 1
        return await send(node_id, request, **kwargs)

    client.send = counting

    async def poll() -> None:
        while True:
            for records in (await consumer.getmany(timeout_ms=100)).values():
                received.extend(r.value or b"" for r in records)

    polling = asyncio.create_task(poll())
    producer = make_producer(settings, client_id="idle-test")
    await producer.start()
    try:
        await until(lambda: bool(consumer.assignment()))
        await producer.send_and_wait(spec.name, b"first")
        await until(lambda: bool(received))
        assert consumer.fetch_wait_ms == 10
        before = fetches
        await asyncio.sleep(0.5)
        busy = fetches - before

        await until(lambda: consumer.fetch_wait_ms == 500)
        await asyncio.sleep(0.6)  # the last short fetch is over
        before = fetches
        await asyncio.sleep(2.0)
        idle = fetches - before
        assert busy >= 10, busy  # ~50 in 0.5 s at 10 ms, fewer on a busy machine
        assert idle <= 6, idle  # 4 in 2 s at 500 ms

        await producer.send_and_wait(spec.name, b"second")
        await until(lambda: len(received) == 2)
        assert consumer.fetch_wait_ms == 10  # a record makes it busy again
    finally:
        polling.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await polling
        await stop_quietly(producer)
        await stop_quietly(consumer)
