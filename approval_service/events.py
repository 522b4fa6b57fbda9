"""What the approval service publishes (through its outbox) and consumes."""

from approval_service.models import kit_tables
from wangban.outbox import Outbox

outbox = Outbox(schema="approval", source="/wangban/approval", tables=kit_tables)
