"""The lookup audit chain keyed: each record's ``hash`` becomes an HMAC-SHA256 under
``WANGBAN_AUDIT_CHAIN_KEY`` (a key the database does not hold) instead of plain SHA-256.

Existing records are first checked under the old scheme (plain SHA-256 over the v1 fields),
then re-chained under the key, in order, and the head moved to the new last MAC. A chain that
is already broken is not re-chained: that would launder the damage, so the migration stops
and says where.

The MAC rules are copied here, frozen, rather than imported: this revision must compute what
it computed on the day it ran, whatever ``sharing_service.audit`` becomes.

Revision ID: sharing_0004
Revises: sharing_0003
Create Date: 2026-12-06
"""

import hashlib
import hmac
import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "sharing_0004"
down_revision: str | None = "sharing_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

GENESIS = "0" * 64
MAC_DOMAIN = b"wangban.sharing.lookup_audit.v2\n"
V1_FIELDS = (
    "seq",
    "id",
    "at",
    "consumer",
    "requested_by",
    "subject_kind",
    "subject_ref",
    "subject_masked",
    "dataset_code",
    "fields",
    "predicates",
    "application_id",
    "item_code",
    "outcome",
    "reason",
    "prev_hash",
)


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="microseconds")
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def _canonical(content: dict[str, Any]) -> bytes:
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _v1_hash(row: dict[str, Any]) -> str:
    content = {name: _plain(row[name]) for name in V1_FIELDS}
    content["fields"] = list(row["fields"])
    content["predicates"] = list(row["predicates"])
    return hashlib.sha256(_canonical(content)).hexdigest()


def _v2_mac(row: dict[str, Any], key: bytes) -> str:
    content = {
        name: _plain(value) for name, value in row.items() if name != "hash" and value is not None
    }
    return hmac.new(key, MAC_DOMAIN + _canonical(content), hashlib.sha256).hexdigest()


def upgrade() -> None:
    from wangban.settings import get_settings

    bind = op.get_bind()
    rows = [
        dict(r)
        for r in bind.execute(sa.text("SELECT * FROM sharing.lookup_audit ORDER BY seq")).mappings()
    ]
    if not rows:
        return
    for row in rows:
        row["id"] = str(row["id"])  # the driver's UUID type, as text (what the ORM reads)
    expected, prev = 1, GENESIS
    for row in rows:
        if row["seq"] != expected or row["prev_hash"] != prev or _v1_hash(row) != row["hash"]:
            raise RuntimeError(
                f"sharing.lookup_audit is broken at record {expected} under the old SHA-256 "
                "chain; refusing to re-chain it under the key (that would hide the damage)"
            )
        expected, prev = row["seq"] + 1, row["hash"]
    key = get_settings().audit_chain_key.get_secret_value().encode()
    op.execute("ALTER TABLE sharing.lookup_audit DISABLE TRIGGER lookup_audit_append_only")
    prev = GENESIS
    for row in rows:
        row["prev_hash"] = prev
        row["hash"] = _v2_mac(row, key)
        bind.execute(
            sa.text(
                "UPDATE sharing.lookup_audit SET prev_hash = :prev, hash = :hash WHERE seq = :seq"
            ),
            {"prev": row["prev_hash"], "hash": row["hash"], "seq": row["seq"]},
        )
        prev = row["hash"]
    bind.execute(
        sa.text("UPDATE sharing.audit_head SET seq = :seq, hash = :hash WHERE id = 1"),
        {"seq": rows[-1]["seq"], "hash": prev},
    )
    op.execute("ALTER TABLE sharing.lookup_audit ENABLE TRIGGER lookup_audit_append_only")


def downgrade() -> None:
    # The old chain cannot be restored without recomputing it, which is what the keyed chain
    # exists to prevent; downgrading leaves the MACs in place (the old verifier reports them).
    pass
