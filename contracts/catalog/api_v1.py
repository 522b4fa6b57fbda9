"""The catalog's internal HTTP API as other services read it (version 1): one published item
or bundle version by id (``GET /item-versions/{id}``, ``GET /bundle-versions/{id}``), for a
copy that lags its ``item.published`` / ``bundle.published`` event. The caller is
``wangban.catalog_client``; the answer's wire shape is read here, in one place, tolerantly
(fields this code does not know are ignored, as for events)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class PublishedVersion:
    """What ``item.published`` carries about a version, as the catalog answers it."""

    version_id: str
    item_id: str
    implementing_code: str
    content: dict[str, Any]
    published_at: datetime
    withdrawn_at: datetime | None

    @classmethod
    def from_answer(cls, body: Mapping[str, Any]) -> PublishedVersion:
        """The catalog's ``GET /item-versions/{id}`` answer (a published version)."""
        content = dict(body["content"])
        return cls(
            version_id=str(body["id"]),
            item_id=str(body["item_id"]),
            implementing_code=str(content.get("implementing_code", "")),
            content=content,
            published_at=datetime.fromisoformat(body["published_at"]),
            withdrawn_at=(
                datetime.fromisoformat(body["withdrawn_at"]) if body.get("withdrawn_at") else None
            ),
        )


@dataclass(frozen=True)
class PublishedBundle:
    """What ``bundle.published`` carries about a bundle version, as the catalog answers it."""

    version_id: str
    bundle_id: str
    code: str
    member_version_ids: list[str]
    content: dict[str, Any]
    published_at: datetime

    @classmethod
    def from_answer(cls, body: Mapping[str, Any]) -> PublishedBundle:
        """The catalog's ``GET /bundle-versions/{id}`` answer for a published bundle version."""
        content = dict(body["content"])
        return cls(
            version_id=str(body["id"]),
            bundle_id=str(body["bundle_id"]),
            code=str(content.get("code", "")),
            member_version_ids=[str(v) for v in body["member_version_ids"]],
            content=content,
            published_at=datetime.fromisoformat(body["published_at"]),
        )
