"""秒批 latency: ``application.submitted`` → ``certificate.issued`` at a steady rate.

    python -m bench.auto_approval [--rate 50] [--seconds 20] [--warmup 20] [--json PATH]

The whole automatic path on the local platform, every service in its own process exactly as a
container runs it (``python -m wangban serve catalog|intake|approval|sharing``), on real
PostgreSQL and a real Kafka-protocol broker (embedded ones unless ``WANGBAN_DATABASE_URL`` /
``WANGBAN_KAFKA_BOOTSTRAP`` are set):

1. intake: ``POST /applications`` for the demo item 高龄老人津贴申领 (a sandbox persona who
   passes it, 告知承诺 for the commitment material, the household register by data sharing) →
   accepted at once, ``application.submitted`` and ``application.accepted`` in its outbox;
2. approval: opens the case, and on ``application.accepted`` decides automatically (a data
   lookup over HTTP to sharing, the CEL rules) → ``case.approved``;
3. sharing: issues the signed e-certificate → ``certificate.issued``.

Applications are POSTed open-loop at ``--rate`` (one task per request at its scheduled time)
for ``--seconds``, after ``--warmup`` uncounted ones. A plain Kafka reader in this process (no
consumer group) reads the three topics; the latency is the ``time`` of the
``certificate.issued`` envelope minus the ``time`` of the ``application.submitted`` envelope of
the same application, both stamped by the service processes on this host's clock when the
event was written to their outbox. Also reported: the HTTP response time of the submission,
request start → certificate event read here (what an applicant waiting on the event would
see), the stages between (from the events, the relays' claims in the outboxes and the
consumers' inbox rows), the rate achieved, errors, CPU of the machine and of each process (idle
and under load, hence per application), database transactions, rows and events per application,
and with ``--db-activity`` what PostgreSQL's backends were doing. Results and their reading:
docs/performance.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import signal
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
import psutil
from aiokafka import AIOKafkaConsumer
from sqlalchemy import text

from bench.common import (
    Infrastructure,
    infrastructure,
    kit_revision,
    machine_facts,
    platform_setup,
    summarize,
)
from bench.profiling import Profiler, find_py_spy
from sandbox import ELDERLY_ALLOWANCE, persona_for
from wangban.processes import ServiceProcesses
from wangban.settings import SERVICE_NAMES, Settings

PROFILED = ("intake", "approval", "sharing")
"""The services on the 秒批 path (--profile)."""
SERVICES = ("catalog", "intake", "approval", "sharing")
APPLICATIONS_TOPIC = "wangban.intake.applications"
DECISIONS_TOPIC = "wangban.approval.decisions"
CERTIFICATES_TOPIC = "wangban.sharing.certificates"
SUBMITTED = "cn.wangban.intake.application.submitted.v1"
ACCEPTED = "cn.wangban.intake.application.accepted.v1"
APPROVED = "cn.wangban.approval.case.approved.v1"
ISSUED = "cn.wangban.sharing.certificate.issued.v1"
TARGET_P99_MS = 200.0
TARGET_RATE = 50.0


# --- what we observe ------------------------------------------------------------------------


@dataclass
class Submission:
    """One POST /applications, as the load generator saw it."""

    phase: str
    scheduled: float  # seconds after the phase started
    started: float = math.nan  # time.time() when the request was sent
    http_ms: float = math.nan
    status_code: int | None = None
    application_status: str | None = None
    application_id: str | None = None
    error: str | None = None


@dataclass
class Trail:
    """What the event reader saw of one application (epoch seconds)."""

    submitted: float | None = None
    accepted: float | None = None
    accepted_event: str | None = None
    decision: str | None = None  # the first approval event type after acceptance
    approved: float | None = None
    approved_event: str | None = None
    issued: float | None = None
    issued_seen: float | None = None  # time.time() when the reader got it
    certificate_id: str | None = None  # of the certificate.issued event


@dataclass
class Observations:
    trails: dict[str, Trail] = field(default_factory=dict)
    unmatched_issued: int = 0

    def trail(self, application_id: str) -> Trail:
        return self.trails.setdefault(application_id, Trail())


def _event_time(envelope: dict[str, Any]) -> float:
    return datetime.fromisoformat(str(envelope["time"])).timestamp()


def observe(observations: Observations, raw: bytes, seen: float) -> None:
    envelope = json.loads(raw)
    kind = envelope.get("type", "")
    data = envelope.get("data") or {}
    application_id = data.get("application_id")
    if not application_id:
        return
    trail = observations.trail(str(application_id))
    if kind == SUBMITTED:
        trail.submitted = _event_time(envelope)
    elif kind == ACCEPTED:
        trail.accepted, trail.accepted_event = _event_time(envelope), str(envelope["id"])
    elif kind.startswith("cn.wangban.approval.case.") and trail.decision is None:
        trail.decision = kind.removeprefix("cn.wangban.approval.case.").removesuffix(".v1")
        if kind == APPROVED:
            trail.approved, trail.approved_event = _event_time(envelope), str(envelope["id"])
    elif kind == ISSUED and trail.issued is None:
        trail.issued, trail.issued_seen = _event_time(envelope), seen
        trail.certificate_id = str(data["certificate_id"]) if data.get("certificate_id") else None


async def read_events(
    settings: Settings,
    observations: Observations,
    ready: asyncio.Event,
    *,
    fetch_wait_ms: int,
    from_latest: bool = False,
) -> None:
    """A partner department's plain reader: all partitions, from the start, no group.

    Its fetch wait is its own (``--reader-fetch-wait-ms``): the embedded broker answers a fetch
    only when the wait is over, so a 10 ms reader would cost the broker a fetch of 15 partitions
    a hundred times a second, CPU the platform under test then lacks. The latency measured does
    not depend on it (it comes from the events' own times); only "request → certificate read"
    includes the reader's wait.

    ``from_latest``: only events written after the reader started (a reader started again and
    again in one run need not read the earlier runs' events first)."""
    from wangban.kafka import common_config

    reader = AIOKafkaConsumer(
        APPLICATIONS_TOPIC,
        DECISIONS_TOPIC,
        CERTIFICATES_TOPIC,
        **common_config(settings, client_id="bench-auto-approval-reader"),
        group_id=None,
        auto_offset_reset="latest" if from_latest else "earliest",
        fetch_max_wait_ms=fetch_wait_ms,
    )
    await reader.start()
    try:
        while True:
            batches = await reader.getmany(timeout_ms=100)
            ready.set()
            seen = time.time()
            for records in batches.values():
                for record in records:
                    if record.value is not None:
                        observe(observations, record.value, seen)
    finally:
        await reader.stop()


# --- the services ---------------------------------------------------------------------------


@dataclass
class Platform:
    settings: Settings
    services: ServiceProcesses

    @property
    def urls(self) -> dict[str, str]:
        return self.services.urls


async def prepare(settings: Settings) -> None:
    """What `wangban up` does before it starts the services: migrate, seed, create topics."""
    from wangban.cli import migrate_services, seed_services
    from wangban.events import load_all_event_modules
    from wangban.kafka import ensure_topics

    await migrate_services(settings, list(SERVICE_NAMES))
    await seed_services(settings, list(SERVICE_NAMES))
    await lift_grant_limit(settings)
    load_all_event_modules()
    await ensure_topics(settings)


async def lift_grant_limit(settings: Settings) -> None:
    """高龄老人津贴 is granted once per person, and the benchmarks grant it thousands of times
    to the one sandbox persona who qualifies: in the benchmark's own database the allowance
    gets a revision without the limit (the rest of its content, rules included, unchanged)."""
    from catalog_service import repository as catalog_repository
    from catalog_service import service as catalog
    from catalog_service.schemas import ItemContent
    from wangban.db import Database

    database = Database.from_settings(settings)
    try:
        async with database.sessionmaker() as session, session.begin():
            item = await catalog_repository.item_by_code(session, ELDERLY_ALLOWANCE)
            if item is None:
                raise RuntimeError("the demo catalogue has no 高龄老人津贴申领 to benchmark")
            draft = await catalog.start_revision(session, item_id=item.id)
            content = {**draft.content, "grant_limit": "none"}
            await catalog.update_draft(
                session, version_id=draft.id, content=ItemContent.model_validate(content)
            )
            await catalog.publish_version(session, version_id=draft.id)
    finally:
        await database.dispose()


async def item_version_everywhere(
    database: Any, *, timeout_s: float, code: str = ELDERLY_ALLOWANCE
) -> dict[str, Any]:
    """The item's current version (by default the demo allowance's), once intake, approval
    and sharing hold their copies (they learn it from the catalog's ``item.published``, never
    by asking the catalog)."""
    deadline = time.monotonic() + timeout_s
    while True:
        async with database.engine.connect() as conn:
            row = (
                await conn.execute(
                    text(
                        "SELECT v.id, v.content FROM catalog.item i "
                        "JOIN catalog.item_version v ON v.id = i.current_version_id "
                        "WHERE i.implementing_code = :code"
                    ),
                    {"code": code},
                )
            ).first()
            if row is not None:
                version_id, content = str(row[0]), dict(row[1])
                copies = [
                    await conn.scalar(
                        text(f"SELECT count(*) FROM {table} WHERE version_id = :id"),
                        {"id": version_id},
                    )
                    for table in (
                        "intake.item_version",
                        "approval.item_version",
                        "sharing.item_version_copy",
                    )
                ]
                if all(copies):
                    return {"id": version_id, "content": content}
        if time.monotonic() > deadline:
            raise RuntimeError("the demo item's version did not reach intake/approval/sharing")
        await asyncio.sleep(0.3)


# --- CPU ------------------------------------------------------------------------------------


def _cpu_seconds(process: psutil.Process) -> float:
    try:
        times = process.cpu_times()
    except psutil.Error:
        return 0.0
    return float(times.user + times.system)


class CpuWatch:
    """CPU seconds of named process trees over a window (processes that start inside the window
    count in full; ones that end inside it are lost, which pooled connections rarely do)."""

    def __init__(self, roots: dict[str, int | None], *, alone: Sequence[str] = ()):
        self.roots = {name: pid for name, pid in roots.items() if pid is not None}
        self.alone = set(alone)  # without their children (ours are the services and broker)
        self._before: dict[str, dict[int, float]] = {}
        self._started = 0.0

    def _snapshot(self) -> dict[str, dict[int, float]]:
        shot: dict[str, dict[int, float]] = {}
        for name, pid in self.roots.items():
            tree: dict[int, float] = {}
            with contextlib.suppress(psutil.Error):
                root = psutil.Process(pid)
                children = [] if name in self.alone else root.children(recursive=True)
                for process in [root, *children]:
                    tree[process.pid] = _cpu_seconds(process)
            shot[name] = tree
        return shot

    def start(self) -> None:
        psutil.cpu_percent()  # starts the interval the next call reports on
        self._before = self._snapshot()
        self._started = time.monotonic()

    def stop(self) -> dict[str, Any]:
        machine = psutil.cpu_percent()
        wall = time.monotonic() - self._started
        after = self._snapshot()
        per_process = {}
        for name, tree in after.items():
            before = self._before.get(name, {})
            used = sum(seconds - before.get(pid, 0.0) for pid, seconds in tree.items())
            per_process[name] = round(100 * used / wall, 1)
        cores = psutil.cpu_count() or 1
        return {
            "window_s": round(wall, 1),
            "machine_busy_percent": machine,
            "process_percent_of_one_core": per_process,
            # Everything else on the machine (the kernel, PostgreSQL backends that exited during
            # the window, someone else's job): large values mean the figures are disturbed.
            "other_percent_of_one_core": round(machine * cores - sum(per_process.values()), 1),
        }


def cpu_per_application(
    loaded: dict[str, Any], idle: dict[str, Any], applications: int
) -> dict[str, float]:
    """CPU milliseconds per application, per process: (loaded − idle rate) × window / count.

    ``platform`` sums the four services and PostgreSQL. The embedded broker is left out of it:
    it burns more CPU idle (answering the consumers' 10 ms fetch long-polls) than under load,
    so its figure here is negative and says nothing about an application's cost."""
    per: dict[str, float] = {}
    for name, percent in loaded["process_percent_of_one_core"].items():
        extra = percent - idle["process_percent_of_one_core"].get(name, 0.0)
        per[name] = round(10 * extra * loaded["window_s"] / max(applications, 1), 1)
    per["platform"] = round(sum(per.get(name, 0.0) for name in (*SERVICES, "postgres")), 1)
    return per


# --- load -----------------------------------------------------------------------------------


class Applicant:
    """The sandbox persona who passes the allowance, signed in as a citizen (the gateway's
    token, made here with the same key)."""

    def __init__(self, settings: Settings, content: dict[str, Any], version_id: str):
        from wangban.auth import AssuranceLevel, Identity, InternalTokens
        from wangban.crypto import BlindIndex

        persona = persona_for(ELDERLY_ALLOWANCE)
        self.persona_key = persona.key
        self.identity = Identity(
            subject=f"bench-{persona.key}",
            kind="citizen",
            assurance=AssuranceLevel.REAL_PERSON,
            person_ref=BlindIndex.from_settings(settings).resident_id(persona.id_number),
        )
        self.tokens = InternalTokens.from_settings(settings)
        self.body = {
            "item_version_id": version_id,
            "applicant": {"id_number": persona.id_number, "name": persona.name},
            "form": persona.form(ELDERLY_ALLOWANCE, today=date.today()),
            "materials": [
                {"index": i, "commitment": True}
                for i, m in enumerate(content["materials"])
                if m["source"] == "commitment"
            ],
        }

    def headers(self) -> dict[str, str]:
        token = self.tokens.issue(self.identity, issuer="gateway")  # 60 s: one per request
        return {"Authorization": f"Bearer {token}", "Idempotency-Key": str(uuid.uuid4())}


async def submit(client: httpx.AsyncClient, applicant: Applicant, sample: Submission) -> None:
    headers = applicant.headers()
    sample.started = time.time()
    began = time.perf_counter()
    try:
        response = await client.post("/applications", json=applicant.body, headers=headers)
    except httpx.HTTPError as exc:
        sample.error = f"{type(exc).__name__}: {exc}"
        return
    finally:
        sample.http_ms = (time.perf_counter() - began) * 1000
    sample.status_code = response.status_code
    if response.status_code != 201:
        sample.error = f"HTTP {response.status_code}: {response.text[:200]}"
        return
    body = response.json()
    sample.application_id = str(body["id"])
    sample.application_status = str(body["status"])
    if sample.application_status != "accepted":
        sample.error = f"application {sample.application_status}, not accepted at once"


async def send_phase(
    client: httpx.AsyncClient, applicant: Applicant, *, phase: str, rate: float, count: int
) -> tuple[list[Submission], float]:
    """``count`` submissions at ``rate``/s, each on its own task at its scheduled time; returns
    them and the rate achieved (submissions sent / time from the first to the last send)."""
    samples = [Submission(phase=phase, scheduled=n / rate) for n in range(count)]
    tasks = []
    start = time.perf_counter()
    for sample in samples:
        delay = start + sample.scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(submit(client, applicant, sample)))
    sent_s = time.perf_counter() - start
    await asyncio.gather(*tasks)
    achieved = (count - 1) / sent_s if count > 1 and sent_s > 0 else math.nan
    return samples, achieved


async def wait_complete(
    samples: Sequence[Submission], observations: Observations, *, timeout_s: float
) -> float:
    """Until every accepted application's certificate was read (or the timeout); seconds."""
    started = time.monotonic()
    ids = [s.application_id for s in samples if s.application_id and s.error is None]
    while time.monotonic() - started < timeout_s:
        trails = observations.trails
        if all(i in trails and trails[i].issued is not None for i in ids):
            break
        await asyncio.sleep(0.05)
    return time.monotonic() - started


# --- stages from the database ---------------------------------------------------------------


async def inbox_and_decisions(database: Any, trails: dict[str, Trail]) -> dict[str, Any]:
    """When approval's and sharing's handlers started on each event (``inbox.processed_at`` is
    ``now()`` of the handler's transaction, whose first statement is the inbox insert), and the
    decision engine's own ``elapsed_ms``."""
    accepted = [t.accepted_event for t in trails.values() if t.accepted_event]
    approved = [t.approved_event for t in trails.values() if t.approved_event]
    query = "SELECT event_id::text, processed_at FROM {}.inbox WHERE event_id::text = ANY(:ids)"
    # The relay marks rows with now() of its transaction, which begins with the claim.
    relayed = "SELECT event_id::text, published_at FROM {}.outbox WHERE event_id::text = ANY(:ids)"
    async with database.engine.connect() as conn:
        intake_relayed = {
            str(r[0]): r[1].timestamp()
            for r in await conn.execute(text(relayed.format("intake")), {"ids": accepted})
            if r[1] is not None
        }
        approval_relayed = {
            str(r[0]): r[1].timestamp()
            for r in await conn.execute(text(relayed.format("approval")), {"ids": approved})
            if r[1] is not None
        }
        approval_in = {
            str(r[0]): r[1].timestamp()
            for r in await conn.execute(text(query.format("approval")), {"ids": accepted})
        }
        sharing_in = {
            str(r[0]): r[1].timestamp()
            for r in await conn.execute(text(query.format("sharing")), {"ids": approved})
        }
        elapsed = {
            str(r[0]): float(r[1])
            for r in await conn.execute(
                text(
                    "SELECT application_id, elapsed_ms FROM approval.decision "
                    "WHERE kind = 'auto' AND elapsed_ms IS NOT NULL"
                )
            )
        }
    return {
        "approval_in": approval_in,
        "sharing_in": sharing_in,
        "decision_ms": elapsed,
        "intake_relayed": intake_relayed,
        "approval_relayed": approval_relayed,
    }


async def database_work(database: Any) -> dict[str, Any]:
    """Cumulative counters of the whole database: transactions, and rows written per schema."""
    async with database.engine.connect() as conn:
        totals = (
            await conn.execute(
                text(
                    "SELECT xact_commit + xact_rollback, tup_inserted, tup_updated, tup_deleted, "
                    "sessions "
                    "FROM pg_stat_database WHERE datname = current_database()"
                )
            )
        ).one()
        schemas = {
            str(r[0]): int(r[1])
            for r in await conn.execute(
                text(
                    "SELECT schemaname, sum(n_tup_ins + n_tup_upd + n_tup_del) "
                    "FROM pg_stat_user_tables GROUP BY schemaname"
                )
            )
        }
    return {
        "transactions": int(totals[0]),
        "rows_inserted": int(totals[1]),
        "rows_updated": int(totals[2]),
        "rows_deleted": int(totals[3]),
        # Connections opened: each is a backend start and, in the services, a new asyncpg
        # connection whose statement cache starts empty.
        "sessions": int(totals[4]),
        "rows_written_by_schema": schemas,
    }


@dataclass
class DbActivity:
    """How many backends were, on average, in each state while the load ran."""

    samples: int = 0
    counts: dict[str, int] = field(default_factory=dict)

    def summary(self, top: int = 12) -> list[dict[str, Any]]:
        ranked = sorted(self.counts.items(), key=lambda kv: -kv[1])[:top]
        n = max(self.samples, 1)
        return [{"state": k, "mean_backends": round(v / n, 2)} for k, v in ranked]


async def sample_db_activity(database: Any, activity: DbActivity) -> None:
    """Every 100 ms: what each other backend is doing (state, wait event, statement start).
    "idle in transaction" is a transaction held open while its service does something else;
    a ``Lock`` wait is a backend queueing for a row another transaction holds."""
    query = text(
        "SELECT state, coalesce(wait_event_type || ':' || wait_event, '-'), "
        "left(regexp_replace(query, '\\s+', ' ', 'g'), 70) FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid() "
        "AND backend_type = 'client backend' AND state <> 'idle'"
    )
    async with database.engine.connect() as conn:
        while True:
            rows = (await conn.execute(query)).all()
            await conn.rollback()  # pg_stat_activity is a snapshot per transaction
            activity.samples += 1
            for state, wait, statement in rows:
                key = f"{state} | {wait} | {statement}"
                activity.counts[key] = activity.counts.get(key, 0) + 1
            await asyncio.sleep(0.1)


def work_per_application(
    before: dict[str, Any], after: dict[str, Any], applications: int
) -> dict[str, Any]:
    n = max(applications, 1)
    per: dict[str, Any] = {
        key: round((after[key] - before[key]) / n, 1)
        for key in ("transactions", "rows_inserted", "rows_updated", "rows_deleted", "sessions")
    }
    per["rows_written_by_schema"] = {
        schema: round((count - before["rows_written_by_schema"].get(schema, 0)) / n, 1)
        for schema, count in after["rows_written_by_schema"].items()
        if count - before["rows_written_by_schema"].get(schema, 0) > 0
    }
    return per


async def events_per_application(
    database: Any, since: float, applications: int
) -> dict[str, dict[str, float]]:
    """Per service: events it wrote to its outbox and events its consumer handled (inbox rows),
    by type, since the run started, per application of the run."""
    n = max(applications, 1)
    found: dict[str, dict[str, float]] = {}
    async with database.engine.connect() as conn:
        for schema in SERVICES:
            for table, column, verb in (
                ("outbox", "created_at", "wrote"),
                ("inbox", "processed_at", "handled"),
            ):
                rows = await conn.execute(
                    text(
                        f"SELECT event_type, count(*) FROM {schema}.{table} "
                        f"WHERE {column} >= to_timestamp(:since) GROUP BY event_type"
                    ),
                    {"since": since},
                )
                for event_type, count in rows:
                    short = str(event_type).removeprefix("cn.wangban.").removesuffix(".v1")
                    found.setdefault(f"{schema} {verb}", {})[short] = round(int(count) / n, 2)
    return found


# --- /metrics -------------------------------------------------------------------------------


async def scrape_http_metrics(urls: dict[str, str]) -> dict[str, dict[str, tuple[float, float]]]:
    """Per service, per ``METHOD route``: (count, sum of seconds) of request durations."""
    found: dict[str, dict[str, tuple[float, float]]] = {}
    async with httpx.AsyncClient(timeout=5) as client:
        for name, url in urls.items():
            routes: dict[str, list[float]] = {}
            with contextlib.suppress(httpx.HTTPError):
                body = (await client.get(f"{url}/metrics")).text
                for line in body.splitlines():
                    for suffix, slot in (("_count{", 0), ("_sum{", 1)):
                        prefix = "wangban_http_request_duration_seconds" + suffix
                        if line.startswith(prefix):
                            labels, value = line[len(prefix) :].rsplit("} ", 1)
                            parts = dict(
                                part.split("=", 1) for part in labels.split(",") if "=" in part
                            )
                            route = (
                                parts.get("method", "").strip('"')
                                + " "
                                + parts.get("route", "").strip('"')
                            )
                            routes.setdefault(route, [0.0, 0.0])[slot] = float(value)
            found[name] = {route: (v[0], v[1]) for route, v in routes.items()}
    return found


def metrics_delta(
    before: dict[str, dict[str, tuple[float, float]]],
    after: dict[str, dict[str, tuple[float, float]]],
) -> dict[str, dict[str, dict[str, float]]]:
    delta: dict[str, dict[str, dict[str, float]]] = {}
    for service, routes in after.items():
        for route, (count, total) in routes.items():
            count0, total0 = before.get(service, {}).get(route, (0.0, 0.0))
            if count - count0 >= 1 and not route.endswith(("/metrics", "/readyz", "/healthz")):
                delta.setdefault(service, {})[route] = {
                    "requests": count - count0,
                    "mean_ms": round(1000 * (total - total0) / (count - count0), 1),
                }
    return delta


# --- the run --------------------------------------------------------------------------------


def _ms(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else (b - a) * 1000


def _values(values: Iterator[float | None]) -> list[float]:
    return [v for v in values if v is not None and not math.isnan(v)]


def analyse(
    samples: list[Submission], observations: Observations, stages_db: dict[str, Any]
) -> dict[str, Any]:
    trails = observations.trails
    ok = [s for s in samples if s.error is None and s.application_id]
    done = [(s, trails[s.application_id]) for s in ok if s.application_id in trails]
    complete = [(s, t) for s, t in done if t.issued is not None and t.submitted is not None]
    approval_in = stages_db["approval_in"]
    sharing_in = stages_db["sharing_in"]
    intake_relayed = stages_db.get("intake_relayed", {})
    approval_relayed = stages_db.get("approval_relayed", {})
    latency = _values(_ms(t.submitted, t.issued) for _, t in complete)
    result: dict[str, Any] = {
        "submitted": len(samples),
        "errors": len(samples) - len(ok),
        "error_examples": sorted({s.error for s in samples if s.error})[:5],
        "completed": len(complete),
        "not_completed": len(ok) - len(complete),
        "decisions": _count(t.decision or "none" for _, t in done),
        "latency_ms": summarize(latency),
        "http_ms": summarize(_values(s.http_ms for s in samples)),
        "end_to_end_ms": summarize(
            _values(
                None if t.issued_seen is None else (t.issued_seen - s.started) * 1000
                for s, t in complete
            )
        ),
        "stages_ms": {
            "submitted → approved": summarize(
                _values(_ms(t.submitted, t.approved) for _, t in complete)
            ),
            "approved → issued": summarize(_values(_ms(t.approved, t.issued) for _, t in complete)),
            "submitted → approval handler": summarize(
                _values(
                    _ms(t.submitted, approval_in.get(t.accepted_event or "")) for _, t in complete
                )
            ),
            "    submitted → intake relay claim": summarize(
                _values(
                    _ms(t.submitted, intake_relayed.get(t.accepted_event or ""))
                    for _, t in complete
                )
            ),
            "    claim → approval handler": summarize(
                _values(
                    _ms(
                        intake_relayed.get(t.accepted_event or ""),
                        approval_in.get(t.accepted_event or ""),
                    )
                    for _, t in complete
                )
            ),
            "approval handler → approved": summarize(
                _values(
                    _ms(approval_in.get(t.accepted_event or ""), t.approved) for _, t in complete
                )
            ),
            "decision engine (elapsed_ms)": summarize(
                _values(
                    stages_db.get("decision_ms", {}).get(s.application_id or "")
                    for s, _ in complete
                )
            ),
            "approved → sharing handler": summarize(
                _values(
                    _ms(t.approved, sharing_in.get(t.approved_event or "")) for _, t in complete
                )
            ),
            "    approved → approval relay claim": summarize(
                _values(
                    _ms(t.approved, approval_relayed.get(t.approved_event or ""))
                    for _, t in complete
                )
            ),
            "    claim → sharing handler": summarize(
                _values(
                    _ms(
                        approval_relayed.get(t.approved_event or ""),
                        sharing_in.get(t.approved_event or ""),
                    )
                    for _, t in complete
                )
            ),
            "sharing handler → issued": summarize(
                _values(_ms(sharing_in.get(t.approved_event or ""), t.issued) for _, t in complete)
            ),
        },
    }
    # Does the latency drift during the run (a queue forming) or stay put?
    by_second: dict[int, list[float]] = {}
    for s, t in complete:
        value = _ms(t.submitted, t.issued)
        if value is not None:
            by_second.setdefault(int(s.scheduled), []).append(value)
    result["samples"] = [
        {
            "application_id": s.application_id,
            "scheduled_s": round(s.scheduled, 3),
            "http_ms": round(s.http_ms, 2),
            "error": s.error,
            "decision": t.decision if t else None,
            "latency_ms": _round(_ms(t.submitted, t.issued) if t else None),
            "submitted_to_approved_ms": _round(_ms(t.submitted, t.approved) if t else None),
            "end_to_end_ms": _round(
                None if t is None or t.issued_seen is None else (t.issued_seen - s.started) * 1000
            ),
        }
        for s in samples
        for t in [trails.get(s.application_id or "")]
    ]
    result["per_second"] = [
        {"second": k, "n": len(v), "p50": summarize(v)["p50"], "max": max(v)}
        for k, v in sorted(by_second.items())
    ]
    return result


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def _count(values: Iterator[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    return counts


@dataclass
class Measured:
    """What the load phase gathered, before the services stop."""

    version_id: str
    persona: str
    run_started: float
    warmup: list[Submission]
    run: list[Submission]
    achieved: float
    drain_s: float
    cpu: dict[str, Any]
    idle_cpu: dict[str, Any]
    work_before: dict[str, Any]
    metrics_before: dict[str, dict[str, tuple[float, float]]]
    metrics_after: dict[str, dict[str, tuple[float, float]]]
    observations: Observations
    activity: DbActivity
    profiles: dict[str, Any]


async def measure(args: argparse.Namespace, infra: Infrastructure, platform: Platform) -> Measured:
    """Wait for the platform, warm up, measure the idle CPU, then the run at ``--rate``."""
    from wangban.db import Database

    settings, urls = platform.settings, platform.urls
    processes = platform.services.children
    database = Database.from_settings(settings)
    observations = Observations()
    activity = DbActivity()
    reader_ready = asyncio.Event()
    reader = asyncio.create_task(
        read_events(settings, observations, reader_ready, fetch_wait_ms=args.reader_fetch_wait_ms)
    )
    try:
        started = time.monotonic()
        await platform.services.wait_ready(timeout_s=120)
        version = await item_version_everywhere(database, timeout_s=120)
        await asyncio.wait_for(reader_ready.wait(), 60)
        print(
            f"platform ready in {time.monotonic() - started:.1f} s "
            f"(logs: {platform.services.logs}); item version {version['id']}",
            flush=True,
        )
        applicant = Applicant(settings, version["content"], version["id"])
        limits = httpx.Limits(max_connections=500, max_keepalive_connections=100)
        async with httpx.AsyncClient(
            base_url=urls["intake"], limits=limits, timeout=args.http_timeout
        ) as client:
            warmup, _ = await send_phase(
                client, applicant, phase="warmup", rate=args.rate, count=args.warmup
            )
            await wait_complete(warmup, observations, timeout_s=args.drain_timeout)
            warm = analyse(warmup, observations, {"approval_in": {}, "sharing_in": {}})
            print(
                f"warm-up: {warm['completed']}/{len(warmup)} completed, "
                f"{warm['errors']} errors {warm['error_examples']}",
                flush=True,
            )
            await asyncio.sleep(1.0)  # let the warm-up's tail settle before measuring

            watch = CpuWatch(
                {
                    "bench (load + reader)": os.getpid(),
                    **{name: p.pid for name, p in processes.items()},
                    "postgres": infra.postgres_pid,
                    "broker": infra.broker_pid,
                },
                alone=["bench (load + reader)"],
            )
            # What the platform burns doing nothing (consumers' fetch long-polls, relays' and
            # periodic jobs' wake-ups), to tell it apart from what the applications cost.
            watch.start()
            await asyncio.sleep(args.idle_seconds)
            idle_cpu = watch.stop()
            # PostgreSQL backends flush their statistics within 10 s of going idle: wait that
            # out so the counters hold the run's work only.
            await asyncio.sleep(max(11.0 - args.idle_seconds, 0.0))
            work_before = await database_work(database)
            metrics_before = await scrape_http_metrics(urls)
            sampler = (
                asyncio.create_task(sample_db_activity(database, activity))
                if args.db_activity
                else None
            )
            profiler = Profiler(args.profile) if args.profile else None
            if profiler is not None:
                profiler.start(
                    {n: processes[n].pid for n in PROFILED if n in processes}, seconds=args.seconds
                )
            watch.start()
            run_started = time.time()
            count = max(int(args.rate * args.seconds), 1)
            run, achieved = await send_phase(
                client, applicant, phase="run", rate=args.rate, count=count
            )
            drain_s = await wait_complete(run, observations, timeout_s=args.drain_timeout)
            cpu = watch.stop()  # over the load and until the last certificate was read
            profiles = {n: p.as_dict() for n, p in profiler.finish().items()} if profiler else {}
            if sampler is not None:
                sampler.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sampler
            metrics_after = await scrape_http_metrics(urls)
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await reader
        await database.dispose()
    return Measured(
        version_id=version["id"],
        persona=applicant.persona_key,
        run_started=run_started,
        warmup=warmup,
        run=run,
        achieved=achieved,
        drain_s=drain_s,
        cpu=cpu,
        idle_cpu=idle_cpu,
        work_before=work_before,
        metrics_before=metrics_before,
        metrics_after=metrics_after,
        observations=observations,
        activity=activity,
        profiles=profiles,
    )


async def conclude(
    args: argparse.Namespace, infra: Infrastructure, settings: Settings, m: Measured
) -> dict[str, Any]:
    """After the services stopped (their backends exited, so PostgreSQL's statistics of their
    work are complete): the inbox stages, the database work, the report."""
    from wangban.db import Database

    trails = m.observations.trails
    run_trails = {
        s.application_id: trails[s.application_id] for s in m.run if s.application_id in trails
    }
    database = Database.from_settings(settings)
    try:
        stages_db = await inbox_and_decisions(database, run_trails)
        work_after = await database_work(database)
    finally:
        await database.dispose()
    result = analyse(m.run, m.observations, stages_db)
    # "Per application" means per application that went the whole way (a submission that
    # failed did little work); with no failures that is every application of the run.
    completed = result["completed"] or len(m.run)
    database = Database.from_settings(settings)
    try:
        events = await events_per_application(database, m.run_started, completed)
    finally:
        await database.dispose()
    result.update(
        rate_asked=args.rate,
        rate_achieved=round(m.achieved, 1),
        seconds=args.seconds,
        drain_after_last_submission_s=round(m.drain_s, 2),
        cpu=m.cpu,
        cpu_idle=m.idle_cpu,
        cpu_ms_per_application=cpu_per_application(m.cpu, m.idle_cpu, completed),
        http_routes=metrics_delta(m.metrics_before, m.metrics_after),
        database_work_per_application=work_per_application(m.work_before, work_after, completed),
        events_per_application=events,
        db_activity=m.activity.summary(),
        db_activity_samples=m.activity.samples,
        profiles=m.profiles,
    )
    return {
        "benchmark": "auto_approval",
        "item": {"code": ELDERLY_ALLOWANCE, "version_id": m.version_id},
        "persona": m.persona,
        "warmup": args.warmup,
        "result": result,
        "machine": machine_facts(),
        "kit": kit_revision(),
        "postgres": infra.postgres,
        "broker": infra.broker,
    }


def run_benchmark(args: argparse.Namespace, infra: Infrastructure) -> dict[str, Any]:
    """Prepare, start the four services, measure, stop them (whatever happened), conclude."""
    setup = platform_setup(infra)
    settings = setup.settings
    asyncio.run(prepare(settings))
    services = ServiceProcesses(setup.env, infra.data_dir / "logs", setup.urls(SERVICES))
    try:
        services.start(SERVICES)
        measured = asyncio.run(measure(args, infra, Platform(settings=settings, services=services)))
    finally:
        # Not interrupted by a second Ctrl-C or SIGTERM: no service may outlive the run.
        previous = {
            sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            services.stop()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    return asyncio.run(conclude(args, infra, settings, measured))


# --- report ---------------------------------------------------------------------------------


def _fmt(stats: dict[str, float]) -> str:
    return "  ".join(
        f"{k} {stats[k]:7.1f}" if not math.isnan(stats[k]) else f"{k}     n/a"
        for k in ("p50", "p95", "p99", "max")
    )


def verdict(result: dict[str, Any]) -> tuple[bool, str]:
    p99 = result["latency_ms"]["p99"]
    problems = []
    if result["rate_asked"] < TARGET_RATE:
        problems.append(f"asked {result['rate_asked']:.0f}/s, below the target's {TARGET_RATE}/s")
    if result["rate_achieved"] < 0.95 * result["rate_asked"]:
        problems.append(f"achieved only {result['rate_achieved']}/s")
    if result["errors"] or result["not_completed"]:
        problems.append(f"{result['errors']} errors, {result['not_completed']} not completed")
    if math.isnan(p99) or p99 >= TARGET_P99_MS:
        problems.append(f"p99 {p99:.1f} ms")
    return not problems, "; ".join(problems) or f"p99 {p99:.1f} ms"


def render(report: dict[str, Any]) -> str:
    r = report["result"]
    m = report["machine"]
    lines = [
        f"machine: {m['nproc']} CPUs ({m['cpu_model']}), {m['platform']}, Python {m['python']}; "
        f"{m.get('cpu_busy_percent_before_start')}% busy before start",
        f"kit: {report['kit']}; postgres: {report['postgres']}; broker: {report['broker']}",
        f"rate asked {r['rate_asked']:.0f}/s, achieved {r['rate_achieved']}/s for "
        f"{r['seconds']:.0f} s: {r['submitted']} submitted, {r['errors']} errors, "
        f"{r['completed']} certificates, {r['not_completed']} not completed; "
        f"last certificate {r['drain_after_last_submission_s']} s after the last submission",
        f"decisions: {r['decisions']}",
        "",
        f"{'':<38}   {'ms':>7}",
        f"{'submitted → certificate.issued':<38} {_fmt(r['latency_ms'])}",
        f"{'POST /applications (HTTP)':<38} {_fmt(r['http_ms'])}",
        f"{'request → certificate read':<38} {_fmt(r['end_to_end_ms'])}",
    ]
    for name, stats in r["stages_ms"].items():
        lines.append(f"  {name:<36} {_fmt(stats)}")
    cpu = r["cpu"]
    lines.append("")
    lines.append(
        f"CPU over the {cpu['window_s']} s of load and drain: machine "
        f"{cpu['machine_busy_percent']}% busy (all cores); % of one core: "
        + ", ".join(f"{k} {v}" for k, v in cpu["process_percent_of_one_core"].items())
        + f"; everything else {cpu['other_percent_of_one_core']}"
    )
    idle = r["cpu_idle"]
    lines.append(
        f"CPU of the idle platform ({idle['window_s']} s before the load): machine "
        f"{idle['machine_busy_percent']}% busy; % of one core: "
        + ", ".join(f"{k} {v}" for k, v in idle["process_percent_of_one_core"].items())
    )
    lines.append(
        "CPU ms per application above idle: "
        + ", ".join(f"{k} {v}" for k, v in r["cpu_ms_per_application"].items())
    )
    work = r["database_work_per_application"]
    lines.append(
        f"database per application: {work['transactions']} transactions, rows inserted "
        f"{work['rows_inserted']}, updated {work['rows_updated']}, deleted "
        f"{work['rows_deleted']}, connections opened {work.get('sessions')}; "
        f"rows written by schema {work['rows_written_by_schema']}"
    )
    lines.append("events per application:")
    lines.extend(
        f"  {who}: " + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items()))
        for who, kinds in r["events_per_application"].items()
    )
    for service, profile in r.get("profiles", {}).items():
        lines.append(
            f"profile of {service} ({profile['samples']} samples; py-spy ran beside it, so this "
            "run's latencies are not results): innermost frame by library "
            + ", ".join(f"{x['library']} {x['percent']}%" for x in profile["by_library"][:10])
        )
        lines.extend(
            f"    {x['percent']:5.1f}% {x['frame']}" for x in profile["ours_inclusive"][4:14]
        )
    if r["db_activity"]:
        lines.append("PostgreSQL backends busy, mean count (state | wait | statement):")
        lines.extend(f"  {a['mean_backends']:6.2f}  {a['state']}" for a in r["db_activity"])
    for service, routes in r["http_routes"].items():
        lines.append(
            f"  {service} HTTP: "
            + ", ".join(
                f"{k} ×{v['requests']:.0f} mean {v['mean_ms']} ms" for k, v in routes.items()
            )
        )
    drift = r["per_second"]
    if drift:
        lines.append(
            "p50 per second of the run (ms): " + " ".join(f"{s['p50']:.0f}" for s in drift)
        )
    met, why = verdict(r)
    lines.append("")
    lines.append(
        f"target p99 < {TARGET_P99_MS:.0f} ms at {TARGET_RATE:.0f}/s: "
        f"{'met' if met else 'missed'} ({why})"
    )
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.auto_approval")
    parser.add_argument("--rate", type=float, default=50.0, help="applications/s (open loop)")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the measured run")
    parser.add_argument("--warmup", type=int, default=20, help="uncounted applications first")
    parser.add_argument(
        "--drain-timeout", type=float, default=60.0, help="wait for the last certificates (s)"
    )
    parser.add_argument("--http-timeout", type=float, default=30.0)
    parser.add_argument(
        "--db-activity",
        action="store_true",
        help="sample pg_stat_activity every 100 ms during the load (a diagnosis aid)",
    )
    parser.add_argument(
        "--idle-seconds", type=float, default=5.0, help="CPU baseline of the idle platform"
    )
    parser.add_argument(
        "--reader-fetch-wait-ms",
        type=int,
        default=100,
        help="the event reader's fetch wait (only 'request → certificate read' depends on it)",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="sample intake, approval and sharing with py-spy during the run; raw stacks here",
    )
    parser.add_argument("--json", type=Path, help="write the report (with samples) here")
    parser.add_argument(
        "--data-dir",
        type=Path,
        help="embedded PostgreSQL data and the services' logs (default: a temp dir, removed)",
    )
    args = parser.parse_args(argv)
    if args.profile and find_py_spy() is None:
        parser.error("--profile needs py-spy (pip install py-spy)")
    if args.rate <= 0 or args.seconds <= 0 or args.warmup < 0:
        parser.error("--rate and --seconds must be > 0, --warmup >= 0")
    return args


def _stop_on_sigterm(signum: int, _frame: FrameType | None) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # once is enough: we are stopping
    raise KeyboardInterrupt  # unwinds through every finally: services, broker, PostgreSQL


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    busy_before = psutil.cpu_percent(interval=1.0)
    if busy_before > 30:
        print(
            f"warning: the machine is already {busy_before:.0f}% busy; figures will be noisy",
            file=sys.stderr,
        )
    with infrastructure(args.data_dir) as infra:
        report = run_benchmark(args, infra)
    report["machine"]["cpu_busy_percent_before_start"] = busy_before
    print(render(report))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
