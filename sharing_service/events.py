"""The sharing service's outbox. What it publishes is contract (:mod:`contracts.sharing.v1`:
topics, event models, encryption contexts), re-exported here so the code that publishes an
event names it from its own package."""

from __future__ import annotations

from contracts.sharing.v1 import CERTIFICATES_TOPIC as CERTIFICATES_TOPIC
from contracts.sharing.v1 import LOOKUPS_TOPIC as LOOKUPS_TOPIC
from contracts.sharing.v1 import AuditCheckpointed as AuditCheckpointed
from contracts.sharing.v1 import CertificateFailed as CertificateFailed
from contracts.sharing.v1 import CertificateIssued as CertificateIssued
from contracts.sharing.v1 import CertificateStatusChanged as CertificateStatusChanged
from contracts.sharing.v1 import LookupAudited as LookupAudited
from sharing_service.models import kit_tables
from wangban.outbox import Outbox

outbox = Outbox(schema="sharing", source="/wangban/sharing", tables=kit_tables)
