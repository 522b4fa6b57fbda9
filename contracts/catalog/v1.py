"""What the catalog service publishes (version 1).

Published versions travel whole, so intake and approval keep their own copies and never call
the catalog on the hot path of an application.
"""

from __future__ import annotations

from typing import Any

from contracts.events import Event, Timestamp, registry

CATALOG_TOPIC = registry.topic(
    "wangban.catalog.items",
    partitions=3,
    description="Service items (实施清单) and bundles (一件事) as published and withdrawn.",
    key_description="The item id (or bundle id): one item's versions arrive in order.",
)


@registry.event(type="cn.wangban.catalog.item.published.v1", topic=CATALOG_TOPIC, key="item_id")
class ItemPublished(Event):
    """A version of a service item was published and is now the one citizens apply under.

    ``content`` is the whole version (all standard elements, materials, form schema and 秒批
    rules); ``version_id`` is what applications are bound to. A later version of the same item
    replaces it for new applications; this one stays valid for those filed under it.
    """

    item_id: str
    version_id: str
    version: int
    implementing_code: str
    lists: list[str]
    published_at: Timestamp
    content: dict[str, Any]
    submitted_by: str | None = None
    """Staff subject id of who submitted (or, for a change needing no review, published) this
    version; absent for the system's seeds."""
    approved_by: str | None = None
    """Staff subject id of the second person who approved a change of rules, conditions or time
    limits (四眼原则); absent when the version needed no review."""


@registry.event(type="cn.wangban.catalog.item.withdrawn.v1", topic=CATALOG_TOPIC, key="item_id")
class ItemWithdrawn(Event):
    """A service item was withdrawn: no new applications; filed ones continue."""

    item_id: str
    version_id: str
    implementing_code: str
    withdrawn_at: Timestamp


@registry.event(type="cn.wangban.catalog.bundle.published.v1", topic=CATALOG_TOPIC, key="bundle_id")
class BundlePublished(Event):
    """A bundle (一件事一次办) version was published: one combined form whose fields map onto
    its member items' forms, bound to the member item versions listed."""

    bundle_id: str
    version_id: str
    version: int
    code: str
    member_version_ids: list[str]
    published_at: Timestamp
    content: dict[str, Any]
