"""What the sharing service publishes (through its outbox) and consumes."""

from wangban.outbox import Outbox

from sharing_service.models import kit_tables

outbox = Outbox(schema="sharing", source="/wangban/sharing", tables=kit_tables)
