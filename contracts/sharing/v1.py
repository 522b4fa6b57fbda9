"""What the sharing service publishes (version 1).

Published events carry metadata only: which certificate, which dataset and fields, which
application; never a record's values and never an ID number.
"""

from __future__ import annotations

from contracts.events import CalendarDate, Event, Timestamp, registry

CERTIFICATES_TOPIC = registry.topic(
    "wangban.sharing.certificates",
    partitions=3,
    description="Electronic certificates (电子证照): issued, and every change of status.",
    key_description=(
        "The certificate id: one certificate's history arrives in order (certificate.failed: "
        "the application id, as no certificate exists)."
    ),
)

LOOKUPS_TOPIC = registry.topic(
    "wangban.sharing.lookups",
    partitions=3,
    description=(
        "One record per data lookup (granted, denied, not found or unavailable), metadata only. "
        "Each carries its position and MAC in the audit chain, and the chain's head is signed "
        "and published here as a checkpoint every few minutes, so a copy kept outside "
        "Wangban witnesses the chain: a rewritten or truncated log no longer matches it."
    ),
    key_description=(
        "The audit record id (lookup.audited); the chain's name (audit.checkpoint): the same "
        "for every checkpoint of the chain, so checkpoints arrive in order."
    ),
)


@registry.event(
    type="cn.wangban.sharing.certificate.issued.v1", topic=CERTIFICATES_TOPIC, key="certificate_id"
)
class CertificateIssued(Event):
    """A signed e-certificate was issued for an approved application. The document itself
    (which names the holder) stays in the library; the holder reads it from their wallet."""

    certificate_id: str
    type_code: str
    type_name: str
    issuer_code: str
    application_id: str
    holder_kind: str
    issued_at: Timestamp
    valid_until: CalendarDate | None


@registry.event(
    type="cn.wangban.sharing.certificate.failed.v1",
    topic=CERTIFICATES_TOPIC,
    key="application_id",
)
class CertificateFailed(Event):
    """The certificate an approved application earned could not be issued (its type is not
    registered, or an item it must state is missing): the application cannot be completed
    and staff must act. ``reason`` names the missing items, never their values."""

    application_id: str
    type_code: str
    type_name: str
    reason: str
    failed_at: Timestamp


@registry.event(
    type="cn.wangban.sharing.certificate.status_changed.v1",
    topic=CERTIFICATES_TOPIC,
    key="certificate_id",
)
class CertificateStatusChanged(Event):
    """A certificate's status changed (有效, 暂扣, 撤销, 注销, 失效, 吊销), with the reason."""

    certificate_id: str
    type_code: str
    from_status: str
    to_status: str
    reason: str
    changed_at: Timestamp


@registry.event(type="cn.wangban.sharing.lookup.audited.v1", topic=LOOKUPS_TOPIC, key="audit_id")
class LookupAudited(Event):
    """A data lookup was made and audited. Field names and predicate names only: never the
    subject's identity and never a value."""

    audit_id: str
    seq: int
    hash: str
    at: Timestamp
    consumer: str
    dataset: str
    fields: list[str]
    predicates: list[str]
    application_id: str | None
    item_code: str
    outcome: str


@registry.event(type="cn.wangban.sharing.audit.checkpoint.v1", topic=LOOKUPS_TOPIC, key="chain")
class AuditCheckpointed(Event):
    """A checkpoint: the lookup audit chain's head, signed (Ed25519) by the sharing service.

    Record ``seq`` had MAC ``mac`` at ``at``. Keep these: a log rewritten or truncated before
    a checkpoint you hold no longer contains that MAC at that position. ``signature`` is over
    the canonical JSON (RFC 8785) of ``{"context": "wangban.sharing.audit-checkpoint.v1",
    "kid": kid, "statement": {"at", "chain", "mac", "seq"}}``; pin ``public_key`` under
    ``kid`` out of band rather than trusting the copy in the event."""

    checkpoint_id: str
    chain: str
    seq: int
    mac: str
    at: Timestamp
    kid: str
    public_key: str
    signature: str
