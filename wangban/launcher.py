"""``wangban up``: the whole platform on one machine, with one command.

Starts what is missing (embedded PostgreSQL, embedded broker), migrates, seeds, starts the six
services as child processes (each exactly what a container runs: ``wangban serve <name>``),
waits until every ``/readyz`` answers 200, and on Ctrl-C or SIGTERM stops everything it started.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from types import FrameType
from typing import IO

from wangban.embedded import EmbeddedKafka, EmbeddedPostgres
from wangban.kafka import ensure_topics
from wangban.processes import ServiceProcesses
from wangban.settings import SERVICE_NAMES, Settings


class LocalPlatform:
    def __init__(self, settings: Settings, *, seed: bool = True, out: IO[str] = sys.stdout):
        self.settings = settings
        self.seed = seed
        self.out = out
        self.data_dir = settings.data_dir.resolve()
        self.postgres: EmbeddedPostgres | None = None
        self.kafka: EmbeddedKafka | None = None
        self.services: ServiceProcesses | None = None
        self._stop_requested = False

    def say(self, line: str) -> None:
        print(line, file=self.out, flush=True)

    def run(self) -> int:
        previous = {
            sig: signal.signal(sig, self._request_stop) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            self._start()
            if self._stop_requested:
                return 0
            self._print_urls()
            return self._watch()
        except _StopRequested:
            return 0
        finally:
            self._shutdown()
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _request_stop(self, signum: int, _frame: FrameType | None) -> None:
        self._stop_requested = True
        raise _StopRequested()

    # --- start ---------------------------------------------------------------------------
    def _start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        (self.data_dir / "logs").mkdir(exist_ok=True)
        env = dict(os.environ)
        database_url = self.settings.database_url
        if not database_url:
            self.postgres = EmbeddedPostgres(self.data_dir / "postgres")
            database_url = self.postgres.start()
            self.say(f"PostgreSQL  embedded (pgserver), data in {self.data_dir / 'postgres'}")
        else:
            self.say("PostgreSQL  external (WANGBAN_DATABASE_URL)")
        kafka_bootstrap = self.settings.kafka_bootstrap
        if not kafka_bootstrap:
            self.kafka = EmbeddedKafka(
                self.settings.embedded_kafka_port, log_file=self.data_dir / "logs" / "broker.log"
            )
            kafka_bootstrap = self.kafka.start()
            self.say(
                f"Kafka       embedded broker ({self.kafka.label}) at {kafka_bootstrap} — memory "
                "only: events and offsets are lost when it stops"
            )
        else:
            self.say(f"Kafka       external at {kafka_bootstrap}")
        env["WANGBAN_DATABASE_URL"] = database_url
        env["WANGBAN_KAFKA_BOOTSTRAP"] = kafka_bootstrap
        env["WANGBAN_DATA_DIR"] = str(self.data_dir)
        settings = self.settings.model_copy(
            update={"database_url": database_url, "kafka_bootstrap": kafka_bootstrap}
        )
        from wangban.cli import migrate_services, seed_services

        asyncio.run(migrate_services(settings, list(SERVICE_NAMES)))
        self.say("Migrations  applied for all six services")
        if self.seed:
            asyncio.run(seed_services(settings, list(SERVICE_NAMES)))
            self.say("Demo data   loaded")
        from wangban.events import load_all_event_modules

        load_all_event_modules()
        asyncio.run(ensure_topics(settings))
        # What the seeds (and anything else) left in the outboxes goes out now, before any
        # service starts: a service is ready once it has read what was published before it
        # started, so it knows the whole catalogue when `up` says ready (not 1–3 s later, when
        # the catalog's relay would otherwise have sent it).
        asyncio.run(publish_pending(settings, list(SERVICE_NAMES)))
        self.services = ServiceProcesses(
            env, self.data_dir / "logs", {name: settings.url_of(name) for name in SERVICE_NAMES}
        )
        self.services.start(SERVICE_NAMES)
        asyncio.run(self.services.wait_ready(timeout_s=120))

    def _print_urls(self) -> None:
        self.say("")
        self.say(f"Wangban is up. Gateway: {self.settings.url_of('gateway')}")
        for name in SERVICE_NAMES:
            url = self.settings.url_of(name)
            self.say(f"  {name:<9} {url}/docs   (OpenAPI: {url}/openapi.json)")
        self.say(f"Logs in {self.data_dir / 'logs'}. Ctrl-C stops everything.")

    def _watch(self) -> int:
        assert self.services is not None
        while True:
            for name, code in self.services.exited().items():
                self.say(f"{name} exited with {code}; stopping the platform")
                return 1
            time.sleep(0.5)

    # --- stop ----------------------------------------------------------------------------
    def _shutdown(self) -> None:
        # Ignore further signals while stopping so a second Ctrl-C cannot leave orphans.
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)
        if self.services is not None:
            self.services.stop(grace_s=15)
        if self.kafka is not None:
            self.kafka.stop()
        if self.postgres is not None:
            self.postgres.stop()
        self.say("Stopped.")


class _StopRequested(Exception):
    pass


async def publish_pending(settings: Settings, services: list[str]) -> int:
    """Publish every unpublished outbox row of ``services`` (what each service's relay would
    send when it starts); returns how many."""
    from wangban import tracing
    from wangban.db import Database
    from wangban.outbox import OutboxRelay
    from wangban.services import load_spec

    database = Database.from_settings(settings)
    sent = 0
    try:
        for name in services:
            outbox = load_spec(name).outbox
            if outbox is None:
                continue  # publishes nothing (the gateway)
            # Its sends join the traces that wrote the rows, as the service's own relay's do.
            tracing.setup(name)
            relay = OutboxRelay(settings=settings, database=database, outbox=outbox, service=name)
            try:
                while batch := await relay.relay_once():
                    sent += batch
            finally:
                await relay.stop()
                await asyncio.to_thread(tracing.shutdown, name)
    finally:
        await database.dispose()
    return sent


def run_up(settings: Settings, *, seed: bool = True) -> int:
    return LocalPlatform(settings, seed=seed).run()
