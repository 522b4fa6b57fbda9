"""Trust findings in intake: personal form fields encrypted at rest (and the migration that
encrypts existing rows), a company identity applying only as that company, and an
``application.submitted`` event without clear region, age or account id."""

from __future__ import annotations

import importlib.util
import json
import uuid
from datetime import date
from pathlib import Path
from typing import Any

from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.engine import Connection

from intake_service.events import HOLDER_CONTEXT, SUBJECT_CONTEXT
from tests.intake.support import Intake
from tests.sharing.support import company_id, person_id
from wangban.auth import AssuranceLevel, Identity
from wangban.crypto import FieldCipher

BRIDE = person_id(date(1995, 4, 1), 611)
GROOM = person_id(date(1993, 7, 9), 612)
ACCOUNT = "6222020200112233445"
ADDRESS = "东莞市南城街道鸿福路200号第一国际B座1808"
COMMITMENT_ONLY = [{"name": "承诺书", "source": "commitment"}]
MARRIAGE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "partner_name": {"type": "string", "x-personal": True},
        "partner_id_number": {"type": "string", "x-personal": True},
        "registration_office": {"type": "string"},
        "payout": {
            "type": "object",
            "properties": {
                "bank_name": {"type": "string"},
                "bank_account": {"type": "string", "x-personal": True},
            },
        },
        "addresses": {"type": "array", "items": {"$ref": "#/$defs/address"}},
    },
    "required": ["partner_name", "partner_id_number", "registration_office"],
    "$defs": {"address": {"type": "string", "x-personal": True}},
}
MARRIAGE_FORM = {
    "partner_name": "李明轩",
    "partner_id_number": GROOM,
    "registration_office": "东莞市婚姻登记处（南城）",
    "payout": {"bank_name": "东莞银行", "bank_account": ACCOUNT},
    "addresses": [ADDRESS],
}


def _apply_body(version: str, form: dict[str, Any]) -> dict[str, Any]:
    return {
        "item_version_id": version,
        "applicant": {"kind": "person", "id_number": BRIDE, "name": "王晓燕"},
        "form": form,
        "materials": [{"index": 0, "commitment": True}],
    }


async def _raw_form(intake: Intake, application_id: str) -> str:
    async with intake.database.engine.connect() as connection:
        raw = await connection.scalar(
            text("SELECT form::text FROM intake.application WHERE id = CAST(:id AS uuid)"),
            {"id": application_id},
        )
    assert raw is not None
    return str(raw)


async def test_personal_form_fields_are_stored_encrypted_and_read_back_in_clear(
    intake: Intake,
) -> None:
    department = f"婚姻登记处-{uuid.uuid4().hex[:6]}"
    version = await intake.item(
        department=department, materials=COMMITMENT_ONLY, form_schema=MARRIAGE_SCHEMA
    )
    bride = intake.citizen("u-bride-1", BRIDE)
    applied = await intake.client.post(
        "/applications",
        json=_apply_body(version, MARRIAGE_FORM),
        headers={**bride, "Idempotency-Key": str(uuid.uuid4())},
    )
    assert applied.status_code == 201, applied.text
    application_id = applied.json()["id"]

    raw = await _raw_form(intake, application_id)
    for personal in (GROOM, "李明轩", ACCOUNT, ADDRESS, ADDRESS.encode("unicode_escape").decode()):
        assert personal not in raw
    # What is not personal stays queryable in the JSONB.
    assert "东莞银行" in raw and "东莞市婚姻登记处（南城）" in raw
    async with intake.database.engine.connect() as connection:
        found = await connection.scalar(
            text(
                "SELECT count(*) FROM intake.application "
                "WHERE id = CAST(:id AS uuid) AND form ->> 'registration_office' = :office"
            ),
            {"id": application_id, "office": "东莞市婚姻登记处（南城）"},
        )
    assert found == 1

    assert applied.json()["form"] == MARRIAGE_FORM
    mine = await intake.client.get(f"/applications/{application_id}", headers=bride)
    assert mine.json()["form"] == MARRIAGE_FORM
    reviewer = intake.staff("r-marriage", "reviewer", department=department)
    seen = await intake.client.get(f"/applications/{application_id}", headers=reviewer)
    assert seen.status_code == 200, seen.text
    assert seen.json()["form"] == MARRIAGE_FORM


async def test_a_form_posing_as_ciphertext_is_refused(intake: Intake) -> None:
    version = await intake.item(materials=COMMITMENT_ONLY, form_schema=MARRIAGE_SCHEMA)
    forged = {**MARRIAGE_FORM, "registration_office": {"$personal": "v1.dev.AAAA"}}
    refused = await intake.client.post(
        "/applications",
        # A draft: stored without the schema check, so only the marker check stands in the way.
        json={**_apply_body(version, forged), "draft": True},
        headers={**intake.citizen("u-bride-2", BRIDE), "Idempotency-Key": str(uuid.uuid4())},
    )
    assert refused.status_code == 422, refused.text
    assert refused.json()["type"] == "urn:wangban:problem:invalid-application-form"


def _migration() -> Any:
    path = (
        Path(__file__).parents[2]
        / "intake_service/migrations/versions/0004_personal_form_fields.py"
    )
    spec = importlib.util.spec_from_file_location("intake_0004_under_test", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _upgrade(connection: Connection) -> None:
    """The revision's own upgrade(), run as Alembic runs it (``op`` bound to the connection)."""
    with Operations.context(MigrationContext.configure(connection)):
        _migration().upgrade()


async def test_the_migration_encrypts_a_form_stored_in_clear_before_it(
    intake: Intake,
) -> None:
    version = await intake.item(materials=COMMITMENT_ONLY, form_schema=MARRIAGE_SCHEMA)
    bride = intake.citizen("u-bride-3", BRIDE)
    applied = await intake.client.post(
        "/applications",
        json=_apply_body(version, MARRIAGE_FORM),
        headers={**bride, "Idempotency-Key": str(uuid.uuid4())},
    )
    application_id = applied.json()["id"]
    # The row as the code before this revision stored it: the whole form in clear.
    async with intake.database.engine.begin() as connection:
        await connection.execute(
            text(
                "UPDATE intake.application SET form = CAST(:form AS jsonb) "
                "WHERE id = CAST(:id AS uuid)"
            ),
            {"id": application_id, "form": json.dumps(MARRIAGE_FORM)},
        )
    assert GROOM in await _raw_form(intake, application_id)

    async with intake.database.engine.begin() as connection:
        await connection.run_sync(_upgrade)
    migrated = await _raw_form(intake, application_id)
    assert GROOM not in migrated and ACCOUNT not in migrated and "$personal" in migrated
    async with intake.database.engine.begin() as connection:
        await connection.run_sync(_upgrade)  # again: nothing changes
    assert await _raw_form(intake, application_id) == migrated

    mine = await intake.client.get(f"/applications/{application_id}", headers=bride)
    assert mine.json()["form"] == MARRIAGE_FORM


async def test_a_company_identity_applies_only_as_that_company(
    intake: Intake,
) -> None:
    version = await intake.item(serves=["法人"], materials=COMMITMENT_ONLY)
    company = company_id("MA4W8888")
    other = company_id("MA4W9999")
    acting = intake._token(
        Identity(
            subject="u-rep-1",
            kind="company",
            assurance=AssuranceLevel.REAL_PERSON,
            acting_for=company,
        )
    )

    def body(kind: str, number: str) -> dict[str, Any]:
        return {
            "item_version_id": version,
            "applicant": {"kind": kind, "id_number": number, "name": "东莞市测试五金有限公司"},
            "form": {"bank_account": "6222000011112222"},
            "materials": [{"index": 0, "commitment": True}],
        }

    for kind, number in (("person", BRIDE), ("company", other)):
        refused = await intake.client.post(
            "/applications",
            json=body(kind, number),
            headers={**acting, "Idempotency-Key": str(uuid.uuid4())},
        )
        assert refused.status_code == 403, (kind, refused.text)
        assert refused.json()["type"] == "urn:wangban:problem:applicant-mismatch"
    accepted = await intake.client.post(
        "/applications",
        json=body("company", company),
        headers={**acting, "Idempotency-Key": str(uuid.uuid4())},
    )
    assert accepted.status_code == 201, accepted.text


async def test_the_submitted_event_carries_no_clear_region_age_or_account(
    intake: Intake,
) -> None:
    version = await intake.item(materials=COMMITMENT_ONLY, form_schema=MARRIAGE_SCHEMA)
    subject = f"u-bride-{uuid.uuid4().hex[:8]}"
    applied = await intake.client.post(
        "/applications",
        json=_apply_body(version, MARRIAGE_FORM),
        headers={**intake.citizen(subject, BRIDE), "Idempotency-Key": str(uuid.uuid4())},
    )
    application_id = applied.json()["id"]
    async with intake.database.engine.connect() as connection:
        envelope = (
            await connection.execute(
                text("SELECT envelope FROM intake.outbox WHERE key = :key AND event_type = :type"),
                {"key": application_id, "type": "cn.wangban.intake.application.submitted.v1"},
            )
        ).scalar_one()
    data = envelope["data"]
    for retired in ("region_code", "applicant_age", "applicant_region_code", "applicant_subject"):
        assert retired not in data, retired
    published = str(envelope)
    assert subject not in published and BRIDE not in published and BRIDE[:6] not in published
    cipher = FieldCipher.from_settings(intake.settings)
    assert cipher.decrypt(data["applicant_subject_enc"], context=SUBJECT_CONTEXT) == subject
    assert cipher.decrypt(data["applicant_id_enc"], context=HOLDER_CONTEXT) == BRIDE
