"""What the notify service publishes (through its outbox) and consumes."""

from notify_service.models import kit_tables
from wangban.outbox import Outbox

outbox = Outbox(schema="notify", source="/wangban/notify", tables=kit_tables)
