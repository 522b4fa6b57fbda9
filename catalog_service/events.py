"""What the catalog service publishes (through its outbox) and consumes."""

from wangban.outbox import Outbox

from catalog_service.models import kit_tables

outbox = Outbox(schema="catalog", source="/wangban/catalog", tables=kit_tables)
