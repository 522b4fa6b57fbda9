"""The gateway service's outbox. What it publishes is contract (:mod:`contracts.gateway.v1`:
topics, event models, encryption contexts), re-exported here so the code that publishes an
event names it from its own package."""

from __future__ import annotations

from contracts.gateway.v1 import ACCOUNT_SUBJECT_CONTEXT as ACCOUNT_SUBJECT_CONTEXT
from contracts.gateway.v1 import ACCOUNTS_TOPIC as ACCOUNTS_TOPIC
from contracts.gateway.v1 import OPENID_CONTEXT as OPENID_CONTEXT
from contracts.gateway.v1 import AccountWeChatBound as AccountWeChatBound
from gateway.models import kit_tables
from wangban.outbox import Outbox

outbox = Outbox(schema="gateway", source="/wangban/gateway", tables=kit_tables)
