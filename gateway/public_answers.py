"""The public catalogue's answers, kept by the gateway for a few seconds.

Citizens search the catalogue with a handful of popular queries (公积金, 社保, 身份证 …) and
every first screen shows the same hot items: at 200 searches a second almost every request asks
the catalog what it answered a moment ago, and passing it through costs the gateway more CPU
(an HTTP round trip with httpx) than the catalog's own search. So a successful answer to an
anonymous catalogue read is kept for ``WANGBAN_GATEWAY_PUBLIC_CACHE_S`` seconds (0: never) and
served from memory; a catalogue change shows in the gateway's answers at most that late, as the
catalog's own synonym cache already does.

Only what is the same for everyone is kept (public reads, no caller in the request), only 200
answers (a problem or a service that is down is asked again next time), in a bounded table.
Concurrent requests for an answer not kept yet wait for one call instead of each making their
own, so an expiry under load costs one call, not one per waiting request.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

T = TypeVar("T")

MAX_ENTRIES: Final = 1024
"""Distinct answers kept at most (oldest dropped first): far more than the popular queries, few
enough that a client asking random queries cannot grow the process."""


@dataclass
class Kept:
    """One answer as the gateway passes it on."""

    status: int
    body: bytes
    headers: dict[str, str]
    until: float
    _parsed: Any = field(default=None, repr=False)
    _has_parsed: bool = field(default=False, repr=False)

    def json(self) -> Any:
        """The body as JSON, parsed once however often it is asked for."""
        if not self._has_parsed:
            self._parsed = json.loads(self.body)
            self._has_parsed = True
        return self._parsed


class PublicAnswers:
    """Answers kept for ``ttl_s`` seconds per key (a path and its query)."""

    def __init__(
        self,
        *,
        ttl_s: float,
        max_entries: int = MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self.clock = clock
        self._kept: OrderedDict[Hashable, Kept] = OrderedDict()
        self._asking: dict[Hashable, asyncio.Future[Kept]] = {}
        self.calls = 0
        """How many times the service was asked (tests count them)."""

    async def get(
        self,
        key: Hashable,
        ask: Callable[[], Awaitable[T]],
        *,
        passed: Callable[[T], Kept],
    ) -> Kept:
        """The answer kept under ``key``, else ``ask``'s (made a :class:`Kept` by ``passed``,
        and kept when it is a 200)."""
        if self.ttl_s <= 0:
            self.calls += 1
            return passed(await ask())
        while True:
            kept = self._kept.get(key)
            if kept is not None and kept.until > self.clock():
                return kept
            asking = self._asking.get(key)
            if asking is None:
                break
            try:
                # Shielded: one waiter cancelled (its client went away) must not cancel the
                # call the others wait for.
                return await asyncio.shield(asking)
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if not asking.cancelled() or (task is not None and task.cancelling()):
                    raise
                # The request that was asking went away: ask again, for ourselves.
        future: asyncio.Future[Kept] = asyncio.get_running_loop().create_future()
        self._asking[key] = future
        try:
            self.calls += 1
            answer = passed(await ask())
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning when nobody waited
            raise
        finally:
            self._asking.pop(key, None)
        if answer.status == 200:
            answer.until = self.clock() + self.ttl_s
            self._kept[key] = answer
            self._kept.move_to_end(key)
            while len(self._kept) > self.max_entries:
                self._kept.popitem(last=False)
        future.set_result(answer)
        return answer

    def clear(self) -> None:
        self._kept.clear()
