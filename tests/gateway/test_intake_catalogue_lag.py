"""Items and bundles (一件事) the catalogue publishes but intake has not learnt yet (its copies
lag, as just after a publication or a start) are accepted at the window, applied for as a
bundle and prefilled like any other: intake asks the catalog for the version and keeps it. When
the catalog cannot answer, the request is refused for now (503, our fault) and nothing is
written. (The citizen's single-item application: tests/gateway/test_submission_refunds.py.)"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select

from catalog_service import service as catalog
from catalog_service.schemas import BundleContent
from intake_service.models import Application
from intake_service.models import BundleVersionCopy as IntakeBundleCopy
from intake_service.models import ItemVersionCopy as IntakeCopy
from sandbox import PERSONAS, Persona, SandboxPopulation
from sharing_service.registry import put_grant, seed_registry
from tests.catalog.support import item_content
from tests.gateway.support import Gateway, running_gateway
from tests.infrastructure import Infrastructure, make_settings
from wangban.app import create_service_app
from wangban.auth import AssuranceLevel, Identity, InternalTokens
from wangban.crypto import BlindIndex
from wangban.db import Database
from wangban.embedded import free_port
from wangban.services import load_spec
from wangban.settings import Settings

WINDOW = "东莞市民政局"
COMMITMENT_ONLY: list[dict[str, Any]] = [{"name": "承诺书", "source": "commitment"}]
COMMITTED = [{"index": 0, "commitment": True}]
READER = {"method": "id_card_reader", "reference": "R-LAG-1"}
PREFILLED_FORM = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "title": "姓名", "x-prefill": "gongan.huji.name"},
        "bank_account": {"type": "string", "title": "收款银行账号"},
    },
    "required": ["name", "bank_account"],
}


@dataclass(frozen=True)
class Published:
    """What the catalogue published and intake has not read."""

    code: str
    version_id: str


@dataclass(frozen=True)
class PublishedBundle:
    bundle_id: str
    version_id: str
    member_version_ids: list[str]


def _persona(key: str) -> Persona:
    return next(p for p in PERSONAS if p.key == key)


async def _published_elsewhere(database: Database, **overrides: Any) -> Published:
    """An item published in the catalogue whose event intake has not read (no consumers run
    here)."""
    overrides.setdefault("materials", COMMITMENT_ONLY)
    code = overrides.pop("implementing_code", f"TEST-LAG-{uuid.uuid4().hex[:10]}")
    async with database.sessionmaker() as session, session.begin():
        draft = await catalog.create_item_draft(
            session, content=item_content(implementing_code=code, **overrides)
        )
        await catalog.publish_version(session, version_id=draft.id)
    return Published(code=code, version_id=draft.id)


def _bundle_content(members: list[Published]) -> BundleContent:
    return BundleContent.model_validate(
        {
            "code": f"BUNDLE-LAG-{uuid.uuid4().hex[:8]}",
            "name": "高龄老人关爱一件事",
            "members": [
                {"implementing_code": m.code, "field_map": {"account": "bank_account"}}
                for m in members
            ],
            "form_schema": {
                "type": "object",
                "properties": {"account": {"type": "string", "title": "收款账号"}},
                "required": ["account"],
            },
        }
    )


async def _bundle_published_elsewhere(database: Database) -> PublishedBundle:
    """A bundle of two items, all three published in the catalogue, none read by intake."""
    members = [await _published_elsewhere(database) for _ in range(2)]
    async with database.sessionmaker() as session, session.begin():
        draft = await catalog.create_bundle_draft(session, content=_bundle_content(members))
        version = await catalog.publish_bundle(session, version_id=draft.id)
    assert version.member_version_ids == [m.version_id for m in members]
    return PublishedBundle(
        bundle_id=version.bundle_id,
        version_id=version.id,
        member_version_ids=list(version.member_version_ids),
    )


async def _item_copies(database: Database, *version_ids: str) -> list[str]:
    async with database.sessionmaker() as session:
        found = await session.scalars(
            select(IntakeCopy.version_id).where(IntakeCopy.version_id.in_(version_ids))
        )
        return sorted(found)


async def _bundle_copies(database: Database, version_id: str) -> int:
    async with database.sessionmaker() as session:
        count = await session.scalar(
            select(func.count())
            .select_from(IntakeBundleCopy)
            .where(IntakeBundleCopy.version_id == version_id)
        )
    return int(count or 0)


async def _applications(database: Database, *version_ids: str) -> int:
    """Applications bound to any of these item or bundle versions."""
    bound = Application.item_version_id.in_(version_ids) | Application.bundle_version_id.in_(
        version_ids
    )
    async with database.sessionmaker() as session:
        count = await session.scalar(select(func.count()).select_from(Application).where(bound))
    return int(count or 0)


def _window_body(persona: Persona, **target: Any) -> dict[str, Any]:
    return {
        **target,
        "applicant": {"kind": "person", "id_number": persona.id_number, "name": persona.name},
        "verification": READER,
    }


def _citizen(settings: Settings, persona: Persona) -> dict[str, str]:
    """A citizen's token as the gateway passes it to intake (intake's own routes: prefill)."""
    identity = Identity(
        subject=f"u-lag-{uuid.uuid4().hex[:8]}",
        kind="citizen",
        assurance=AssuranceLevel.REAL_PERSON,
        person_ref=BlindIndex.from_settings(settings).resident_id(persona.id_number),
    )
    token = InternalTokens.from_settings(settings).issue(identity, issuer="gateway")
    return {"Authorization": f"Bearer {token}"}


def _clerk(gateway: Gateway) -> dict[str, str]:
    return {
        **gateway.staff("window_clerk", department=WINDOW, region="441900"),
        "Idempotency-Key": str(uuid.uuid4()),
    }


# --- the copy lags, the catalog answers ---------------------------------------------------------


async def test_the_window_accepts_an_item_and_a_bundle_intake_has_not_learnt_yet(
    infrastructure: Infrastructure, database: Database, tmp_path: Path
) -> None:
    item = await _published_elsewhere(database)
    bundle = await _bundle_published_elsewhere(database)
    person = _persona("liang_yongkang")
    async with running_gateway(infrastructure, database, data_dir=tmp_path) as gateway:
        created = await gateway.client.post(
            "/api/v1/staff/applications",
            json={
                **_window_body(person, item_version_id=item.version_id),
                "form": {"bank_account": "6222"},
                "materials": COMMITTED,
            },
            headers=_clerk(gateway),
        )
        assert created.status_code == 201, created.text
        application = created.json()
        assert (application["status"], application["item_code"]) == ("accepted", item.code)
        assert application["accepting_window"] == WINDOW

        together = await gateway.client.post(
            "/api/v1/staff/applications",
            json={
                **_window_body(person, bundle_version_id=bundle.version_id),
                "form": {"account": "6222"},
                "member_materials": {v: COMMITTED for v in bundle.member_version_ids},
            },
            headers=_clerk(gateway),
        )
        assert together.status_code == 201, together.text
    # Kept, as the events would have: the next request reads intake's own copies.
    assert await _item_copies(database, item.version_id) == [item.version_id]
    assert await _bundle_copies(database, bundle.version_id) == 1
    assert await _item_copies(database, *bundle.member_version_ids) == sorted(
        bundle.member_version_ids
    )
    async with database.sessionmaker() as session:
        children = (
            await session.scalars(
                select(Application.item_version_id).where(
                    Application.parent_id == together.json()["id"]
                )
            )
        ).all()
    assert sorted(str(c) for c in children) == sorted(bundle.member_version_ids)


async def test_a_citizen_applies_for_a_bundle_intake_has_not_learnt_yet(
    infrastructure: Infrastructure, database: Database, tmp_path: Path
) -> None:
    bundle = await _bundle_published_elsewhere(database)
    person = _persona("chen_bingkun")
    async with running_gateway(
        infrastructure, database, data_dir=tmp_path, gateway_submissions_per_minute_per_ip=1000
    ) as gateway:
        headers = await gateway.citizen(name=person.name, id_number=person.id_number)
        answer = await gateway.client.post(
            "/api/v1/applications",
            json={
                "bundle_id": bundle.bundle_id,
                "form": {"account": "6222"},
                "member_materials": {v: COMMITTED for v in bundle.member_version_ids},
            },
            headers={**headers, "Idempotency-Key": str(uuid.uuid4())},
        )
        assert answer.status_code == 201, answer.text
        parent = answer.json()
        assert parent["bundle_version_id"] == bundle.version_id
        assert parent["item_name"] == "高龄老人关爱一件事"

        # A bundle's draft, which the catalog shows at the same address, is not applied for.
        members = [await _published_elsewhere(database) for _ in range(2)]
        async with database.sessionmaker() as session, session.begin():
            draft = await catalog.create_bundle_draft(session, content=_bundle_content(members))
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=gateway.services["intake"]), base_url="http://intake"
        ) as intake:
            refused = await intake.post(
                "/applications",
                json={
                    "bundle_version_id": draft.id,
                    "applicant": {"id_number": person.id_number, "name": person.name},
                    "form": {"account": "6222"},
                },
                headers={
                    **_citizen(gateway.settings, person),
                    "Idempotency-Key": str(uuid.uuid4()),
                },
            )
        assert refused.status_code == 404, refused.text
        assert refused.json()["type"] == "urn:wangban:problem:item-version-not-available"
    assert await _bundle_copies(database, draft.id) == 0
    assert await _applications(database, draft.id) == 0
    assert await _applications(database, bundle.version_id) == 1
    async with database.sessionmaker() as session:
        children = await session.scalar(
            select(func.count())
            .select_from(Application)
            .where(Application.parent_id == parent["id"])
        )
    assert children == 2


async def test_an_item_code_intake_has_not_learnt_yet_is_asked_of_the_catalog(
    infrastructure: Infrastructure, database: Database, tmp_path: Path
) -> None:
    """Applying by implementing code (as the gateway does): a code intake's copy has never
    seen is asked of the catalog (its current version, kept); a code the catalog does not know
    either is 404 ``item-not-found``, the citizen's doing, as the catalogue answers it."""
    item = await _published_elsewhere(database)
    person = _persona("chen_bingkun")
    async with (
        running_gateway(infrastructure, database, data_dir=tmp_path) as gateway,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=gateway.services["intake"]), base_url="http://intake"
        ) as intake,
    ):
        citizen = _citizen(gateway.settings, person)
        body = {
            "applicant": {"id_number": person.id_number, "name": person.name},
            "form": {"bank_account": "6222"},
            "materials": COMMITTED,
        }
        applied = await intake.post(
            "/applications",
            json={**body, "item_code": item.code},
            headers={**citizen, "Idempotency-Key": str(uuid.uuid4())},
        )
        assert applied.status_code == 201, applied.text
        assert applied.json()["item_version_id"] == item.version_id
        unknown = await intake.post(
            "/applications",
            json={**body, "item_code": "NO-SUCH-ITEM"},
            headers={**citizen, "Idempotency-Key": str(uuid.uuid4())},
        )
        assert unknown.status_code == 404, unknown.text
        assert unknown.json()["type"] == "urn:wangban:problem:item-not-found"
        assert re.search(r"[\u4e00-\u9fff]", unknown.json()["detail"])
    assert await _item_copies(database, item.version_id) == [item.version_id]


async def test_prefill_of_an_item_intake_has_not_learnt_yet(
    infrastructure: Infrastructure, database: Database, tmp_path: Path
) -> None:
    person = PERSONAS[0]
    record = SandboxPopulation.build(today=date.today()).record("gongan.huji", person.id_number)
    assert record is not None
    code = f"TEST-LAG-{uuid.uuid4().hex[:10]}"
    async with database.sessionmaker() as session, session.begin():
        await seed_registry(session)
        await put_grant(
            session,
            consumer="intake",
            dataset_code="gongan.huji",
            item_code=code,
            disclose_fields=["name"],
        )
    item = await _published_elsewhere(database, implementing_code=code, form_schema=PREFILLED_FORM)
    async with (
        running_gateway(infrastructure, database, data_dir=tmp_path) as gateway,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=gateway.services["intake"]), base_url="http://intake"
        ) as intake,
    ):
        prefilled = await intake.post(
            "/prefill",
            json={"item_version_id": item.version_id, "id_number": person.id_number},
            headers=_citizen(gateway.settings, person),
        )
        assert prefilled.status_code == 200, prefilled.text
        assert prefilled.json()["name"]["value"] == record["name"]
        assert prefilled.json()["name"]["dataset"] == "gongan.huji"
        # A version the catalog has not published either is still not found.
        unknown = await intake.post(
            "/prefill",
            json={"item_version_id": str(uuid.uuid4()), "id_number": person.id_number},
            headers=_citizen(gateway.settings, person),
        )
        assert unknown.status_code == 404, unknown.text
        assert unknown.json()["type"] == "urn:wangban:problem:item-version-not-available"
    assert await _item_copies(database, item.version_id) == [item.version_id]


# --- the copy lags, the catalog cannot answer ---------------------------------------------------


@dataclass
class Intake:
    client: httpx.AsyncClient
    settings: Settings


@asynccontextmanager
async def _intake_without_catalog(
    infrastructure: Infrastructure, tmp_path: Path
) -> AsyncIterator[Intake]:
    """Intake with the catalog (and sharing) at an address where nothing listens."""
    nowhere = f"http://127.0.0.1:{free_port()}"
    settings = make_settings(
        infrastructure, data_dir=tmp_path, catalog_url=nowhere, sharing_url=nowhere, http_retries=0
    )
    app = create_service_app(load_spec("intake"), settings, background=False)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://intake"
        ) as client,
    ):
        yield Intake(client, settings)


def _refused_for_now(answer: httpx.Response) -> None:
    assert answer.status_code == 503, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    problem = answer.json()
    assert problem["type"] == "urn:wangban:problem:catalog-unavailable"
    assert re.search(r"[\u4e00-\u9fff]", problem["detail"]), problem


async def test_while_the_catalog_cannot_answer_a_lagging_copy_refuses_for_now_writing_nothing(
    infrastructure: Infrastructure, database: Database, tmp_path: Path
) -> None:
    item = await _published_elsewhere(database)
    bundle = await _bundle_published_elsewhere(database)
    person = _persona("liang_yongkang")
    async with _intake_without_catalog(infrastructure, tmp_path) as intake:
        clerk = InternalTokens.from_settings(intake.settings).issue(
            Identity(
                subject="s-lag-clerk",
                kind="staff",
                roles=frozenset({"window_clerk"}),
                department=WINDOW,
                region="441900",
                assurance=AssuranceLevel.REAL_NAME,
            ),
            issuer="gateway",
        )
        at_window = {"Authorization": f"Bearer {clerk}"}
        for target, extra in (
            (
                {"item_version_id": item.version_id},
                {"form": {"bank_account": "6222"}, "materials": COMMITTED},
            ),
            (
                {"bundle_version_id": bundle.version_id},
                {
                    "form": {"account": "6222"},
                    "member_materials": {v: COMMITTED for v in bundle.member_version_ids},
                },
            ),
        ):
            _refused_for_now(
                await intake.client.post(
                    "/staff/applications",
                    json={**_window_body(person, **target), **extra},
                    headers={**at_window, "Idempotency-Key": str(uuid.uuid4())},
                )
            )
        citizen = _citizen(intake.settings, person)
        _refused_for_now(
            await intake.client.post(
                "/applications",
                json={
                    "bundle_version_id": bundle.version_id,
                    "applicant": {"id_number": person.id_number, "name": person.name},
                    "form": {"account": "6222"},
                    "member_materials": {v: COMMITTED for v in bundle.member_version_ids},
                },
                headers={**citizen, "Idempotency-Key": str(uuid.uuid4())},
            )
        )
        _refused_for_now(
            await intake.client.post(
                "/prefill",
                json={"item_version_id": item.version_id, "id_number": person.id_number},
                headers=citizen,
            )
        )
    assert (
        await _applications(
            database, item.version_id, bundle.version_id, *bundle.member_version_ids
        )
        == 0
    )
    assert await _bundle_copies(database, bundle.version_id) == 0
    assert await _item_copies(database, item.version_id, *bundle.member_version_ids) == []
