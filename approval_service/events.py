"""What the approval service publishes (through its outbox) and consumes."""

from wangban.outbox import Outbox

from approval_service.models import kit_tables

outbox = Outbox(schema="approval", source="/wangban/approval", tables=kit_tables)
