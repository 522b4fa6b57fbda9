"""Notifications really leave the platform, as in production.

Every service is real, with its relay and consumers, on a real broker; notify is *not* in test
mode: it talks to a local WeChat server that checks what WeChat checks (appid and secret,
single-use login codes, one stable access token, the templates added to the mini-program and
each keyword's value rules) and to a local SMS gateway that checks signatures.

A citizen logs in with a ``wx.login`` code, accepts the subscriptions, gives a mobile number and
types back the code the SMS gateway received, and applies for a 秒批 item through the gateway:
WeChat receives the subscription message saying it was approved. WeChat answers 43101
(no subscription) for the certificate's template, and that notice reaches the verified number
by SMS instead.
Nothing about the recipient is written to any database by hand: the openid comes from the login
(the gateway tells notify after the login), the number from the verification.
"""

from __future__ import annotations

import json
import uuid
from datetime import date
from pathlib import Path
from typing import Any

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
from tests.fakes.sms import serve_fake_sms
from tests.fakes.wechat import serve_fake_wechat
from tests.gateway.support import running_gateway, verify_real_person
from tests.grant_limits import set_aside_earlier_applications
from tests.infrastructure import Infrastructure
from tests.kit.support import eventually
from tests.notify.support import seed_templates
from wangban.crypto import BlindIndex
from wangban.db import Database
from wangban.settings import DEV_SMS_ACCESS_KEY_SECRET

DEMO_ITEMS = Path(__file__).parents[2] / "catalog_service" / "demo" / "items.json"
APPID = "wx5e1f0c7a9b3d2e41"
SECRET = "leave-secret-0123456789abcdef"
SMS_KEY = "leave-sms-key"
SIGN = "网办"
# A number no other test texts: SMS are counted per number and day (at most 10), and the other
# modules' texts to a shared number, run earlier on the same worker's database, used that up.
MOBILE = "13987655678"
APPROVED = "application.approved"
ISSUED = "certificate.issued"
"""The result that also has an SMS template in the seed (an approval alone does not)."""


async def test_a_subscribed_citizen_gets_the_wechat_message_and_the_sms_fallback_on_43101(
    infrastructure: Infrastructure, database: Database, tmp_path: Path
) -> None:
    demo = json.loads(DEMO_ITEMS.read_text("utf-8"))
    content = next(i for i in demo if i["implementing_code"] == ELDERLY_ALLOWANCE)
    async with database.sessionmaker() as session, session.begin():
        await seed_registry(session)
        if await catalog_repository.item_by_code(session, ELDERLY_ALLOWANCE) is None:
            draft = await catalog.create_item_draft(
                session, content=ItemContent.model_validate(content)
            )
            await catalog.publish_version(session, version_id=draft.id)
    elder = persona_for(ELDERLY_ALLOWANCE)
    async with (
        serve_fake_wechat(appid=APPID, secret=SECRET) as wechat,
        serve_fake_sms(
            access_key_id=SMS_KEY, secret=DEV_SMS_ACCESS_KEY_SECRET, sign_name=SIGN
        ) as sms,
        running_gateway(
            infrastructure,
            database,
            background=True,
            data_dir=tmp_path,
            wechat_api_base=wechat.base_url,
            wechat_appid=APPID,
            wechat_app_secret=SECRET,
            notify_test_mode=False,
            sms_gateway_url=sms.base_url,
            sms_access_key_id=SMS_KEY,
            sms_sign_name=SIGN,
        ) as gateway,
    ):
        api = gateway.client
        # The templates as `wangban seed` installs them, read as an administrator would; the
        # WeChat ones are those added to the mini-program on the WeChat platform.
        await seed_templates(database, gateway.settings)
        current = await api.get(
            "/api/v1/staff/notify/templates", headers=gateway.staff("notify_admin")
        )
        assert current.status_code == 200, current.text
        bodies = {(t["kind"], t["channel"]): t["body"] for t in current.json()}
        wechat.templates = {
            body["template_id"]: {f["key"] for f in body["fields"]}
            for (_, channel), body in bodies.items()
            if channel == "wechat"
        }
        approved_wechat = bodies[(APPROVED, "wechat")]
        issued_wechat = bodies[(ISSUED, "wechat")]
        issued_sms = bodies[(ISSUED, "sms")]
        openid = f"o-leave-{uuid.uuid4().hex[:8]}"
        person_ref = BlindIndex.from_settings(gateway.settings).resident_id(elder.id_number)
        async with database.sessionmaker() as session, session.begin():
            await session.execute(delete(Account).where(Account.person_ref == person_ref))

        # Log in with a wx.login code (it works once), then 实名 and 实人.
        wechat.login_codes["code-leave"] = (openid, None)
        login = await api.post("/api/v1/auth/wechat", json={"code": "code-leave"})
        assert login.status_code == 200, login.text
        again = await api.post("/api/v1/auth/wechat", json={"code": "code-leave"})
        assert again.status_code != 200  # a used code is refused
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        headers = await verify_real_person(
            api, wechat, headers, openid=openid, name=elder.name, id_number=elder.id_number
        )

        # Accept every subscription the mini-program asks for.
        results = dict.fromkeys(wechat.templates, "accept")
        subscribed = await api.post(
            "/api/v1/subscriptions", json={"results": results}, headers=headers
        )
        assert subscribed.status_code == 200, subscribed.text

        # Give a number: the code goes out by SMS; a wrong one is refused, the right one binds.
        given = await api.post("/api/v1/me/phone", json={"mobile": MOBILE}, headers=headers)
        assert given.status_code == 200, given.text
        assert given.json()["phone_masked"] == "139****5678"
        assert given.json()["test_mode"] is False and MOBILE not in given.text
        assert len(sms.sent) == 1
        code_sms = sms.sent[0]
        assert code_sms["phone_number"] == MOBILE
        assert code_sms["template_code"] == gateway.settings.sms_code_template
        code = code_sms["template_param"]["code"]
        assert len(code) == 6 and code.isdigit()
        too_soon = await api.post("/api/v1/me/phone", json={"mobile": MOBILE}, headers=headers)
        assert too_soon.status_code == 429 and "Retry-After" in too_soon.headers
        assert len(sms.sent) == 1
        wrong = await api.post(
            "/api/v1/me/phone/verify",
            json={"code": f"{(int(code) + 1) % 1_000_000:06d}"},
            headers=headers,
        )
        assert wrong.status_code == 422, wrong.text
        assert wrong.json()["type"].endswith("phone-code-wrong")
        verified = await api.post("/api/v1/me/phone/verify", json={"code": code}, headers=headers)
        assert verified.status_code == 200, verified.text
        assert verified.json()["phone_masked"] == "139****5678"
        used = await api.post("/api/v1/me/phone/verify", json={"code": code}, headers=headers)
        assert used.status_code == 422 and used.json()["type"].endswith("phone-code-expired")

        guide = await api.get(f"/api/v1/items/{ELDERLY_ALLOWANCE}")
        assert guide.status_code == 200, guide.text
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

        async def apply() -> str:
            application = {
                "item_code": ELDERLY_ALLOWANCE,
                "form": elder.form(ELDERLY_ALLOWANCE, today=date.today()),
                "materials": [
                    {"index": i, "commitment": True}
                    for i, m in enumerate(content["materials"])
                    if m["source"] == "commitment"
                ],
            }
            # Once per person: the persona's earlier allowance applications step aside.
            await set_aside_earlier_applications(
                database, gateway.settings, id_number=elder.id_number, item_code=ELDERLY_ALLOWANCE
            )
            applied = await api.post(
                "/api/v1/applications",
                json=application,
                headers={**headers, "Idempotency-Key": str(uuid.uuid4())},
            )
            assert applied.status_code == 201, applied.text
            return str(applied.json()["id"])

        # 秒批, with a certificate. The user keeps the approval message but has turned the
        # certificate one off in WeChat (43101): WeChat receives the first, the SMS gateway the
        # certificate notice instead.
        wechat.refused.add((openid, issued_wechat["template_id"]))
        application_id = await apply()

        def approval_messages() -> list[dict[str, Any]]:
            return [
                m
                for m in wechat.sent
                if m["touser"] == openid and m["template_id"] == approved_wechat["template_id"]
            ]

        def certificate_sms() -> list[dict[str, Any]]:
            return [
                m
                for m in sms.sent
                if m["phone_number"] == MOBILE and m["template_code"] == issued_sms["template_code"]
            ]

        async def told() -> bool:
            return len(approval_messages()) == 1 and len(certificate_sms()) == 1

        try:
            await eventually(told, timeout_s=60)
        except AssertionError:
            # Say what did happen: the application's state and every message notify made.
            status = await api.get(f"/api/v1/applications/{application_id}", headers=headers)
            made = await api.get(
                "/api/v1/staff/notify/messages",
                params={"application_id": application_id},
                headers=gateway.staff("ops"),
            )
            raise AssertionError(
                f"approval messages {len(approval_messages())}, certificate SMS "
                f"{len(certificate_sms())}; application {status.json().get('status')}; "
                f"notify's messages: {made.text}"
            ) from None
        assert set(approval_messages()[0]["data"]) == {f["key"] for f in approved_wechat["fields"]}
        assert wechat.refused_fields == []
        assert not [m for m in wechat.sent if m["template_id"] == issued_wechat["template_id"]]
        # One stable access token for every call (the gateway's face checks and notify's
        # sends): asked for without forcing a new one, which would void the other's.
        assert wechat.token_calls and not any(wechat.token_calls)
        assert set(wechat.tokens_used) == {wechat.current_token}

        listed = await api.get(
            "/api/v1/staff/notify/messages",
            params={"application_id": application_id},
            headers=gateway.staff("ops"),
        )
        assert listed.status_code == 200, listed.text
        by_channel = {m["channel"]: m for m in listed.json() if m["kind"] == ISSUED}
        assert by_channel["wechat"]["failure_code"] == "43101"
        assert by_channel["sms"]["fallback_of"] == by_channel["wechat"]["id"]
