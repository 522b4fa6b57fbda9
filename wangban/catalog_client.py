"""The catalog service as the other services ask it: one published item or bundle version by id.

Services keep their own copies of item versions from ``item.published`` events, and that stays
the hot path. But a copy can lag: the catalogue's topic and the applications' topic are not
ordered with each other, and a service that has just started may not have read the catalogue
yet. An application bound to a version the service has not heard of must then not take
another path (no rules known, so a person decides; or 404 to the citizen): the service asks the
catalog for that version (``GET /item-versions/{id}``, public for published versions; a bundle
(一件事) likewise at ``GET /bundle-versions/{id}``) and keeps it as if the event had come. When
the catalog cannot answer, the call raises :class:`CatalogUnavailable` (503): a consumer holds
the event and asks again, a request is refused for now as our fault.
"""

from __future__ import annotations

import logging
from typing import Any
from uuid import UUID

import httpx

from contracts.catalog.api_v1 import PublishedBundle as PublishedBundle
from contracts.catalog.api_v1 import PublishedVersion as PublishedVersion
from wangban.errors import ServiceUnavailable
from wangban.http import service_client
from wangban.settings import Settings

logger = logging.getLogger(__name__)


class CatalogUnavailable(ServiceUnavailable):
    type_slug = "catalog-unavailable"
    title = "事项目录服务暂时不可用"

    def __init__(self) -> None:
        super().__init__("暂时无法读取办事事项，请稍后重试")


class CatalogClient:
    def __init__(
        self,
        settings: Settings,
        *,
        caller: str,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._client = service_client(settings, "catalog", caller=caller, transport=transport)

    async def published_version(self, version_id: str) -> PublishedVersion | None:
        """The published version ``version_id``, or ``None`` when the catalog has none (never
        published, or no such id). Raises :class:`CatalogUnavailable` when it cannot answer."""
        body = await self._get_version("item-versions", version_id)
        if body is None:
            return None
        return PublishedVersion.from_answer(body)

    async def published_bundle(self, version_id: str) -> PublishedBundle | None:
        """The published bundle version ``version_id``, or ``None`` when the catalog has none.
        Raises :class:`CatalogUnavailable` when it cannot answer."""
        body = await self._get_version("bundle-versions", version_id)
        # The catalog shows a bundle's draft at the same address: not one anybody applies for.
        if body is None or not body.get("published_at"):
            return None
        return PublishedBundle.from_answer(body)

    async def _get_version(self, kind: str, version_id: str) -> dict[str, Any] | None:
        """``GET /{kind}/{version_id}``: the body, or ``None`` on 404."""
        try:
            UUID(version_id)
        except ValueError:
            return None  # not an id the catalog could have issued: no call
        try:
            response = await self._client.get(f"/{kind}/{version_id}")
        except httpx.HTTPError as exc:
            logger.warning("catalog service unreachable: %s", type(exc).__name__)
            raise CatalogUnavailable() from exc
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            logger.warning("catalog answered %s for %s", response.status_code, kind)
            raise CatalogUnavailable()
        body: dict[str, Any] = response.json()
        return body

    async def aclose(self) -> None:
        await self._client.aclose()
