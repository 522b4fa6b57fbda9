"""Personal fields of application forms encrypted at rest

Revision ID: intake_0004
Revises: intake_0003
Create Date: 2026-12-06 16:50:00.000000

Every stored form gets the fields its schema marks ``x-personal`` replaced by an encrypted
envelope (:mod:`wangban.personal_fields`), with the platform field key read from the settings
(the migrate job has the same secrets as the services). The schema is that of the row's own
item version (a bundle version for a bundle's parent); a row whose version copy is missing is
sealed whole. Values already sealed are skipped, so the migration can run again.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from wangban import personal_fields
from wangban.crypto import FieldCipher
from wangban.settings import Settings

revision: str = "intake_0004"
down_revision: str | None = "intake_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CONTEXT = "intake.application.form"
"""Frozen copy of ``intake_service.applications.forms.STORED_FORM_CONTEXT``."""

PAGE = sa.text(
    """
    SELECT a.id, a.form,
           COALESCE(iv.content -> 'form_schema', bv.content -> 'form_schema') AS form_schema,
           (iv.version_id IS NULL AND bv.version_id IS NULL) AS version_unknown
      FROM intake.application a
      LEFT JOIN intake.item_version iv ON iv.version_id = a.item_version_id
      LEFT JOIN intake.bundle_version bv ON bv.version_id = a.bundle_version_id
     WHERE a.id > CAST(:after AS uuid)
     ORDER BY a.id
     LIMIT :limit
    """
)
UPDATE = sa.text(
    "UPDATE intake.application SET form = CAST(:form AS jsonb) WHERE id = CAST(:id AS uuid)"
)


def _run(*, seal_forms: bool) -> None:
    personal_fields.migrate_stored_forms(
        op.get_bind(),
        page=PAGE,
        update=UPDATE,
        cipher=FieldCipher.from_settings(Settings()),
        context=CONTEXT,
        seal_forms=seal_forms,
    )


def upgrade() -> None:
    _run(seal_forms=True)


def downgrade() -> None:
    _run(seal_forms=False)
