"""The intake service over HTTP: idempotent submission under concurrent duplicates, who may
see what (a foreign application is 404), uploads and their limits, window intake."""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import date, datetime, timedelta

import httpx
from sqlalchemy import func, select

from catalog_service.events import ItemPublished, ItemWithdrawn
from intake_service import consumers
from intake_service.models import Application
from tests.catalog.support import item_content
from tests.intake.support import NOW, PUBLISHED, Intake, publish_item
from tests.sharing.support import person_id
from wangban.auth import AssuranceLevel, Identity
from wangban.crypto import BlindIndex
from wangban.events import envelope_for

PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
ALICE = person_id(date(1950, 1, 2), 601)
BOB = person_id(date(1960, 2, 3), 602)
COMMITMENT_ONLY = [{"name": "承诺书", "source": "commitment"}]
READER = {"method": "id_card_reader", "reference": "R-1"}
"""The clerk's statement that the ID card was read at the counter (window intake)."""
WITH_UPLOAD = [
    {"name": "承诺书", "source": "commitment"},
    {"name": "银行卡复印件", "source": "upload"},
]


def _body(version_id: str, id_number: str, **extra: object) -> dict[str, object]:
    return {
        "item_version_id": version_id,
        "applicant": {"kind": "person", "id_number": id_number, "name": "陈桂英"},
        "form": {"bank_account": "6222000011112222"},
        "materials": [{"index": 0, "commitment": True}],
        **extra,
    }


async def test_concurrent_duplicates_with_one_key_make_one_application(intake: Intake) -> None:
    version = await intake.item(
        department=f"并发测试局-{uuid.uuid4().hex[:6]}", materials=COMMITMENT_ONLY
    )
    alice = intake.citizen("u-alice-1", ALICE)
    key = {"Idempotency-Key": f"k-{uuid.uuid4()}"}
    responses = await asyncio.gather(
        *(
            intake.client.post(
                "/applications", json=_body(version, ALICE), headers={**alice, **key}
            )
            for _ in range(4)
        )
    )
    assert sorted(r.status_code for r in responses)[0] in (200, 201), [r.text for r in responses]
    ids = {r.json()["id"] for r in responses}
    assert len(ids) == 1 and all(r.status_code in (200, 201) for r in responses)
    assert [r.status_code for r in responses].count(201) == 1
    async with intake.database.sessionmaker() as session:
        count = await session.scalar(
            select(func.count()).select_from(Application).where(Application.id.in_(ids))
        )
    assert count == 1
    [application] = [r.json() for r in responses][:1]
    assert application["status"] == "accepted"
    missing_key = await intake.client.post(
        "/applications", json=_body(version, ALICE), headers=alice
    )
    assert missing_key.status_code == 400
    assert missing_key.json()["type"] == "urn:wangban:problem:idempotency-key-required"


async def _publish_version(
    intake: Intake, *, item_id: str, code: str, published_at: datetime
) -> str:
    """A version of item ``item_id`` as ``item.published`` brings it to intake."""
    content = item_content(implementing_code=code, materials=COMMITMENT_ONLY)
    event = ItemPublished(
        item_id=item_id,
        version_id=str(uuid.uuid4()),
        version=1,
        implementing_code=code,
        lists=[],
        published_at=published_at.isoformat(),
        content=content.model_dump(mode="json"),
    )
    async with intake.database.sessionmaker() as session, session.begin():
        await consumers.keep_item_version(
            session, event=event, envelope=envelope_for(event, source="/catalog")
        )
    return event.version_id


async def test_an_item_is_applied_for_by_its_code_in_its_current_version(intake: Intake) -> None:
    """The gateway names the item by its implementing code (it no longer asks the catalog for
    the current version's id): intake binds the application to the latest version it has, and
    answers a withdrawn or unknown code 404 ``item-not-found``, as the catalogue does."""
    item_id, code = str(uuid.uuid4()), f"TEST-CODE-{uuid.uuid4().hex[:10]}"
    first = await _publish_version(intake, item_id=item_id, code=code, published_at=PUBLISHED)
    alice = intake.citizen(f"u-alice-{uuid.uuid4().hex[:6]}", ALICE)
    body = {**_body("", ALICE), "item_code": code}
    del body["item_version_id"]

    applied = await intake.client.post(
        "/applications", json=body, headers={**alice, "Idempotency-Key": "code-1"}
    )
    assert applied.status_code == 201, applied.text
    assert (applied.json()["item_version_id"], applied.json()["item_code"]) == (first, code)
    # The same request again, naming the version instead of the code (a gateway upgraded in
    # between), is the same request: the same application.
    again = await intake.client.post(
        "/applications",
        json=_body(first, ALICE),
        headers={**alice, "Idempotency-Key": "code-1"},
    )
    assert (again.status_code, again.json()["id"]) == (200, applied.json()["id"])

    second = await _publish_version(
        intake, item_id=item_id, code=code, published_at=PUBLISHED + timedelta(days=1)
    )
    newer = await intake.client.post(
        "/applications", json=body, headers={**alice, "Idempotency-Key": "code-2"}
    )
    assert newer.status_code == 201, newer.text
    assert newer.json()["item_version_id"] == second

    async with intake.database.sessionmaker() as session, session.begin():
        withdrawn = ItemWithdrawn(
            item_id=item_id, version_id=second, implementing_code=code, withdrawn_at=NOW.isoformat()
        )
        await consumers.item_withdrawn(
            session, event=withdrawn, envelope=envelope_for(withdrawn, source="/catalog")
        )
    refused = await intake.client.post(
        "/applications", json=body, headers={**alice, "Idempotency-Key": "code-3"}
    )
    assert refused.status_code == 404, refused.text
    assert refused.json()["type"] == "urn:wangban:problem:item-not-found"
    assert re.search(r"[\u4e00-\u9fff]", refused.json()["detail"])
    # (A code intake has never seen is asked of the catalog: tests/gateway.)
    both = await intake.client.post(
        "/applications",
        json={**body, "item_version_id": first},
        headers={**alice, "Idempotency-Key": "code-4"},
    )
    assert both.status_code == 422, both.text


async def test_applicants_apply_only_as_themselves(intake: Intake) -> None:
    version = await intake.item(materials=COMMITMENT_ONLY)
    as_bob = await intake.client.post(
        "/applications",
        json=_body(version, BOB),
        headers={**intake.citizen("u-alice-2", ALICE), "Idempotency-Key": "k1"},
    )
    assert as_bob.status_code == 403
    assert as_bob.json()["type"] == "urn:wangban:problem:applicant-mismatch"


async def test_only_the_applicant_and_the_right_staff_see_an_application(intake: Intake) -> None:
    department = f"可见性测试局-{uuid.uuid4().hex[:6]}"
    version = await intake.item(department=department, materials=COMMITMENT_ONLY)
    alice = intake.citizen("u-alice-3", ALICE)
    created = await intake.client.post(
        "/applications", json=_body(version, ALICE), headers={**alice, "Idempotency-Key": "k2"}
    )
    application_id = created.json()["id"]
    path = f"/applications/{application_id}"
    bob = intake.citizen("u-bob-3", BOB)
    assert (await intake.client.get(path, headers=alice)).status_code == 200
    for other in (
        bob,
        intake.staff("r-other", "reviewer", department="别的局"),
        intake.staff("clerk-x", "window_clerk", department="某窗口", region="441900004000"),
    ):
        hidden = await intake.client.get(path, headers=other)
        assert hidden.status_code == 404
        assert hidden.json()["type"] == "urn:wangban:problem:application-not-found"
    assert (await intake.client.post(f"{path}/withdraw", json={}, headers=bob)).status_code == 404
    assert (
        await intake.client.get(f"/applications/{uuid.uuid4()}", headers=alice)
    ).status_code == 404
    reviewer = intake.staff("r-1", "reviewer", department=department)
    assert (await intake.client.get(path, headers=reviewer)).status_code == 200
    listed = await intake.client.get("/staff/applications", headers=reviewer)
    assert [a["id"] for a in listed.json()] == [application_id]
    auditor = intake.staff("a-1", "auditor")
    assert (await intake.client.get(path, headers=auditor)).status_code == 200
    # The auditor reads but never acts.
    refused = await intake.client.post(
        f"/staff/applications/{application_id}/accept", headers=auditor
    )
    assert refused.status_code == 404
    mine = await intake.client.get("/applications", headers=alice)
    assert application_id in [a["id"] for a in mine.json()]
    assert application_id not in [
        a["id"] for a in (await intake.client.get("/applications", headers=bob)).json()
    ]


async def _upload(
    intake: Intake, headers: dict[str, str], data: bytes, filename: str
) -> httpx.Response:
    return await intake.client.post(
        "/files",
        files={"file": (filename, data, "application/pdf")},
        data={"material_name": "银行卡复印件"},
        headers=headers,
    )


async def test_uploads_are_checked_stored_and_served_only_to_those_entitled(intake: Intake) -> None:
    department = f"上传测试局-{uuid.uuid4().hex[:6]}"
    version = await intake.item(department=department, materials=WITH_UPLOAD)
    alice = intake.citizen("u-alice-4", ALICE)
    html = await _upload(intake, alice, b"<html><script>alert(1)</script></html>", "card.pdf")
    assert html.status_code == 422 and html.json()["type"] == "urn:wangban:problem:file-rejected"
    assert "PDF" in html.json()["detail"]
    too_large = await _upload(intake, alice, PDF + b"0" * 5000, "big.pdf")
    assert too_large.status_code == 422 and "4 KB" in too_large.json()["detail"]
    stored = await _upload(intake, alice, PDF, "../../etc/card.pdf")
    assert stored.status_code == 201
    file = stored.json()
    assert file["filename"] == "card.pdf" and file["media_type"] == "application/pdf"
    library = await intake.client.get("/files", headers=alice)
    assert file["id"] in [f["id"] for f in library.json()]

    body = _body(
        version,
        ALICE,
        materials=[{"index": 0, "commitment": True}, {"index": 1, "file_id": file["id"]}],
    )
    created = await intake.client.post(
        "/applications", json=body, headers={**alice, "Idempotency-Key": "k3"}
    )
    assert created.status_code == 201, created.text
    assert created.json()["status"] == "submitted"  # an upload waits for a person's check
    assert [m["status"] for m in created.json()["materials"]] == ["commitment", "uploaded"]

    download = f"/files/{file['id']}"
    own = await intake.client.get(download, headers=alice)
    assert own.status_code == 200 and own.content == PDF
    assert own.headers["x-content-type-options"] == "nosniff"
    assert (
        await intake.client.get(download, headers=intake.citizen("u-bob-4", BOB))
    ).status_code == 404
    assert (
        await intake.client.get(
            download, headers=intake.staff("r-x", "reviewer", department="别的局")
        )
    ).status_code == 404
    reviewer = intake.staff("r-2", "reviewer", department=department)
    assert (await intake.client.get(download, headers=reviewer)).status_code == 200
    auditor = intake.staff("a-2", "auditor")
    assert (await intake.client.get(download, headers=auditor)).status_code == 404
    accepted = await intake.client.post(
        f"/staff/applications/{created.json()['id']}/accept", headers=reviewer
    )
    assert accepted.status_code == 200 and accepted.json()["status"] == "accepted"


async def test_a_window_clerk_files_and_accepts_for_an_applicant(intake: Intake) -> None:
    version = await intake.item(scope="city", region_code="441900", materials=COMMITMENT_ONLY)
    clerk = intake.staff(
        "clerk-1", "window_clerk", department="南城街道综合窗口", region="441900004000"
    )
    created = await intake.client.post(
        "/staff/applications",
        json={**_body(version, ALICE), "agent": "代办人-张三", "verification": READER},
        headers={**clerk, "Idempotency-Key": "w-1"},
    )
    assert created.status_code == 201, created.text
    application = created.json()
    assert application["status"] == "accepted" and application["channel"] == "window"
    assert application["accepting_window"] == "南城街道综合窗口"
    assert (
        application["accepting_region"] == "441900004000" and application["region_code"] == "441900"
    )
    assert application["accepted_by"] == "clerk-1" and application["agent"] == "代办人-张三"
    # Who applied, as the receipt and the window's list show it: enough to confirm with the
    # person at the counter, never the whole ID number or name.
    masked = {"kind": "person", "name": "陈**", "id_number": f"{ALICE[:6]}********{ALICE[-4:]}"}
    assert application["applicant"] == masked
    listed = await intake.client.get("/staff/applications", headers=clerk)
    assert {a["id"]: a["applicant"] for a in listed.json()}[application["id"]] == masked
    assert ALICE not in listed.text and "陈桂英" not in listed.text
    district_only = await intake.item(
        scope="district", region_code="441900003000", materials=COMMITMENT_ONLY
    )
    refused = await intake.client.post(
        "/staff/applications",
        json={**_body(district_only, ALICE), "verification": READER},
        headers={**clerk, "Idempotency-Key": "w-2"},
    )
    assert refused.status_code == 403
    assert refused.json()["type"] == "urn:wangban:problem:outside-service-scope"


async def test_a_clerk_scans_paper_materials_that_the_deciding_department_then_reads(
    intake: Intake,
) -> None:
    """全城通办 with paper: the window scans what the applicant brought into their library,
    files with it, and the owning department's reviewer reads the application and the scan."""
    department = f"扫描测试局-{uuid.uuid4().hex[:6]}"
    version = await intake.item(department=department, materials=WITH_UPLOAD)
    clerk = intake.staff("clerk-9", "window_clerk", department="东城街道综合窗口", region="441900")

    async def scan(id_number: str, headers: dict[str, str]) -> httpx.Response:
        return await intake.client.post(
            "/staff/files",
            files={"file": ("scan.pdf", PDF, "application/pdf")},
            data={
                "material_name": "银行卡复印件",
                "applicant_kind": "person",
                "applicant_id_number": id_number,
            },
            headers=headers,
        )

    wrong_number = await scan(ALICE[:-1] + ("0" if ALICE[-1] != "0" else "1"), clerk)
    assert wrong_number.status_code == 422, wrong_number.text
    assert wrong_number.json()["type"] == "urn:wangban:problem:invalid-applicant"
    assert (await scan(ALICE, intake.citizen("u-alice-9", ALICE))).status_code == 403
    scanned = await scan(ALICE, clerk)
    assert scanned.status_code == 201, scanned.text
    file_id = scanned.json()["id"]

    filed = await intake.client.post(
        "/staff/applications",
        json={
            **_body(
                version,
                ALICE,
                materials=[{"index": 0, "commitment": True}, {"index": 1, "file_id": file_id}],
            ),
            "verification": READER,
        },
        headers={**clerk, "Idempotency-Key": f"scan-{uuid.uuid4()}"},
    )
    assert filed.status_code == 201, filed.text
    application_id = filed.json()["id"]

    reviewer = intake.staff("r-9", "reviewer", department=department)
    read = await intake.client.get(f"/staff/applications/{application_id}", headers=reviewer)
    assert read.status_code == 200, read.text
    scan_row = read.json()["materials"][1]
    assert (scan_row["status"], scan_row["evidence_kind"]) == ("uploaded", "file")
    assert scan_row["evidence_id"] == file_id
    download = await intake.client.get(f"/files/{file_id}", headers=reviewer)
    assert download.status_code == 200 and download.content == PDF
    # Not theirs to read: another department's reviewer, an auditor (lists only), a bad id.
    for outsider in (
        intake.staff("r-10", "reviewer", department="别的局"),
        intake.staff("a-9", "auditor"),
    ):
        path = f"/staff/applications/{application_id}"
        assert (await intake.client.get(path, headers=outsider)).status_code == 404
    missing = await intake.client.get("/staff/applications/not-an-id", headers=reviewer)
    assert missing.status_code == 404


async def test_rating_a_completed_application_and_the_rectification_it_opens(
    intake: Intake,
) -> None:
    from approval_service.events import CaseApproved
    from intake_service import consumers
    from wangban.events import envelope_for

    department = f"评价测试局-{uuid.uuid4().hex[:6]}"
    version = await intake.item(
        department=department,
        materials=COMMITMENT_ONLY,
        result_kind="decision",  # completed on approval (a certificate item waits for it)
        certificate_type=None,
    )
    alice = intake.citizen("u-alice-5", ALICE)
    created = await intake.client.post(
        "/applications", json=_body(version, ALICE), headers={**alice, "Idempotency-Key": "r-1"}
    )
    application_id = created.json()["id"]
    path = f"/applications/{application_id}"
    # What the citizen may do comes with the application, as the routes then enforce it.
    assert created.json()["actions"] == {"withdraw": True, "supplement": False, "rate": False}
    too_early = await intake.client.post(f"{path}/rating", json={"score": 5}, headers=alice)
    assert too_early.status_code == 409
    event = CaseApproved(
        application_id=application_id,
        item_id=str(uuid.uuid4()),
        item_version_id=version,
        item_code="x",
        decided_at="2026-11-23T01:00:00+00:00",
        decided_by="auto",
        result_kind="decision",
    )
    async with intake.database.sessionmaker() as session, session.begin():
        await consumers.approved(session, event=event, envelope=envelope_for(event, source="/t"))
    completed = (await intake.client.get(path, headers=alice)).json()
    assert completed["status"] == "completed"
    assert completed["actions"] == {"withdraw": False, "supplement": False, "rate": True}
    assert not completed["rated"]
    assert [(t["to_status"], t["to_status_name"]) for t in completed["timeline"]][-1] == (
        "completed",
        "已办结",
    )
    withdrawn_late = await intake.client.post(f"{path}/withdraw", json={}, headers=alice)
    assert withdrawn_late.status_code == 409

    reviewer = intake.staff("r-5", "reviewer", department=department)
    assert (
        await intake.client.post(f"{path}/rating", json={"score": 1}, headers=reviewer)
    ).status_code == 404
    bad = await intake.client.post(
        f"{path}/rating",
        json={"score": 2, "tags": ["多次跑动"], "comment": "材料要求说明不清"},
        headers=alice,
    )
    assert bad.status_code == 201, bad.text
    again = await intake.client.post(f"{path}/rating", json={"score": 5}, headers=alice)
    assert again.status_code == 409
    rated = (await intake.client.get(path, headers=alice)).json()
    assert rated["rated"] and not rated["actions"]["rate"]

    async with intake.database.sessionmaker() as session:
        from intake_service import ratings

        case = await ratings.rectification_of(session, application_id=application_id)
    assert case is not None and case.department == department
    rectification = f"/staff/rectifications/{case.id}"
    early_close = await intake.client.post(f"{rectification}/close", headers=reviewer)
    assert early_close.status_code == 409
    replied = await intake.client.post(
        f"{rectification}/reply", json={"text": "已修订办事指南"}, headers=reviewer
    )
    assert replied.json()["status"] == "replied"
    other = intake.staff("r-6", "reviewer", department="别的局")
    assert (
        await intake.client.post(f"{rectification}/return-visit", json={"text": "x"}, headers=other)
    ).status_code == 403
    visited = await intake.client.post(
        f"{rectification}/return-visit", json={"text": "电话回访，申请人认可"}, headers=reviewer
    )
    assert visited.json()["return_visited_at"] is not None
    closed = await intake.client.post(f"{rectification}/close", headers=reviewer)
    assert closed.status_code == 200 and closed.json()["status"] == "closed"

    figures = await intake.client.get(
        "/staff/statistics",
        params={"start": "2026-01-01", "end": "2026-12-31", "department": "别的局"},
        headers=reviewer,  # a reviewer sees their own department whatever they ask
    )
    body = figures.json()
    assert figures.status_code == 200 and body["department"] == department
    assert body["applications"] == 1 and body["completed"] == 1


async def test_an_invalid_id_number_is_refused_before_anything_is_written(intake: Intake) -> None:
    version = await intake.item(materials=COMMITMENT_ONLY)
    clerk = intake.staff("clerk-2", "window_clerk", department="莞城窗口", region="441900001000")
    wrong = ALICE[:-1] + ("0" if ALICE[-1] != "0" else "1")
    refused = await intake.client.post(
        "/staff/applications",
        json={**_body(version, wrong), "verification": READER},
        headers={**clerk, "Idempotency-Key": "bad-id"},
    )
    assert refused.status_code == 422
    assert refused.json()["type"] == "urn:wangban:problem:invalid-applicant"
    assert "校验位" in refused.json()["detail"] and wrong not in refused.text
    listed = await intake.client.get("/staff/applications", headers=clerk)
    assert listed.json() == []


async def test_a_company_is_applied_for_only_by_someone_acting_for_it(intake: Intake) -> None:
    from tests.sharing.support import company_id

    version = await intake.item(serves=["法人"], materials=COMMITMENT_ONLY)
    company = company_id("MA4W7777")
    body = {
        **_body(version, company),
        "applicant": {"kind": "company", "id_number": company, "name": "东莞市测试五金有限公司"},
    }
    stranger = intake.citizen("u-alice-7", ALICE)
    refused = await intake.client.post(
        "/applications", json=body, headers={**stranger, "Idempotency-Key": "co-1"}
    )
    assert refused.status_code == 403
    agent = intake._token(
        Identity(
            subject="u-alice-7",
            kind="citizen",
            assurance=AssuranceLevel.REAL_PERSON,
            acting_for=company,
        )
    )
    accepted = await intake.client.post(
        "/applications", json=body, headers={**agent, "Idempotency-Key": "co-2"}
    )
    assert accepted.status_code == 201, accepted.text
    assert accepted.json()["status"] == "accepted"


async def test_an_item_needing_real_person_checks_refuses_a_weaker_login(intake: Intake) -> None:
    version = await intake.item(assurance="real_person", materials=COMMITMENT_ONLY)
    weak = intake._token(
        Identity(
            subject="u-alice-8",
            kind="citizen",
            assurance=AssuranceLevel.REAL_NAME,
            person_ref=BlindIndex.from_settings(intake.settings).resident_id(ALICE),
        )
    )
    refused = await intake.client.post(
        "/applications", json=_body(version, ALICE), headers={**weak, "Idempotency-Key": "as-1"}
    )
    assert refused.status_code == 403
    assert refused.json()["type"] == "urn:wangban:problem:insufficient-assurance"
    assert refused.json()["required_assurance"] == "real_person"


async def test_one_bundle_submission_over_http(intake: Intake) -> None:
    from tests.intake.support import publish_bundle

    async with intake.database.sessionmaker() as session, session.begin():
        first = await publish_item(session, name="出生医学证明首次签发", materials=COMMITMENT_ONLY)
        second = await publish_item(
            session, name="新生儿入户登记", department="东莞市公安局", materials=COMMITMENT_ONLY
        )
        bundle = await publish_bundle(
            session, [first, second], [{"bank": "bank_account"}, {"bank": "bank_account"}]
        )
    alice = intake.citizen("u-alice-9", ALICE)
    one = [{"index": 0, "commitment": True}]
    created = await intake.client.post(
        "/applications",
        json={
            "bundle_version_id": bundle,
            "applicant": {"kind": "person", "id_number": ALICE, "name": "陈桂英"},
            "form": {"bank": "6222000011112222"},
            "member_materials": {first.version_id: one, second.version_id: one},
        },
        headers={**alice, "Idempotency-Key": "bundle-http-1"},
    )
    assert created.status_code == 201, created.text
    parent = created.json()
    assert parent["kind"] == "bundle" and parent["bundle"]["summary"] == "0/2 项已办结"
    assert sorted(m["department"] for m in parent["members"]) == ["东莞市公安局", "东莞市民政局"]
    assert all(m["status"] == "accepted" for m in parent["members"])
    mine = await intake.client.get("/applications", headers=alice)
    assert [a["id"] for a in mine.json()].count(parent["id"]) == 1
    assert not {m["id"] for m in parent["members"]} & {a["id"] for a in mine.json()}


async def test_a_certificate_that_arrives_before_the_decision_is_delivered_when_it_completes(
    intake: Intake,
) -> None:
    """Sharing's ``certificate.issued`` and approval's ``case.approved`` travel on different
    topics: after a restart intake may read the certificate first. It must not be dropped —
    the application is delivered as soon as the decision completes it, and only once."""
    from approval_service.events import CaseApproved
    from intake_service import consumers
    from sharing_service.events import CertificateIssued
    from wangban.events import envelope_for

    version = await intake.item(materials=COMMITMENT_ONLY)
    alice = intake.citizen("u-alice-early", ALICE)
    created = await intake.client.post(
        "/applications", json=_body(version, ALICE), headers={**alice, "Idempotency-Key": "e-1"}
    )
    application_id = created.json()["id"]
    path = f"/applications/{application_id}"
    issued = CertificateIssued(
        certificate_id=str(uuid.uuid4()),
        type_code="gaoling-jintie",
        type_name="高龄津贴发放通知",
        issuer_code="11441900007330256F",
        application_id=application_id,
        holder_kind="person",
        issued_at="2026-11-23T01:00:01+00:00",
        valid_until=None,
    )
    approved = CaseApproved(
        application_id=application_id,
        item_id=str(uuid.uuid4()),
        item_version_id=version,
        item_code="x",
        decided_at="2026-11-23T01:00:00+00:00",
        decided_by="auto",
        result_kind="certificate",
    )
    async with intake.database.sessionmaker() as session, session.begin():
        await consumers.certificate_issued(
            session, event=issued, envelope=envelope_for(issued, source="/t")
        )
    assert (await intake.client.get(path, headers=alice)).json()["status"] == "accepted"

    async with intake.database.sessionmaker() as session, session.begin():
        await consumers.approved(
            session, event=approved, envelope=envelope_for(approved, source="/t")
        )
    answer = (await intake.client.get(path, headers=alice)).json()
    assert answer["status"] == "delivered"

    # The same certificate again (a redelivery under a new envelope) changes nothing.
    async with intake.database.sessionmaker() as session, session.begin():
        await consumers.certificate_issued(
            session, event=issued, envelope=envelope_for(issued, source="/t")
        )
    again = (await intake.client.get(path, headers=alice)).json()
    assert again["status"] == "delivered"
    statuses = [entry["to_status"] for entry in again["timeline"]]
    assert statuses.count("delivered") == 1 and statuses[-2:] == ["completed", "delivered"]
