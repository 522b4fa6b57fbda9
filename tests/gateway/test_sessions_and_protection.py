"""Sessions (refresh rotation with reuse detection, logout, staff login delays) and the public
door's protection (rate limits with Retry-After, body limits, security headers, CORS, no
development login in production)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import delete, update

from gateway.models import Account, StaffAccount
from sandbox import COMPANIES, PERSONAS
from tests.fakes.wechat import serve_fake_wechat
from tests.gateway.support import Gateway, running_gateway
from tests.infrastructure import Infrastructure
from tests.production_keys import production_keys
from wangban.crypto import BlindIndex
from wangban.db import Database
from wangban.settings import Environment

PROBLEM = "application/problem+json"


@pytest.fixture
async def gateway(infrastructure: Infrastructure, database: Database) -> AsyncIterator[Gateway]:
    async with (
        serve_fake_wechat(appid="wx-sessions", secret="sessions-secret") as wechat,
        running_gateway(
            infrastructure,
            database,
            wechat_api_base=wechat.base_url,
            wechat_appid="wx-sessions",
            wechat_app_secret="sessions-secret",
            gateway_login_per_minute_per_ip=3,
            gateway_max_body_bytes=4096,
        ) as running,
    ):
        running.app.state.fake_wechat = wechat
        yield running


async def _dev_login(gateway: Gateway) -> dict[str, str]:
    answer = await gateway.client.post("/api/v1/auth/dev", json={"openid": f"o-{uuid.uuid4().hex}"})
    assert answer.status_code == 200, answer.text
    tokens: dict[str, str] = answer.json()
    return tokens


async def test_a_refresh_token_works_once_and_its_reuse_ends_the_whole_family(
    gateway: Gateway,
) -> None:
    first = await _dev_login(gateway)
    second = await gateway.client.post(
        "/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}
    )
    assert second.status_code == 200
    assert second.json()["refresh_token"] != first["refresh_token"]
    me = await gateway.client.get(
        "/api/v1/me", headers={"Authorization": f"Bearer {second.json()['access_token']}"}
    )
    assert me.status_code == 200

    # The first refresh token again: someone else has a copy. Both holders are logged out.
    replay = await gateway.client.post(
        "/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}
    )
    assert replay.status_code == 401 and replay.headers["content-type"] == PROBLEM
    assert replay.json()["type"].endswith("refresh-token-reused")
    after = await gateway.client.post(
        "/api/v1/auth/refresh", json={"refresh_token": second.json()["refresh_token"]}
    )
    assert after.status_code == 401 and after.json()["type"].endswith("session-expired")


async def test_logout_ends_the_refresh_token(gateway: Gateway) -> None:
    tokens = await _dev_login(gateway)
    out = await gateway.client.post(
        "/api/v1/auth/logout", json={"refresh_token": tokens["refresh_token"]}
    )
    assert out.status_code == 204
    again = await gateway.client.post(
        "/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert again.status_code == 401


async def test_repeated_staff_failures_slow_down_that_address(gateway: Gateway) -> None:
    username = f"clerk-{uuid.uuid4().hex[:6]}"
    await gateway.staff_account(
        username, "Window-clerk-2026", roles=["window_clerk"], department="东莞市民政局"
    )
    wrong = {"username": username, "password": "not-the-password-1"}
    statuses = [
        (await gateway.client.post("/api/v1/auth/staff", json=wrong)).status_code for _ in range(5)
    ]
    assert statuses == [401] * 5
    locked = await gateway.client.post(
        "/api/v1/auth/staff", json={"username": username, "password": "Window-clerk-2026"}
    )
    assert locked.status_code == 429 and locked.json()["type"].endswith("login-throttled")
    assert int(locked.headers["retry-after"]) > 0
    unknown = await gateway.client.post(
        "/api/v1/auth/staff", json={"username": "nobody-here", "password": "whatever-123"}
    )
    assert unknown.status_code == 401 and unknown.json()["detail"] == "用户名或密码错误"


async def test_a_right_staff_password_logs_in_with_the_roles_of_the_account(
    gateway: Gateway,
) -> None:
    username = f"reviewer-{uuid.uuid4().hex[:6]}"
    await gateway.staff_account(
        username, "Reviewer-pass-2026", roles=["reviewer"], department="东莞市民政局"
    )
    login = await gateway.client.post(
        "/api/v1/auth/staff", json={"username": username, "password": "Reviewer-pass-2026"}
    )
    assert login.status_code == 200, login.text
    me = await gateway.client.get(
        "/api/v1/me", headers={"Authorization": f"Bearer {login.json()['access_token']}"}
    )
    assert me.json()["kind"] == "staff" and me.json()["roles"] == ["reviewer"]
    assert me.json()["department"] == "东莞市民政局"


async def test_a_refresh_is_who_the_person_is_now_and_a_disabled_or_deleted_one_is_gone(
    gateway: Gateway,
) -> None:
    username = f"officer-{uuid.uuid4().hex[:6]}"
    await gateway.staff_account(
        username, "Officer-pass-2026", roles=["reviewer"], department="东莞市民政局"
    )
    login = await gateway.client.post(
        "/api/v1/auth/staff", json={"username": username, "password": "Officer-pass-2026"}
    )
    assert login.status_code == 200, login.text
    chosen = StaffAccount.username == username
    async with gateway.database.sessionmaker() as session, session.begin():
        await session.execute(update(StaffAccount).where(chosen).values(roles=["approver"]))
    refreshed = await gateway.client.post(
        "/api/v1/auth/refresh", json={"refresh_token": login.json()["refresh_token"]}
    )
    assert refreshed.status_code == 200, refreshed.text
    me = await gateway.client.get(
        "/api/v1/me", headers={"Authorization": f"Bearer {refreshed.json()['access_token']}"}
    )
    assert me.json()["roles"] == ["approver"]

    async with gateway.database.sessionmaker() as session, session.begin():
        await session.execute(update(StaffAccount).where(chosen).values(disabled=True))
    disabled = await gateway.client.post(
        "/api/v1/auth/refresh", json={"refresh_token": refreshed.json()["refresh_token"]}
    )
    assert disabled.status_code == 401 and disabled.headers["content-type"] == PROBLEM
    assert disabled.json()["type"].endswith("account-gone")
    assert disabled.json()["detail"] == "账号不可用"

    citizen = await _dev_login(gateway)
    subject = (
        await gateway.client.get(
            "/api/v1/me", headers={"Authorization": f"Bearer {citizen['access_token']}"}
        )
    ).json()["subject"]
    async with gateway.database.sessionmaker() as session, session.begin():
        await session.execute(delete(Account).where(Account.subject == subject))
    deleted = await gateway.client.post(
        "/api/v1/auth/refresh", json={"refresh_token": citizen["refresh_token"]}
    )
    assert deleted.status_code == 401 and deleted.json()["type"].endswith("account-gone")
    assert deleted.json()["detail"] == "账号不存在，请重新登录"


async def test_logins_are_rate_limited_per_address_with_retry_after(gateway: Gateway) -> None:
    wechat = gateway.app.state.fake_wechat
    for n in range(3):
        wechat.login_codes[f"rl-{n}"] = (f"o-rl-{n}-{uuid.uuid4().hex[:6]}", None)
    answers = [
        await gateway.client.post("/api/v1/auth/wechat", json={"code": f"rl-{n}"}) for n in range(4)
    ]
    assert [a.status_code for a in answers[:3]] == [200, 200, 200]
    refused = answers[3]
    assert refused.status_code == 429 and refused.headers["content-type"] == PROBLEM
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert "秒后再试" in refused.json()["detail"]


async def test_wechat_login_errors_are_clear(gateway: Gateway) -> None:
    answer = await gateway.client.post("/api/v1/auth/wechat", json={"code": "never-issued"})
    assert answer.status_code == 401 and "重新登录" in answer.json()["detail"]
    assert "session_key" not in answer.text


async def test_the_door_refuses_big_bodies_and_sets_security_headers(gateway: Gateway) -> None:
    big = await gateway.client.post(
        "/api/v1/auth/wechat",
        content=b'{"code": "' + b"x" * 5000 + b'"}',
        headers={"Content-Type": "application/json"},
    )
    assert big.status_code == 413 and big.headers["content-type"] == PROBLEM
    items = await gateway.client.get("/api/v1/items")
    assert items.headers["x-content-type-options"] == "nosniff"
    assert items.headers["x-frame-options"] == "DENY"
    assert items.headers["cache-control"] == "no-store"
    assert items.headers.get("x-request-id")
    preflight = await gateway.client.options(
        "/api/v1/items",
        headers={
            "Origin": "http://localhost:5173",
            "Access-Control-Request-Method": "GET",
        },
    )
    assert preflight.headers["access-control-allow-origin"] == "http://localhost:5173"
    stranger = await gateway.client.options(
        "/api/v1/items",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
    )
    assert "access-control-allow-origin" not in stranger.headers


async def test_no_development_login_outside_local_and_test(
    infrastructure: Infrastructure, database: Database
) -> None:
    async with running_gateway(
        infrastructure,
        database,
        env=Environment.PRODUCTION,
        notify_test_mode=False,
        **production_keys(field_key_id="dev1"),
        wechat_app_secret="w" * 32,
        sms_access_key_secret="s" * 32,
        identity_provider_url="http://127.0.0.1:9",
        identity_provider_token="t" * 32,
    ) as production:
        answer = await production.client.post("/api/v1/auth/dev", json={"openid": "o-x"})
    assert answer.status_code == 404


async def test_a_forged_face_success_changes_nothing_only_wechat_s_result_counts(
    gateway: Gateway,
) -> None:
    persona = PERSONAS[2]
    await _release(gateway, persona.id_number)
    headers = await gateway.citizen(
        assurance="real_name", name=persona.name, id_number=persona.id_number
    )
    started = await gateway.client.post("/api/v1/me/real-person/start", headers=headers)
    assert started.status_code == 200, started.text
    # The mini-program says "passed", but the user never went through WeChat's face check.
    forged = await gateway.client.post(
        "/api/v1/me/real-person",
        json={"verify_id": started.json()["verify_id"], "verify_ret": 10000},
        headers=headers,
    )
    assert forged.status_code == 422  # the body has no such field: nothing to believe
    claimed = await gateway.client.post(
        "/api/v1/me/real-person",
        json={"verify_id": started.json()["verify_id"]},
        headers=headers,
    )
    assert claimed.status_code == 422 and claimed.json()["type"].endswith("real-person-failed")
    me = await gateway.client.get("/api/v1/me", headers=headers)
    assert me.json()["assurance"] == "real_name"
    # The attempt is used up: the same verify_id cannot be tried again.
    again = await gateway.client.post(
        "/api/v1/me/real-person",
        json={"verify_id": started.json()["verify_id"]},
        headers=headers,
    )
    assert again.status_code == 404


async def test_a_legal_representative_binds_the_company_and_a_stranger_cannot(
    gateway: Gateway,
) -> None:
    company = next(c for c in COMPANIES if c.representative_id in {p.id_number for p in PERSONAS})
    boss = next(p for p in PERSONAS if p.id_number == company.representative_id)
    stranger = next(
        p for p in PERSONAS if p.id_number != boss.id_number and company.uscc not in p.companies
    )
    for person in (boss, stranger):
        await _release(gateway, person.id_number)
    boss_headers = await gateway.citizen(name=boss.name, id_number=boss.id_number)
    bound = await gateway.client.post(
        "/api/v1/me/companies", json={"uscc": company.uscc}, headers=boss_headers
    )
    assert bound.status_code == 200, bound.text
    assert bound.json()["role"] == "legal_representative"
    assert bound.json()["company_name"] == company.name
    mine = await gateway.client.get("/api/v1/me/companies", headers=boss_headers)
    assert [c["uscc"] for c in mine.json()] == [company.uscc]

    stranger_headers = await gateway.citizen(name=stranger.name, id_number=stranger.id_number)
    refused = await gateway.client.post(
        "/api/v1/me/companies", json={"uscc": company.uscc}, headers=stranger_headers
    )
    assert refused.status_code == 403 and "法定代表人" in refused.json()["detail"]
    acting = await gateway.client.post(
        "/api/v1/applications",
        json={"item_code": "any", "form": {}, "act_for_company": company.uscc},
        headers={**stranger_headers, "Idempotency-Key": str(uuid.uuid4())},
    )
    assert acting.status_code == 403 and acting.json()["type"].endswith("company-not-bound")


async def test_one_person_one_account(gateway: Gateway) -> None:
    persona = PERSONAS[3]
    await _release(gateway, persona.id_number)
    await gateway.citizen(name=persona.name, id_number=persona.id_number)
    second = await gateway.client.post(
        "/api/v1/auth/dev",
        json={
            "openid": f"o-{uuid.uuid4().hex}",
            "assurance": "real_name",
            "name": persona.name,
            "id_number": persona.id_number,
        },
    )
    # Refused as a wrong name is, so the answer does not tell the number is registered here.
    assert second.status_code == 422 and second.json()["type"].endswith("real-name-mismatch")
    assert "已绑定其他微信账号" in second.json()["detail"]


async def _release(gateway: Gateway, id_number: str) -> None:
    """Accounts persist between tests: an earlier one for this person steps aside."""
    person_ref = BlindIndex.from_settings(gateway.settings).resident_id(id_number)
    async with gateway.database.sessionmaker() as session, session.begin():
        await session.execute(delete(Account).where(Account.person_ref == person_ref))
