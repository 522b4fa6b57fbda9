"""An application accepted at submission (``application.submitted`` carrying its acceptance, no
``application.accepted`` after it) is opened and, for a 秒批 item, decided from that one event:
the departments' data is looked up before the transaction, and the case is written once in the
state it ends in — with its decision and actions, in one statement — and one event says so:
``case.approved`` carrying its completion (no ``case.completed``). A denial, a referral to a
person, an item decided by people and materials accepted as missing (容缺) end as a later
acceptance would have them end. A redelivered submission asks no department again and changes
nothing.

Against the sharing service itself (its department a stand-in that counts what it was asked)
and real PostgreSQL; the consumer's prepare step and handler run as the runner runs them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from sqlalchemy import event, select, text

from approval_service.consumers import AskFirst, build_consumer
from approval_service.models import Case, CaseAction, Decision
from approval_service.sharing import Sharing
from contracts.intake.v1 import Acceptance, ApplicationSubmitted
from sharing_service.directory import ProviderDirectory
from sharing_service.registry import put_grant, seed_registry
from tests.approval.support import item_copy, submitted_event
from tests.infrastructure import Infrastructure, make_settings
from tests.sharing.support import StaticProvider, item_code, keys, person_id
from wangban.app import create_service_app
from wangban.consumer import Consumer
from wangban.db import Database
from wangban.errors import is_unavailability
from wangban.events import Envelope, envelope_for
from wangban.services import load_spec
from wangban.settings import Settings

ELDER = person_id(date(1938, 7, 1), 641)
YOUNG = person_id(date(1990, 7, 1), 642)
DEPARTMENT = "东莞市民政局"
RULES = [
    {"name": "age_80", "expression": "applicant.age >= 80", "message": "申请人未满80周岁"},
    {
        "name": "registered_here",
        "expression": 'shared["gongan.huji"].registered_region.startsWith("4419")',
        "message": "申请人非本市户籍",
    },
]


@dataclass
class Approval:
    """Approval's consumer asking the real sharing service, whose department counts calls."""

    settings: Settings
    database: Database
    consumer: Consumer
    department: StaticProvider
    item_code: str

    async def item(self, **overrides: Any) -> str:
        async with self.database.sessionmaker() as session, session.begin():
            copy = await item_copy(
                session,
                self.settings,
                implementing_code=self.item_code,
                department=DEPARTMENT,
                rules=RULES,
                **overrides,
            )
        return copy.version_id

    def submission(
        self, version_id: str, *, id_number: str = ELDER, tolerated: list[str] | None = None
    ) -> ApplicationSubmitted:
        plain = submitted_event(
            self.settings, version_id=version_id, id_number=id_number, form={"bank_account": "1"}
        )
        return plain.model_copy(
            update={
                "item_code": self.item_code,
                "acceptance": Acceptance(
                    accepted_at=plain.submitted_at,
                    accepted_by="intake",
                    tolerated_materials=tolerated or [],
                ),
            }
        )

    async def handle(
        self, submitted: ApplicationSubmitted, envelope: Envelope | None = None
    ) -> None:
        """As the runner does: the prepare step (no transaction), then the handler's."""
        envelope = envelope or envelope_for(submitted, source="/t")
        prepared = await self.consumer.preparers[submitted.event_type](
            self.database, event=submitted, envelope=envelope
        )
        async with self.database.sessionmaker() as session, session.begin():
            await self.consumer.handlers[submitted.event_type][1](
                session, event=submitted, envelope=envelope, prepared=prepared
            )


@asynccontextmanager
async def approval_asking_sharing(
    infrastructure: Infrastructure, database: Database, tmp_path: Path
) -> AsyncIterator[Approval]:
    code = item_code()
    async with database.sessionmaker() as session, session.begin():
        await seed_registry(session)
        await put_grant(
            session,
            consumer="approval",
            dataset_code="gongan.huji",
            item_code=code,
            disclose_fields=["registered_region"],
            verify_fields=[],
        )
    settings = make_settings(infrastructure, data_dir=tmp_path)
    department = StaticProvider(
        {
            ("gongan.huji", ELDER): {"registered_region": "441900"},
            ("gongan.huji", YOUNG): {"registered_region": "441900"},
        }
    )
    sharing_app = create_service_app(load_spec("sharing"), settings, background=False)
    async with sharing_app.router.lifespan_context(sharing_app):
        cipher, _ = keys(settings)
        sharing_app.state.provider_directory = ProviderDirectory(cipher=cipher, sandbox=department)
        sharing = Sharing(settings, transport=httpx.ASGITransport(app=sharing_app))
        try:
            yield Approval(
                settings=settings,
                database=database,
                consumer=build_consumer(settings, sharing=sharing),
                department=department,
                item_code=code,
            )
        finally:
            await sharing.aclose()


@contextmanager
def statements_of(database: Database) -> Iterator[list[str]]:
    """The statements approval sends meanwhile (the sharing service has an engine of its own)."""
    sent: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        sent.append(" ".join(statement.split()))

    engine = database.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", record)


async def seen(database: Database, application_id: str) -> dict[str, Any]:
    async with database.sessionmaker() as session:
        case = await session.get(Case, application_id)
        decisions = list(
            await session.scalars(select(Decision).where(Decision.application_id == application_id))
        )
        actions = list(
            await session.scalars(
                select(CaseAction)
                .where(CaseAction.application_id == application_id)
                .order_by(CaseAction.seq)
            )
        )
        published = (
            await session.execute(
                text(
                    "SELECT event_type, envelope->'data' AS data FROM approval.outbox"
                    " WHERE envelope->'data'->>'application_id' = :id ORDER BY seq"
                ),
                {"id": application_id},
            )
        ).all()
    return {
        "case": None
        if case is None
        else SimpleNamespace(**{c.key: getattr(case, c.key) for c in Case.__table__.columns}),
        "decisions": [(d.kind, d.outcome) for d in decisions],
        "lookups": [d.lookup_ids for d in decisions],
        "actions": [(a.actor, a.action) for a in actions],
        "events": [row.event_type.split(".")[-2] for row in published],
        "data": [row.data for row in published],
    }


async def test_a_秒批_submission_is_decided_once_in_one_statement_with_one_event(
    infrastructure: Infrastructure, database: Database, tmp_path: Path
) -> None:
    async with approval_asking_sharing(infrastructure, database, tmp_path) as approval:
        version_id = await approval.item()
        await approval.handle(approval.submission(version_id))  # the version is read once
        submitted = approval.submission(version_id)
        with statements_of(database) as sent:
            await approval.handle(submitted)
        state = await seen(database, submitted.application_id)

        # Redelivered (the same event, and the same submission under a new envelope id): no
        # department is asked again, nothing changes.
        asked = len(approval.department.asked)
        await approval.handle(submitted, envelope_for(submitted, source="/t"))
        await approval.handle(submitted.model_copy())
        assert len(approval.department.asked) == asked
        assert await seen(database, submitted.application_id) == state

    case = state["case"]
    assert (case.status, case.step) == ("approved", "办结")
    assert case.accepted_at is not None and case.decided_at is not None
    assert case.due_date is not None and case.committed_days == 0
    assert state["decisions"] == [("auto", "approve")] and state["lookups"][0]
    assert state["actions"] == [
        ("intake", "submitted"),
        ("intake", "accepted"),
        ("auto", "approved"),
    ]
    # One event, complete in itself: no case.completed follows a machine's approval.
    assert state["events"] == ["approved"]
    assert state["data"][0]["completion"]["on_time"] is True
    assert state["data"][0]["completion"]["working_days_used"] == 0
    # Whether the case exists (before asking the departments), the case with its decision and
    # actions, the event: the version and the calendar are held in memory. (No relay runs in
    # this process, so the kit may wake one elsewhere with pg_notify: not approval's work.)
    ours = [s for s in sent if not s.startswith("SELECT pg_notify")]
    assert len(ours) == 3, sent
    assert ours[0].startswith("SELECT EXISTS") and 'FROM approval."case"' in ours[0]
    assert ours[1].startswith('WITH opened AS (INSERT INTO approval."case"')
    assert ours[2].startswith("INSERT INTO approval.outbox")


async def test_a_denial_a_referral_a_manual_item_and_tolerated_materials_end_as_before(
    infrastructure: Infrastructure, database: Database, tmp_path: Path
) -> None:
    async with approval_asking_sharing(infrastructure, database, tmp_path) as approval:
        auto = await approval.item()
        manual = await approval.item(auto_approval=False, committed_days=5)
        denied = approval.submission(auto, id_number=YOUNG)
        tolerated = approval.submission(auto, tolerated=["户口簿"])
        by_people = approval.submission(manual)
        for submitted in (denied, tolerated, by_people):
            await approval.handle(submitted)
        approval.department.down.add("gongan.huji")  # the department's system fails
        referred = approval.submission(auto)
        await approval.handle(referred)
        asked = [dataset for dataset, _ in approval.department.asked]
        states = {
            name: await seen(database, e.application_id)
            for name, e in {
                "denied": denied,
                "tolerated": tolerated,
                "by_people": by_people,
                "referred": referred,
            }.items()
        }

    assert asked == ["gongan.huji", "gongan.huji"]  # the denial's and the referral's only
    assert (states["denied"]["case"].status, states["denied"]["decisions"]) == (
        "denied",
        [("auto", "deny")],
    )
    assert states["denied"]["events"] == ["denied", "completed"]
    assert states["denied"]["actions"][-1] == ("auto", "denied")
    # The department did not answer: a person decides, and the department has the case.
    assert (states["referred"]["case"].status, states["referred"]["decisions"]) == (
        "open",
        [("auto", "refer")],
    )
    assert states["referred"]["events"] == ["accepted"]
    assert states["referred"]["actions"][-1] == ("auto", "referred")
    for name in ("tolerated", "by_people"):
        case = states[name]["case"]
        assert (case.status, case.step) == ("open", "审查"), name
        assert states[name]["decisions"] == [] and states[name]["events"] == [], name
        assert states[name]["actions"] == [("intake", "submitted"), ("intake", "accepted")]
    assert states["by_people"]["case"].due_date is not None
    assert states["by_people"]["case"].committed_days == 5


async def test_without_its_prepare_step_a_秒批_submission_is_held_not_decided_blind(
    infrastructure: Infrastructure, database: Database, tmp_path: Path
) -> None:
    async with approval_asking_sharing(infrastructure, database, tmp_path) as approval:
        submitted = approval.submission(await approval.item())
        envelope = envelope_for(submitted, source="/t")
        with pytest.raises(AskFirst) as refused:
            async with database.sessionmaker() as session, session.begin():
                await approval.consumer.handlers[submitted.event_type][1](
                    session, event=submitted, envelope=envelope, prepared=None
                )
        assert is_unavailability(refused.value)  # tried again, with its prepare step
        assert (await seen(database, submitted.application_id))["case"] is None
        await approval.handle(submitted, envelope)
        assert (await seen(database, submitted.application_id))["decisions"] == [
            ("auto", "approve")
        ]
