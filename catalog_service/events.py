"""What the catalog service publishes (through its outbox) and consumes."""

from catalog_service.models import kit_tables
from wangban.outbox import Outbox

outbox = Outbox(schema="catalog", source="/wangban/catalog", tables=kit_tables)
