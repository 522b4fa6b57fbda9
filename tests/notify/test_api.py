"""The notify service over HTTP: the citizen's inbox, subscriptions and preferences; the
gateway's openid binding; templates validated at save time, versioned and previewed; delivery
watched by staff; signed SMS receipts. Each route refuses whoever may not call it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

from notify_service.templates import NotificationKind
from tests.fakes.sms import serve_fake_sms
from tests.infrastructure import Infrastructure
from tests.notify.support import (
    Clock,
    Providers,
    application_of,
    citizen,
    clean_notify,
    notify_settings,
    one_message,
    providers,
    real_dispatcher,
    seed_templates,
    tell,
)
from tests.serving import serve_asgi
from wangban.app import create_service_app
from wangban.auth import NOTIFY_ADMIN, OPS, AssuranceLevel, Identity, InternalTokens
from wangban.db import Database
from wangban.services import load_spec
from wangban.settings import Settings

__all__ = ["clean_notify", "providers"]  # fixtures

PROBLEM = "application/problem+json"


@dataclass
class Notify:
    client: httpx.AsyncClient
    base_url: str
    settings: Settings
    database: Database

    def headers(
        self, subject: str, kind: str = "citizen", *, roles: tuple[str, ...] = ()
    ) -> dict[str, str]:
        identity = Identity(
            subject=subject,
            kind=kind,  # type: ignore[arg-type]
            roles=frozenset(roles),
            assurance=AssuranceLevel.REAL_NAME,
        )
        token = InternalTokens.from_settings(self.settings).issue(identity, issuer="gateway")
        return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def notify(clean_notify: Database, infrastructure: Infrastructure) -> AsyncIterator[Notify]:
    settings = notify_settings(infrastructure)
    await seed_templates(clean_notify, settings)
    app = create_service_app(load_spec("notify"), settings, background=False)
    async with app.router.lifespan_context(app), serve_asgi(app) as base_url:
        async with httpx.AsyncClient(base_url=base_url, trust_env=False) as client:
            yield Notify(client, base_url, settings, clean_notify)


async def test_a_citizen_reads_only_their_own_inbox(notify: Notify) -> None:
    mine = await citizen(notify.database, notify.settings, fallback="inbox")
    theirs = await citizen(notify.database, notify.settings, fallback="inbox")
    application = await application_of(notify.database, mine)
    first = await tell(notify.database, application)
    await tell(notify.database, application, kind=NotificationKind.APPLICATION_APPROVED)
    other = await tell(notify.database, await application_of(notify.database, theirs))
    assert first and other

    inbox = (await notify.client.get("/me/notifications", headers=notify.headers(mine))).json()
    assert inbox["unread"] == 2 and len(inbox["items"]) == 2
    assert {i["kind"] for i in inbox["items"]} == {"certificate.issued", "application.approved"}
    assert all(i["application_id"] == application for i in inbox["items"])

    read = await notify.client.post(f"/me/notifications/{first}/read", headers=notify.headers(mine))
    assert read.status_code == 200 and read.json() == {"marked": 1, "unread": 1}
    unread = await notify.client.get(
        "/me/notifications", params={"unread": "true"}, headers=notify.headers(mine)
    )
    assert [i["kind"] for i in unread.json()["items"]] == ["application.approved"]

    # Someone else's notification is not found, and stays unread.
    refused = await notify.client.post(
        f"/me/notifications/{other}/read", headers=notify.headers(mine)
    )
    assert refused.status_code == 404 and refused.headers["content-type"] == PROBLEM
    assert "消息不存在" in refused.json()["detail"]
    theirs_inbox = await notify.client.get("/me/notifications", headers=notify.headers(theirs))
    assert theirs_inbox.json()["unread"] == 1

    everything = await notify.client.post(
        "/me/notifications/read-all", headers=notify.headers(mine)
    )
    assert everything.json() == {"marked": 1, "unread": 0}


async def test_paging_through_the_inbox(notify: Notify) -> None:
    subject = await citizen(notify.database, notify.settings, fallback="inbox")
    application = await application_of(notify.database, subject)
    for _ in range(5):
        await tell(notify.database, application)
    seen: list[str] = []
    params: dict[str, str] = {"limit": "2"}
    for _ in range(4):
        page = (
            await notify.client.get(
                "/me/notifications", params=params, headers=notify.headers(subject)
            )
        ).json()
        seen += [i["id"] for i in page["items"]]
        if page["next_before"] is None:
            break
        params["before"] = page["next_before"]
    assert len(seen) == len(set(seen)) == 5


async def test_subscriptions_and_preferences(notify: Notify) -> None:
    subject = "u-prefs-1"
    headers = notify.headers(subject)
    report = await notify.client.post(
        "/me/subscriptions",
        json={"results": {"tmpl-a": "accept", "tmpl-b": "reject", "tmpl-c": "accept"}},
        headers=headers,
    )
    assert report.json() == {"granted": 2, "unused": {"tmpl-a": 1, "tmpl-c": 1}}
    again = await notify.client.post(
        "/me/subscriptions", json={"results": {"tmpl-a": "accept"}}, headers=headers
    )
    assert again.json()["unused"] == {"tmpl-a": 2, "tmpl-c": 1}

    bad_phone = await notify.client.put(
        "/me/notification-preferences", json={"phone": "12345"}, headers=headers
    )
    assert bad_phone.status_code == 422 and "手机号码" in bad_phone.text
    # A number is taken only through its SMS code (POST /me/phone, then /me/phone/verify).
    unverified = await notify.client.put(
        "/me/notification-preferences",
        json={"phone": "+86 139-1234-5678", "fallback": "inbox"},
        headers=headers,
    )
    assert unverified.status_code == 422 and "验证码" in unverified.text
    saved = await notify.client.put(
        "/me/notification-preferences",
        json={"fallback": "inbox", "wechat_enabled": False},
        headers=headers,
    )
    assert saved.status_code == 200, saved.text
    assert saved.json() == {
        "wechat_bound": False,
        "wechat_enabled": False,
        "fallback": "inbox",
        "phone_masked": None,
        "unused_consents": {"tmpl-a": 2, "tmpl-c": 1},
    }
    removed = await notify.client.put(
        "/me/notification-preferences", json={"phone": ""}, headers=headers
    )
    assert removed.json()["phone_masked"] is None


async def test_the_subscription_templates_are_the_current_wechat_ones(notify: Notify) -> None:
    """The mini-program asks consent for what notify will send: a template id registered anew
    (a deployment's own) is the one it asks for next."""
    citizen_headers = notify.headers("u-subscribe-1")
    asked = await notify.client.get("/me/subscription-templates", headers=citizen_headers)
    assert asked.status_code == 200, asked.text
    assert [(t["kind"], t["template_id"]) for t in asked.json()] == [
        ("application.accepted", "tmpl-application-accepted"),
        ("application.correction_requested", "tmpl-application-correction-requested"),
        ("application.approved", "tmpl-application-approved"),
    ]
    assert asked.json()[0]["label"] == "申请已受理"

    admin = notify.headers("admin-1", "staff", roles=(NOTIFY_ADMIN,))
    ours = {
        "template_id": "tmpl-gd-approved-7",
        "page": "pages/applications/detail",
        "fields": [
            {"key": "thing1", "source": "{{ item.name }}", "truncate": True},
            {"key": "phrase2", "source": "已通过"},
            {"key": "time3", "source": "{{ at | wechat_time }}"},
        ],
    }
    saved = await notify.client.put(
        "/templates/application.approved/wechat", json={"body": ours}, headers=admin
    )
    assert saved.status_code == 200, saved.text
    asked = await notify.client.get("/me/subscription-templates", headers=citizen_headers)
    assert asked.json()[2] == {
        "kind": "application.approved",
        "label": "审批通过",
        "template_id": "tmpl-gd-approved-7",
    }
    staff = await notify.client.get("/me/subscription-templates", headers=admin)
    assert staff.status_code == 403


async def test_only_the_gateway_binds_an_openid(notify: Notify) -> None:
    body = {"openid": "o6_bmjrPTlm6_2sgVt7hMZOPfL2M"}
    as_citizen = await notify.client.put(
        "/internal/recipients/u-1/wechat", json=body, headers=notify.headers("u-1")
    )
    assert as_citizen.status_code == 403 and "平台服务" in as_citizen.json()["detail"]
    as_gateway = await notify.client.put(
        "/internal/recipients/u-1/wechat",
        json=body,
        headers=notify.headers("gateway", "service"),
    )
    assert as_gateway.status_code == 204
    preferences = await notify.client.get(
        "/me/notification-preferences", headers=notify.headers("u-1")
    )
    assert preferences.json()["wechat_bound"] is True
    assert "o6_bmjr" not in preferences.text


async def test_templates_are_checked_at_save_versioned_and_previewed(notify: Notify) -> None:
    admin = notify.headers("admin-1", "staff", roles=(NOTIFY_ADMIN,))
    path = "/templates/application.approved/wechat"
    too_long = {
        "template_id": "tmpl-approved-2",
        "page": "pages/applications/detail",
        "fields": [
            {
                "key": "thing1",
                "source": "您申请的{{ item.name }}已经审批通过请留意后续的证照发放通知",
            },
            {"key": "phrase2", "source": "已通过"},
        ],
    }
    refused = await notify.client.put(path, json={"body": too_long}, headers=admin)
    assert refused.status_code == 422 and refused.headers["content-type"] == PROBLEM
    assert "thing1" in refused.text and "20" in refused.text

    unknown_variable = {
        "template_id": "tmpl-approved-2",
        "fields": [{"key": "thing1", "source": "{{ applicant.id_number }}"}],
    }
    refused = await notify.client.put(path, json={"body": unknown_variable}, headers=admin)
    assert refused.status_code == 422 and "thing1" in refused.text

    before = (await notify.client.get(f"{path}/versions", headers=admin)).json()
    good = {
        "template_id": "tmpl-approved-2",
        "page": "pages/applications/detail",
        "fields": [
            {"key": "thing1", "source": "{{ item.name }}", "truncate": True},
            {"key": "phrase2", "source": "已通过"},
            {"key": "time3", "source": "{{ at | wechat_time }}"},
        ],
    }
    saved = await notify.client.put(path, json={"body": good}, headers=admin)
    assert saved.status_code == 200, saved.text
    assert saved.json()["version"] == before[0]["version"] + 1
    same = await notify.client.put(path, json={"body": good}, headers=admin)
    assert same.json()["version"] == saved.json()["version"]  # no change, no new version
    versions = (await notify.client.get(f"{path}/versions", headers=admin)).json()
    assert [v["version"] for v in versions] == [saved.json()["version"], before[0]["version"]]

    preview = await notify.client.post(f"{path}/preview", json={}, headers=admin)
    assert preview.status_code == 200, preview.text
    rendered = preview.json()["rendered"]
    assert "phrase2" in str(rendered) and "已通过" in str(rendered)

    as_citizen = await notify.client.get("/templates", headers=notify.headers("u-1"))
    assert as_citizen.status_code == 403
    unknown = await notify.client.get("/templates/no.such.kind/wechat/versions", headers=admin)
    assert unknown.status_code == 404 and "no.such.kind" in unknown.json()["detail"]


async def test_staff_watch_delivery_and_the_gateway_receipt_must_be_signed(
    notify: Notify, providers: Providers
) -> None:
    subject = await citizen(notify.database, notify.settings, phone="13912345678")
    notification = await tell(notify.database, await application_of(notify.database, subject))
    assert notification
    dispatcher = real_dispatcher(notify.database, notify.settings, providers, Clock())
    await dispatcher.run_once()
    await dispatcher.close()
    sms = await one_message(notify.database, notification, "sms")
    ops = notify.headers("ops-1", "staff", roles=(OPS,))
    listed = await notify.client.get("/messages", params={"status": "sending"}, headers=ops)
    assert [m["id"] for m in listed.json()] == [sms.id]
    assert "13912345678" not in listed.text and subject not in listed.text

    callback = f"{notify.base_url}/callbacks/sms/receipts"
    forged = await providers.sms.post_receipt(callback, out_id=sms.id, secret="not-the-secret")
    assert forged.status_code == 401 and forged.headers["content-type"] == PROBLEM
    tampered = await providers.sms.post_receipt(callback, out_id=sms.id, tamper=True)
    assert tampered.status_code == 401
    assert (await one_message(notify.database, notification, "sms")).status == "sending"
    good = await providers.sms.post_receipt(callback, out_id=sms.id)
    assert good.status_code == 204
    one = await notify.client.get(f"/messages/{sms.id}", headers=ops)
    assert one.json()["status"] == "delivered"


async def test_an_sms_receipt_for_no_message_is_refused(
    notify: Notify, infrastructure: Infrastructure
) -> None:
    async with serve_fake_sms(
        access_key_id=notify.settings.sms_access_key_id,
        secret=notify.settings.sms_access_key_secret.get_secret_value(),
        sign_name="网办",
    ) as gateway:
        gateway.sent.append({"out_id": "nope", "phone_number": "13900000000"})
        gateway.biz_ids["nope"] = "biz-x"
        answer = await gateway.post_receipt(
            f"{notify.base_url}/callbacks/sms/receipts", out_id="nope"
        )
    assert answer.status_code == 404 and answer.headers["content-type"] == PROBLEM


async def test_in_test_mode_the_sms_code_is_shown_to_type_back_and_binds_the_number(
    clean_notify: Database, infrastructure: Infrastructure
) -> None:
    """Test mode sends no SMS, so the code the simulated message carried is answered (a tester
    on ./dev up completes the step); with the real gateway it never is (test_production_gateway
    below)."""
    settings = notify_settings(infrastructure, notify_test_mode=True)
    app = create_service_app(load_spec("notify"), settings, background=False)
    subject = await citizen(clean_notify, settings, fallback="inbox")
    async with app.router.lifespan_context(app), serve_asgi(app) as base_url:
        async with httpx.AsyncClient(base_url=base_url, trust_env=False) as client:
            notify = Notify(client, base_url, settings, clean_notify)
            headers = notify.headers(subject)
            sent = await client.post("/me/phone", json={"mobile": "13912345678"}, headers=headers)
            assert sent.status_code == 200, sent.text
            body = sent.json()
            assert body["test_mode"] and body["phone_masked"] == "139****5678"
            code = body["test_code"]
            assert code is not None and len(code) == 6 and code.isdigit()
            wrong = f"{(int(code) + 1) % 1_000_000:06d}"
            refused = await client.post("/me/phone/verify", json={"code": wrong}, headers=headers)
            assert refused.status_code == 422
            bound = await client.post("/me/phone/verify", json={"code": code}, headers=headers)
            assert bound.status_code == 200, bound.text
            assert bound.json()["phone_masked"] == "139****5678"


async def test_production_gateway_never_answers_the_code(
    clean_notify: Database, infrastructure: Infrastructure
) -> None:
    """With the real gateway the code goes by SMS only: the answer never carries it."""
    settings = notify_settings(infrastructure)
    subject = await citizen(clean_notify, settings, fallback="inbox")
    async with serve_fake_sms(
        access_key_id=settings.sms_access_key_id,
        secret=settings.sms_access_key_secret.get_secret_value(),
        sign_name=settings.sms_sign_name,
    ) as gateway:
        settings = settings.model_copy(update={"sms_gateway_url": gateway.base_url})
        app = create_service_app(load_spec("notify"), settings, background=False)
        async with app.router.lifespan_context(app), serve_asgi(app) as base_url:
            async with httpx.AsyncClient(base_url=base_url, trust_env=False) as client:
                headers = Notify(client, base_url, settings, clean_notify).headers(subject)
                sent = await client.post(
                    "/me/phone", json={"mobile": "13912345678"}, headers=headers
                )
        assert sent.status_code == 200, sent.text
        assert sent.json()["test_mode"] is False and sent.json()["test_code"] is None
        assert len(gateway.sent) == 1  # the code went by SMS, and only there
