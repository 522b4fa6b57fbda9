"""What the gateway service publishes (through its outbox) and consumes."""

from gateway.models import kit_tables
from wangban.outbox import Outbox

outbox = Outbox(schema="gateway", source="/wangban/gateway", tables=kit_tables)
