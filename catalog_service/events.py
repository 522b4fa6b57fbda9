"""The catalog service's outbox. What it publishes is contract (:mod:`contracts.catalog.v1`:
topics, event models, encryption contexts), re-exported here so the code that publishes an
event names it from its own package."""

from __future__ import annotations

from catalog_service.models import kit_tables
from contracts.catalog.v1 import CATALOG_TOPIC as CATALOG_TOPIC
from contracts.catalog.v1 import BundlePublished as BundlePublished
from contracts.catalog.v1 import ItemPublished as ItemPublished
from contracts.catalog.v1 import ItemWithdrawn as ItemWithdrawn
from wangban.outbox import Outbox

outbox = Outbox(schema="catalog", source="/wangban/catalog", tables=kit_tables)
