"""What the gateway service publishes (through its outbox) and consumes."""

from wangban.outbox import Outbox

from gateway.models import kit_tables

outbox = Outbox(schema="gateway", source="/wangban/gateway", tables=kit_tables)
