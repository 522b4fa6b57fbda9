"""The sharing service over HTTP: who may call what, problem responses that keep their audit
record, the citizen's own data-usage records and wallet, public verification."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import event

from contracts.sharing.api_v1 import (
    IDENTITY_VERIFY_PATH,
    LOOKUPS_PATH,
    RESOLVE_PATH,
    IdentityCheckRequest,
    LookupRequest,
    Purpose,
    ResolutionRequest,
    Subject,
)
from sharing_service import certificates
from sharing_service.directory import ProviderDirectory
from sharing_service.registry import put_grant, seed_registry
from tests.sharing.support import StaticProvider, item_code, keys, person_id
from wangban.app import create_service_app
from wangban.auth import AssuranceLevel, Identity, InternalTokens
from wangban.db import Database
from wangban.services import load_spec
from wangban.settings import Settings


@dataclass
class Sharing:
    client: httpx.AsyncClient
    app: FastAPI
    provider: StaticProvider
    settings: Settings
    database: Database

    def token(
        self,
        subject: str,
        kind: str,
        *,
        roles: tuple[str, ...] = (),
        person_id: str | None = None,
        department: str | None = None,
    ) -> dict[str, str]:
        _, blind_index = keys(self.settings)
        identity = Identity(
            subject=subject,
            kind=kind,  # type: ignore[arg-type]
            roles=frozenset(roles),
            department=department,
            assurance=AssuranceLevel.REAL_PERSON,
            person_ref=blind_index.resident_id(person_id) if person_id else None,
        )
        token = InternalTokens.from_settings(self.settings).issue(identity, issuer="gateway")
        return {"Authorization": f"Bearer {token}"}


ALICE = person_id(date(1942, 3, 15), 301)
BOB = person_id(date(1985, 7, 9), 302)


@pytest.fixture
async def sharing(settings: Settings, database: Database) -> AsyncIterator[Sharing]:
    async with database.sessionmaker() as session, session.begin():
        await seed_registry(session)
    provider = StaticProvider(
        {
            ("gongan.huji", ALICE): {"name": "陈桂英", "birth_date": "1942-03-15"},
            ("gongan.huji", BOB): {"name": "王建军", "birth_date": "1985-07-09"},
        }
    )
    app = create_service_app(load_spec("sharing"), settings, background=False)
    async with app.router.lifespan_context(app):
        cipher, _ = keys(settings)
        # The departments behind the datasets are external systems: a static one here.
        app.state.provider_directory = ProviderDirectory(cipher=cipher, sandbox=provider)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://sharing") as client:
            yield Sharing(client, app, provider, settings, database)


async def _grant(sharing: Sharing, item: str, **kwargs: object) -> None:
    async with sharing.database.sessionmaker() as session, session.begin():
        await put_grant(
            session,
            consumer="approval",
            dataset_code="gongan.huji",
            item_code=item,
            disclose_fields=["name"],
            verify_fields=["birth_date"],
            **kwargs,  # type: ignore[arg-type]
        )


def _lookup_body(
    subject: str, item: str, application_id: str, **extra: object
) -> dict[str, object]:
    return {
        "subject": {"kind": "person", "id": subject},
        "dataset": "gongan.huji",
        "fields": ["name"],
        "predicates": [{"name": "over_80", "field": "age", "op": "ge", "value": 80}],
        "purpose": {"item_code": item, "application_id": application_id},
        **extra,
    }


async def test_the_routes_read_exactly_the_request_models_their_callers_build(
    sharing: Sharing,
) -> None:
    """Intake and approval build their requests with :mod:`contracts.sharing.api_v1`; sharing's
    routes validate those very models, so the two cannot drift: the document describes each
    body as the contract's schema, a body the contract built is answered, and a field the
    contract lacks is refused (problem+json, in Chinese), as before the models moved."""
    document = sharing.app.openapi()
    schemas = document["components"]["schemas"]
    for path, model in (
        (LOOKUPS_PATH, LookupRequest),
        (RESOLVE_PATH, ResolutionRequest),
        (IDENTITY_VERIFY_PATH, IdentityCheckRequest),
    ):
        body = document["paths"][path]["post"]["requestBody"]["content"]["application/json"]
        assert body["schema"] == {"$ref": f"#/components/schemas/{model.__name__}"}
        contract = model.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, expected in [*contract.pop("$defs", {}).items(), (model.__name__, contract)]:
            served = schemas[name]
            assert served["properties"].keys() == expected["properties"].keys(), name
            assert served.get("required") == expected.get("required"), name
            assert served["additionalProperties"] is False, name

    item, application = item_code(), str(uuid.uuid4())
    await _grant(sharing, item)
    approval = sharing.token("approval", "service")
    built = LookupRequest(
        subject=Subject(kind="person", id=ALICE),
        dataset="gongan.huji",
        fields=["name"],
        purpose=Purpose(item_code=item, application_id=application),
    ).model_dump(mode="json")
    answered = await sharing.client.post(LOOKUPS_PATH, json=built, headers=approval)
    assert answered.status_code == 200, answered.text
    assert answered.json()["attributes"]["name"]["value"] == "陈桂英"
    for extended in (
        {**built, "reason": "not in the contract"},
        {**built, "purpose": {**built["purpose"], "case_id": "c-1"}},
    ):
        refused = await sharing.client.post(LOOKUPS_PATH, json=extended, headers=approval)
        assert refused.status_code == 422
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert refused.json()["type"] == "urn:wangban:problem:validation-error"
        assert any("\u4e00" <= ch <= "\u9fff" for ch in refused.json()["detail"])


async def test_lookup_over_http_and_refusals_keep_their_audit_record(sharing: Sharing) -> None:
    item, application = item_code(), str(uuid.uuid4())
    await _grant(sharing, item)
    approval = sharing.token("approval", "service")
    ok = await sharing.client.post(
        "/lookups", json=_lookup_body(ALICE, item, application), headers=approval
    )
    assert ok.status_code == 200, ok.text
    body = ok.json()
    assert body["attributes"]["name"]["value"] == "陈桂英"
    assert body["attributes"]["name"]["source"] == "government"
    assert body["predicates"] == {"over_80": True}
    denied = await sharing.client.post(
        "/lookups",
        json=_lookup_body(ALICE, item_code(), application),
        headers=approval,
    )
    assert denied.status_code == 403
    assert denied.headers["content-type"].startswith("application/problem+json")
    assert denied.json()["type"] == "urn:wangban:problem:lookup-denied"
    sharing.provider.down.add("gongan.huji")
    unavailable = await sharing.client.post(
        "/lookups", json=_lookup_body(ALICE, item, application), headers=approval
    )
    sharing.provider.down.clear()
    assert unavailable.status_code == 503
    assert unavailable.json()["type"] == "urn:wangban:problem:provider-unavailable"
    citizen = await sharing.client.post(
        "/lookups",
        json=_lookup_body(ALICE, item, application),
        headers=sharing.token("u-alice", "citizen", person_id=ALICE),
    )
    assert citizen.status_code == 403
    bad_id = await sharing.client.post(
        "/lookups",
        json=_lookup_body(ALICE[:-1] + ("0" if ALICE[-1] != "0" else "1"), item, application),
        headers=approval,
    )
    assert bad_id.status_code == 422 and "校验位" in bad_id.json()["detail"]

    auditor = sharing.token("auditor-1", "staff", roles=("auditor",))
    records = await sharing.client.get(
        "/admin/audit", params={"application_id": application}, headers=auditor
    )
    # The refusal and the failure were committed although their requests failed; the invalid
    # request and the citizen's call were never lookups.
    assert [r["outcome"] for r in records.json()] == ["unavailable", "denied", "granted"]
    assert all(ALICE not in str(r) for r in records.json())
    chain = await sharing.client.get("/admin/audit/verify", headers=auditor)
    assert chain.status_code == 200 and chain.json()["ok"] is True
    assert (await sharing.client.get("/admin/audit/verify", headers=approval)).status_code == 403


async def test_a_citizen_sees_only_their_own_data_usage(sharing: Sharing) -> None:
    item, application = item_code(), str(uuid.uuid4())
    await _grant(sharing, item)
    approval = sharing.token("approval", "service")
    for subject in (ALICE, BOB, ALICE):
        response = await sharing.client.post(
            "/lookups", json=_lookup_body(subject, item, application), headers=approval
        )
        assert response.status_code == 200
    alice = await sharing.client.get(
        "/me/data-usage", headers=sharing.token("u-alice", "citizen", person_id=ALICE)
    )
    bob = await sharing.client.get(
        "/me/data-usage", headers=sharing.token("u-bob", "citizen", person_id=BOB)
    )
    mine = [r for r in alice.json()["items"] if r["item_code"] == item]
    theirs = [r for r in bob.json()["items"] if r["item_code"] == item]
    assert len(mine) == 2 and len(theirs) == 1
    assert mine[0]["dataset_name"] == "户籍人口信息" and mine[0]["provider"] == "东莞市公安局"
    assert mine[0]["fields"] == ["name"] and mine[0]["predicates"] == ["over_80"]
    assert mine[0]["field_titles"] == ["姓名"]  # the catalogue's word, not the code
    assert mine[0]["used_by"] == "自动审批（秒批）" and mine[0]["application_id"] == application
    assert mine[0]["department"] is None and mine[0]["role"] is None
    not_real_name = await sharing.client.get(
        "/me/data-usage", headers=sharing.token("u-anon", "citizen")
    )
    assert not_real_name.status_code == 403
    assert not_real_name.json()["type"] == "urn:wangban:problem:real-name-required"
    assert (await sharing.client.get("/me/data-usage")).status_code == 401


async def test_consent_given_and_withdrawn_over_http(sharing: Sharing) -> None:
    item, application = item_code(), str(uuid.uuid4())
    await _grant(sharing, item, consent_required=True)
    approval = sharing.token("approval", "service")
    alice = sharing.token("u-alice", "citizen", person_id=ALICE)
    before = await sharing.client.post(
        "/lookups", json=_lookup_body(ALICE, item, application), headers=approval
    )
    assert before.json()["type"] == "urn:wangban:problem:consent-required"
    given = await sharing.client.post(
        "/me/consents", json={"item_code": item, "application_id": application}, headers=alice
    )
    assert given.status_code == 201
    during = await sharing.client.post(
        "/lookups", json=_lookup_body(ALICE, item, application), headers=approval
    )
    assert during.status_code == 200
    bob_tries = await sharing.client.delete(
        f"/me/consents/{given.json()['id']}",
        headers=sharing.token("u-bob", "citizen", person_id=BOB),
    )
    assert bob_tries.status_code == 404
    withdrawn = await sharing.client.delete(f"/me/consents/{given.json()['id']}", headers=alice)
    assert withdrawn.json()["revoked_at"] is not None
    after = await sharing.client.post(
        "/lookups", json=_lookup_body(ALICE, item, application), headers=approval
    )
    assert after.status_code == 403


async def test_wallet_and_public_verification(sharing: Sharing) -> None:
    cipher, blind_index = keys(sharing.settings)
    async with sharing.database.sessionmaker() as session, session.begin():
        issued = await certificates.issue_certificate(
            session,
            application_id=str(uuid.uuid4()),
            type_code="elderly_allowance_notice",
            holder=certificates.Holder(kind="person", id=ALICE, name="陈桂英"),
            fields={"monthly_amount": 200, "start_month": "2026-12"},
            cipher=cipher,
            blind_index=blind_index,
            at=datetime.now(UTC),
        )
    alice = sharing.token("u-alice", "citizen", person_id=ALICE)
    wallet = await sharing.client.get("/me/certificates", headers=alice)
    assert issued.id in [c["id"] for c in wallet.json()]
    mine = await sharing.client.get(f"/me/certificates/{issued.id}", headers=alice)
    assert mine.json()["document"]["holder"]["id"] == ALICE
    qr = mine.json()["qr_payload"]
    bob = sharing.token("u-bob", "citizen", person_id=BOB)
    assert (
        await sharing.client.get(f"/me/certificates/{issued.id}", headers=bob)
    ).status_code == 404
    assert issued.id not in [
        c["id"] for c in (await sharing.client.get("/me/certificates", headers=bob)).json()
    ]

    verified = await sharing.client.post("/certificates/verify", json={"qr": qr})  # no login
    assert verified.status_code == 200
    assert verified.json()["verdict"] == "valid"
    assert verified.json()["holder_name"] != "陈桂英" and verified.json()["holder_name"][0] == "陈"
    assert ALICE not in verified.text

    reviewer = sharing.token("reviewer-1", "staff", roles=("reviewer",), department="东莞市民政局")
    revoked = await sharing.client.post(
        f"/admin/certificates/{issued.id}/status",
        json={"status": "撤销", "reason": "重复发放"},
        headers=reviewer,
    )
    assert revoked.status_code == 200 and revoked.json()["status"] == "撤销"
    again = await sharing.client.post("/certificates/verify", json={"certificate_id": issued.id})
    assert again.json()["verdict"] == "revoked" and "重复发放" in again.json()["reason"]
    not_allowed = await sharing.client.post(
        f"/admin/certificates/{issued.id}/status",
        json={"status": "有效", "reason": "误操作"},
        headers=reviewer,
    )
    assert not_allowed.status_code == 409


async def test_the_wallet_lists_and_counts_without_reading_the_documents(
    sharing: Sharing,
) -> None:
    """The first screen shows how many certificates there are and the wallet lists them: the
    type, issuer, dates and status are columns in clear, so neither reads (let alone decrypts)
    the signed documents, which name the holder."""
    cipher, blind_index = keys(sharing.settings)
    holder = person_id(date(1950, 2, 3), 351)
    alice = sharing.token("u-holder", "citizen", person_id=holder)
    before = (await sharing.client.get("/me/certificates/count", headers=alice)).json()["count"]
    async with sharing.database.sessionmaker() as session, session.begin():
        issued = await certificates.issue_certificate(
            session,
            application_id=str(uuid.uuid4()),
            type_code="elderly_allowance_notice",
            holder=certificates.Holder(kind="person", id=holder, name="陈桂英"),
            fields={"monthly_amount": 200, "start_month": "2026-12"},
            cipher=cipher,
            blind_index=blind_index,
            at=datetime.now(UTC),
        )
    read: list[str] = []

    def watch(_c: object, _cursor: object, statement: str, *_: object) -> None:
        if "sharing.certificate" in statement:
            read.append(statement)

    engine = sharing.app.state.database.engine.sync_engine
    event.listen(engine, "before_cursor_execute", watch)
    try:
        count = await sharing.client.get("/me/certificates/count", headers=alice)
        listed = await sharing.client.get("/me/certificates", headers=alice)
    finally:
        event.remove(engine, "before_cursor_execute", watch)
    assert count.status_code == 200 and count.json() == {"count": before + 1}
    assert listed.status_code == 200 and len(listed.json()) == before + 1
    newest = listed.json()[0]
    assert newest["id"] == issued.id and newest["status"] == "有效"
    assert (newest["type_name"], newest["issuer"]) == ("高龄老人津贴核发通知", "东莞市民政局")
    assert read and not any("document_enc" in statement for statement in read)
    assert (await sharing.client.get("/me/certificates/count", headers=alice)).json()["count"] == (
        before + 1
    )
    bob = sharing.token("u-bob", "citizen", person_id=BOB)
    bobs = (await sharing.client.get("/me/certificates/count", headers=bob)).json()["count"]
    assert bobs == len((await sharing.client.get("/me/certificates", headers=bob)).json())
    staff = sharing.token("clerk", "staff", roles=("window_clerk",), department="某局")
    assert (await sharing.client.get("/me/certificates/count", headers=staff)).status_code == 403


async def test_the_access_policy_is_administered_by_data_admins(sharing: Sharing) -> None:
    admin = sharing.token("admin-1", "staff", roles=("data_admin",))
    item = item_code()
    body = {"consumer": "approval", "dataset": "gongan.huji", "item_code": item}
    wrong_field = await sharing.client.put(
        "/admin/grants", json={**body, "disclose_fields": ["shoe_size"]}, headers=admin
    )
    assert wrong_field.status_code == 422 and "shoe_size" in wrong_field.json()["detail"]
    created = await sharing.client.put(
        "/admin/grants", json={**body, "disclose_fields": ["name"]}, headers=admin
    )
    assert created.status_code == 200
    clerk = sharing.token("clerk-1", "staff", roles=("window_clerk",))
    assert (await sharing.client.put("/admin/grants", json=body, headers=clerk)).status_code == 403
    listed = await sharing.client.get("/admin/grants", params={"item_code": item}, headers=admin)
    assert [g["disclose_fields"] for g in listed.json()] == [["name"]]
    removed = await sharing.client.delete(f"/admin/grants/{created.json()['id']}", headers=admin)
    assert removed.status_code == 204
    datasets = await sharing.client.get("/datasets", headers=admin)
    assert {"gongan.huji", "shichang.zhizhao"} <= {d["code"] for d in datasets.json()}


async def test_the_person_behind_a_lookup_comes_from_a_signed_token_never_from_the_body(
    sharing: Sharing,
) -> None:
    item, application = item_code(), str(uuid.uuid4())
    await _grant(sharing, item)
    intake = sharing.token("approval", "service")
    clerk = Identity(
        subject="s-clerk-7",
        kind="staff",
        roles=frozenset({"window_clerk"}),
        department="东莞市人社局",
        assurance=AssuranceLevel.REAL_NAME,
    )
    signed = InternalTokens.from_settings(sharing.settings).issue(clerk, issuer="intake")
    forged = InternalTokens("not-the-platform-key", ttl_s=60).issue(clerk, issuer="intake")
    body = _lookup_body(ALICE, item, application)
    named = await sharing.client.post(
        "/lookups", json=body, headers={**intake, "X-Wangban-Actor": signed}
    )
    assert named.status_code == 200, named.text
    refused = await sharing.client.post(
        "/lookups", json=body, headers={**intake, "X-Wangban-Actor": forged}
    )
    assert refused.status_code == 401
    in_body = await sharing.client.post(
        "/lookups", json={**body, "actor": {"subject": "someone-else"}}, headers=intake
    )
    assert in_body.status_code == 422
    auditor = sharing.token("a-1", "staff", roles=("auditor",))
    records = await sharing.client.get(
        "/admin/audit", params={"application_id": application}, headers=auditor
    )
    assert [
        (r["actor_subject"], r["actor_department"], r["actor_role"]) for r in records.json()
    ] == [("s-clerk-7", "东莞市人社局", "window_clerk")]
    usage = await sharing.client.get(
        "/me/data-usage", headers=sharing.token("u-alice", "citizen", person_id=ALICE)
    )
    mine = [u for u in usage.json()["items"] if u["application_id"] == application]
    assert [u["used_by"] for u in mine] == ["东莞市人社局 窗口工作人员"]
    chain = await sharing.client.get("/admin/audit/verify", headers=auditor)
    assert chain.json()["ok"] is True, chain.text
