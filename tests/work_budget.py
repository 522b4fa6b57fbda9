"""Counting the work one application costs across the platform: SQL statements, transactions,
events written and handled, calls between services, per service.

Counts, not times: SQLAlchemy's engine events see every statement each service's engine sends
(its requests, consumers, relay and background workers alike), and the services' own metrics
count the HTTP requests they answered and the events they handled. The test's own reads go
through another engine and are not counted."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fastapi import FastAPI
from sqlalchemy import event, text
from sqlalchemy.engine import Connection
from sqlalchemy.engine.interfaces import CacheStats

from wangban.db import Database, checked_schema

_WRITE = re.compile(r"^\s*(INSERT|UPDATE|DELETE)\b", re.IGNORECASE)
_OUTBOX_INSERT = re.compile(r"^\s*INSERT INTO \w+\.outbox\b", re.IGNORECASE)
_WROTE = "wangban_budget_wrote"


@dataclass
class ServiceWork:
    statements: int = 0
    transactions: int = 0
    write_transactions: int = 0
    events_written: int = 0
    events_handled: int = 0
    requests_answered: int = 0
    uncached: Counter[str] = field(default_factory=Counter)
    """Statements SQLAlchemy compiled again (not found in its statement cache), by kind:
    compiling costs far more CPU than executing a cached statement."""
    kinds: Counter[str] = field(default_factory=Counter)
    """Statements by their first words (``SELECT … FROM intake.application``): where to cut."""


def _kind(statement: str) -> str:
    words = " ".join(statement.split())
    verb = words.split(" ", 1)[0].upper()
    table = re.search(r"\b(?:FROM|INTO|UPDATE)\s+([\w.\"]+)", words, re.IGNORECASE)
    return f"{verb} {table.group(1) if table else words[:60]}"


def _metric_total(app: FastAPI, name: str) -> float:
    registry = app.state.metrics.registry
    return sum(
        sample.value
        for family in registry.collect()
        for sample in family.samples
        if sample.name == name
    )


class PlatformWork:
    """Attached to every running service's engine; ``measure()`` counts one stretch of work."""

    def __init__(self, services: dict[str, FastAPI]) -> None:
        self.services = services
        self.work: dict[str, ServiceWork] = {name: ServiceWork() for name in services}
        self._counting = False
        for name, app in services.items():
            self._attach(name, app.state.database.engine.sync_engine)

    def _attach(self, name: str, engine: Any) -> None:
        def statement(
            conn: Connection,
            _cursor: Any,
            text: str,
            parameters: Any,
            context: Any,
            executemany: bool,
        ) -> None:
            if not self._counting:
                return
            work = self.work[name]
            work.statements += 1
            work.kinds[_kind(text)] += 1
            cache = getattr(context, "cache_hit", None)
            if cache is not None and cache is not CacheStats.CACHE_HIT:
                work.uncached[f"{_kind(text)} ({getattr(cache, 'name', cache)})"] += 1
            if _WRITE.match(text):
                conn.info[_WROTE] = True
            if _OUTBOX_INSERT.match(text):
                rows = len(parameters) if executemany else 1
                work.events_written += rows

        def began(conn: Connection) -> None:
            conn.info.pop(_WROTE, None)

        def committed(conn: Connection) -> None:
            if not self._counting or conn._is_autocommit_isolation():
                conn.info.pop(_WROTE, None)
                return
            work = self.work[name]
            work.transactions += 1
            if conn.info.pop(_WROTE, False):
                work.write_transactions += 1

        event.listen(engine, "before_cursor_execute", statement)
        event.listen(engine, "begin", began)
        event.listen(engine, "commit", committed)

    @contextmanager
    def measure(self) -> Iterator[dict[str, ServiceWork]]:
        """Count from here to the end of the block; yields the per-service figures (filled in
        when the block ends)."""
        self.work = {name: ServiceWork() for name in self.services}
        handled = {
            n: _metric_total(a, "wangban_events_consumed_total") for n, a in self.services.items()
        }
        answered = {
            n: _metric_total(a, "wangban_http_requests_total") for n, a in self.services.items()
        }
        self._counting = True
        try:
            yield self.work
        finally:
            self._counting = False
            for name, app in self.services.items():
                work = self.work[name]
                work.events_handled = int(
                    _metric_total(app, "wangban_events_consumed_total") - handled[name]
                )
                work.requests_answered = int(
                    _metric_total(app, "wangban_http_requests_total") - answered[name]
                )

    async def events_between(
        self, database: Database, *, start: datetime, end: datetime
    ) -> tuple[Counter[str], Counter[str]]:
        """The events the services wrote to their outboxes, and handled (inbox rows), between
        ``start`` and ``end`` (database time), by type: what the chain of one application is."""
        written: Counter[str] = Counter()
        handled: Counter[str] = Counter()
        async with database.engine.connect() as conn:
            for name, app in self.services.items():
                outbox = app.state.spec.outbox
                if outbox is None:
                    continue
                schema = checked_schema(outbox.schema)
                window = {"start": start, "end": end}
                for row in await conn.execute(
                    text(
                        f"SELECT event_type, count(*) FROM {schema}.outbox "
                        "WHERE created_at BETWEEN :start AND :end GROUP BY event_type"
                    ),
                    window,
                ):
                    written[row[0]] += row[1]
                for row in await conn.execute(
                    text(
                        f"SELECT event_type, count(*) FROM {schema}.inbox "
                        "WHERE processed_at BETWEEN :start AND :end GROUP BY event_type"
                    ),
                    window,
                ):
                    handled[f"{name} ← {row[0]}"] += row[1]
        return written, handled

    @staticmethod
    def report(work: dict[str, ServiceWork], *, per: int = 1) -> str:
        lines = []
        for name, w in sorted(work.items()):
            lines.append(
                f"{name}: {w.statements / per:.1f} statements, {w.transactions / per:.1f} "
                f"transactions ({w.write_transactions / per:.1f} writing), "
                f"{w.events_written / per:.1f} events written, {w.events_handled / per:.1f} "
                f"handled, {w.requests_answered / per:.1f} requests answered"
            )
            for kind, count in w.kinds.most_common():
                lines.append(f"    {count / per:5.1f}  {kind}")
            for kind, count in w.uncached.most_common():
                lines.append(f"    {count / per:5.1f}  compiled again: {kind}")
        return "\n".join(lines)
