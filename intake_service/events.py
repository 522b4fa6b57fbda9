"""What the intake service publishes (through its outbox) and consumes."""

from wangban.outbox import Outbox

from intake_service.models import kit_tables

outbox = Outbox(schema="intake", source="/wangban/intake", tables=kit_tables)
