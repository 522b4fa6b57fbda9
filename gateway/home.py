"""The mini-program's first screen (``/home``): four services' answers on one screen, each part
asked at once, and a part that cannot be loaded marked ``degraded`` rather than failing the
screen."""

from __future__ import annotations

import asyncio

from gateway.schemas import HomeOut
from gateway.upstream import Upstreams

OPEN_STATUSES = frozenset(
    {
        "submitted",
        "accepted",
        "under_review",
        "correction_requested",
        "resubmitted",
        "approved",
        "certificate_failed",
    }
)
"""The applications the first screen shows: those the citizen is still waiting on."""


async def first_screen(services: Upstreams) -> HomeOut:
    """Hot items, the caller's open applications, unread messages and certificates."""
    parts = await asyncio.gather(
        services.json("catalog", "GET", "/items", params={"list": "网上办", "page_size": 8}),
        services.json("intake", "GET", "/applications"),
        services.json("notify", "GET", "/me/notifications", params={"limit": 1}),
        services.json("sharing", "GET", "/me/certificates"),
        return_exceptions=True,
    )
    names = ("hot_items", "my_open_applications", "unread_messages", "wallet_count")
    # A screen of four parts should not fail as a whole because one service is slow or down.
    degraded = [n for n, p in zip(names, parts, strict=True) if isinstance(p, BaseException)]
    for part in parts:
        if isinstance(part, BaseException) and not isinstance(part, Exception):
            raise part
    items, applications, inbox, wallet = (
        None if isinstance(p, BaseException) else p for p in parts
    )
    return HomeOut(
        hot_items=list((items or {}).get("items", [])),
        my_open_applications=[a for a in applications or [] if a["status"] in OPEN_STATUSES],
        unread_messages=int((inbox or {}).get("unread", 0)),
        wallet_count=len(wallet or []),
        degraded=degraded,
    )
