"""The whole 秒批 path, with no human action: a citizen applies in intake → approval evaluates
the item's rules over shared data → approved → the sharing service issues the e-certificate →
it is in the citizen's wallet, the application shows the result delivered, and the citizen is
told (in-app inbox and a WeChat subscription message, simulated in test mode).

Five real services (catalog, intake, approval, sharing, notify) with their relays, consumers and
the notify dispatcher, a
real Kafka-protocol broker, real PostgreSQL; the sharing service also answers HTTP on a local
port, as intake and approval call it. The demo item 高龄老人津贴申领 and a sandbox persona who
meets its conditions (and one who does not) are used as they are in the demo."""

from __future__ import annotations

import json
import uuid
from contextlib import AsyncExitStack
from datetime import date
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from approval_service.models import Case, Decision
from catalog_service import repository as catalog_repository
from catalog_service import service as catalog
from catalog_service.schemas import ItemContent
from notify_service.models import Message
from notify_service.template_versions import seed_defaults as seed_notify_templates
from sandbox import ELDERLY_ALLOWANCE, persona_for
from sharing_service.models import Certificate
from sharing_service.registry import seed_registry
from tests.grant_limits import set_aside_earlier_applications
from tests.infrastructure import Infrastructure, make_settings
from tests.kit.support import eventually
from tests.serving import serve_asgi
from wangban.app import create_service_app
from wangban.auth import AssuranceLevel, Identity, InternalTokens
from wangban.consumer import wait_until_assigned
from wangban.crypto import BlindIndex
from wangban.db import Database
from wangban.services import load_spec

CERTIFICATE_TEMPLATE = "tmpl-certificate-issued"
DEMO_ITEMS = Path(__file__).parents[2] / "catalog_service" / "demo" / "items.json"


async def test_a_citizen_gets_an_allowance_notice_in_the_wallet_without_any_human_step(
    infrastructure: Infrastructure, database: Database, tmp_path: Path
) -> None:
    content = next(
        i
        for i in json.loads(DEMO_ITEMS.read_text("utf-8"))
        if i["implementing_code"] == ELDERLY_ALLOWANCE
    )
    async with database.sessionmaker() as session, session.begin():
        await seed_registry(session)
    base = make_settings(infrastructure, data_dir=tmp_path)
    async with AsyncExitStack() as stack:
        sharing_app = create_service_app(load_spec("sharing"), base, background=True)
        await stack.enter_async_context(sharing_app.router.lifespan_context(sharing_app))
        sharing_url = await stack.enter_async_context(serve_asgi(sharing_app))
        # The catalog by URL too: approval asks it for a version it has not read yet.
        catalog_app = create_service_app(
            load_spec("catalog"),
            make_settings(infrastructure, data_dir=tmp_path, sharing_url=sharing_url),
            background=True,
        )
        await stack.enter_async_context(catalog_app.router.lifespan_context(catalog_app))
        catalog_url = await stack.enter_async_context(serve_asgi(catalog_app))
        settings = make_settings(
            infrastructure, data_dir=tmp_path, sharing_url=sharing_url, catalog_url=catalog_url
        )
        apps = {"catalog": catalog_app} | {
            name: create_service_app(load_spec(name), settings, background=True)
            for name in ("intake", "approval", "notify")
        }
        for name, app in apps.items():
            if name != "catalog":
                await stack.enter_async_context(app.router.lifespan_context(app))
        runners = [
            runner for app in (*apps.values(), sharing_app) for runner in app.state.runtime.runners
        ]
        await wait_until_assigned(runners, timeout_s=90)

        async with database.sessionmaker() as session, session.begin():
            # Published once per database: another test may have published it already.
            existing = await catalog_repository.item_by_code(session, content["implementing_code"])
            if existing is not None and existing.current_version_id is not None:
                version_id = existing.current_version_id
            else:
                draft = await catalog.create_item_draft(
                    session, content=ItemContent.model_validate(content)
                )
                version_id = (await catalog.publish_version(session, version_id=draft.id)).id

        intake = await stack.enter_async_context(
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=apps["intake"]), base_url="http://intake"
            )
        )
        notify = await stack.enter_async_context(
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=apps["notify"]), base_url="http://notify"
            )
        )
        async with database.sessionmaker() as session, session.begin():
            await seed_notify_templates(session, settings)

        async def item_known_everywhere() -> bool:
            async with database.sessionmaker() as session:
                from approval_service.models import ItemVersionCopy as ApprovalCopy
                from intake_service.models import ItemVersionCopy as IntakeCopy
                from sharing_service.models import ItemVersionCopy as SharingCopy

                return all(
                    [
                        await session.get(IntakeCopy, version_id) is not None,
                        await session.get(ApprovalCopy, version_id) is not None,
                        await session.get(SharingCopy, version_id) is not None,
                    ]
                )

        await eventually(item_known_everywhere, timeout_s=60)

        async def apply(persona: Any) -> tuple[dict[str, str], str]:
            identity = Identity(
                subject=f"u-{persona.key}-{uuid.uuid4().hex[:6]}",
                kind="citizen",
                assurance=AssuranceLevel.REAL_PERSON,
                person_ref=BlindIndex.from_settings(settings).resident_id(persona.id_number),
            )
            tokens = InternalTokens.from_settings(settings)
            headers = {"Authorization": f"Bearer {tokens.issue(identity, issuer='gateway')}"}
            # The citizen logged in with WeChat (the gateway reports the openid) and, when
            # applying, accepted the subscription for "certificate issued" messages.
            gateway = Identity(subject="gateway", kind="service", assurance=AssuranceLevel.WECHAT)
            bound = await notify.put(
                f"/internal/recipients/{identity.subject}/wechat",
                json={"openid": f"o-{identity.subject}"},
                headers={"Authorization": f"Bearer {tokens.issue(gateway, issuer='gateway')}"},
            )
            assert bound.status_code == 204, bound.text
            subscribed = await notify.post(
                "/me/subscriptions",
                json={"results": {CERTIFICATE_TEMPLATE: "accept"}},
                headers=headers,
            )
            assert subscribed.status_code == 200, subscribed.text
            form = persona.form(ELDERLY_ALLOWANCE, today=date.today())
            commitment = [
                {"index": i, "commitment": True}
                for i, m in enumerate(content["materials"])
                if m["source"] == "commitment"
            ]
            # Once per person: earlier tests' allowance applications of the persona step aside.
            await set_aside_earlier_applications(
                database, settings, id_number=persona.id_number, item_code=ELDERLY_ALLOWANCE
            )
            response = await intake.post(
                "/applications",
                json={
                    "item_version_id": version_id,
                    "applicant": {"id_number": persona.id_number, "name": persona.name},
                    "form": form,
                    "materials": commitment,
                },
                headers={**headers, "Idempotency-Key": str(uuid.uuid4())},
            )
            assert response.status_code == 201, response.text
            assert response.json()["status"] == "accepted"  # household register came by sharing
            return headers, response.json()["id"]

        elder_headers, elder_app = await apply(persona_for(ELDERLY_ALLOWANCE))
        young_headers, young_app = await apply(persona_for(ELDERLY_ALLOWANCE, passes=False))

        async def status_of(headers: dict[str, str], application_id: str) -> str:
            response = await intake.get(f"/applications/{application_id}", headers=headers)
            return str(response.json()["status"])

        async def delivered() -> bool:
            return await status_of(elder_headers, elder_app) == "delivered"

        async def denied() -> bool:
            return await status_of(young_headers, young_app) == "completed"

        await eventually(delivered, timeout_s=60)
        await eventually(denied, timeout_s=60)

        async def told(headers: dict[str, str], kinds: set[str]) -> bool:
            inbox = (await notify.get("/me/notifications", headers=headers)).json()
            return kinds <= {item["kind"] for item in inbox["items"]}

        # The applicant is told, in the inbox and by a WeChat message (test mode: simulated).
        await eventually(
            lambda: told(elder_headers, {"application.approved", "certificate.issued"}),
            timeout_s=60,
        )
        await eventually(lambda: told(young_headers, {"application.denied"}), timeout_s=60)

        async def pushed_by_wechat() -> bool:
            async with database.sessionmaker() as session:
                pushed = list(
                    await session.scalars(
                        select(Message).where(
                            Message.application_id == elder_app,
                            Message.kind == "certificate.issued",
                        )
                    )
                )
            return [(m.channel, m.status) for m in pushed] == [("wechat", "delivered")]

        await eventually(pushed_by_wechat, timeout_s=30)

        sharing = await stack.enter_async_context(
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=sharing_app), base_url="http://sharing"
            )
        )
        wallet = (await sharing.get("/me/certificates", headers=elder_headers)).json()
        # This application's notice (the persona's wallet may hold earlier tests' ones).
        async with database.sessionmaker() as session:
            issued = list(
                await session.scalars(
                    select(Certificate.id).where(Certificate.application_id == elder_app)
                )
            )
        [certificate] = [c for c in wallet if c["id"] in issued]
        assert certificate["type_code"] == "elderly_allowance_notice"
        verified = await sharing.post(
            "/certificates/verify", json={"certificate_id": certificate["id"]}
        )
        assert verified.json()["verdict"] == "valid"
        young = (await intake.get(f"/applications/{young_app}", headers=young_headers)).json()
        assert young["status_reason"] == "申请人未满80周岁"
        elder_timeline = (
            await intake.get(f"/applications/{elder_app}", headers=elder_headers)
        ).json()
        actors = {(t["to_status"], t["actor_kind"]) for t in elder_timeline["timeline"]}
        assert not any(kind == "staff" for _, kind in actors)  # no human step anywhere

    async with database.sessionmaker() as session:
        decisions = {
            d.application_id: d
            for d in await session.scalars(
                select(Decision).where(Decision.application_id.in_([elder_app, young_app]))
            )
        }
        case = await session.get(Case, elder_app)
    assert decisions[elder_app].outcome == "approve" and decisions[elder_app].kind == "auto"
    assert [r["result"] for r in decisions[elder_app].rule_results] == ["true", "true", "true"]
    assert decisions[elder_app].lookup_ids and decisions[elder_app].rule_set_hash
    assert decisions[young_app].outcome == "deny"
    assert {r["name"]: r["result"] for r in decisions[young_app].rule_results}["age_80"] == "false"
    assert case is not None and case.status == "approved" and case.due_date is not None
