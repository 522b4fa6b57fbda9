"""Rate limits counted in PostgreSQL (the migrated ``gateway.rate_counter`` table): fixed
windows, independent keys, a 429 problem with ``Retry-After``, the hourly purge, no
double-spending of the last slot by concurrent workers, and a request counted against several
limits in one statement in autocommit (no transaction to begin or commit)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import delete, event, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.models import RateCounter
from gateway.ratelimit import (
    Decision,
    Limit,
    RateLimited,
    check,
    count,
    counter_key,
    give_back,
    hit,
    hits,
    purge,
    window_start,
)
from tests.serving import serve_asgi
from wangban.db import Database
from wangban.errors import PROBLEM_MEDIA_TYPE, install_problem_handlers

LOGIN = Limit("login", "ip", max_requests=3, window_s=60)
# 09:00:10 UTC: ten seconds into a one-minute window.
START = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
NOW = START + timedelta(seconds=10)


def _who() -> str:
    return f"203.0.113.{uuid.uuid4().int % 250}-{uuid.uuid4().hex[:8]}"


async def test_n_requests_are_allowed_then_the_next_waits_for_the_window(
    db_session: AsyncSession,
) -> None:
    who = _who()
    decisions = [await hit(db_session, limit=LOGIN, who=who, now=NOW) for _ in range(3)]
    assert [d.allowed for d in decisions] == [True, True, True]
    assert [d.remaining for d in decisions] == [2, 1, 0]
    refused = await hit(db_session, limit=LOGIN, who=who, now=NOW + timedelta(seconds=5))
    assert not refused.allowed and refused.remaining == 0
    assert refused.retry_after_s == 45  # the window ends at 09:01:00
    # Refusals count too, and stay refused until the window ends.
    last = await hit(db_session, limit=LOGIN, who=who, now=START + timedelta(seconds=59.5))
    assert not last.allowed and last.retry_after_s == 1


async def test_a_new_window_allows_again(db_session: AsyncSession) -> None:
    who = _who()
    for _ in range(4):
        await hit(db_session, limit=LOGIN, who=who, now=NOW)
    next_window = START + timedelta(minutes=1)
    again = await hit(db_session, limit=LOGIN, who=who, now=next_window)
    assert again.allowed and again.remaining == 2 and again.retry_after_s == 60


async def test_keys_are_independent(db_session: AsyncSession) -> None:
    who = _who()
    for _ in range(4):
        await hit(db_session, limit=LOGIN, who=who, now=NOW)
    others = [
        (LOGIN, _who()),  # another address
        (Limit("login", "user", 3, 60), who),  # the same string as a user
        (Limit("staff-login", "ip", 3, 60), who),  # another limit
    ]
    for limit, caller in others:
        decision = await hit(db_session, limit=limit, who=caller, now=NOW)
        assert decision.allowed and decision.remaining == 2


async def test_windows_are_aligned_so_every_worker_shares_them(db_session: AsyncSession) -> None:
    hourly = Limit("real-name", "user", 5, 3600)
    assert window_start(START + timedelta(minutes=59, seconds=59), 3600) == START
    assert window_start(START + timedelta(hours=1), 3600) == START + timedelta(hours=1)
    # Another offset names the same instant, hence the same window.
    beijing = (START + timedelta(minutes=30)).astimezone(timezone(timedelta(hours=8)))
    assert window_start(beijing, 3600) == START
    who = _who()
    first = await hit(db_session, limit=hourly, who=who, now=START + timedelta(minutes=1))
    second = await hit(db_session, limit=hourly, who=who, now=START + timedelta(minutes=59))
    assert (first.remaining, second.remaining) == (4, 3)
    assert second.retry_after_s == 60
    with pytest.raises(ValueError):
        window_start(datetime(2026, 11, 23, 9, 0), 60)  # naive: which 09:00?


async def test_a_very_long_caller_id_still_has_its_own_counter(db_session: AsyncSession) -> None:
    long_who, other = "u-" + "x" * 300, "u-" + "x" * 299 + "y"
    assert len(counter_key(LOGIN, long_who)) <= 200
    assert counter_key(LOGIN, long_who) != counter_key(LOGIN, other)
    for _ in range(3):
        await hit(db_session, limit=LOGIN, who=long_who, now=NOW)
    assert not (await hit(db_session, limit=LOGIN, who=long_who, now=NOW)).allowed
    assert (await hit(db_session, limit=LOGIN, who=other, now=NOW)).allowed


def test_limits_are_checked_when_made() -> None:
    for bad in (
        lambda: Limit("", "ip", 1, 60),
        lambda: Limit("a:b", "ip", 1, 60),
        lambda: Limit("login", "ip", 0, 60),
        lambda: Limit("login", "ip", 1, 0),
        lambda: Limit("login", "ip", 1, 86_401),
    ):
        with pytest.raises(ValueError):
            bad()


async def test_purge_deletes_windows_older_than_a_day(db_session: AsyncSession) -> None:
    who = _who()
    daily = Limit("daily", "user", 10, 86_400)
    await hit(db_session, limit=LOGIN, who=who, now=NOW - timedelta(days=2))
    await hit(db_session, limit=LOGIN, who=who, now=NOW - timedelta(hours=25))
    await hit(db_session, limit=LOGIN, who=who, now=NOW - timedelta(hours=23))
    await hit(db_session, limit=LOGIN, who=who, now=NOW)
    await hit(db_session, limit=daily, who=who, now=NOW)  # a whole-day window still running
    deleted = await purge(db_session, now=NOW)
    assert deleted >= 2  # ours, and any stale rows other runs left behind
    left = await db_session.scalars(
        select(RateCounter.window_start)
        .where(RateCounter.key.in_([counter_key(LOGIN, who), counter_key(daily, who)]))
        .order_by(RateCounter.window_start)
    )
    assert list(left) == [
        window_start(NOW - timedelta(hours=23), 60),
        window_start(NOW, 86_400),
        window_start(NOW, 60),
    ]


# --- the refusal as the client sees it ----------------------------------------------------


def test_an_allowed_request_passes_the_check() -> None:
    check(Decision(allowed=True, retry_after_s=30, remaining=0))


async def test_a_refusal_is_a_429_problem_with_retry_after() -> None:
    app = FastAPI()
    install_problem_handlers(app)

    @app.get("/limited")
    async def limited() -> None:
        check(Decision(allowed=False, retry_after_s=42, remaining=0))

    async with serve_asgi(app) as base_url, httpx.AsyncClient(base_url=base_url) as client:
        answer = await client.get("/limited")
    assert answer.status_code == 429
    assert answer.headers["content-type"] == PROBLEM_MEDIA_TYPE
    assert answer.headers["retry-after"] == "42"
    body = answer.json()
    assert body["type"] == "urn:wangban:problem:rate-limited"
    assert body["title"] == "操作过于频繁"
    assert body["detail"] == "操作过于频繁，请 42 秒后再试"
    assert body["retry_after_s"] == 42
    with pytest.raises(RateLimited):
        check(Decision(allowed=False, retry_after_s=1, remaining=0))


# --- concurrent workers -------------------------------------------------------------------


@pytest.fixture
async def shared_key(database: Database) -> AsyncIterator[str]:
    """A caller counted by committing transactions; its rows are deleted afterwards."""
    who = _who()
    yield who
    async with database.sessionmaker() as session, session.begin():
        await session.execute(delete(RateCounter).where(RateCounter.key.contains(who)))


async def _hit_committed(database: Database, limit: Limit, who: str, now: datetime) -> Decision:
    async with database.sessionmaker() as session, session.begin():
        return await hit(session, limit=limit, who=who, now=now)


async def test_two_workers_never_both_get_the_last_slot(
    database: Database, shared_key: str
) -> None:
    one_left = Limit("contended", "user", 4, 60)
    for _ in range(3):
        await _hit_committed(database, one_left, shared_key, NOW)
    # Two transactions on their own connections count the fourth request at once: the second
    # waits for the first's row lock and then sees its count.
    first, second = await asyncio.gather(
        _hit_committed(database, one_left, shared_key, NOW),
        _hit_committed(database, one_left, shared_key, NOW),
    )
    assert sorted([first.allowed, second.allowed]) == [False, True]


async def test_many_concurrent_requests_get_exactly_the_allowed_slots(
    database: Database, shared_key: str
) -> None:
    limit = Limit("burst", "ip", 7, 60)
    # A new window each round: the first requests race to create its row too.
    for round_no in range(3):
        now = NOW + timedelta(minutes=round_no)
        decisions = await asyncio.gather(
            *(_hit_committed(database, limit, shared_key, now) for _ in range(12))
        )
        assert sum(d.allowed for d in decisions) == 7
        assert sorted(d.remaining for d in decisions if d.allowed) == list(range(7))
    async with database.sessionmaker() as session:
        counts = await session.scalars(
            select(RateCounter.count).where(RateCounter.key == counter_key(limit, shared_key))
        )
        assert list(counts) == [12, 12, 12]
        assert (
            await session.scalar(
                select(func.count()).where(RateCounter.key == counter_key(limit, shared_key))
            )
            == 3
        )


# --- several limits at once (a submission: the citizen's and the address's) ------------------

USER = Limit("submit", "user", 2, 60)
ADDRESS = Limit("submit", "ip", 3, 60)


async def test_several_limits_are_counted_in_one_statement_in_their_order(
    db_session: AsyncSession,
) -> None:
    user, address = _who(), _who()
    counted = [(USER, user), (ADDRESS, address)]
    first = await hits(db_session, counted=counted, now=NOW)
    assert [(d.allowed, d.remaining) for d in first] == [(True, 1), (True, 2)]
    # Another address of the same citizen: only the citizen's counter is shared.
    other = await hits(db_session, counted=[(USER, user), (ADDRESS, _who())], now=NOW)
    assert [(d.allowed, d.remaining) for d in other] == [(True, 0), (True, 2)]
    third = await hits(db_session, counted=counted, now=NOW)
    assert [d.allowed for d in third] == [False, True]
    assert (await hit(db_session, limit=ADDRESS, who=address, now=NOW)).remaining == 0
    # Limits of different windows in one statement each land in their own window.
    hourly = Limit("real-name", "user", 5, 3600)
    mixed = await hits(db_session, counted=[(hourly, user), (USER, _who())], now=NOW)
    assert [d.retry_after_s for d in mixed] == [3590, 50]
    assert await hits(db_session, counted=[], now=NOW) == []


def test_a_refusal_by_any_limit_waits_for_every_limit_that_refused() -> None:
    allowed = Decision(allowed=True, retry_after_s=3000, remaining=4)
    with pytest.raises(RateLimited) as refused:
        check(
            allowed,
            Decision(allowed=False, retry_after_s=20, remaining=0),
            Decision(allowed=False, retry_after_s=50, remaining=0),
        )
    assert refused.value.headers == {"Retry-After": "50"}
    check(allowed, allowed)


@pytest.fixture
def counted_statements(database: Database) -> Iterator[list[tuple[str, bool]]]:
    """Every statement the suite's engine sends while the test runs, with whether it ran in
    autocommit, and every COMMIT (as ``("COMMIT", …)``)."""
    seen: list[tuple[str, bool]] = []
    engine = database.engine.sync_engine

    def statement(conn: Any, _cursor: Any, text: str, *_: Any) -> None:
        seen.append((text, conn._is_autocommit_isolation()))

    def committed(conn: Any) -> None:
        seen.append(("COMMIT", conn._is_autocommit_isolation()))

    event.listen(engine, "before_cursor_execute", statement)
    event.listen(engine, "commit", committed)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", statement)
        event.remove(engine, "commit", committed)


async def test_a_submission_is_counted_in_one_statement_without_a_transaction(
    database: Database, shared_key: str, counted_statements: list[tuple[str, bool]]
) -> None:
    counted = [(USER, shared_key), (ADDRESS, shared_key)]
    await count(database, counted=counted, now=NOW)
    assert len(counted_statements) == 1
    text, autocommit = counted_statements[0]
    assert text.lstrip().upper().startswith("INSERT INTO GATEWAY.RATE_COUNTER") and autocommit
    # Committed by the statement itself: another connection sees both counts at once.
    async with database.read_sessionmaker() as reads:
        counts = await reads.scalars(
            select(RateCounter.count).where(RateCounter.key.contains(shared_key))
        )
        assert list(counts) == [1, 1]
    # Given back the same way, in one statement.
    counted_statements.clear()
    await give_back(database, counted=counted, now=NOW)
    assert [a for _, a in counted_statements] == [True]
    async with database.read_sessionmaker() as reads:
        counts = await reads.scalars(
            select(RateCounter.count).where(RateCounter.key.contains(shared_key))
        )
        assert list(counts) == [0, 0]
    # The citizen's limit refuses the third: 429, although the address still has room.
    await count(database, counted=counted, now=NOW)
    await count(database, counted=counted, now=NOW)
    with pytest.raises(RateLimited):
        await count(database, counted=counted, now=NOW)


async def test_concurrent_requests_sharing_two_counters_neither_deadlock_nor_overspend(
    database: Database, shared_key: str
) -> None:
    # Half the requests list the limits the other way round: whatever order a request names
    # them in, the rows are locked in one order (key order), so none waits on another forever.
    user, address = Limit("pair", "user", 5, 60), Limit("pair", "ip", 50, 60)
    orders = [
        [(user, shared_key), (address, shared_key)],
        [(address, shared_key), (user, shared_key)],
    ]

    async def one(n: int) -> bool:
        try:
            await count(database, counted=orders[n % 2], now=NOW)
        except RateLimited:
            return False
        return True

    results = await asyncio.gather(*(one(n) for n in range(16)))
    assert sum(results) == 5
    async with database.read_sessionmaker() as reads:
        rows = await reads.execute(
            select(RateCounter.key, RateCounter.count).where(RateCounter.key.contains(shared_key))
        )
        counts = {key: value for key, value in rows}
    assert counts == {counter_key(user, shared_key): 16, counter_key(address, shared_key): 16}
