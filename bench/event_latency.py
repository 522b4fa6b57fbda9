"""Event latency: from a *committed* state change to the consumer's handler *starting*.

One sample is one event: a writer inserts a state row and ``outbox.publish``-es its event in
one transaction, stamps ``time.time_ns()`` as soon as ``commit()`` returns, and the consumer's
handler stamps ``time.time_ns()`` on its first line. The difference is what a resident waits
between "the approval was saved" and "the next service starts acting on it": relay wake-up,
outbox claim, produce with acks=all, broker, consumer fetch, inbox de-duplication.

Two ways the relay learns about a commit, measured separately because both run in production:

- ``inproc``: writer, relay and consumer share one process and event loop; the relay is woken by
  the in-process ``after_commit`` hook (a service relaying its own writes).
- ``notify``: the relay runs in a child process (``--role relay``) so the only thing that can
  wake it is PostgreSQL ``LISTEN/NOTIFY`` (several replicas, or a relay apart from the writers).
  Writer and consumer stay in this process, so commit and handler stamps share one dict.

Events are written at a steady rate (open loop: one task per event at its scheduled time) so
that, as long as the pipeline keeps up with the rate, the figures are latency rather than the
queueing of a backlog (the per-stage breakdown and the machine's CPU load say whether it kept
up); ``--burst N`` adds a labelled run where N events are written at once: queueing on purpose.

Run ``python -m bench.event_latency --help``; see bench/README.md and docs/performance.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import math
import os
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import psutil
from aiokafka import AIOKafkaProducer, ConsumerRecord
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, func, text
from sqlalchemy.ext.asyncio import AsyncSession

from bench.common import (
    Infrastructure,
    infrastructure,
    kit_revision,
    machine_facts,
    percentile,
    summarize,
)
from wangban.consumer import Consumer, ConsumerRunner, wait_until_assigned
from wangban.db import Database
from wangban.events import DEAD_LETTER_TOPIC, Envelope, Event, EventRegistry
from wangban.kafka import common_config
from wangban.observability import Metrics
from wangban.outbox import KitTables, Outbox, OutboxRelay, define_kit_tables
from wangban.settings import Environment, Settings

log = logging.getLogger("bench.event_latency")

REPO_ROOT = Path(__file__).resolve().parent.parent
TARGET_P50_MS = 20.0
"""The platform's target for the median; docs/performance.md says where it comes from."""

MODES = ("inproc", "notify")


# --- the miniature service under test --------------------------------------------------------


class ItemPayload(Event):
    """Fields of the benchmark event; each run registers a subclass under its own type."""

    item_id: str
    n: int


@dataclass
class BenchKit:
    """Schema, tables, topic and event type of one run, all unique to ``suffix``.

    Built identically in the parent and in the relay child from the suffix alone, so the two
    processes agree on names without passing anything else around.
    """

    suffix: str
    schema: str
    metadata: MetaData
    tables: KitTables
    items: Table
    registry: EventRegistry
    topic: str
    event: type[ItemPayload]
    outbox: Outbox


def build_kit(suffix: str, *, partitions: int) -> BenchKit:
    schema = f"bench_latency_{suffix}"
    metadata = MetaData(schema=schema)
    tables = define_kit_tables(metadata)
    # The "state change": one small row per event, written in the same transaction.
    items = Table(
        "items",
        metadata,
        Column("item_id", String(36), primary_key=True),
        Column("n", Integer, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    )
    registry = EventRegistry()
    # The relay creates the dead-letter topic along with ours; register it as services do.
    registry.topics[DEAD_LETTER_TOPIC.name] = DEAD_LETTER_TOPIC
    topic = registry.topic(
        f"wangban.bench.latency_{suffix}",
        partitions=partitions,
        description="Latency benchmark events (deleted at the end of the run).",
        key_description="The benchmark item id.",
    )

    @registry.event(
        type=f"cn.wangban.bench.latency_{suffix}.recorded.v1", topic=topic, key="item_id"
    )
    class ItemRecorded(ItemPayload):
        """A benchmark item was recorded (benchmark only; never published to partners)."""

    outbox = Outbox(
        schema=schema, source="/wangban/bench/latency", tables=tables, registry=registry
    )
    return BenchKit(
        suffix=suffix,
        schema=schema,
        metadata=metadata,
        tables=tables,
        items=items,
        registry=registry,
        topic=topic.name,
        event=ItemRecorded,
        outbox=outbox,
    )


# --- time stamps ---------------------------------------------------------------------------
# Everything is keyed by item id: it is the Kafka key and the payload's key field, so the relay
# (outbox row), the consumer (record key) and the handler (payload) can all name an event
# without decoding more than they already do.


@dataclass
class RelayStamps:
    claimed: dict[str, int] = field(default_factory=dict)
    """Rows claimed from the outbox and handed to the producer."""
    acked: dict[str, int] = field(default_factory=dict)
    """The broker acknowledged the row's record (acks=all)."""
    batches: list[tuple[list[str], float]] = field(default_factory=list)
    """Per relay batch: its keys, and the relay's own work between the last acknowledgement
    and the end of its send step (the kit's post-batch broker check): time in which the relay
    cannot claim the next batch."""

    def to_json(self) -> dict[str, Any]:
        return {"claimed": self.claimed, "acked": self.acked, "batches": self.batches}

    def merge_json(self, data: dict[str, Any]) -> None:
        self.claimed.update(data.get("claimed", {}))
        self.acked.update(data.get("acked", {}))
        self.batches.extend((list(keys), float(ms)) for keys, ms in data.get("batches", []))


@dataclass
class Stamps:
    commit: dict[str, int] = field(default_factory=dict)
    received: dict[str, int] = field(default_factory=dict)
    """The consumer runner starts processing the record (after the fetch, before decoding)."""
    handler: dict[str, int] = field(default_factory=dict)
    relay: RelayStamps = field(default_factory=RelayStamps)


@dataclass
class Phase:
    """The events of one measured (or warm-up) run and a signal for "all handled"."""

    kind: str  # "warmup", "steady" or "burst"
    total: int
    rate: float | None  # target events/s; None: all at once
    ids: set[str] = field(default_factory=set)
    handled: int = 0
    done: asyncio.Event = field(default_factory=asyncio.Event)
    # Filled in by run_phase: how fast we really wrote, and how busy the machine was meanwhile
    # (another test run on a 2-core machine shows up here, not only in the latencies).
    rate_achieved: float = math.nan
    loadavg_before: float = math.nan
    loadavg_after: float = math.nan
    cpu_busy_percent: float = math.nan
    process_cpu_percent: dict[str, float] = field(default_factory=dict)
    """CPU of our own processes over the phase, in % of one core: a Python event loop near
    100% queues everything it runs, whatever the machine as a whole is doing."""

    def note_handled(self, item_id: str) -> None:
        if item_id in self.ids:
            self.handled += 1
            if self.handled >= self.total:
                self.done.set()


class _AckStampingProducer:
    """Stands in for the relay's producer: same calls, plus an ack stamp per record.

    Stamping from the send futures' callbacks needs nothing from the relay but that it sends
    through ``producer.send``, so it survives changes to what the relay does around the sends.
    """

    def __init__(self, producer: AIOKafkaProducer, acked: dict[str, int]) -> None:
        self._producer = producer
        self._acked = acked

    def __getattr__(self, name: str) -> Any:
        return getattr(self._producer, name)

    async def send(self, topic: str, value: Any = None, key: Any = None, **kwargs: Any) -> Any:
        future = await self._producer.send(topic, value=value, key=key, **kwargs)
        item_id = key.decode() if isinstance(key, bytes) else str(key)

        def stamp(done: asyncio.Future[Any]) -> None:
            if not done.cancelled() and done.exception() is None:
                self._acked.setdefault(item_id, time.time_ns())

        future.add_done_callback(stamp)
        return future


class TimedRelay(OutboxRelay):
    """The kit's relay, unchanged, with time stamps around its batch step.

    Overrides ``_send`` (private, but the one step that sees both the claimed rows and the
    producer) purely to observe it: the stamps split the latency into stages. Should the kit
    rename it, the stages read "n/a"; the end-to-end figure needs no hooks and stays right.
    """

    def __init__(self, *, stamps: RelayStamps, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.stamps = stamps
        self.first_round = asyncio.Event()

    async def relay_once(self) -> int:
        try:
            return await super().relay_once()
        finally:
            # The first round runs after the LISTEN connection is set up, so from here on a
            # commit elsewhere wakes this relay through NOTIFY.
            self.first_round.set()

    async def _send(
        self, producer: AIOKafkaProducer, rows: Sequence[Any]
    ) -> tuple[list[int], BaseException | None]:
        claimed = time.time_ns()
        keys = [row.key for row in rows]
        for key in keys:
            self.stamps.claimed.setdefault(key, claimed)
        stamping = cast(AIOKafkaProducer, _AckStampingProducer(producer, self.stamps.acked))
        result = await super()._send(stamping, rows)
        done = time.time_ns()
        last_ack = max((self.stamps.acked.get(key, 0) for key in keys), default=0)
        if last_ack:
            self.stamps.batches.append((keys, (done - last_ack) / 1e6))
        return result


class TimedRunner(ConsumerRunner):
    """The kit's consumer runner with one stamp when a record reaches ``process``."""

    def __init__(self, *, stamps: Stamps, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.stamps = stamps

    async def process(self, record: ConsumerRecord[bytes, bytes]) -> None:
        if record.key is not None:
            self.stamps.received.setdefault(record.key.decode(), time.time_ns())
        await super().process(record)


def make_consumer(kit: BenchKit, stamps: Stamps, phases: list[Phase]) -> Consumer:
    consumer = Consumer(name=f"bench-latency-{kit.suffix}")

    @consumer.on(kit.event)
    async def on_item_recorded(
        session: AsyncSession, *, event: ItemPayload, envelope: Envelope
    ) -> None:
        started = time.time_ns()  # first thing: this is the "handler starts" instant
        item_id = event.item_id
        if item_id in stamps.handler:
            return  # a retried delivery (transaction failed after us): count the first only
        stamps.handler[item_id] = started
        for phase in phases:
            phase.note_handled(item_id)

    return consumer


# --- settings and infrastructure -----------------------------------------------------------


def bench_settings(
    *,
    database_url: str,
    kafka_bootstrap: str,
    data_dir: Path,
    fetch_max_wait_ms: int | None = None,
) -> Settings:
    """The test suite's realistic timeouts (tests/conftest.py make_settings).

    kafka_fetch_max_wait_ms and outbox_poll_interval_s stay at the Settings defaults (what a
    service runs with) unless --fetch-max-wait-ms asks otherwise. A 5 s safety-net poll also
    makes a missed wake-up obvious: it would show as seconds, not milliseconds.
    """
    settings = Settings(
        env=Environment.TEST,
        data_dir=data_dir,
        database_url=database_url,
        kafka_bootstrap=kafka_bootstrap,
        kafka_session_timeout_ms=2000,
        kafka_heartbeat_interval_ms=300,
        kafka_request_timeout_ms=3000,
        consumer_max_attempts=3,
        consumer_retry_backoff_ms=20,
        consumer_retry_backoff_max_ms=200,
    )
    if fetch_max_wait_ms is not None:
        settings = settings.model_copy(update={"kafka_fetch_max_wait_ms": fetch_max_wait_ms})
    return settings


# --- statistics ----------------------------------------------------------------------------


STAGES: tuple[tuple[str, str, str], ...] = (
    # (label, from, to): consecutive stamps along the path of one event.
    ("commit -> relay claimed", "commit", "claimed"),
    ("claimed -> broker acked", "claimed", "acked"),
    # Includes waiting behind earlier records of the same partition (handled in order).
    ("acked -> consumer picks it", "acked", "received"),
    ("consumer -> handler start", "received", "handler"),
)


def stage_stamps(stamps: Stamps) -> dict[str, dict[str, int]]:
    return {
        "commit": stamps.commit,
        "claimed": stamps.relay.claimed,
        "acked": stamps.relay.acked,
        "received": stamps.received,
        "handler": stamps.handler,
    }


# --- one mode ------------------------------------------------------------------------------


@dataclass
class RunResult:
    mode: str
    kind: str  # "steady" or "burst"
    events: int
    handled: int
    rate_target: float | None
    rate_achieved: float
    latency_ms: dict[str, float]
    stages_ms: dict[str, dict[str, float]]
    relay_after_ack_ms_p50: float
    relay_batch_size_mean: float
    loadavg_before: float
    loadavg_after: float
    cpu_busy_percent: float
    process_cpu_percent: dict[str, float]
    samples_ms: list[float]

    def to_json(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "kind": self.kind,
            "events": self.events,
            "handled": self.handled,
            "rate_target_per_s": self.rate_target,
            "rate_achieved_per_s": _num(self.rate_achieved, 1),
            "latency_ms": _rounded(self.latency_ms),
            "stages_ms": {k: _rounded(v) for k, v in self.stages_ms.items()},
            "relay_after_ack_ms_p50": _num(self.relay_after_ack_ms_p50, 3),
            "relay_batch_size_mean": _num(self.relay_batch_size_mean, 2),
            "loadavg_1min_before": _num(self.loadavg_before, 2),
            "loadavg_1min_after": _num(self.loadavg_after, 2),
            "cpu_busy_percent": _num(self.cpu_busy_percent, 1),
            "process_cpu_percent_of_one_core": {
                k: _num(v, 1) for k, v in self.process_cpu_percent.items()
            },
            "samples_ms": [round(v, 3) for v in self.samples_ms],
        }


def _num(value: float, digits: int) -> float | None:
    """Rounded for the report; NaN (nothing measured) becomes null, which JSON can carry."""
    return None if math.isnan(value) else round(value, digits)


def _rounded(values: dict[str, float]) -> dict[str, float | None]:
    return {k: _num(v, 3) for k, v in values.items()}


async def write_one(
    kit: BenchKit, database: Database, stamps: Stamps, phase: Phase, n: int
) -> None:
    """One unit of work as a service does it: state row + event, one transaction."""
    item_id = str(uuid.uuid4())
    phase.ids.add(item_id)  # before the commit: the handler may see it any time after
    async with database.sessionmaker() as session:
        await session.execute(kit.items.insert().values(item_id=item_id, n=n))
        await kit.outbox.publish(session, kit.event(item_id=item_id, n=n))
        await session.commit()
        stamps.commit[item_id] = time.time_ns()


async def send_events(
    kit: BenchKit,
    database: Database,
    stamps: Stamps,
    phase: Phase,
    *,
    rate: float | None,
    first_n: int,
) -> float:
    """Write ``phase.total`` events, open loop at ``rate``/s (None: all at once).

    Each event is its own task started at its scheduled instant, like independent requests: a
    slow commit delays only itself, not the schedule. Returns the achieved rate.
    """
    tasks: list[asyncio.Task[None]] = []
    start = time.monotonic()
    for i in range(phase.total):
        if rate is not None:
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(write_one(kit, database, stamps, phase, first_n + i)))
    await asyncio.gather(*tasks)
    elapsed = time.monotonic() - start
    return phase.total / elapsed if elapsed > 0 else math.inf


async def run_phase(
    kit: BenchKit,
    database: Database,
    stamps: Stamps,
    phases: list[Phase],
    *,
    kind: str,
    total: int,
    rate: float | None,
    first_n: int,
    timeout_s: float,
    relay_pid: int | None = None,
) -> Phase:
    """Write one phase's events and wait (up to ``timeout_s``) until all were handled."""
    phase = Phase(kind=kind, total=total, rate=rate)
    if total == 0:
        phase.done.set()  # e.g. --warmup 0: nothing to wait for
    phases.append(phase)
    phase.loadavg_before = os.getloadavg()[0]
    psutil.cpu_percent()  # starts the interval the next call reports on
    watched = {"bench": psutil.Process()}
    if relay_pid is not None:
        with contextlib.suppress(psutil.Error):
            watched["relay child"] = psutil.Process(relay_pid)
    cpu_before = {name: _cpu_seconds(p) for name, p in watched.items()}
    started = time.monotonic()
    try:
        phase.rate_achieved = await send_events(
            kit, database, stamps, phase, rate=rate, first_n=first_n
        )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(phase.done.wait(), timeout_s)
    finally:
        phases.remove(phase)
    phase.cpu_busy_percent = psutil.cpu_percent()  # all CPUs, whole machine, over the phase
    phase.loadavg_after = os.getloadavg()[0]
    wall = time.monotonic() - started
    phase.process_cpu_percent = {
        name: 100 * (_cpu_seconds(p) - cpu_before[name]) / wall for name, p in watched.items()
    }
    return phase


def _cpu_seconds(process: psutil.Process) -> float:
    try:
        times = process.cpu_times()
    except psutil.Error:
        return math.nan
    return float(times.user + times.system)


def result_of(mode: str, phase: Phase, stamps: Stamps) -> RunResult:
    # In commit order, so samples_ms in the JSON shows drift (a growing backlog) at a glance.
    ids = sorted(
        (i for i in phase.ids if i in stamps.handler and i in stamps.commit),
        key=stamps.commit.__getitem__,
    )
    samples = [(stamps.handler[i] - stamps.commit[i]) / 1e6 for i in ids]
    by_name = stage_stamps(stamps)
    stages: dict[str, dict[str, float]] = {}
    for label, start, end in STAGES:
        values = [
            (by_name[end][i] - by_name[start][i]) / 1e6
            for i in ids
            if i in by_name[start] and i in by_name[end]
        ]
        stages[label] = summarize(values)
    # The relay batches that carried this phase's events (a batch may straddle two phases).
    batches = [(keys, ms) for keys, ms in stamps.relay.batches if not phase.ids.isdisjoint(keys)]
    sizes = [len(keys) for keys, _ in batches]
    return RunResult(
        mode=mode,
        kind=phase.kind,
        events=phase.total,
        handled=len(ids),
        rate_target=phase.rate,
        rate_achieved=phase.rate_achieved,
        latency_ms=summarize(samples),
        stages_ms=stages,
        relay_after_ack_ms_p50=percentile(sorted(ms for _, ms in batches), 50),
        relay_batch_size_mean=sum(sizes) / len(sizes) if sizes else math.nan,
        loadavg_before=phase.loadavg_before,
        loadavg_after=phase.loadavg_after,
        cpu_busy_percent=phase.cpu_busy_percent,
        process_cpu_percent=phase.process_cpu_percent,
        samples_ms=samples,
    )


class RelayChild:
    """The relay of ``notify`` mode, in its own process: only NOTIFY can reach it there."""

    def __init__(self, infra: Infrastructure, kit_suffix: str, partitions: int):
        self.timings = infra.data_dir / f"relay-timings-{kit_suffix}.json"
        self.args = [
            sys.executable, "-m", "bench.event_latency", "--role", "relay",
            "--suffix", kit_suffix, "--partitions", str(partitions),
            "--database-url", infra.database_url, "--kafka-bootstrap", infra.kafka_bootstrap,
            "--data-dir", str(infra.data_dir), "--timings", str(self.timings),
        ]  # fmt: skip
        self.process: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    async def start(self, *, timeout_s: float = 60.0) -> None:
        self.process = await asyncio.create_subprocess_exec(
            *self.args,
            cwd=REPO_ROOT,  # `-m bench...` needs the repository root on sys.path
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), timeout_s)
        if line.strip() != b"READY":
            raise RuntimeError(f"relay child did not start (said {line!r})")

    async def stop(self) -> dict[str, Any]:
        """Close its stdin (its signal to stop), wait, and read back its stamps."""
        process, self.process = self.process, None
        if process is None:
            return {}
        assert process.stdin is not None
        process.stdin.close()
        try:
            await asyncio.wait_for(process.wait(), 30)
        except TimeoutError:
            process.kill()
            await process.wait()
        try:
            data: dict[str, Any] = json.loads(self.timings.read_text())
        except (OSError, ValueError):
            return {}
        self.timings.unlink(missing_ok=True)
        return data


async def run_mode(
    mode: str,
    infra: Infrastructure,
    settings: Settings,
    database: Database,
    args: argparse.Namespace,
) -> list[RunResult]:
    kit = build_kit(uuid.uuid4().hex[:8], partitions=args.partitions)
    stamps = Stamps()
    phases: list[Phase] = []
    metrics = Metrics(f"bench-{mode}")  # services always pass metrics; so does the benchmark
    async with database.engine.begin() as conn:
        await conn.execute(text(f'CREATE SCHEMA "{kit.schema}"'))
        await conn.run_sync(kit.metadata.create_all)
    relay: TimedRelay | None = None
    child: RelayChild | None = None
    runner = TimedRunner(
        stamps=stamps,
        settings=settings,
        database=database,
        outbox=kit.outbox,
        consumer=make_consumer(kit, stamps, phases),
        metrics=metrics,
    )
    measured: list[Phase] = []
    try:
        if mode == "inproc":
            relay = TimedRelay(
                stamps=stamps.relay,
                settings=settings,
                database=database,
                outbox=kit.outbox,
                metrics=metrics,
                service=f"bench-{mode}",
            )
            relay.start()
            await asyncio.wait_for(relay.first_round.wait(), 60)
        else:
            # No relay in this process: the outbox has no in-process waker, so the after_commit
            # hook does nothing here and NOTIFY is the only wake-up the child gets.
            child = RelayChild(infra, kit.suffix, args.partitions)
            await child.start()
        runner.start()
        await wait_until_assigned([runner], timeout_s=60)

        # Warm-up: pool connections, producer metadata, SQLAlchemy's statement cache, the
        # consumer's first fetch positions. Not counted.
        warm = await run_phase(
            kit,
            database,
            stamps,
            phases,
            kind="warmup",
            total=args.warmup,
            rate=args.rate,
            first_n=0,
            timeout_s=args.timeout,
        )
        if warm.handled < warm.total:
            raise RuntimeError(f"{mode}: warm-up lost {warm.total - warm.handled} events")

        plan: list[tuple[str, float | None, int]] = [("steady", args.rate, args.events)]
        if args.burst:
            plan.append(("burst", None, args.burst))
        first_n = args.warmup
        for kind, rate, total in plan:
            # Each phase starts once the previous one is fully handled, so a burst never
            # queues behind leftovers of the steady run.
            measured.append(
                await run_phase(
                    kit,
                    database,
                    stamps,
                    phases,
                    kind=kind,
                    total=total,
                    rate=rate,
                    first_n=first_n,
                    timeout_s=args.timeout,
                    relay_pid=child.pid if child is not None else None,
                )
            )
            first_n += total
    finally:
        await runner.stop()
        if relay is not None:
            await relay.stop()
        if child is not None:
            stamps.relay.merge_json(await child.stop())
        async with database.engine.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA IF EXISTS "{kit.schema}" CASCADE'))
        await _delete_topic(settings, kit.topic)
    return [result_of(mode, phase, stamps) for phase in measured]


async def _delete_topic(settings: Settings, topic: str) -> None:
    """Leave nothing behind on an external broker; the embedded one forgets it anyway."""
    admin = AIOKafkaAdminClient(**common_config(settings, client_id="bench-admin"))
    with contextlib.suppress(KafkaError, OSError, TimeoutError):
        await asyncio.wait_for(admin.start(), 5)
        await asyncio.wait_for(admin.delete_topics([topic]), 5)
    with contextlib.suppress(KafkaError, OSError, TimeoutError):
        await admin.close()


# --- roles ---------------------------------------------------------------------------------


async def bench_main(args: argparse.Namespace, infra: Infrastructure) -> dict[str, Any]:
    settings = bench_settings(
        database_url=infra.database_url,
        kafka_bootstrap=infra.kafka_bootstrap,
        data_dir=infra.data_dir,
        fetch_max_wait_ms=args.fetch_max_wait_ms,
    )
    database = Database(
        infra.database_url,
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_max_overflow,
    )
    started_at = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    try:
        async with database.engine.connect() as conn:
            pg_version = (await conn.execute(text("SHOW server_version"))).scalar_one()
        modes = MODES if args.mode == "both" else (args.mode,)
        results: list[RunResult] = []
        for mode in modes:
            print(f"running {mode} ...", file=sys.stderr, flush=True)
            results.extend(await run_mode(mode, infra, settings, database, args))
    finally:
        await database.dispose()
    return {
        "benchmark": "event_latency",
        "measures": "handler start minus commit return, per event (time.time_ns)",
        "started_at": started_at,
        "command": " ".join(
            [Path(sys.executable).name, "-m", "bench.event_latency", *sys.argv[1:]]
        ),
        "machine": machine_facts(),
        "kit": kit_revision(),
        "infrastructure": {
            "postgres": f"{infra.postgres}, PostgreSQL {pg_version}",
            "broker": infra.broker,
        },
        "settings": {
            "kafka_fetch_max_wait_ms": settings.kafka_fetch_max_wait_ms,
            "kafka_session_timeout_ms": settings.kafka_session_timeout_ms,
            "kafka_heartbeat_interval_ms": settings.kafka_heartbeat_interval_ms,
            "outbox_poll_interval_s": settings.outbox_poll_interval_s,
            "outbox_batch_size": settings.outbox_batch_size,
            "database_pool_size": settings.database_pool_size,
            "partitions": args.partitions,
            "warmup_events": args.warmup,
        },
        "target": {"p50_ms_below": TARGET_P50_MS},
        "runs": [r.to_json() for r in results],
    }


async def relay_main(args: argparse.Namespace) -> RelayStamps:
    """Child of ``notify`` mode: run the relay until stdin closes; returns its stamps."""
    kit = build_kit(args.suffix, partitions=args.partitions)
    settings = bench_settings(
        database_url=args.database_url,
        kafka_bootstrap=args.kafka_bootstrap,
        data_dir=Path(args.data_dir),
    )
    database = Database(args.database_url)
    stamps = RelayStamps()
    relay = TimedRelay(
        stamps=stamps,
        settings=settings,
        database=database,
        outbox=kit.outbox,
        metrics=Metrics("bench-relay"),
        service="bench-notify",
    )
    relay.start()
    try:
        await asyncio.wait_for(relay.first_round.wait(), 60)
        print("READY", flush=True)
        # Blocks in a worker thread until the parent closes our stdin (also if it dies).
        await asyncio.to_thread(sys.stdin.readline)
    finally:
        await relay.stop()
        await database.dispose()
    return stamps


# --- output --------------------------------------------------------------------------------


def _ms(value: float | None, digits: int = 1) -> str:
    if value is None or math.isnan(value):
        return "n/a"
    return f"{value:.{digits}f}"


def render(report: dict[str, Any]) -> str:
    machine = report["machine"]
    lines = [
        f"machine: {machine['nproc']} CPUs ({machine['cpu_model']}), Python {machine['python']}, "
        f"{machine['platform']}; {machine.get('cpu_busy_percent_before_start')}% busy before start",
        f"kit: commit {report['kit']['commit']}"
        + (
            " + uncommitted changes in wangban/"
            if report["kit"]["wangban_uncommitted_changes"]
            else ""
        ),
        f"postgres: {report['infrastructure']['postgres']}",
        f"broker: {report['infrastructure']['broker']}",
        "settings: " + ", ".join(f"{k}={v}" for k, v in report["settings"].items()),
        "",
        f"{'mode':<15} {'events':>7} {'rate/s':>7} {'p50 ms':>7} {'p95 ms':>7} "
        f"{'p99 ms':>7} {'max ms':>7}",
    ]
    for run in report["runs"]:
        lat = run["latency_ms"]
        label = run["mode"] if run["kind"] == "steady" else f"{run['mode']} burst"
        handled = str(run["handled"])
        if run["handled"] != run["events"]:
            handled += f"/{run['events']}"  # some never arrived within --timeout
        lines.append(
            f"{label:<15} {handled:>7} {_ms(run['rate_achieved_per_s'], 0):>7} "
            f"{_ms(lat['p50']):>7} {_ms(lat['p95']):>7} {_ms(lat['p99']):>7} {_ms(lat['max']):>7}"
        )
    lines += ["", "stages, p50 / p99 ms (each stage's own percentiles; they do not add up):"]
    for run in report["runs"]:
        label = run["mode"] if run["kind"] == "steady" else f"{run['mode']} burst"
        parts = [f"{name} {_ms(v['p50'])}/{_ms(v['p99'])}" for name, v in run["stages_ms"].items()]
        lines.append(f"  {label}: " + "; ".join(parts))
        indent = " " * (len(label) + 4)
        lines.append(
            f"{indent}relay: after-ack check {_ms(run['relay_after_ack_ms_p50'])} ms p50, "
            f"mean batch {run['relay_batch_size_mean']} rows"
        )
        own = ", ".join(
            f"{name} {value}%" for name, value in run["process_cpu_percent_of_one_core"].items()
        )
        lines.append(
            f"{indent}CPU: machine {run['cpu_busy_percent']}% busy (all cores), loadavg "
            f"{run['loadavg_1min_before']} -> {run['loadavg_1min_after']}; "
            f"ours, % of one core: {own}"
        )
    for run in report["runs"]:
        if run["kind"] != "steady":
            continue
        p50 = run["latency_ms"]["p50"]
        met = p50 is not None and p50 < TARGET_P50_MS
        lines.append(
            f"target p50 < {TARGET_P50_MS:.0f} ms, {run['mode']}: {'met' if met else 'MISSED'}"
        )
    return "\n".join(lines)


# --- command line --------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.event_latency",
        description="Latency from a committed state change to the consumer handler starting.",
    )
    parser.add_argument("--mode", choices=[*MODES, "both"], default="both")
    parser.add_argument("--events", type=int, default=1000, help="measured events per mode")
    parser.add_argument("--warmup", type=int, default=50, help="uncounted events first")
    parser.add_argument("--rate", type=float, default=200.0, help="events per second")
    parser.add_argument(
        "--burst", type=int, default=0, help="also write N events at once (labelled burst)"
    )
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument(
        "--fetch-max-wait-ms",
        type=int,
        default=None,
        help="override Settings.kafka_fetch_max_wait_ms (default: keep the Settings default)",
    )
    parser.add_argument(
        "--timeout", type=float, default=60.0, help="seconds to wait for stragglers"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write results here")
    parser.add_argument(
        "--data-dir", type=Path, default=None, help="embedded PostgreSQL data (default: temp)"
    )
    # Internal: the relay child of notify mode.
    parser.add_argument(
        "--role", choices=["bench", "relay"], default="bench", help=argparse.SUPPRESS
    )
    parser.add_argument("--suffix", help=argparse.SUPPRESS)
    parser.add_argument("--database-url", help=argparse.SUPPRESS)
    parser.add_argument("--kafka-bootstrap", help=argparse.SUPPRESS)
    parser.add_argument("--timings", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.events < 1 or args.warmup < 0 or args.rate <= 0 or args.burst < 0:
        parser.error("--events must be >= 1, --warmup and --burst >= 0, --rate > 0")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    if args.role == "relay":
        stamps = asyncio.run(relay_main(args))
        Path(args.timings).write_text(json.dumps(stamps.to_json()))
        return 0
    # Someone else's work on a small machine moves the figures a lot: measure it before we add
    # our own load, and say so in the report.
    busy_before = psutil.cpu_percent(interval=1.0)
    if busy_before > 30:
        print(
            f"warning: the machine is already {busy_before:.0f}% busy; figures will be noisy",
            file=sys.stderr,
        )
    with infrastructure(args.data_dir) as infra:
        report = asyncio.run(bench_main(args, infra))
    report["machine"]["cpu_busy_percent_before_start"] = busy_before
    print(render(report))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
