"""Department scoping and four-eyes publishing of the catalogue, through the gateway (the door
staff use): a 公安局 admin cannot touch 人社局's items; a change of 秒批 rules, conditions or time
limits is submitted by one person and approved by a second of the owning department; every such
change leaves a record (old → new, the replay on recent cases) that auditors read."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from approval_service.models import Case, Decision
from catalog_service import service
from catalog_service.events import outbox
from catalog_service.jobs import JobWorker
from tests.catalog.jobs_support import drain
from tests.catalog.support import item_content
from tests.gateway.support import Gateway, running_gateway
from tests.infrastructure import Infrastructure, make_settings
from tests.serving import serve_asgi
from wangban.app import create_service_app
from wangban.auth import AssuranceLevel, Identity
from wangban.db import Database
from wangban.services import load_spec

RENSHE = "东莞市人社局"
GONGAN = "东莞市公安局"
STAFF = "/api/v1/staff/catalog"
OLD_RULE = {
    "name": "not_employed",
    "expression": "form.employed == false",
    "message": "申请人处于就业状态",
    "needs": [],
    "refer": False,
}
ATTACK_RULE = {"name": "always", "expression": "true", "message": "无", "needs": [], "refer": False}


@dataclass
class World:
    gateway: Gateway
    database: Database
    who: dict[str, dict[str, str]]


def _staff(gateway: Gateway, subject: str, *roles: str, department: str) -> dict[str, str]:
    return gateway.bearer(
        Identity(
            subject=subject,
            kind="staff",
            roles=frozenset(roles),
            department=department,
            region="441900",
            assurance=AssuranceLevel.REAL_NAME,
        )
    )


@pytest.fixture(scope="module")
async def world(infrastructure: Infrastructure, database: Database) -> AsyncIterator[World]:
    async with AsyncExitStack() as stack:
        # The approval service on a real port: the catalog asks it to replay submitted rules.
        approval = create_service_app(
            load_spec("approval"), make_settings(infrastructure), background=False
        )
        await stack.enter_async_context(approval.router.lifespan_context(approval))
        approval_url = await stack.enter_async_context(serve_asgi(approval))
        gateway = await stack.enter_async_context(
            running_gateway(infrastructure, database, approval_url=approval_url)
        )
        who = {
            "author": _staff(gateway, "s-author-rs", "catalog_admin", department=RENSHE),
            # The same person holding both roles: still may not approve their own change.
            "author_approver": _staff(
                gateway, "s-author-rs", "catalog_admin", "catalog_approver", department=RENSHE
            ),
            "approver": _staff(gateway, "s-approver-rs", "catalog_approver", department=RENSHE),
            "approver_gongan": _staff(
                gateway, "s-approver-ga", "catalog_approver", department=GONGAN
            ),
            "admin_gongan": _staff(gateway, "s-admin-ga", "catalog_admin", department=GONGAN),
            "auditor": _staff(
                gateway, "s-auditor", "auditor", department="东莞市政务服务数据管理局"
            ),
        }
        yield World(gateway, database, who)


async def _published_renshe_item(world: World, **overrides: Any) -> dict[str, Any]:
    """人社局's 失业保险金申领 with a 秒批 rule, published by the system (as seeds are)."""
    content = item_content(
        name="失业保险金申领",
        department=RENSHE,
        region_code="441900",
        conditions="非因本人意愿中断就业",
        form_schema={
            "type": "object",
            "properties": {"employed": {"type": "boolean", "title": "是否就业"}},
            "required": ["employed"],
        },
        rules=[OLD_RULE],
        **overrides,
    )
    async with world.database.sessionmaker() as session, session.begin():
        draft = await service.create_item_draft(session, content=content)
        version = await service.publish_version(session, version_id=draft.id)
    return {"item_id": version.item_id, "version_id": version.id, "content": content}


async def _revise(world: World, item_id: str, who: str, **changes: Any) -> dict[str, Any]:
    client = world.gateway.client
    draft = await client.post(f"{STAFF}/items/{item_id}/revisions", headers=world.who[who])
    assert draft.status_code == 201, draft.text
    content = {**draft.json()["content"], **changes}
    edited = await client.put(
        f"{STAFF}/item-versions/{draft.json()['id']}", json=content, headers=world.who[who]
    )
    assert edited.status_code == 200, edited.text
    return dict(edited.json())


async def _published_events(world: World, item_id: str) -> list[dict[str, Any]]:
    table = outbox.tables.outbox
    async with world.database.sessionmaker() as session:
        rows = await session.execute(
            select(table.c.envelope)
            .where(table.c.event_type == "cn.wangban.catalog.item.published.v1")
            .order_by(table.c.seq)
        )
        return [e["data"] for (e,) in rows if e["data"]["item_id"] == item_id]


async def test_another_departments_admin_cannot_revise_or_publish_its_rules(world: World) -> None:
    """The attack as reported: 公安局's catalogue admin revises 人社局's item, sets its rule to
    `true` and publishes it. Every step is refused; the item is unchanged."""
    item = await _published_renshe_item(world)
    client, attacker = world.gateway.client, world.who["admin_gongan"]

    revised = await client.post(f"{STAFF}/items/{item['item_id']}/revisions", headers=attacker)
    own_draft = await _revise(world, item["item_id"], "author")
    attack = {**own_draft["content"], "rules": [ATTACK_RULE]}
    edited = await client.put(
        f"{STAFF}/item-versions/{own_draft['id']}", json=attack, headers=attacker
    )
    published = await client.post(
        f"{STAFF}/item-versions/{own_draft['id']}/publish", headers=attacker
    )
    submitted = await client.post(
        f"{STAFF}/item-versions/{own_draft['id']}/submit", headers=attacker
    )
    withdrawn = await client.post(f"{STAFF}/items/{item['item_id']}/withdraw", headers=attacker)
    fresh = item_content(department=RENSHE, rules=[ATTACK_RULE]).model_dump(mode="json")
    created = await client.post(f"{STAFF}/items", json=fresh, headers=attacker)

    # Ids of another department's items answer as unknown ones (existence is not revealed).
    for answer in (revised, edited, published, submitted, withdrawn):
        assert answer.status_code == 404, answer.text
    assert created.status_code == 403 and created.json()["type"].endswith("other-department")
    assert "东莞市公安局" in created.json()["detail"]
    current = await client.get(f"/api/v1/items/{item['content'].implementing_code}")
    assert current.json()["id"] == item["version_id"]
    assert current.json()["content"]["rules"] == [OLD_RULE]


async def test_a_rule_change_takes_a_second_person_of_the_department(world: World) -> None:
    item = await _published_renshe_item(world)
    client, who = world.gateway.client, world.who
    draft = await _revise(world, item["item_id"], "author", rules=[ATTACK_RULE])
    version = f"{STAFF}/item-versions/{draft['id']}"

    alone = await client.post(f"{version}/publish", headers=who["author"])
    assert alone.status_code == 409 and alone.json()["type"].endswith("review-required")
    assert alone.json()["changed_fields"] == ["rules"]

    submitted = await client.post(f"{version}/submit", headers=who["author"])
    assert submitted.status_code == 200, submitted.text
    assert submitted.json()["status"] == "submitted"
    assert submitted.json()["submitted_by"] == "s-author-rs"
    locked = await client.put(version, json=draft["content"], headers=who["author"])
    assert locked.status_code == 409

    own = await client.post(f"{version}/approve", headers=who["author_approver"])
    assert own.status_code == 403 and own.json()["type"].endswith("four-eyes-required")
    assert own.json()["detail"].startswith("不能审核发布本人提交的修改")
    other_department = await client.post(f"{version}/approve", headers=who["approver_gongan"])
    assert other_department.status_code == 404
    author_role_only = await client.post(f"{version}/approve", headers=who["author"])
    assert author_role_only.status_code == 403

    approved = await client.post(f"{version}/approve", headers=who["approver"])
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "published"
    assert approved.json()["approved_by"] == "s-approver-rs"
    current = await client.get(f"/api/v1/items/{item['content'].implementing_code}")
    assert current.json()["id"] == draft["id"]
    *_, event = await _published_events(world, item["item_id"])
    assert event["version_id"] == draft["id"]
    assert event["approved_by"] == "s-approver-rs" and event["submitted_by"] == "s-author-rs"


async def _decided_cases(
    world: World, code: str, department: str, employed: list[bool]
) -> list[str]:
    """Decided cases of the item as the approval service keeps them: the old rule denied the
    employed applicants and approved the others. Their application ids, in order."""
    now = datetime.now(UTC)
    ids: list[str] = []
    async with world.database.sessionmaker() as session, session.begin():
        for index, is_employed in enumerate(employed):
            application_id = str(uuid.uuid4())
            ids.append(application_id)
            outcome = "deny" if is_employed else "approve"
            session.add(
                Case(
                    application_id=application_id,
                    item_version_id=str(uuid.uuid4()),
                    item_code=code,
                    department=department,
                    status="denied" if is_employed else "approved",
                    step="办结",
                    steps=[],
                    step_index=0,
                    applicant_kind="person",
                    applicant_id_enc="-",
                    applicant_name_enc="-",
                    applicant_age=40,
                    applicant_region="441900",
                    form={"employed": is_employed},
                    submitted_at=now - timedelta(minutes=10 + index),
                    decided_at=now - timedelta(minutes=index),
                    stopped_days=0,
                    due_provisional=False,
                )
            )
            await session.flush()
            session.add(
                Decision(
                    id=str(uuid.uuid4()),
                    application_id=application_id,
                    kind="auto",
                    outcome=outcome,
                    reason="",
                    item_version_id=str(uuid.uuid4()),
                    rule_set_hash=None,
                    rule_results=[],
                    lookup_ids=[],
                    elapsed_ms=1.0,
                    decided_by="auto",
                    decided_at=now - timedelta(minutes=index),
                )
            )
    return ids


async def test_every_rule_change_is_recorded_with_its_replay_for_auditors(world: World) -> None:
    item = await _published_renshe_item(world)
    code = item["content"].implementing_code
    # Three employed applicants denied, two approved; one case of another department's copy.
    await _decided_cases(world, code, RENSHE, [True, True, True, False, False])
    await _decided_cases(world, code, GONGAN, [True])
    client, who = world.gateway.client, world.who
    draft = await _revise(world, item["item_id"], "author", rules=[ATTACK_RULE], committed_days=3)
    version = f"{STAFF}/item-versions/{draft['id']}"
    assert (await client.post(f"{version}/submit", headers=who["author"])).status_code == 200
    assert (await client.post(f"{version}/approve", headers=who["approver"])).status_code == 200

    listing = f"{STAFF}/rule-changes"
    query = {"item_id": item["item_id"]}
    audited = await client.get(listing, params=query, headers=who["auditor"])
    own = await client.get(listing, params=query, headers=who["approver"])
    other = await client.get(listing, params=query, headers=who["approver_gongan"])
    author = await client.get(listing, params=query, headers=who["author"])

    assert audited.status_code == 200, audited.text
    [record] = audited.json()
    assert own.json() == [record] and other.json() == [] and author.status_code == 403
    assert record["version_id"] == draft["id"] and record["status"] == "approved"
    assert record["author"] == record["submitted_by"] == "s-author-rs"
    assert record["decided_by"] == "s-approver-rs" and record["decided_at"]
    assert record["previous_version_id"] == item["version_id"]
    assert record["changed_fields"] == ["rules", "committed_days"]
    assert record["old"]["rules"][0]["expression"] == "form.employed == false"
    assert record["new"]["rules"][0]["expression"] == "true"
    assert (record["old"]["committed_days"], record["new"]["committed_days"]) == (0, 3)
    replay = record["dry_run"]
    assert replay["status"] == "done" and replay["cases"] == 5  # its own department's only
    assert replay["would"] == {"approve": 5, "deny": 0, "refer": 0}
    assert replay["actual"] == {"approve": 2, "deny": 3}
    assert replay["changed"] == replay["newly_approved"] == 3
    assert {c["actual"] for c in replay["changes"]} == {"deny"}
    assert "applicant" not in json.dumps(replay)  # outcomes only, nothing personal


async def test_a_rejected_change_goes_back_to_draft_with_the_reason(world: World) -> None:
    item = await _published_renshe_item(world)
    client, who = world.gateway.client, world.who
    draft = await _revise(world, item["item_id"], "author", conditions="任何人")
    version = f"{STAFF}/item-versions/{draft['id']}"
    assert (await client.post(f"{version}/submit", headers=who["author"])).status_code == 200
    rejected = await client.post(
        f"{version}/reject", json={"reason": "受理条件过宽"}, headers=who["approver"]
    )
    assert rejected.status_code == 200 and rejected.json()["status"] == "draft"
    again = await client.post(f"{version}/approve", headers=who["approver"])
    assert again.status_code == 409 and again.json()["type"].endswith("not-submitted")
    records = (
        await client.get(
            f"{STAFF}/rule-changes", params={"item_id": item["item_id"]}, headers=who["auditor"]
        )
    ).json()
    assert [(r["status"], r["rejection_reason"]) for r in records] == [("rejected", "受理条件过宽")]
    # Rules unchanged: nothing to replay, and the record says so.
    assert records[0]["dry_run"]["status"] == "skipped"


async def test_a_change_of_no_rule_condition_or_time_limit_publishes_directly(
    world: World,
) -> None:
    item = await _published_renshe_item(world)
    client, who = world.gateway.client, world.who
    draft = await _revise(world, item["item_id"], "author", name="失业保险金申领（线上）")
    published = await client.post(
        f"{STAFF}/item-versions/{draft['id']}/publish", headers=who["author"]
    )
    assert published.status_code == 200, published.text
    assert published.json()["published_by"] == "s-author-rs"
    assert published.json()["approved_by"] is None
    *_, event = await _published_events(world, item["item_id"])
    assert event["submitted_by"] == "s-author-rs" and event.get("approved_by") is None


async def test_an_import_is_no_way_around_the_second_person(world: World) -> None:
    item = await _published_renshe_item(world)
    client, who = world.gateway.client, world.who
    changed = {**item["content"].model_dump(mode="json"), "rules": [ATTACK_RULE]}
    catalog = world.gateway.services["catalog"]
    worker = JobWorker(catalog.state.database, world.gateway.settings)

    async def imported_by(who: dict[str, str]) -> dict[str, Any]:
        answer = await client.post(
            f"{STAFF}/imports",
            params={"publish_complete": "true"},
            content=json.dumps([changed], ensure_ascii=False).encode(),
            headers={**who, "Content-Type": "application/json"},
        )
        assert answer.status_code == 202, answer.text
        await drain(worker)
        job = await client.get(answer.headers["location"], headers=who)
        assert job.status_code == 200, job.text
        body: dict[str, Any] = job.json()
        return body

    own = await imported_by(who["author"])
    assert own["status"] == "succeeded", own
    report = own["result"]
    assert report["published_codes"] == [] and report["review_required_codes"] == [
        changed["implementing_code"]
    ]
    current = await client.get(f"/api/v1/items/{changed['implementing_code']}")
    assert current.json()["id"] == item["version_id"]

    foreign = await imported_by(who["admin_gongan"])
    assert foreign["status"] == "failed"
    assert foreign["problem"]["type"].endswith("other-department")


async def test_unpublished_rules_are_read_and_exported_by_their_department_only(
    world: World,
) -> None:
    """A draft carries the rules a department is still working on: its own catalogue staff read
    it through the gateway, another department's do not (404), nobody reads it from the
    catalogue's public routes, and an export holds only the exporter's own items."""
    item = await _published_renshe_item(world)
    client, who = world.gateway.client, world.who
    draft = await _revise(world, item["item_id"], "author", rules=[ATTACK_RULE])

    own = await client.get(f"{STAFF}/item-versions/{draft['id']}", headers=who["author"])
    assert own.status_code == 200 and own.json()["content"]["rules"] == [ATTACK_RULE]
    approver = await client.get(f"{STAFF}/item-versions/{draft['id']}", headers=who["approver"])
    assert approver.status_code == 200
    other = await client.get(f"{STAFF}/item-versions/{draft['id']}", headers=who["admin_gongan"])
    assert other.status_code == 404

    catalog = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=world.gateway.services["catalog"]),
        base_url="http://catalog",
    )
    async with catalog:
        public_draft = await catalog.get(f"/item-versions/{draft['id']}")
        public_published = await catalog.get(f"/item-versions/{item['version_id']}")
    assert public_draft.status_code == 404
    assert public_published.status_code == 200

    code = item["content"].implementing_code
    exported: dict[str, list[str]] = {}
    for exporter in ("author", "admin_gongan"):
        answer = await client.get(
            f"{STAFF}/exports", params={"format": "json"}, headers=who[exporter]
        )
        assert answer.status_code == 200, answer.text
        rows = answer.json()
        assert {row["department"] for row in rows} <= {RENSHE if exporter == "author" else GONGAN}
        exported[exporter] = [row["implementing_code"] for row in rows]
    assert code in exported["author"]
    assert code not in exported["admin_gongan"]


async def test_the_staff_list_holds_the_newest_version_of_my_departments_items(
    world: World,
) -> None:
    """The console's item list: each item once, as its newest version with its status (drafts
    and submitted ones included), scoped like a single version (department and region)."""
    item = await _published_renshe_item(world)
    code = item["content"].implementing_code
    elsewhere = item_content(department=RENSHE, region_code="440300")  # 深圳's 人社局
    async with world.database.sessionmaker() as session, session.begin():
        await service.create_item_draft(session, content=elsewhere)
    client, who = world.gateway.client, world.who
    listing = f"{STAFF}/item-versions"

    async def codes(who_: str, **params: Any) -> dict[str, tuple[str, str]]:
        answer = await client.get(listing, params={"page_size": 100, **params}, headers=who[who_])
        assert answer.status_code == 200, answer.text
        return {
            row["implementing_code"]: (row["id"], row["status"]) for row in answer.json()["items"]
        }

    assert (await codes("author", q=code)) == {code: (item["version_id"], "published")}
    draft = await _revise(world, item["item_id"], "author", rules=[ATTACK_RULE])
    assert (await codes("author", q=code)) == {code: (draft["id"], "draft")}
    submitted = await client.post(
        f"{STAFF}/item-versions/{draft['id']}/submit", headers=who["author"]
    )
    assert submitted.status_code == 200, submitted.text

    # What waits for the department's approver; nothing of it for another department's.
    waiting = await codes("approver", status="submitted")
    assert waiting[code] == (draft["id"], "submitted")
    assert {status for _, status in waiting.values()} == {"submitted"}
    assert code not in await codes("approver_gongan", status="submitted")
    assert code not in await codes("admin_gongan", q=code)
    # Same department name, another region: not theirs either.
    assert elsewhere.implementing_code not in await codes("author", q=elsewhere.implementing_code)
    named = await codes("author", q="失业保险金", status="submitted")
    assert code in named
    page = await client.get(listing, params={"q": code}, headers=who["author"])
    assert page.json()["total"] == 1 and page.json()["page"] == 1
    assert page.json()["items"][0]["submitted_by"] == "s-author-rs"


async def test_a_dry_run_shows_which_recent_cases_a_drafts_rules_decide_otherwise(
    world: World,
) -> None:
    """Before submitting, the author replays the draft's rules on the item's recently decided
    cases of their department: the cases whose outcome would change, and the counts. Nothing
    is submitted or recorded."""
    item = await _published_renshe_item(world)
    code = item["content"].implementing_code
    ids = await _decided_cases(world, code, RENSHE, [True, False, True, False])
    await _decided_cases(world, code, GONGAN, [True])
    client, who = world.gateway.client, world.who
    draft = await _revise(world, item["item_id"], "author", rules=[ATTACK_RULE])
    dry_run = f"{STAFF}/item-versions/{draft['id']}/dry-run"

    answer = await client.post(dry_run, headers=who["author"])

    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert result["status"] == "done" and result["cases"] == 4  # its own department's only
    assert result["actual"] == {"approve": 2, "deny": 2}
    assert result["would"] == {"approve": 4, "deny": 0, "refer": 0}
    assert result["changed"] == result["newly_approved"] == 2 and result["newly_denied"] == 0
    assert {(c["application_id"], c["actual"], c["would"]) for c in result["changes"]} == {
        (ids[0], "deny", "approve"),
        (ids[2], "deny", "approve"),
    }
    still = await client.get(f"{STAFF}/item-versions/{draft['id']}", headers=who["author"])
    assert still.json()["status"] == "draft"
    records = await client.get(
        f"{STAFF}/rule-changes", params={"item_id": item["item_id"]}, headers=who["approver"]
    )
    assert records.json() == []
    # Another department's admin does not learn the draft exists; an approver does not replay.
    assert (await client.post(dry_run, headers=who["admin_gongan"])).status_code == 404
    assert (await client.post(dry_run, headers=who["approver"])).status_code == 403


async def test_catalogue_staff_read_the_synonym_table_the_platform_role_keeps(
    world: World,
) -> None:
    client, gateway = world.gateway.client, world.gateway
    platform = _staff(gateway, "s-platform", "platform_catalog_admin", department="平台")
    before = await client.get(f"{STAFF}/synonyms", headers=world.who["author"])
    assert before.status_code == 200, before.text
    groups = [*before.json()["groups"], ["社保卡", "社会保障卡"]]
    try:
        put = await client.put(f"{STAFF}/synonyms", json={"groups": groups}, headers=platform)
        assert put.status_code == 200, put.text
        read = await client.get(f"{STAFF}/synonyms", headers=world.who["approver"])
        assert ["社会保障卡", "社保卡"] in read.json()["groups"]
        refused = await client.put(
            f"{STAFF}/synonyms", json={"groups": groups}, headers=world.who["author"]
        )
        assert refused.status_code == 403
    finally:
        await client.put(f"{STAFF}/synonyms", json=before.json(), headers=platform)
