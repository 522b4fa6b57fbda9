"""Window intake and case access through the gateway (issue "Trust", findings 3 and 17).

A window clerk must verify the applicant before any of their data is looked up; every lookup
then names the clerk (and the citizen's data-usage list says "<department> 窗口工作人员");
a failed intake answers the same whichever department had no record; a case of another
department answers 404 exactly like a missing one."""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Any

from sqlalchemy import func, select

from catalog_service.events import ItemPublished
from intake_service.models import Application
from intake_service.models import ItemVersionCopy as IntakeCopy
from sandbox import PERSONAS, Persona
from sharing_service.consumers import build_consumer
from sharing_service.models import LookupAudit
from sharing_service.registry import put_grant, seed_registry
from tests.approval.support import accepted_case as approval_case
from tests.gateway.support import Gateway, running_gateway
from tests.infrastructure import Infrastructure
from tests.intake.support import publish_item
from wangban.crypto import BlindIndex
from wangban.db import Database
from wangban.events import envelope_for

WINDOW = "东莞市人社局"
MATERIALS: list[dict[str, Any]] = [
    {"name": "户口簿", "source": "shared:gongan.huji"},
    {"name": "参保证明", "source": "shared:renshe.shebao"},
    {"name": "残疾人证", "source": "shared:minzheng.canji"},
    {"name": "承诺书", "source": "commitment"},
]
DATASETS = ("gongan.huji", "renshe.shebao", "minzheng.canji")


def _persona(key: str) -> Persona:
    return next(p for p in PERSONAS if p.key == key)


async def _window_item(gateway: Gateway, materials: list[dict[str, Any]] = MATERIALS) -> IntakeCopy:
    """An item whose materials come from (up to) three departments, known to intake and
    sharing, with intake granted existence lookups in each."""
    async with gateway.database.sessionmaker() as session, session.begin():
        await seed_registry(session)
        version = await publish_item(
            session, implementing_code=f"TEST-{uuid.uuid4().hex[:12]}", materials=materials
        )
        for dataset in DATASETS:
            await put_grant(
                session,
                consumer="intake",
                dataset_code=dataset,
                item_code=version.implementing_code,
                disclose_fields=[],
            )
        event = ItemPublished(
            item_id=version.item_id,
            version_id=version.version_id,
            version=1,
            implementing_code=version.implementing_code,
            lists=[],
            published_at=version.published_at.isoformat(),
            content=version.content,
        )
        handler = build_consumer(gateway.settings).handlers[ItemPublished.event_type][1]
        await handler(session, event=event, envelope=envelope_for(event, source="/t"))
    return version


def _body(
    version: IntakeCopy, persona: Persona, *, name: str | None = None, commitment_index: int = 3
) -> dict[str, Any]:
    return {
        "item_version_id": version.version_id,
        "applicant": {
            "kind": "person",
            "id_number": persona.id_number,
            "name": name or persona.name,
        },
        "form": {"bank_account": "6222000011112222"},
        "materials": [{"index": commitment_index, "commitment": True}],
        "verification": {"method": "register_name_match"},
    }


async def _apply(gateway: Gateway, body: dict[str, Any]) -> Any:
    clerk = gateway.staff("window_clerk", department=WINDOW, region="441900")
    return await gateway.client.post(
        "/api/v1/staff/applications",
        json=body,
        headers={**clerk, "Idempotency-Key": str(uuid.uuid4())},
    )


async def _audit(gateway: Gateway, persona: Persona, item_code: str) -> list[LookupAudit]:
    ref = BlindIndex.from_settings(gateway.settings).resident_id(persona.id_number)
    async with gateway.database.sessionmaker() as session:
        return list(
            (
                await session.scalars(
                    select(LookupAudit)
                    .where(LookupAudit.subject_ref == ref, LookupAudit.item_code == item_code)
                    .order_by(LookupAudit.seq)
                )
            ).all()
        )


async def _applications(gateway: Gateway, item_version_id: str) -> int:
    async with gateway.database.sessionmaker() as session:
        count = await session.scalar(
            select(func.count())
            .select_from(Application)
            .where(Application.item_version_id == item_version_id)
        )
    return int(count or 0)


async def test_a_wrong_name_for_a_real_id_number_is_refused_before_any_data_lookup(
    infrastructure: Infrastructure, database: Database
) -> None:
    async with running_gateway(infrastructure, database) as gateway:
        version = await _window_item(gateway)
        person = _persona("liang_yongkang")  # on record in all three departments
        refused = await _apply(gateway, _body(version, person, name="张三"))
        assert refused.status_code == 422, refused.text
        assert refused.json()["type"] == "urn:wangban:problem:applicant-not-verified"
        # An ID number nobody holds answers the same: the check says nothing about who exists.
        nobody = replace(person, id_number="110101199003070011")
        unknown = await _apply(gateway, _body(version, nobody, name="张三"))
        assert (unknown.status_code, unknown.json()["type"], unknown.json()["detail"]) == (
            refused.status_code,
            refused.json()["type"],
            refused.json()["detail"],
        )
        # No department's data was asked for: the one record is the name check itself (no
        # value disclosed), and it names the clerk who tried.
        records = await _audit(gateway, person, version.implementing_code)
        assert [(r.dataset_code, r.fields) for r in records] == [("gongan.huji", [])]
        assert [p["name"] for p in records[0].predicates] == ["name_matches_register"]
        assert records[0].actor_subject == f"s-window_clerk-{WINDOW}"
        assert await _applications(gateway, version.version_id) == 0
        # Without a verification the request is not even read.
        body = _body(version, person)
        del body["verification"]
        assert (await _apply(gateway, body)).status_code == 422
        assert len(await _audit(gateway, person, version.implementing_code)) == 1


async def test_a_failed_window_intake_answers_the_same_whichever_department_lacks_a_record(
    infrastructure: Infrastructure, database: Database
) -> None:
    async with running_gateway(infrastructure, database) as gateway:
        # Two items, each asking 户口簿 and one other department's record; each applicant lacks
        # exactly that other record: 民政局's in the first case, 人社局's in the second.
        huji, shebao, canji, commitment = MATERIALS
        needs_disability_card = await _window_item(gateway, [huji, canji, commitment])
        needs_insurance = await _window_item(gateway, [huji, shebao, commitment])
        no_disability_card = _persona("he_xiuying")  # insured, no 残疾人证 on record
        not_insured = _persona("chen_siqi")  # on the register, not insured
        first = await _apply(
            gateway, _body(needs_disability_card, no_disability_card, commitment_index=2)
        )
        second = await _apply(gateway, _body(needs_insurance, not_insured, commitment_index=2))
        assert first.status_code == second.status_code == 422, (first.text, second.text)
        answers = [
            {k: v for k, v in r.json().items() if k not in ("instance", "request_id")}
            for r in (first, second)
        ]
        assert answers[0] == answers[1]
        assert answers[0]["type"] == "urn:wangban:problem:window-intake-incomplete"
        for response in (first, second):
            assert "参保" not in response.text and "残疾" not in response.text
        for version in (needs_disability_card, needs_insurance):
            assert await _applications(gateway, version.version_id) == 0


async def test_a_verified_window_intake_names_the_clerk_in_every_lookup_and_to_the_citizen(
    infrastructure: Infrastructure, database: Database
) -> None:
    async with running_gateway(infrastructure, database) as gateway:
        version = await _window_item(gateway)
        person = _persona("liang_yongkang")
        created = await _apply(gateway, _body(version, person))
        assert created.status_code == 201, created.text
        application = created.json()
        assert application["status"] == "accepted"
        assert "身份核验：姓名与人口登记信息比对一致" in application["timeline"][0]["note"]
        assert application["timeline"][0]["actor"] == f"s-window_clerk-{WINDOW}"
        records = await _audit(gateway, person, version.implementing_code)
        assert {r.dataset_code for r in records} == set(DATASETS)
        assert len(records) == 4  # the name check, then one lookup per shared material
        assert {(r.actor_subject, r.actor_department, r.actor_role) for r in records} == {
            (f"s-window_clerk-{WINDOW}", WINDOW, "window_clerk")
        }
        assert all(r.consumer == "intake" for r in records)
        # A device check is the clerk's statement, recorded with its reading.
        stated = _body(version, person)
        stated["verification"] = {"method": "id_card_reader", "reference": "R-0042"}
        by_reader = await _apply(gateway, stated)
        assert by_reader.status_code == 201, by_reader.text
        assert "身份证读卡器读取（流水号 R-0042）" in by_reader.json()["timeline"][0]["note"]

        headers = await gateway.citizen(name=person.name, id_number=person.id_number)
        usage = await gateway.client.get("/api/v1/data-usage", headers=headers)
        assert usage.status_code == 200, usage.text
        mine = [u for u in usage.json()["items"] if u["item_code"] == version.implementing_code]
        assert len(mine) == 7
        assert {u["used_by"] for u in mine} == {f"{WINDOW} 窗口工作人员"}
        assert {(u["department"], u["role"]) for u in mine} == {(WINDOW, "窗口工作人员")}
        assert "intake" not in usage.text


async def test_a_case_of_another_department_answers_404_like_a_missing_one(
    infrastructure: Infrastructure, database: Database
) -> None:
    async with running_gateway(infrastructure, database) as gateway:
        async with database.sessionmaker() as session, session.begin():
            case = await approval_case(session, gateway.settings)
        path = f"/api/v1/staff/cases/{case.application_id}"
        missing = f"/api/v1/staff/cases/{uuid.uuid4()}"
        other = gateway.staff("reviewer", department="别的局")
        absent = await gateway.client.post(f"{missing}/claim", headers=other)
        assert absent.status_code == 404
        for action, body in (
            ("claim", None),
            ("advance", {"comment": "x"}),
            ("approve", {"comment": "x"}),
            ("deny", {"reason": "不符合条件"}),
            ("suspend", {"procedure": "现场核查"}),
        ):
            answer = await gateway.client.post(f"{path}/{action}", json=body, headers=other)
            assert answer.status_code == 404, (action, answer.text)
            assert answer.json()["type"] == absent.json()["type"], action
            assert answer.json().get("detail") == absent.json().get("detail"), action
        assert (await gateway.client.get(path, headers=other)).status_code == 404
        mine = gateway.staff("reviewer", department=case.department)
        assert (await gateway.client.post(f"{path}/claim", headers=mine)).status_code == 200
