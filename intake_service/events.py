"""The intake service's outbox. What it publishes is contract (:mod:`contracts.intake.v1`:
topics, event models, encryption contexts), re-exported here so the code that publishes an
event names it from its own package."""

from __future__ import annotations

from contracts.intake.v1 import APPLICATIONS_TOPIC as APPLICATIONS_TOPIC
from contracts.intake.v1 import FORM_CONTEXT as FORM_CONTEXT
from contracts.intake.v1 import HOLDER_CONTEXT as HOLDER_CONTEXT
from contracts.intake.v1 import RATINGS_TOPIC as RATINGS_TOPIC
from contracts.intake.v1 import SUBJECT_CONTEXT as SUBJECT_CONTEXT
from contracts.intake.v1 import Acceptance as Acceptance
from contracts.intake.v1 import ApplicationAccepted as ApplicationAccepted
from contracts.intake.v1 import ApplicationCompleted as ApplicationCompleted
from contracts.intake.v1 import ApplicationNotAccepted as ApplicationNotAccepted
from contracts.intake.v1 import ApplicationSubmitted as ApplicationSubmitted
from contracts.intake.v1 import ApplicationSupplemented as ApplicationSupplemented
from contracts.intake.v1 import ApplicationTerminated as ApplicationTerminated
from contracts.intake.v1 import ApplicationWithdrawn as ApplicationWithdrawn
from contracts.intake.v1 import MaterialOutcome as MaterialOutcome
from contracts.intake.v1 import RatingSubmitted as RatingSubmitted
from contracts.intake.v1 import RectificationClosed as RectificationClosed
from contracts.intake.v1 import RectificationOpened as RectificationOpened
from contracts.intake.v1 import RectificationReplied as RectificationReplied
from contracts.intake.v1 import SupplementReminderDue as SupplementReminderDue
from intake_service.models import kit_tables
from wangban.outbox import Outbox

outbox = Outbox(schema="intake", source="/wangban/intake", tables=kit_tables)
