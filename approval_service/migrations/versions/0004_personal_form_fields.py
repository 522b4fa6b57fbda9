"""Personal fields of case forms encrypted at rest

Revision ID: approval_0004
Revises: approval_0003
Create Date: 2026-12-06 16:50:00.000000

Every stored form gets the fields its schema marks ``x-personal`` replaced by an encrypted
envelope (:mod:`wangban.personal_fields`), with the platform field key read from the settings
(the migrate job has the same secrets as the services). The schema is that of the row's own
item version copy; a row whose version copy is missing is sealed whole. Values already sealed
are skipped, so the migration can run again.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from wangban import personal_fields
from wangban.crypto import FieldCipher
from wangban.settings import Settings

revision: str = "approval_0004"
down_revision: str | None = "approval_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CONTEXT = "approval.case.form"
"""Frozen copy of ``approval_service.cases.STORED_FORM_CONTEXT``."""

PAGE = sa.text(
    """
    SELECT c.application_id AS id, c.form,
           iv.content -> 'form_schema' AS form_schema,
           iv.version_id IS NULL AS version_unknown
      FROM approval."case" c
      LEFT JOIN approval.item_version iv ON iv.version_id = c.item_version_id
     WHERE c.application_id > CAST(:after AS uuid)
     ORDER BY c.application_id
     LIMIT :limit
    """
)
UPDATE = sa.text(
    'UPDATE approval."case" SET form = CAST(:form AS jsonb) '
    "WHERE application_id = CAST(:id AS uuid)"
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
