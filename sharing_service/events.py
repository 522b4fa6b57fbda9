"""What the sharing service publishes (through its outbox) and consumes."""

from sharing_service.models import kit_tables
from wangban.outbox import Outbox

outbox = Outbox(schema="sharing", source="/wangban/sharing", tables=kit_tables)
