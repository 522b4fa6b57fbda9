"""What an auditor asks of the lookup audit log: records by the data subject (found by the
keyed hash of the number the auditor types, which travels in the body and is never echoed),
the looking department, the dataset, the purpose and a time range, page by page; and the
published checkpoints, each checked against its signature and the chain."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from sharing_service import audit
from sharing_service.directory import ProviderDirectory
from sharing_service.events import AuditCheckpointed, outbox
from sharing_service.registry import put_grant, seed_registry
from sharing_service.signing import sign_statement
from tests.sharing.support import StaticProvider, item_code, keys, person_id
from wangban.app import create_service_app
from wangban.auth import AssuranceLevel, Identity, InternalTokens
from wangban.db import Database
from wangban.services import load_spec
from wangban.settings import Settings

ALICE = person_id(date(1951, 4, 16), 311)
BOB = person_id(date(1986, 8, 10), 312)


@dataclass
class Service:
    client: httpx.AsyncClient
    settings: Settings
    database: Database

    def token(self, identity: Identity) -> dict[str, str]:
        token = InternalTokens.from_settings(self.settings).issue(identity, issuer="gateway")
        return {"Authorization": f"Bearer {token}"}


def staff(subject: str, role: str, department: str | None = None) -> Identity:
    return Identity(
        subject=subject,
        kind="staff",
        roles=frozenset({role}),
        department=department,
        assurance=AssuranceLevel.REAL_NAME,
    )


@pytest.fixture
async def service(settings: Settings, database: Database) -> AsyncIterator[Service]:
    async with database.sessionmaker() as session, session.begin():
        await seed_registry(session)
    provider = StaticProvider(
        {
            ("gongan.huji", ALICE): {"name": "陈桂英", "birth_date": "1951-04-16"},
            ("gongan.huji", BOB): {"name": "王建军", "birth_date": "1986-08-10"},
        }
    )
    app = create_service_app(load_spec("sharing"), settings, background=False)
    async with app.router.lifespan_context(app):
        cipher, _ = keys(settings)
        app.state.provider_directory = ProviderDirectory(cipher=cipher, sandbox=provider)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://sharing") as client:
            yield Service(client, settings, database)


async def lookup(
    service: Service, *, subject: str, item: str, application: str, actor: Identity | None
) -> None:
    headers = service.token(
        Identity(subject="intake", kind="service", assurance=AssuranceLevel.REAL_NAME)
    )
    if actor is not None:
        headers["X-Wangban-Actor"] = InternalTokens.from_settings(service.settings).issue(
            actor, issuer="intake"
        )
    answer = await service.client.post(
        "/lookups",
        json={
            "subject": {"kind": "person", "id": subject},
            "dataset": "gongan.huji",
            "fields": ["name"],
            "purpose": {"item_code": item, "application_id": application},
        },
        headers=headers,
    )
    assert answer.status_code == 200, answer.text


async def test_records_by_subject_department_dataset_purpose_and_time(service: Service) -> None:
    item, other_item = item_code(), item_code()
    department = f"审计测试局-{uuid.uuid4().hex[:6]}"
    async with service.database.sessionmaker() as session, session.begin():
        for code in (item, other_item):
            await put_grant(
                session,
                consumer="intake",
                dataset_code="gongan.huji",
                item_code=code,
                disclose_fields=["name"],
                verify_fields=[],
            )
    clerk = staff("s-clerk-audit", "window_clerk", department)
    first, second, third = (str(uuid.uuid4()) for _ in range(3))
    started = datetime.now(UTC)
    await lookup(service, subject=ALICE, item=item, application=first, actor=clerk)
    await lookup(service, subject=ALICE, item=other_item, application=second, actor=None)
    await lookup(service, subject=BOB, item=item, application=third, actor=clerk)
    mine = {first, second, third}

    auditor = service.token(staff("a-audit", "auditor"))

    async def search(**filters: object) -> httpx.Response:
        return await service.client.post("/admin/audit/search", json=filters, headers=auditor)

    by_alice = await search(subject={"kind": "person", "id_number": ALICE})
    assert by_alice.status_code == 200, by_alice.text
    # Newest first; only Alice's, whoever looked.
    assert [r["application_id"] for r in by_alice.json()["items"]][:2] == [second, first]
    assert first in {r["application_id"] for r in by_alice.json()["items"]}
    assert third not in {r["application_id"] for r in by_alice.json()["items"]}
    assert ALICE not in by_alice.text and BOB not in by_alice.text

    by_department = await search(department=department)
    assert [r["application_id"] for r in by_department.json()["items"]] == [third, first]
    assert {r["actor_department"] for r in by_department.json()["items"]} == {department}
    both = await search(subject={"kind": "person", "id_number": BOB}, department=department)
    assert [r["application_id"] for r in both.json()["items"]] == [third]
    by_purpose = await search(dataset="gongan.huji", item_code=other_item)
    assert [r["application_id"] for r in by_purpose.json()["items"]] == [second]
    assert (await search(application_id=third)).json()["items"][0]["subject_masked"] != ""
    assert (await search(dataset="no.such", item_code=item)).json()["items"] == []

    in_range = await search(department=department, since=started.isoformat())
    assert len(in_range.json()["items"]) == 2
    before_them = await search(department=department, until=started.isoformat())
    assert before_them.json()["items"] == []

    # Page by page: one record a page, then the next before the last one shown.
    page = await search(department=department, limit=1)
    assert [r["application_id"] for r in page.json()["items"]] == [third]
    following = await search(department=department, limit=1, before=page.json()["next_before"])
    assert [r["application_id"] for r in following.json()["items"]] == [first]
    last = await search(department=department, limit=2)
    assert last.json()["next_before"] is not None  # a full page: there may be more
    assert (await search(department=department, limit=3)).json()["next_before"] is None

    # The same filters (but the subject) on the GET route, for links and scripts.
    listed = await service.client.get(
        "/admin/audit", params={"department": department, "item_code": item}, headers=auditor
    )
    assert [r["application_id"] for r in listed.json()] == [third, first]
    assert mine >= {r["application_id"] for r in listed.json()}


async def test_a_wrong_number_is_refused_without_being_repeated(service: Service) -> None:
    auditor = service.token(staff("a-audit-2", "auditor"))
    wrong = ALICE[:-1] + ("0" if ALICE[-1] != "0" else "1")
    refused = await service.client.post(
        "/admin/audit/search",
        json={"subject": {"kind": "person", "id_number": wrong}},
        headers=auditor,
    )
    assert refused.status_code == 422
    assert "校验位" in refused.text and wrong not in refused.text

    reviewer = service.token(staff("r-audit", "reviewer", "某局"))
    for method, path in (
        ("POST", "/admin/audit/search"),
        ("GET", "/admin/audit/checkpoints"),
        ("GET", "/admin/audit"),
    ):
        answer = await service.client.request(method, path, json={}, headers=reviewer)
        assert answer.status_code == 403, (method, path)


async def test_published_checkpoints_are_checked_against_signature_and_chain(
    db_session: AsyncSession, settings: Settings
) -> None:
    keys_ = audit.AuditKeys.from_settings(settings)
    at = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)
    rows = [
        await audit.append(
            db_session,
            entry=audit.AuditEntry(
                consumer="approval",
                requested_by="approval",
                subject_kind="person",
                subject_ref=f"{n:064x}",
                subject_masked="441900********1234",
                dataset_code="gongan.huji",
                fields=["name"],
                predicates=[],
                application_id=f"checkpoint-{n}",
                item_code="TEST-ITEM",
                outcome="granted",
            ),
            at=at + timedelta(seconds=n),
        )
        for n in range(2)
    ]

    async def publish(seq: int, mac: str, *, signed: bool = True) -> None:
        unsigned = audit.Checkpoint(seq=seq, mac=mac, at=at.isoformat(), kid="", signature="")
        signature = sign_statement(
            unsigned.statement(), context=audit.CHECKPOINT_CONTEXT, key=keys_.checkpoint_key
        )
        await outbox.publish(
            db_session,
            AuditCheckpointed(
                checkpoint_id=f"{audit.CHAIN_NAME}:{seq}",
                chain=audit.CHAIN_NAME,
                seq=seq,
                mac=mac,
                at=unsigned.at,
                kid=keys_.checkpoint_key.kid,
                public_key=keys_.verifying_key.to_b64(),
                signature=signature if signed else signature[::-1],
            ),
        )

    await publish(rows[0].seq, rows[0].hash)
    await publish(rows[1].seq, "f" * 64)  # a MAC the chain does not hold at that number
    await publish(rows[1].seq, rows[1].hash, signed=False)

    found = await audit.published_checkpoints(db_session, keys=keys_, limit=10)
    flags = [
        (p.checkpoint.seq, p.signature_valid, p.in_chain, p.published_at)
        for p in found
        if p.checkpoint.seq in (rows[0].seq, rows[1].seq)
    ]
    # Newest first; none sent yet in this transaction.
    assert flags == [
        (rows[1].seq, False, True, None),
        (rows[1].seq, True, False, None),
        (rows[0].seq, True, True, None),
    ]
