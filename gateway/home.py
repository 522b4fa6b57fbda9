"""The mini-program's first screen (``/home``): four services' answers on one screen, each part
asked at once, and a part that cannot be loaded marked ``degraded`` rather than failing the
screen.

It is the most frequent authenticated request, so it is put together lean: the hot items are
the same for everyone and come from the gateway's short-lived copy of the catalogue's answer
(:meth:`gateway.upstream.Upstreams.json_public`), the three personal parts are GETs on the lean
client (the wallet's count, not the wallet), and the answer is written as JSON directly (its
shape is :class:`HomeOut`, which the OpenAPI document states) rather than validated into a
model and serialised again.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from fastapi import Response

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

HOT_ITEMS = {"list": "网上办", "page_size": 8}
"""The catalogue's query for the hot items."""

PARTS = ("hot_items", "my_open_applications", "unread_messages", "wallet_count")


async def first_screen(services: Upstreams) -> Response:
    """Hot items, the caller's open applications, unread messages and certificates."""
    parts = await asyncio.gather(
        services.json_public("catalog", "/items", params=HOT_ITEMS),
        services.json("intake", "GET", "/applications"),
        services.json("notify", "GET", "/me/notifications", params={"limit": 1}),
        services.json("sharing", "GET", "/me/certificates/count"),
        return_exceptions=True,
    )
    # A screen of four parts should not fail as a whole because one service is slow or down.
    degraded = [n for n, p in zip(PARTS, parts, strict=True) if isinstance(p, BaseException)]
    for part in parts:
        if isinstance(part, BaseException) and not isinstance(part, Exception):
            raise part
    items, applications, inbox, wallet = (
        None if isinstance(p, BaseException) else p for p in parts
    )
    screen: dict[str, Any] = {
        "hot_items": list((items or {}).get("items", [])),
        "my_open_applications": [a for a in applications or [] if a["status"] in OPEN_STATUSES],
        "unread_messages": int((inbox or {}).get("unread", 0)),
        "wallet_count": int((wallet or {}).get("count", 0)),
        "degraded": degraded,
    }
    body = json.dumps(screen, ensure_ascii=False, separators=(",", ":"))
    return Response(content=body.encode(), media_type="application/json")
