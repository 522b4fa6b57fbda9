"""What the intake service publishes (through its outbox) and consumes."""

from intake_service.models import kit_tables
from wangban.outbox import Outbox

outbox = Outbox(schema="intake", source="/wangban/intake", tables=kit_tables)
