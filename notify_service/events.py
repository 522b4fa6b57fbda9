"""The notify service's outbox. What it publishes is contract (:mod:`contracts.notify.v1`:
topics, event models, encryption contexts), re-exported here so the code that publishes an
event names it from its own package."""

from __future__ import annotations

from contracts.notify.v1 import DELIVERIES_TOPIC as DELIVERIES_TOPIC
from contracts.notify.v1 import MessageDelivered as MessageDelivered
from contracts.notify.v1 import MessageFailed as MessageFailed
from notify_service.models import kit_tables
from wangban.outbox import Outbox

outbox = Outbox(schema="notify", source="/wangban/notify", tables=kit_tables)
