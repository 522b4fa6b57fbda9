"""What the notify service publishes (through its outbox) and consumes."""

from wangban.outbox import Outbox

from notify_service.models import kit_tables

outbox = Outbox(schema="notify", source="/wangban/notify", tables=kit_tables)
