"""A citizen's whole journey through the gateway only, as the mini-program makes it.

Log in with WeChat (a local WeChat server answers code2Session), bind the real name (the sandbox
register), pass the face check (WeChat's result, queried by the gateway), search "公积金", read a
guide, apply for a 秒批 item whose materials come from sharing, see it approved, find the
certificate in the wallet, verify it publicly, read the inbox, rate the service, and see who
used my data. Every service is real, with its relay and consumers, on a real broker."""

from __future__ import annotations

import json
import uuid
from datetime import date
from pathlib import Path

from sqlalchemy import delete

from approval_service.models import ItemVersionCopy as ApprovalCopy
from catalog_service import repository as catalog_repository
from catalog_service import service as catalog
from catalog_service.schemas import ItemContent
from gateway.models import Account
from intake_service.models import ItemVersionCopy as IntakeCopy
from sandbox import ELDERLY_ALLOWANCE, persona_for
from sharing_service.models import ItemVersionCopy as SharingCopy
from sharing_service.registry import seed_registry
from tests.fakes.wechat import serve_fake_wechat
from tests.gateway.support import running_gateway, verify_real_person
from tests.grant_limits import set_aside_earlier_applications
from tests.infrastructure import Infrastructure
from tests.kit.support import eventually
from wangban.crypto import BlindIndex
from wangban.db import Database

RENT_WITHDRAWAL = "住房公积金提取（租房）"
DEMO_ITEMS = Path(__file__).parents[2] / "catalog_service" / "demo" / "items.json"
APPID = "wx1234567890abcdef"
SECRET = "journey-secret"


async def test_a_citizen_goes_from_login_to_a_verified_certificate_through_the_gateway_only(
    infrastructure: Infrastructure, database: Database, tmp_path: Path
) -> None:
    # The registry and just the items the journey meets (other tests count search results).
    demo = json.loads(DEMO_ITEMS.read_text("utf-8"))
    wanted = [
        i
        for i in demo
        if i["implementing_code"] == ELDERLY_ALLOWANCE or i["name"] == RENT_WITHDRAWAL
    ]
    async with database.sessionmaker() as session, session.begin():
        await seed_registry(session)
        for content in wanted:
            if await catalog_repository.item_by_code(session, content["implementing_code"]):
                continue
            draft = await catalog.create_item_draft(
                session, content=ItemContent.model_validate(content)
            )
            await catalog.publish_version(session, version_id=draft.id)
    elder = persona_for(ELDERLY_ALLOWANCE)
    async with (
        serve_fake_wechat(appid=APPID, secret=SECRET) as wechat,
        running_gateway(
            infrastructure,
            database,
            background=True,
            data_dir=tmp_path,
            wechat_api_base=wechat.base_url,
            wechat_appid=APPID,
            wechat_app_secret=SECRET,
        ) as gateway,
    ):
        api = gateway.client
        openid = f"o-journey-{uuid.uuid4().hex[:8]}"
        # One account per person: an earlier test's account for this persona steps aside.
        person_ref = BlindIndex.from_settings(gateway.settings).resident_id(elder.id_number)
        async with database.sessionmaker() as session, session.begin():
            await session.execute(delete(Account).where(Account.person_ref == person_ref))
        wechat.login_codes["code-journey"] = (openid, None)

        # Log in.
        login = await api.post("/api/v1/auth/wechat", json={"code": "code-journey"})
        assert login.status_code == 200, login.text
        assert "session_key" not in login.text and openid not in login.text
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        me = (await api.get("/api/v1/me", headers=headers)).json()
        assert me["assurance"] == "wechat"

        # Applying needs a verified person: the gateway says so, clearly.
        early = await api.post(
            "/api/v1/applications",
            json={"item_code": ELDERLY_ALLOWANCE, "form": {}},
            headers={**headers, "Idempotency-Key": str(uuid.uuid4())},
        )
        assert early.status_code == 403 and "实名" in early.json()["detail"]

        # 实名, then 实人 (WeChat's face check, its result asked of WeChat).
        headers = await verify_real_person(
            api, wechat, headers, openid=openid, name=elder.name, id_number=elder.id_number
        )
        me = (await api.get("/api/v1/me", headers=headers)).json()
        assert me["assurance"] == "real_person" and me["name_masked"].endswith("*")
        assert elder.id_number not in json.dumps(me, ensure_ascii=False)

        # Find and read.
        found = (await api.get("/api/v1/items", params={"q": "公积金"})).json()
        assert RENT_WITHDRAWAL in [i["name"] for i in found["items"]]
        # The search screen's filters: the department of what was found is among them.
        facets = (await api.get("/api/v1/facets")).json()
        rent = next(i for i in found["items"] if i["name"] == RENT_WITHDRAWAL)
        assert rent["department"] in {d["name"] for d in facets["departments"]}
        assert all(f["items"] > 0 for f in facets["departments"] + facets["themes"])
        guide = await api.get(f"/api/v1/items/{ELDERLY_ALLOWANCE}")
        assert guide.status_code == 200 and guide.json()["content"]["auto_approval"]

        version_id = guide.json()["id"]

        async def item_known_everywhere() -> bool:
            async with database.sessionmaker() as session:
                return all(
                    [
                        await session.get(IntakeCopy, version_id) is not None,
                        await session.get(ApprovalCopy, version_id) is not None,
                        await session.get(SharingCopy, version_id) is not None,
                    ]
                )

        await eventually(item_known_everywhere, timeout_s=60)

        # Subscribe to the certificate message, then apply (materials come from sharing).
        await api.post(
            "/api/v1/subscriptions",
            json={"results": {"tmpl-certificate-issued": "accept"}},
            headers=headers,
        )
        content = next(
            i
            for i in json.loads(DEMO_ITEMS.read_text("utf-8"))
            if i["implementing_code"] == ELDERLY_ALLOWANCE
        )
        # Granted once per person: earlier tests' allowance applications of the persona step aside.
        await set_aside_earlier_applications(
            database, gateway.settings, id_number=elder.id_number, item_code=ELDERLY_ALLOWANCE
        )
        key = str(uuid.uuid4())
        application = {
            "item_code": ELDERLY_ALLOWANCE,
            "form": elder.form(ELDERLY_ALLOWANCE, today=date.today()),
            "materials": [
                {"index": i, "commitment": True}
                for i, m in enumerate(content["materials"])
                if m["source"] == "commitment"
            ],
        }
        applied = await api.post(
            "/api/v1/applications", json=application, headers={**headers, "Idempotency-Key": key}
        )
        assert applied.status_code == 201, applied.text
        again = await api.post(
            "/api/v1/applications", json=application, headers={**headers, "Idempotency-Key": key}
        )
        assert again.json()["id"] == applied.json()["id"]  # the same submission, once
        application_id = applied.json()["id"]

        async def delivered() -> bool:
            answer = await api.get(f"/api/v1/applications/{application_id}", headers=headers)
            return bool(answer.json()["status"] == "delivered")

        await eventually(delivered, timeout_s=60)

        # The wallet, public verification, the inbox, the rating, who used my data.
        wallet = (await api.get("/api/v1/certificates", headers=headers)).json()
        # The newest allowance notice is this application's (the persona may hold older ones).
        certificate = max(
            (c for c in wallet if c["type_code"] == "elderly_allowance_notice"),
            key=lambda c: c["issued_at"],
        )
        verified = await api.get("/api/v1/certificates/verify", params={"id": certificate["id"]})
        assert verified.status_code == 200, verified.text
        assert verified.json()["verdict"] == "valid"

        async def told() -> bool:
            inbox = (await api.get("/api/v1/messages", headers=headers)).json()
            return "certificate.issued" in {m["kind"] for m in inbox["items"]}

        await eventually(told, timeout_s=30)
        inbox = (await api.get("/api/v1/messages", headers=headers)).json()
        first = inbox["items"][0]
        read = await api.post(f"/api/v1/messages/{first['id']}/read", headers=headers)
        assert read.status_code == 200

        rated = await api.post(
            f"/api/v1/applications/{application_id}/rating",
            json={"score": 5, "tags": ["办事便捷"]},
            headers=headers,
        )
        assert rated.status_code in (200, 201), rated.text
        usage = (await api.get("/api/v1/data-usage", headers=headers)).json()
        assert any(u["application_id"] == application_id for u in usage["items"])

        home = (await api.get("/api/v1/home", headers=headers)).json()
        assert home["wallet_count"] >= 1 and home["degraded"] == []
