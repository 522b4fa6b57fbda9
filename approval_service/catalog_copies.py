"""The catalog as approval asks it: one published item version, for a copy that lags.

Approval keeps copies of published versions from ``item.published`` (its consumer, the hot
path). An application can arrive for a version whose event approval has not read yet (the
catalogue's topic is not ordered with intake's; approval just started): its consumer then asks
the catalog for that version (``GET /item-versions/{id}``, :mod:`contracts.catalog.api_v1`) in
the event's prepare step and keeps it as if the event had come. While the catalog cannot
answer, :class:`CatalogUnavailable` holds the event; no case goes to a person for our delay.
"""

from __future__ import annotations

import httpx

from contracts.catalog.api_v1 import PublishedVersion, item_version_path
from wangban.errors import ServiceUnavailable
from wangban.http import ServiceCalls
from wangban.settings import Settings


class CatalogUnavailable(ServiceUnavailable):
    type_slug = "catalog-unavailable"
    title = "事项目录服务暂时不可用"

    def __init__(self) -> None:
        super().__init__("暂时无法读取办事事项，请稍后重试")


def catalog_calls(
    settings: Settings, *, transport: httpx.AsyncBaseTransport | None = None
) -> ServiceCalls:
    """Approval's calls to the catalog (no person behind them: a consumer asks);
    :class:`CatalogUnavailable` when the catalog cannot answer."""
    return ServiceCalls(
        settings,
        "catalog",
        caller="approval",
        unavailable=CatalogUnavailable,
        send_actor=False,
        transport=transport,
    )


async def published_version(catalog: ServiceCalls, version_id: str) -> PublishedVersion | None:
    """The catalog's published version ``version_id``; ``None`` when it has none."""
    path = item_version_path(version_id)
    body = None if path is None else await catalog.fetch(path)
    return None if body is None else PublishedVersion.from_answer(body)
