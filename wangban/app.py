"""The service app factory: every Wangban service is a :class:`ServiceSpec` turned into a
FastAPI app with the same probes, metrics, error rendering, outbox relay and consumers.

The broker machinery (relay, consumers, dead letters, the broker watch) is imported only by a
service that has an outbox: the gateway, which has none, never loads a Kafka client."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, Protocol

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi import routing as fastapi_routing
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field
from sqlalchemy import MetaData, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from wangban import tracing
from wangban.auth import OPS, ROLES_EXTENSION, Identity, require_roles, required_roles
from wangban.db import Database, ReadSession, UnitOfWork
from wangban.errors import (
    Conflict,
    NotFound,
    ServiceUnavailable,
    install_problem_handlers,
    problem_responses,
)
from wangban.migrations import current_revision, head_revision
from wangban.observability import Metrics, MetricsServer, RequestContextMiddleware
from wangban.settings import Settings, get_settings

if TYPE_CHECKING:
    from wangban.consumer import Consumer, ConsumerRunner
    from wangban.outbox import Outbox, OutboxRelay

logger = logging.getLogger(__name__)

Seed = Callable[[AsyncSession], Awaitable[None]]
ReferenceLoad = Callable[[AsyncSession], Awaitable[object]]
"""Loads a service's demo data; must be idempotent (``wangban up`` runs it on every start)."""


@dataclass(frozen=True)
class PeriodicJob:
    """``run(session, settings)`` every ``interval_s`` seconds. Must be safe with several
    instances of the service running it at once (claim rows with SKIP LOCKED). It runs in one
    unit of work: a job that calls another system (sharing's audit checkpoint writes to the
    object store) is a :class:`BackgroundWorker` with its own short transactions instead."""

    name: str
    interval_s: float
    run: Callable[[AsyncSession, Settings], Awaitable[object]]


STOP_PART_TIMEOUT_S = 15.0
"""How long one part of a runtime may take to stop (Kafka clients against a broker that is
gone take up to their own 5 s bounds)."""


class BackgroundWorker(Protocol):
    """A loop that runs beside the service's requests and needs no transaction handed to it
    (it calls out to other systems between its own short transactions): the notify dispatcher.
    ``run_once`` returns how much it did; the runtime calls it again at once while there is
    work, else after ``interval_s``."""

    name: str
    interval_s: float

    async def run_once(self) -> int: ...

    async def close(self) -> None: ...


@dataclass(frozen=True)
class ServiceSpec:
    """What makes a service: its schema, its outbox, its routes, its consumers, its seeds."""

    name: str
    title: str
    description: str
    package: str
    metadata: MetaData
    """The service's tables; their schema (``MetaData(schema=…)``) is the service's schema."""
    outbox: Outbox | None = None
    """``None`` for a service that publishes and consumes no events (the gateway): it runs no
    relay, no consumers and no dead-letter routes, and never talks to the broker."""
    routers: Sequence[APIRouter] = ()
    consumers: Sequence[Consumer | Callable[[Settings], Consumer]] = ()
    """Consumers, or factories that build one from the running settings (for handlers that need
    keys or URLs from them). Only a service with an outbox has any (dead letters go there)."""
    seeds: Sequence[Seed] = field(default_factory=tuple)
    """Demo data (``wangban seed``, ``wangban up``): never run in production."""
    reference_data: Sequence[ReferenceLoad] = field(default_factory=tuple)
    """Production data the service ships (the catalogue's citizen lexicon), loaded by
    ``wangban migrate`` after the schema, each in its own transaction; idempotent and
    versioned by the service itself."""
    shutdowns: Sequence[Callable[[FastAPI], Awaitable[None]]] = ()
    """Run when the app stops, before the database closes: release what routes keep in
    ``app.state`` (HTTP client pools of external adapters)."""
    periodic: Sequence[PeriodicJob] = ()
    """Jobs run every few seconds while the service runs in the background (deadline sweeps);
    each run is one transaction, committed when it returns."""
    extensions: Sequence[Callable[[FastAPI, Settings], None]] = ()
    """Run on the built app: what one service adds to the standard one (the gateway's clients
    of external systems in ``app.state``, its CORS and protection middleware)."""
    workers: Sequence[Callable[[Database, Settings], BackgroundWorker]] = ()
    """Factories of background workers, started with the relay and the consumers."""
    warm_ups: Sequence[Callable[[], object]] = ()
    """Slow one-time loads (dictionaries, compiled rules) run at start-up, off the event loop,
    so the first request does not pay for them."""

    def __post_init__(self) -> None:
        if self.metadata.schema is None:
            raise ValueError(f"{self.name}: its MetaData names no schema")
        if self.outbox is not None and self.outbox.schema != self.metadata.schema:
            raise ValueError(f"{self.name}: the outbox is not in the service's schema")
        if self.consumers and self.outbox is None:
            raise ValueError(f"{self.name}: consumers need an outbox (for their dead letters)")

    def consumers_for(self, settings: Settings) -> list[Consumer]:
        from wangban.consumer import Consumer

        return [c if isinstance(c, Consumer) else c(settings) for c in self.consumers]

    @property
    def schema(self) -> str:
        schema = self.metadata.schema
        assert schema is not None  # checked in __post_init__
        return schema

    @property
    def migrations_dir(self) -> Path:
        module = importlib.import_module(self.package)
        assert module.__file__ is not None
        return Path(module.__file__).parent / "migrations"


class NotReady(ServiceUnavailable):
    """Readiness failed; ``checks`` says which (database schema, consumers catching up)."""

    type_slug = "not-ready"
    title = "服务尚未就绪"


BrokerState = Literal["unknown", "ok", "unavailable"]


class BrokerWatch:
    """Whether the broker answers, asked every ``interval_s`` seconds: shown in ``/healthz``
    and as ``wangban_broker_up``, never a reason to be unready.

    A service without the broker still answers its routes (catalogue search reads only the
    database) and keeps what it publishes in its outbox until the broker is back; taking its
    pods out of the load balancer for that would turn a broker blip into an outage. Asked on a
    timer rather than in the probe, so ``/healthz`` (liveness) answers at once whatever the
    broker does."""

    def __init__(self, settings: Settings, metrics: Metrics, *, interval_s: float) -> None:
        self.settings = settings
        self.metrics = metrics
        self.interval_s = interval_s
        self.state: BrokerState = "unknown"
        self.checked_at: datetime | None = None
        self._task: asyncio.Task[None] | None = None

    async def check(self) -> BrokerState:
        from wangban.kafka import broker_answers

        answers = await broker_answers(self.settings, timeout_s=min(3.0, self.interval_s))
        self.state = "ok" if answers else "unavailable"
        self.checked_at = datetime.now(UTC)
        self.metrics.broker_up.set(1 if answers else 0)
        return self.state

    async def _run(self) -> None:
        while True:
            try:
                await self.check()
            except asyncio.CancelledError:
                raise
            except Exception:
                # broker_answers says False for the broker's own failures; anything else is a
                # bug in one round, and the next round asks again.
                logger.exception("broker check failed")
            await asyncio.sleep(self.interval_s)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="broker-watch")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def details(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "checked_at": self.checked_at.isoformat() if self.checked_at else None,
        }


@dataclass
class Runtime:
    """The background machinery of one running service."""

    relay: OutboxRelay | None
    runners: list[ConsumerRunner]
    broker: BrokerWatch | None = None
    jobs: Sequence[PeriodicJob] = ()
    workers: Sequence[BackgroundWorker] = ()
    database: Database | None = None
    settings: Settings | None = None
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def start(self) -> None:
        if self.relay is not None:
            self.relay.start()
        if self.broker is not None:
            self.broker.start()
        for runner in self.runners:
            runner.start()
        for job in self.jobs:
            self._tasks.append(asyncio.create_task(self._every(job), name=f"job:{job.name}"))
        for worker in self.workers:
            self._tasks.append(
                asyncio.create_task(self._work(worker), name=f"worker:{worker.name}")
            )

    @staticmethod
    async def _work(worker: BackgroundWorker) -> None:
        while True:
            try:
                done = await worker.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                # Database down, a bug in one round: the next round tries again.
                logger.exception("background worker %s failed", worker.name)
                done = 0
            if not done:
                await asyncio.sleep(worker.interval_s)

    async def _every(self, job: PeriodicJob) -> None:
        assert self.database is not None and self.settings is not None
        while True:
            try:
                async with self.database.sessionmaker() as session, session.begin():
                    await job.run(session, self.settings)
            except asyncio.CancelledError:
                raise
            except Exception:
                # A failed run is retried at the next interval; it must never end the loop.
                logger.exception("periodic job %s failed", job.name)
            await asyncio.sleep(job.interval_s)

    async def stop(self) -> None:
        """Stop every part, each whatever the others did: a part whose stop fails or hangs
        must not leave the rest running (a consumer left in its group keeps its partitions
        from the replica that replaces this one; the audit stream's connection keeps its lock).
        """
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        stops: list[tuple[str, Callable[[], Awaitable[None]]]] = [
            *((f"worker {w.name}", w.close) for w in self.workers),
            *((f"consumer {r.consumer.name}", r.stop) for r in self.runners),
        ]
        if self.relay is not None:
            stops.append(("outbox relay", self.relay.stop))
        if self.broker is not None:
            stops.append(("broker watch", self.broker.stop))
        for what, stop in stops:
            try:
                await asyncio.wait_for(stop(), timeout=STOP_PART_TIMEOUT_S)
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise  # this stop itself is being cancelled
                logger.error("%s did not stop cleanly", what)
            except Exception:
                logger.exception("%s did not stop cleanly", what)


def create_service_app(
    spec: ServiceSpec, settings: Settings | None = None, *, background: bool = True
) -> FastAPI:
    """Build the service's app. ``background=False`` runs HTTP only (no relay, no consumers)."""
    settings = settings or get_settings()
    metrics = Metrics(spec.name)
    # From the OTEL_* variables; off (no provider, no-op spans) when they name no collector.
    tracing.setup(spec.name)
    head = head_revision(migrations_dir=spec.migrations_dir, schema=spec.schema)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        for warm_up in spec.warm_ups:
            await asyncio.to_thread(warm_up)
        if background:
            # A running service: everything loaded so far (modules, ORM and pydantic models,
            # search dictionaries with ~10⁵ containers) lives as long as the process. Moving it
            # out of the collector's reach keeps full collections, which otherwise walk all of
            # it, from stalling requests for tens of milliseconds.
            gc.collect()
            gc.freeze()
        database = Database.from_settings(settings)
        tracing.instrument_engine(database.engine, service=spec.name)
        app.state.database = database
        metrics.watch_pool(database.engine)
        runtime: Runtime | None = None
        if background:
            relay: OutboxRelay | None = None
            runners: list[ConsumerRunner] = []
            broker: BrokerWatch | None = None
            if spec.outbox is not None:
                from wangban.consumer import ConsumerRunner
                from wangban.outbox import OutboxRelay

                relay = OutboxRelay(
                    settings=settings,
                    database=database,
                    outbox=spec.outbox,
                    metrics=metrics,
                    service=spec.name,
                )
                runners = [
                    ConsumerRunner(
                        settings=settings,
                        database=database,
                        outbox=spec.outbox,
                        consumer=consumer,
                        metrics=metrics,
                        service=spec.name,
                    )
                    for consumer in spec.consumers_for(settings)
                ]
                broker = BrokerWatch(settings, metrics, interval_s=settings.broker_check_interval_s)
            runtime = Runtime(
                relay=relay,
                runners=runners,
                broker=broker,
                jobs=spec.periodic,
                workers=[make(database, settings) for make in spec.workers],
                database=database,
                settings=settings,
            )
            runtime.start()
        app.state.runtime = runtime
        metrics_server: MetricsServer | None = None
        if settings.metrics_port is not None:
            metrics_server = MetricsServer(metrics, host=settings.host, port=settings.metrics_port)
            app.state.metrics_port = await metrics_server.start()
        try:
            yield
        finally:
            if runtime is not None:
                await runtime.stop()
            for shutdown in spec.shutdowns:
                await shutdown(app)
            if metrics_server is not None:
                await metrics_server.stop()
            await database.dispose()
            # Exports what is still buffered: off the loop, which may serve the collector (tests).
            await asyncio.to_thread(tracing.shutdown, spec.name)

    # The documents map every route and parameter for anyone who asks: off in production unless
    # asked for (the gateway's is what the mini-program's developers read, locally).
    docs = settings.api_docs_exposed
    app = FastAPI(
        title=spec.title,
        description=spec.description,
        version="0.1.0",
        lifespan=lifespan,
        openapi_url="/openapi.json" if docs else None,
        docs_url="/docs" if docs else None,
        redoc_url="/redoc" if docs else None,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.spec = spec
    app.state.schema_head = head
    install_problem_handlers(app)
    app.add_middleware(RequestContextMiddleware, metrics=metrics, service=spec.name)
    app.include_router(_probes(spec, settings, head))
    if spec.outbox is not None:
        app.include_router(_dead_letters(spec, spec.outbox))
        app.include_router(_ops_status())
    for router in spec.routers:
        app.include_router(router)
    for extend in spec.extensions:
        extend(app, settings)
    _state_required_roles(app)
    # Outermost: the server span is current in every middleware, handler and call below.
    tracing.instrument_app(app, service=spec.name)
    return app


def _api_routes(app: FastAPI) -> Iterator[tuple[APIRoute, str, set[str]]]:
    """Every documented API route with its full path and methods. Newer FastAPI keeps included
    routers as such (``iter_route_contexts`` walks them); older ones copied their routes."""
    iterate = getattr(fastapi_routing, "iter_route_contexts", None)
    contexts: Iterable[Any] = iterate(app.routes) if iterate is not None else app.routes
    for context in contexts:
        route = getattr(context, "original_route", context)
        if isinstance(route, APIRoute) and route.include_in_schema:
            yield route, str(context.path_format), set(context.methods or ())


def _state_required_roles(app: FastAPI) -> None:
    """Each operation that requires roles says which in the document (``x-wangban-roles``):
    the gateway reads them from the snapshot to tell the staff console what a member may do,
    so that list has one source, the routes' own dependencies."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = build()
        for route, path, methods in _api_routes(app):
            roles = required_roles(route.dependant)
            operations = document.get("paths", {}).get(path, {})
            for method in methods:
                if roles is not None and method.lower() in operations:
                    operations[method.lower()][ROLES_EXTENSION] = sorted(roles)
        return document

    app.openapi = openapi  # type: ignore[method-assign]


Ops = Annotated[Identity, Depends(require_roles(OPS))]


class DeadLetterNotFound(NotFound):
    type_slug = "dead-letter-not-found"
    title = "死信不存在"


class DeadLetterNotReplayable(Conflict):
    type_slug = "dead-letter-not-replayable"
    title = "死信无法重放"


class DeadLetterOut(BaseModel):
    """A dead letter as an operator sees it: where it was read, why it failed, whether it was
    replayed; never the payload (the event, possibly personal data)."""

    id: str
    consumer: str
    event_id: str
    """The event's id, or ``topic/partition/offset`` for a record that was no envelope."""
    event_type: str
    """``unknown`` for a record that could not be read at all."""
    topic: str
    partition: int
    offset: int
    key: str
    error: str
    attempts: int
    created_at: datetime
    replayed_at: datetime | None


class ReplayedOut(BaseModel):
    replayed: str


def _dead_letters(spec: ServiceSpec, outbox: Outbox) -> APIRouter:
    """The same list and replay as ``wangban events dlq``, over HTTP for the ops console (the
    gateway passes them through): each service answers for its own dead letters."""
    from wangban.deadletter import DeadLetterError, list_dead_letters, replay_dead_letter

    router = APIRouter(prefix="/ops/dead-letters", tags=["operations"])

    @router.get("", summary="Events this service's consumers gave up on")
    async def list_letters(
        session: ReadSession, ops: Ops, include_replayed: bool = False
    ) -> list[DeadLetterOut]:
        rows = await list_dead_letters(session, outbox=outbox, include_replayed=include_replayed)
        # The payload is the event (possibly personal data, encrypted or not): ids and the
        # error are what an operator needs to decide on a replay (the model leaves it out).
        return [DeadLetterOut.model_validate(row) for row in rows]

    @router.post(
        "/{dead_letter_id}/replay",
        summary="Put a dead letter back on its topic, under its original id",
        responses=problem_responses(DeadLetterNotFound, DeadLetterNotReplayable),
    )
    async def replay(dead_letter_id: str, session: UnitOfWork, ops: Ops) -> ReplayedOut:
        try:
            found = await replay_dead_letter(session, outbox=outbox, dead_letter_id=dead_letter_id)
        except DeadLetterError as refused:
            raise DeadLetterNotReplayable(str(refused)) from None
        if not found:
            raise DeadLetterNotFound("死信不存在")
        return ReplayedOut(replayed=dead_letter_id)

    return router


class DatabaseStatus(BaseModel):
    state: Literal["migrated", "behind", "unavailable"]
    """``behind``: the schema is not at the revision this code needs."""
    revision: str | None = None
    head: str | None = None


class BrokerStatus(BaseModel):
    state: BrokerState
    """How the broker watch last found the broker (``unknown`` until its first check)."""
    checked_at: datetime | None = None


class PartitionLag(BaseModel):
    topic: str
    partition: int
    lag: int = Field(ge=0)
    """Records on the partition this consumer has not handled yet, as of its last poll."""


class ConsumerStatus(BaseModel):
    group: str
    topics: list[str]
    assigned: bool
    """Whether this process's member of the group holds partitions now (a member of a group
    with more members than partitions may rightly hold none)."""
    caught_up: bool
    """Whether it has read what was on its partitions when it started (``/readyz``)."""
    lag: int = Field(ge=0)
    partitions: list[PartitionLag]


class ServiceStatus(BaseModel):
    """One process of a service as an operator sees it: the probes' facts in one answer."""

    service: str
    database: DatabaseStatus
    broker: BrokerStatus | None
    """``None``: this process does not talk to the broker (the gateway, an HTTP-only worker)."""
    consumers: list[ConsumerStatus]
    """This process's consumers (none in an HTTP-only worker)."""
    outbox_backlog: int | None
    """Events written and not yet published; ``None`` without an outbox or a database."""
    dead_letters: int | None
    """Dead letters not replayed; ``None`` without an outbox or a database."""


async def _database_state(
    database: Database, spec: ServiceSpec, head: str | None
) -> DatabaseStatus:
    try:
        revision = await current_revision(database, schema=spec.schema)
    except Exception:  # any failure means "cannot be asked"; the caller says so
        logger.warning("database revision could not be read", exc_info=True)
        return DatabaseStatus(state="unavailable", head=head)
    state: Literal["migrated", "behind"] = "migrated" if revision == head else "behind"
    return DatabaseStatus(state=state, revision=revision, head=head)


def _consumer_status(runner: ConsumerRunner) -> ConsumerStatus:
    partitions = [
        PartitionLag(topic=tp.topic, partition=tp.partition, lag=lag)
        for tp, lag in sorted(
            runner.lag.items(), key=lambda item: (item[0].topic, item[0].partition)
        )
    ]
    return ConsumerStatus(
        group=runner.consumer.name,
        topics=runner.consumer.topics,
        assigned=runner.assigned.is_set(),
        caught_up=runner.caught_up.is_set(),
        lag=sum(p.lag for p in partitions),
        partitions=partitions,
    )


async def service_status(app: FastAPI) -> ServiceStatus:
    """What this process knows of itself: the database's revision and two counts (one
    statement), the broker as the broker watch last found it, each consumer's lag as of its
    last poll. Nothing is asked of the broker, so the answer is as quick with it away."""
    spec: ServiceSpec = app.state.spec
    database: Database = app.state.database
    runtime: Runtime | None = getattr(app.state, "runtime", None)
    status = await _database_state(database, spec, app.state.schema_head)
    backlog: int | None = None
    dead_letters: int | None = None
    if spec.outbox is not None and status.state != "unavailable":
        tables = spec.outbox.tables
        counts = select(
            select(func.count())
            .select_from(tables.outbox)
            .where(tables.outbox.c.published_at.is_(None))
            .scalar_subquery(),
            select(func.count())
            .select_from(tables.dead_letter)
            .where(tables.dead_letter.c.replayed_at.is_(None))
            .scalar_subquery(),
        )
        try:
            async with database.engine.connect() as connection:
                backlog, dead_letters = (await connection.execute(counts)).one()
        except Exception:  # the database went away between the two reads
            logger.warning("outbox and dead-letter counts could not be read", exc_info=True)
    broker = runtime.broker if runtime is not None else None
    return ServiceStatus(
        service=spec.name,
        database=status,
        broker=BrokerStatus(state=broker.state, checked_at=broker.checked_at) if broker else None,
        consumers=[_consumer_status(r) for r in runtime.runners] if runtime is not None else [],
        outbox_backlog=backlog,
        dead_letters=dead_letters,
    )


def _ops_status() -> APIRouter:
    router = APIRouter(prefix="/ops", tags=["operations"])

    @router.get(
        "/status",
        summary="This process's database, broker, consumers' lag, outbox backlog and dead "
        "letters (the ops console's health table)",
    )
    async def status(request: Request, ops: Ops) -> ServiceStatus:
        return await service_status(request.app)

    return router


def _probes(spec: ServiceSpec, settings: Settings, head: str | None) -> APIRouter:
    router = APIRouter(tags=["operations"])

    @router.get(
        "/healthz",
        summary="Liveness: the process answers; details say how the broker was last found",
    )
    async def healthz(request: Request) -> dict[str, Any]:
        # Always 200 while the process answers: a broker that is away is reported here (and
        # in wangban_broker_up) for operators, never a reason to restart the process.
        details: dict[str, Any] = {}
        runtime: Runtime | None = getattr(request.app.state, "runtime", None)
        if runtime is not None and runtime.broker is not None:
            details["broker"] = runtime.broker.details()
        return {"status": "ok", "service": spec.name, "details": details}

    @router.get(
        "/readyz",
        summary="Readiness: the database schema is migrated and each consumer has read what "
        "was published before it started (the broker is not asked: see /healthz)",
        responses=problem_responses(NotReady),
    )
    async def readyz(request: Request) -> Response:
        checks: dict[str, Any] = {}
        database: Database = request.app.state.database
        try:
            revision = await current_revision(database, schema=spec.schema)
            checks["database"] = "ok" if revision == head else f"schema at {revision}, want {head}"
        except Exception as exc:  # any failure means "not ready"; say which
            checks["database"] = f"unavailable: {type(exc).__name__}"
        # No broker check: the outbox keeps what the service publishes while the broker is
        # away, and its routes answer from the database, so a broker blip must not take every
        # pod out of the load balancer (it is in /healthz and wangban_broker_up instead).
        runtime: Runtime | None = getattr(request.app.state, "runtime", None)
        if runtime is not None and runtime.runners:
            # Ready means ready: each consumer has read what was published before it started
            # (a catalogue item intake has not learnt yet would answer citizens 404). Once
            # caught up a consumer stays so: a broker that goes away later leaves it ready.
            behind = sorted(r.consumer.name for r in runtime.runners if not r.caught_up.is_set())
            checks["consumers"] = "ok" if not behind else f"catching up: {', '.join(behind)}"
        if any(value != "ok" for value in checks.values()):
            raise NotReady("服务尚未就绪", extra={"service": spec.name, "checks": checks})
        return JSONResponse({"status": "ready", "service": spec.name, "checks": checks})

    if not settings.metrics_on_service_port:
        # Production, or a metrics port of its own: the service port does not answer it.
        return router

    @router.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def metrics_endpoint(request: Request) -> Response:
        body, content_type = request.app.state.metrics.render()
        return Response(content=body, media_type=content_type)

    return router
