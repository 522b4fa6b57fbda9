"""The approval service's outbox. What it publishes is contract (:mod:`contracts.approval.v1`:
topics, event models, encryption contexts), re-exported here so the code that publishes an
event names it from its own package."""

from __future__ import annotations

from approval_service.models import kit_tables
from contracts.approval.v1 import DECISIONS_TOPIC as DECISIONS_TOPIC
from contracts.approval.v1 import FORM_CONTEXT as FORM_CONTEXT
from contracts.approval.v1 import HOLDER_CONTEXT as HOLDER_CONTEXT
from contracts.approval.v1 import CaseAccepted as CaseAccepted
from contracts.approval.v1 import CaseApproved as CaseApproved
from contracts.approval.v1 import CaseCompleted as CaseCompleted
from contracts.approval.v1 import CaseCorrectionRequested as CaseCorrectionRequested
from contracts.approval.v1 import CaseDeadlineWarning as CaseDeadlineWarning
from contracts.approval.v1 import CaseDenied as CaseDenied
from contracts.approval.v1 import CaseNotAccepted as CaseNotAccepted
from contracts.approval.v1 import CaseOverdue as CaseOverdue
from wangban.outbox import Outbox

outbox = Outbox(schema="approval", source="/wangban/approval", tables=kit_tables)
