"""Rate limits shared by every gateway worker, counted in PostgreSQL in fixed windows.

A limit allows ``max_requests`` per ``window_s`` seconds to one caller (an address or a user).
Windows are aligned to the Unix epoch, so every worker puts a request in the same window, and
one statement counts a request against all the limits it is subject to (a submission: the
citizen's and the address's), on the :class:`~gateway.models.RateCounter` row of each key and
window::

    INSERT … VALUES (key₁, window_start₁, 1), (key₂, window_start₂, 1)
    ON CONFLICT (key, window_start) DO UPDATE SET count = rate_counter.count + 1
    RETURNING key, window_start, count

PostgreSQL makes the increment atomic: a second statement counting the same key waits for the
first to end and then sees its count, so two workers can never both take the last slot, and
the counters survive a restart. The gateway runs it in autocommit (:func:`count`): the rows are
locked only while the statement runs, and no BEGIN/COMMIT round trips are paid for it. Rows
are written in key order, so two requests sharing two counters lock them in the same order and
cannot deadlock. Refused requests count too (a caller hammering a limit gains nothing) —
except those refused for our fault (a service down, an item the catalogue publishes that
intake has not learnt yet): :func:`refund` gives such a request back.

Old windows are deleted by :func:`purge`, run hourly by the gateway app.

A per-address limit is only as good as the address: :class:`TrustedProxies` says who the client
is, believing ``X-Forwarded-For`` only as far as it was written by our own proxies.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final, Literal, cast

from sqlalchemy import Table, delete, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from gateway.models import RateCounter
from wangban.db import Database
from wangban.errors import TooManyRequests
from wangban.settings import ConfigurationError

__all__ = [
    "MAX_WINDOW_S",
    "Decision",
    "Limit",
    "RateLimited",
    "TrustedProxies",
    "check",
    "count",
    "give_back",
    "hit",
    "hits",
    "our_fault",
    "purge",
    "refund",
]

MAX_WINDOW_S: Final = 86_400
"""The longest window: :func:`purge` deletes windows that started over a day ago."""
KEEP_FOR: Final = timedelta(seconds=MAX_WINDOW_S)
_MAX_KEY: Final = 200
"""The length of :attr:`RateCounter.key`."""


@dataclass(frozen=True)
class Limit:
    """At most ``max_requests`` per ``window_s`` seconds per caller, where a caller is an
    address (``per="ip"``) or a user (``per="user"``). Limits are told apart by ``name`` and
    ``per``: two limits sharing both would share their counters."""

    name: str
    per: Literal["ip", "user"]
    max_requests: int
    window_s: int

    def __post_init__(self) -> None:
        if not self.name or ":" in self.name:
            raise ValueError("a limit's name must be non-empty and without ':'")
        if self.max_requests < 1:
            raise ValueError("a limit must allow at least one request")
        if not 1 <= self.window_s <= MAX_WINDOW_S:
            raise ValueError(f"a limit's window must be 1 to {MAX_WINDOW_S} seconds")


@dataclass(frozen=True)
class Decision:
    """The outcome of one counted request."""

    allowed: bool
    retry_after_s: int
    """Whole seconds until the window ends (at least 1): when a refused caller may retry."""
    remaining: int
    """Requests still allowed in this window after this one."""


class RateLimited(TooManyRequests):
    """429 with ``Retry-After``: the caller has used up a limit for the current window."""

    type_slug = "rate-limited"
    title = "操作过于频繁"


def window_start(now: datetime, window_s: int) -> datetime:
    """The start of the fixed window of ``window_s`` seconds that holds ``now``."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    epoch_s = math.floor(now.timestamp())
    return datetime.fromtimestamp(epoch_s - epoch_s % window_s, UTC)


def counter_key(limit: Limit, who: str) -> str:
    """The counter's key: ``login:ip:203.0.113.7``; a caller id too long for the column is
    replaced by its SHA-256 (still one key per caller)."""
    key = f"{limit.name}:{limit.per}:{who}"
    if len(key) <= _MAX_KEY:
        return key
    digest = hashlib.sha256(who.encode()).hexdigest()
    return f"{limit.name}:{limit.per}:sha256:{digest}"


Counted = Sequence[tuple[Limit, str]]
"""(limit, who) pairs: the limits one request counts against, each for its caller."""

_TABLE: Final = cast(Table, RateCounter.__table__)


def _decision(limit: Limit, *, count: int, start: datetime, now: datetime) -> Decision:
    ends = start + timedelta(seconds=limit.window_s)
    retry_after = max(math.ceil((ends - now).total_seconds()), 1)
    return Decision(
        allowed=count <= limit.max_requests,
        retry_after_s=retry_after,
        remaining=max(limit.max_requests - count, 0),
    )


_HITS = (
    insert(_TABLE)
    .on_conflict_do_update(
        index_elements=[_TABLE.c.key, _TABLE.c.window_start],
        set_={"count": _TABLE.c.count + 1},
    )
    .returning(_TABLE.c.key, _TABLE.c.window_start, _TABLE.c.count)
)


async def hits(
    executor: AsyncSession | AsyncConnection, *, counted: Counted, now: datetime
) -> list[Decision]:
    """Count one request against each of ``counted`` at ``now`` (timezone-aware), in one
    statement, and say for each whether it is allowed (in the order of ``counted``). On a
    session the caller commits; on an autocommit connection the count is committed when the
    statement ends."""
    rows: dict[tuple[str, datetime], int] = {}
    for limit, who in counted:
        rows.setdefault((counter_key(limit, who), window_start(now, limit.window_s)), 0)
    if not rows:
        return []
    # One row per key and window (PostgreSQL refuses to upsert a row twice in a statement),
    # in key order, so that concurrent requests lock shared counters in the same order.
    # The rows as parameters, not in the statement: SQLAlchemy sends them as one multi-row
    # INSERT (its "insertmanyvalues") from a statement compiled once and cached; rows built
    # into the statement (``.values([...])``) made it compile again on every request.
    parameters = [{"key": k, "window_start": s, "count": 1} for k, s in sorted(rows)]
    for key, start, count in await executor.execute(_HITS, parameters):
        rows[(key, start)] = count
    decisions = []
    for limit, who in counted:
        start = window_start(now, limit.window_s)
        count = rows[(counter_key(limit, who), start)]
        decisions.append(_decision(limit, count=count, start=start, now=now))
    return decisions


async def hit(
    executor: AsyncSession | AsyncConnection, *, limit: Limit, who: str, now: datetime
) -> Decision:
    """Count one request of ``who`` against ``limit`` at ``now`` (:func:`hits` for one limit)."""
    (decision,) = await hits(executor, counted=[(limit, who)], now=now)
    return decision


OUR_FAULT_PROBLEMS: Final = frozenset({"urn:wangban:problem:item-version-not-available"})
"""Refusals that are the platform's fault: intake has not yet learnt a version the catalogue
publishes (its copy lags) and could not complete it."""


def our_fault(status: int, problem_type: str | None) -> bool:
    """Whether a refused request was refused for the platform's fault, not the caller's: a
    5xx (a service down, restarting, broken), or a refusal in :data:`OUR_FAULT_PROBLEMS`."""
    return status >= 500 or problem_type in OUR_FAULT_PROBLEMS


async def refund(
    executor: AsyncSession | AsyncConnection, *, counted: Counted, now: datetime
) -> None:
    """Give back, in one statement, one request :func:`hits` counted at ``now`` (the same
    ``now``: the same windows) against each of ``counted``, because it was refused for the
    platform's fault rather than the caller's. Never below zero. On a session the caller
    commits."""
    rows = {(counter_key(limit, who), window_start(now, limit.window_s)) for limit, who in counted}
    if not rows:
        return
    await executor.execute(
        update(_TABLE)
        .where(
            tuple_(_TABLE.c.key, _TABLE.c.window_start).in_(sorted(rows)),
            _TABLE.c.count > 0,
        )
        .values(count=_TABLE.c.count - 1)
    )


def check(*decisions: Decision) -> None:
    """Raise :class:`RateLimited` (429, ``Retry-After``) if any of the request's counts was
    refused; ``Retry-After`` is when every limit that refused it allows again."""
    refused = [d for d in decisions if not d.allowed]
    if refused:
        retry_after = max(d.retry_after_s for d in refused)
        raise RateLimited(
            f"操作过于频繁，请 {retry_after} 秒后再试",
            headers={"Retry-After": str(retry_after)},
            extra={"retry_after_s": retry_after},
        )


async def count(database: Database, *, counted: Counted, now: datetime) -> None:
    """Count one request against each of ``counted`` and refuse it over any limit
    (:func:`hits`, :func:`check`): one statement in autocommit, committed when it ends — a
    request that then fails (a wrong login code) must still count, or failures would be free,
    and the counters' rows stay locked only for the statement, not for the request."""
    async with database.engine.connect() as connection:
        autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
        decisions = await hits(autocommit, counted=counted, now=now)
    check(*decisions)


async def give_back(database: Database, *, counted: Counted, now: datetime) -> None:
    """:func:`refund` the request :func:`count` counted at ``now``, in autocommit."""
    async with database.engine.connect() as connection:
        autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
        await refund(autocommit, counted=counted, now=now)


async def purge(session: AsyncSession, *, now: datetime) -> int:
    """Delete the windows that started more than a day before ``now`` (all of them over,
    whatever their limit); returns how many."""
    result = await session.execute(
        delete(RateCounter).where(RateCounter.window_start < now - KEEP_FOR)
    )
    assert isinstance(result, CursorResult)
    return int(result.rowcount or 0)


# --- Who the caller is -----------------------------------------------------------------------

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def _address(text: str) -> Address | None:
    """An address as proxies write it (``203.0.113.7``, ``203.0.113.7:4711``, ``2001:db8::1``,
    ``[2001:db8::1]:443``), IPv4-mapped IPv6 read as IPv4; None for anything else."""
    text = text.strip()
    if text.startswith("["):
        text = text[1 : text.find("]")] if "]" in text else text
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class TrustedProxies:
    """The reverse proxies in front of the gateway (``WANGBAN_TRUSTED_PROXIES``: addresses or
    CIDR networks) and, from them, the client of a request.

    ``X-Forwarded-For`` is a list each proxy appends the address it saw to; anything left of
    the first proxy's entry was written by the client and may be anything. So the header is
    read only when the socket's peer is one of ours, from the right, skipping our proxies: the
    first address that is not one of them is the client. With no proxies configured the peer
    is the client, whatever the header says.
    """

    def __init__(self, entries: Iterable[str]) -> None:
        networks = []
        for entry in entries:
            try:
                networks.append(ipaddress.ip_network(entry.strip(), strict=False))
            except ValueError:
                raise ConfigurationError(
                    f"WANGBAN_TRUSTED_PROXIES: {entry!r} is not an address or CIDR network"
                ) from None
        self.networks = tuple(networks)

    def trusts(self, address: Address) -> bool:
        return any(address in network for network in self.networks)

    def client_address(self, peer: str | None, forwarded_for: Sequence[str]) -> str:
        """The client's address: ``peer`` is the socket's, ``forwarded_for`` every
        ``X-Forwarded-For`` header of the request, in order."""
        if peer is None:
            return "unknown"
        peer_address = _address(peer)
        if peer_address is None or not self.trusts(peer_address):
            return peer
        client = str(peer_address)
        hops = [hop for value in forwarded_for for hop in value.split(",") if hop.strip()]
        for hop in reversed(hops):
            address = _address(hop)
            if address is None:
                # Not an address: no proxy of ours wrote it. The nearest hop we could read
                # (one of our proxies) stands for the client rather than text anyone may pick.
                return client
            client = str(address)
            if not self.trusts(address):
                return client
        return client  # every hop is one of ours: the left-most is as far as anyone can see
