"""The catalogue's client of the approval service's replay (``POST /rules/replay``): what a
submitted rule set would have decided on the item's recent cases, for the reviewer.

Called before the submission's write transaction opens, so no pooled connection waits on
another service. When approval cannot answer, the submission is *not* blocked: the record says
"dry-run unavailable" and the approver decides knowing it (a rule fix during an approval
outage must still be possible).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from wangban.http import service_client
from wangban.settings import Settings

logger = logging.getLogger(__name__)

UNAVAILABLE_TEXT = "试运行不可用：审批服务未能回答，审核人请自行判断"
SKIPPED_TEXT = "秒批规则未修改，无需试运行"


class ReplayClient:
    def __init__(
        self, settings: Settings, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        # The caller's identity (the author) travels with the request (wangban.http), so the
        # approval service replays only the cases of the author's department.
        self._client = service_client(settings, "approval", caller="catalog", transport=transport)

    async def replay(self, *, item_code: str, rules: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        try:
            response = await self._client.post(
                "/rules/replay", json={"item_code": item_code, "rules": list(rules)}
            )
        except httpx.HTTPError as exc:
            logger.warning("approval service unreachable for a replay: %s", type(exc).__name__)
            return unavailable(f"unreachable: {type(exc).__name__}")
        if response.status_code != 200:
            logger.warning("approval service answered %s to a replay", response.status_code)
            return unavailable(f"status {response.status_code}")
        answer: dict[str, Any] = response.json()
        return answer

    async def close(self) -> None:
        await self._client.aclose()


def unavailable(why: str) -> dict[str, Any]:
    return {"status": "unavailable", "note": UNAVAILABLE_TEXT, "why": why}


def skipped() -> dict[str, Any]:
    return {"status": "skipped", "note": SKIPPED_TEXT}
