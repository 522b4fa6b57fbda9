"""The catalog's internal HTTP API as other services read it (version 1): one published item
or bundle version by id (``GET /item-versions/{id}``, ``GET /bundle-versions/{id}``), for a
copy that lags its ``item.published`` / ``bundle.published`` event, and an item's current
version by its implementing code (``GET /items/{code}``, the same answer), for a copy that has
not seen the item at all yet. The callers (the ``catalog_copies`` modules of intake, approval
and sharing) ask with the kit's ``wangban.http.ServiceCalls``; the answer's wire shape is read
here, in one place, tolerantly (fields this code does not know are ignored, as for events)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final
from urllib.parse import quote
from uuid import UUID

ITEM_VERSION_PATH: Final = "/item-versions/{version_id}"
BUNDLE_VERSION_PATH: Final = "/bundle-versions/{version_id}"
CURRENT_ITEM_PATH: Final = "/items/{code}"
_CANONICAL_UUID: Final = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE
)


def item_version_path(version_id: str) -> str | None:
    """Where the catalog answers item version ``version_id``; ``None`` for an id the catalog
    cannot have issued (not a UUID): there is nothing to ask."""
    return ITEM_VERSION_PATH.format(version_id=version_id) if _is_uuid(version_id) else None


def bundle_version_path(version_id: str) -> str | None:
    """Where the catalog answers bundle version ``version_id``; ``None`` as for
    :func:`item_version_path`."""
    return BUNDLE_VERSION_PATH.format(version_id=version_id) if _is_uuid(version_id) else None


def current_item_path(implementing_code: str) -> str | None:
    """Where the catalog answers the current published version of the item with this
    implementing code (实施编码), as :class:`PublishedVersion`; ``None`` for an empty code or one
    the catalog would read as an item's id (only the canonical 8-4-4-4-12 form is one: some
    codes are 32 hex digits): there is nothing to ask by code."""
    if not implementing_code or _CANONICAL_UUID.fullmatch(implementing_code):
        return None
    return CURRENT_ITEM_PATH.format(code=quote(implementing_code, safe=""))


def _is_uuid(value: str) -> bool:
    try:
        UUID(value)
    except ValueError:
        return False
    return True


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
    def if_published(cls, body: Mapping[str, Any]) -> PublishedBundle | None:
        """The catalog's ``GET /bundle-versions/{id}`` answer, or ``None`` for a draft (the
        catalog keeps a bundle's draft at the same address: not one anybody applies for)."""
        return cls.from_answer(body) if body.get("published_at") else None

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
