"""Trust findings in approval: a case's personal form fields are stored encrypted (and the
migration encrypts existing rows), while 秒批 rules that read them, and the applicant's age
derived from the encrypted ID number (no longer published in clear), still decide correctly."""

from __future__ import annotations

import importlib.util
import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext
from sqlalchemy import select, text
from sqlalchemy.engine import Connection

from approval_service.consumers import build_consumer
from approval_service.models import Decision
from intake_service.events import (
    ApplicationAccepted,
    ApplicationSubmitted,
)
from tests.approval.support import item_copy, staff_token, submitted_event
from tests.infrastructure import Infrastructure, make_settings
from tests.sharing.support import person_id
from wangban.app import create_service_app
from wangban.db import Database
from wangban.events import envelope_for
from wangban.services import load_spec

ELDER = person_id(date(1940, 5, 6), 621)
YOUNG = person_id(date(1990, 5, 6), 622)
ACCOUNT = "6222020200998877665"
DEPARTMENT = "东莞市民政局"
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "bank_name": {"type": "string"},
        "bank_account": {"type": "string", "x-personal": True},
        "guardian": {
            "type": "object",
            "properties": {"id_number": {"type": "string", "x-personal": True}},
        },
    },
}
RULES = [
    {"name": "age_80", "expression": "applicant.age >= 80", "message": "申请人未满80周岁"},
    {
        "name": "bank_card",
        "expression": 'form.bank_account.startsWith("6222")',
        "message": "收款账号须为本市社保卡金融账户",
    },
    {
        "name": "guardian_given",
        "expression": "size(form.guardian.id_number) == 18",
        "message": "缺少监护人身份证号码",
    },
]


async def _raw_form(database: Database, application_id: str) -> str:
    async with database.engine.connect() as connection:
        raw = await connection.scalar(
            text('SELECT form::text FROM approval."case" WHERE application_id = CAST(:id AS uuid)'),
            {"id": application_id},
        )
    assert raw is not None
    return str(raw)


async def test_auto_approval_decides_on_encrypted_personal_fields_and_derived_age(
    infrastructure: Infrastructure, database: Database, tmp_path: Path
) -> None:
    settings = make_settings(infrastructure, data_dir=tmp_path)
    consumer = build_consumer(settings)
    guardian = person_id(date(1970, 1, 1), 623)
    forms = {
        "elder": {
            "bank_name": "东莞银行",
            "bank_account": ACCOUNT,
            "guardian": {"id_number": guardian},
        },
        "young": {
            "bank_name": "东莞银行",
            "bank_account": ACCOUNT,
            "guardian": {"id_number": guardian},
        },
        "other_bank": {
            "bank_name": "东莞银行",
            "bank_account": "9555" + ACCOUNT[4:],
            "guardian": {"id_number": guardian},
        },
    }
    holders = {"elder": ELDER, "young": YOUNG, "other_bank": ELDER}
    async with database.sessionmaker() as session, session.begin():
        item = await item_copy(
            session, settings, form_schema=SCHEMA, rules=RULES, department=DEPARTMENT
        )
        events = {
            name: submitted_event(
                settings, version_id=item.version_id, id_number=holders[name], form=form
            )
            for name, form in forms.items()
        }
        for event in events.values():
            await consumer.handlers[ApplicationSubmitted.event_type][1](
                session, event=event, envelope=envelope_for(event, source="/t")
            )
    for name, event in events.items():
        raw = await _raw_form(database, event.application_id)
        assert ACCOUNT not in raw and ACCOUNT[4:] not in raw and guardian not in raw, name
        assert "东莞银行" in raw  # not personal: stays queryable
    for event in events.values():
        accepted = ApplicationAccepted(
            application_id=event.application_id,
            item_version_id=item.version_id,
            item_code=event.item_code,
            accepted_at=datetime.now(UTC).isoformat(),
            accepted_by="intake",
        )
        envelope = envelope_for(accepted, source="/t")
        # As the runner does: the prepare step (the 秒批 lookups), then the handler's transaction.
        prepared = await consumer.preparers[ApplicationAccepted.event_type](
            database, event=accepted, envelope=envelope
        )
        async with database.sessionmaker() as session, session.begin():
            await consumer.handlers[ApplicationAccepted.event_type][1](
                session, event=accepted, envelope=envelope, prepared=prepared
            )
    async with database.sessionmaker() as session:
        decisions = {
            d.application_id: d
            for d in await session.scalars(
                select(Decision).where(
                    Decision.application_id.in_([e.application_id for e in events.values()])
                )
            )
        }
    results = {
        name: (
            decisions[e.application_id].outcome,
            {r["name"]: r["result"] for r in decisions[e.application_id].rule_results},
        )
        for name, e in events.items()
    }
    assert results["elder"] == (
        "approve",
        {"age_80": "true", "bank_card": "true", "guardian_given": "true"},
    )
    assert results["young"][0] == "deny" and results["young"][1]["age_80"] == "false"
    assert results["other_bank"][0] == "deny" and results["other_bank"][1]["bank_card"] == "false"

    # A reviewer of the department (and an auditor) reads the case with the form in clear.
    app = create_service_app(load_spec("approval"), settings, background=False)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://approval"
        ) as client,
    ):
        for token in (
            staff_token(settings, "reviewer", department=DEPARTMENT),
            staff_token(settings, "auditor"),
        ):
            seen = await client.get(f"/cases/{events['elder'].application_id}", headers=token)
            assert seen.status_code == 200, seen.text
            assert seen.json()["form"] == forms["elder"]


def _upgrade(connection: Connection) -> None:
    path = (
        Path(__file__).parents[2]
        / "approval_service/migrations/versions/0004_personal_form_fields.py"
    )
    spec = importlib.util.spec_from_file_location("approval_0004_under_test", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with Operations.context(MigrationContext.configure(connection)):
        module.upgrade()


async def test_the_migration_encrypts_a_case_form_stored_in_clear_before_it(
    infrastructure: Infrastructure, database: Database, tmp_path: Path
) -> None:
    settings = make_settings(infrastructure, data_dir=tmp_path)
    consumer = build_consumer(settings)
    form = {"bank_name": "东莞银行", "bank_account": ACCOUNT, "guardian": {"id_number": YOUNG}}
    async with database.sessionmaker() as session, session.begin():
        item = await item_copy(session, settings, form_schema=SCHEMA, department=DEPARTMENT)
        event = submitted_event(settings, version_id=item.version_id, id_number=ELDER, form=form)
        await consumer.handlers[ApplicationSubmitted.event_type][1](
            session, event=event, envelope=envelope_for(event, source="/t")
        )
    # The row as the code before this revision stored it: the whole form in clear.
    async with database.engine.begin() as connection:
        await connection.execute(
            text(
                'UPDATE approval."case" SET form = CAST(:form AS jsonb) '
                "WHERE application_id = CAST(:id AS uuid)"
            ),
            {"id": event.application_id, "form": json.dumps(form)},
        )
    assert ACCOUNT in await _raw_form(database, event.application_id)
    async with database.engine.begin() as connection:
        await connection.run_sync(_upgrade)
    migrated = await _raw_form(database, event.application_id)
    assert ACCOUNT not in migrated and YOUNG not in migrated and "东莞银行" in migrated
    async with database.engine.begin() as connection:
        await connection.run_sync(_upgrade)
    assert await _raw_form(database, event.application_id) == migrated
    app = create_service_app(load_spec("approval"), settings, background=False)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://approval"
        ) as client,
    ):
        seen = await client.get(
            f"/cases/{event.application_id}", headers=staff_token(settings, "auditor")
        )
    assert seen.json()["form"] == form
