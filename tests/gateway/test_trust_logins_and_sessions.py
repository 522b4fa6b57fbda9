"""Issue 17 ("Trust"), findings 11, 12 and 15, through the gateway:

- real-name binding is no oracle for which ID numbers are registered: an ID number bound to
  another account with the right name answers exactly as a wrong name does, and the register is
  asked in both cases;
- staff login failures are counted per (username, client address) with growing delays, so an
  attacker cannot lock a colleague out from elsewhere, and unknown usernames answer exactly as
  known ones;
- access tokens die with their session: after logout or a refresh token's reuse, the access
  tokens of that family are refused.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import delete, func, update

from gateway.models import Account, LoginThrottle
from gateway.sessions import RevocationList, client_tokens, revocations
from sandbox import PERSONAS
from sandbox.register import SandboxIdentityVerifier
from tests.fakes.identity_provider import FakeVerificationService, serve_verifier
from tests.gateway.support import Gateway, running_gateway
from tests.infrastructure import Infrastructure
from wangban.crypto import BlindIndex
from wangban.db import Database

TOKEN = "trust-identity-provider-token"
PROBLEM = "application/problem+json"


@pytest.fixture
async def register() -> AsyncIterator[FakeVerificationService]:
    async with serve_verifier(SandboxIdentityVerifier(), token=TOKEN) as running:
        yield running


@pytest.fixture
async def gateway(
    infrastructure: Infrastructure, database: Database, register: FakeVerificationService
) -> AsyncIterator[Gateway]:
    async with running_gateway(
        infrastructure,
        database,
        identity_provider_url=register.base_url,
        identity_provider_token=TOKEN,
        gateway_staff_login_per_minute_per_ip=1000,
        gateway_real_name_per_hour_per_user=1000,
        # No cache: a logout is seen by the very next request (the cache's own behaviour is
        # tested below without waiting for it).
        gateway_revocation_cache_s=0,
    ) as running:
        yield running


def _problem(answer: httpx.Response) -> tuple[int, str, str, str]:
    body = answer.json()
    return answer.status_code, answer.headers["content-type"], body["type"], body["detail"]


async def _release(gateway: Gateway, id_number: str) -> None:
    """Accounts persist between tests: an earlier one for this person steps aside."""
    person_ref = BlindIndex.from_settings(gateway.settings).resident_id(id_number)
    async with gateway.database.sessionmaker() as session, session.begin():
        await session.execute(delete(Account).where(Account.person_ref == person_ref))


# --- 11: real-name binding -------------------------------------------------------------------


async def test_an_id_number_bound_elsewhere_answers_as_a_wrong_name_and_both_ask_the_register(
    gateway: Gateway, register: FakeVerificationService
) -> None:
    owner, other = PERSONAS[4], PERSONAS[5]
    await _release(gateway, owner.id_number)
    await gateway.citizen(assurance="real_name", name=owner.name, id_number=owner.id_number)
    newcomer = await gateway.citizen(assurance="wechat")

    before = register.requests_seen
    bound_elsewhere = await gateway.client.post(
        "/api/v1/me/real-name",
        json={"name": owner.name, "id_number": owner.id_number},
        headers=newcomer,
    )
    asked_for_bound = register.requests_seen - before

    before = register.requests_seen
    wrong_name = await gateway.client.post(
        "/api/v1/me/real-name",
        json={"name": other.name, "id_number": owner.id_number},
        headers=newcomer,
    )
    asked_for_wrong = register.requests_seen - before

    assert bound_elsewhere.status_code == 422, bound_elsewhere.text
    assert _problem(bound_elsewhere) == _problem(wrong_name)
    assert bound_elsewhere.json()["title"] == wrong_name.json()["title"]
    assert (asked_for_bound, asked_for_wrong) == (1, 1)
    me = await gateway.client.get("/api/v1/me", headers=newcomer)
    assert me.json()["assurance"] == "wechat"


async def test_the_right_name_binds_an_unbound_id_number(gateway: Gateway) -> None:
    person = PERSONAS[6]
    await _release(gateway, person.id_number)
    newcomer = await gateway.citizen(assurance="wechat")
    bound = await gateway.client.post(
        "/api/v1/me/real-name",
        json={"name": person.name, "id_number": person.id_number},
        headers=newcomer,
    )
    assert bound.status_code == 200, bound.text


# --- 12: staff login throttling -------------------------------------------------------------


def _from(gateway: Gateway, address: str) -> httpx.AsyncClient:
    """Another client of the same gateway, from ``address``."""
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=gateway.app, client=(address, 50000)),
        base_url="http://gateway",
    )


def _address() -> str:
    value = uuid.uuid4().int
    return f"10.{value % 256}.{(value >> 8) % 256}.{(value >> 16) % 256}"


async def _staff(gateway: Gateway) -> tuple[str, str]:
    username, password = f"clerk-{uuid.uuid4().hex[:8]}", "Window-clerk-2026"
    await gateway.staff_account(
        username, password, roles=["window_clerk"], department="东莞市民政局"
    )
    return username, password


async def _login(client: httpx.AsyncClient, username: str, password: str) -> httpx.Response:
    return await client.post(
        "/api/v1/auth/staff", json={"username": username, "password": password}
    )


async def test_failures_from_one_address_do_not_lock_the_colleague_out_elsewhere(
    gateway: Gateway,
) -> None:
    username, password = await _staff(gateway)
    async with _from(gateway, _address()) as attacker, _from(gateway, _address()) as colleague:
        answers = [await _login(attacker, username, "guess-123456") for _ in range(8)]
        assert [a.status_code for a in answers[:5]] == [401] * 5
        assert {a.status_code for a in answers[5:]} == {429}
        # The attacker's address is slowed down even with the right password...
        assert (await _login(attacker, username, password)).status_code == 429
        # ...but the colleague at their own desk logs in at once.
        mine = await _login(colleague, username, password)
        assert mine.status_code == 200, mine.text


async def test_unknown_usernames_answer_exactly_as_known_ones_also_when_slowed_down(
    gateway: Gateway,
) -> None:
    known, _ = await _staff(gateway)
    unknown = f"nobody-{uuid.uuid4().hex[:8]}"
    async with _from(gateway, _address()) as client:
        for attempt in range(7):
            of_known = await _login(client, known, "guess-123456")
            of_unknown = await _login(client, unknown, "guess-123456")
            assert _problem(of_known) == _problem(of_unknown), attempt
            assert ("retry-after" in of_known.headers) == ("retry-after" in of_unknown.headers)
            if attempt >= 5:
                assert of_known.status_code == 429
                assert 1 <= int(of_known.headers["retry-after"]) <= 30
                assert 1 <= int(of_unknown.headers["retry-after"]) <= 30
            else:
                assert of_known.status_code == 401


async def test_the_delay_doubles_with_each_further_failure(gateway: Gateway) -> None:
    username, password = await _staff(gateway)
    address = _address()

    async def delay_passes() -> None:
        # Waiting deterministically: the delay in force ends now, as if it had passed.
        async with gateway.database.sessionmaker() as session, session.begin():
            await session.execute(
                update(LoginThrottle)
                .where(LoginThrottle.address == address)
                .values(blocked_until=func.now())
            )

    retry_after: list[int] = []
    async with _from(gateway, address) as client:
        for _ in range(5):
            assert (await _login(client, username, "guess-123456")).status_code == 401
        for _ in range(3):
            slowed = await _login(client, username, "guess-123456")
            assert slowed.status_code == 429 and slowed.json()["type"].endswith("login-throttled")
            retry_after.append(int(slowed.headers["retry-after"]))
            await delay_passes()
            # One more guess once the delay is over: wrong again, and the next delay doubles.
            assert (await _login(client, username, "guess-123456")).status_code == 401
        await delay_passes()
        good = await _login(client, username, password)
        assert good.status_code == 200, good.text
        # A good password clears the count for this address.
        assert (await _login(client, username, "guess-123456")).status_code == 401
        assert (await _login(client, username, password)).status_code == 200
    assert 15 < retry_after[0] <= 30
    assert 30 < retry_after[1] <= 60
    assert 60 < retry_after[2] <= 120


# --- 15: access tokens die with their session -----------------------------------------------


async def _dev_login(gateway: Gateway) -> dict[str, Any]:
    answer = await gateway.client.post("/api/v1/auth/dev", json={"openid": f"o-{uuid.uuid4().hex}"})
    assert answer.status_code == 200, answer.text
    tokens: dict[str, Any] = answer.json()
    return tokens


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_after_logout_the_access_token_is_refused(gateway: Gateway) -> None:
    tokens = await _dev_login(gateway)
    other = await _dev_login(gateway)
    assert (
        await gateway.client.get("/api/v1/me", headers=_bearer(tokens["access_token"]))
    ).is_success
    out = await gateway.client.post(
        "/api/v1/auth/logout", json={"refresh_token": tokens["refresh_token"]}
    )
    assert out.status_code == 204
    refused = await gateway.client.get("/api/v1/me", headers=_bearer(tokens["access_token"]))
    assert refused.status_code == 401 and refused.headers["content-type"] == PROBLEM
    assert refused.json()["type"].endswith("session-expired")
    # Another login of the same kind is not touched.
    still = await gateway.client.get("/api/v1/me", headers=_bearer(other["access_token"]))
    assert still.status_code == 200


async def test_refresh_token_reuse_ends_the_access_tokens_of_the_family(gateway: Gateway) -> None:
    first = await _dev_login(gateway)
    second = await gateway.client.post(
        "/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}
    )
    assert second.status_code == 200
    replay = await gateway.client.post(
        "/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}
    )
    assert replay.status_code == 401 and replay.json()["type"].endswith("refresh-token-reused")
    for token in (first["access_token"], second.json()["access_token"]):
        refused = await gateway.client.get("/api/v1/me", headers=_bearer(token))
        assert refused.status_code == 401, refused.text


async def test_an_access_token_without_a_family_is_refused(gateway: Gateway) -> None:
    tokens = await _dev_login(gateway)
    identity = gateway.app.state.client_tokens.verify(tokens["access_token"])
    bare = client_tokens(gateway.settings).issue(identity, issuer="gateway")
    assert (await gateway.client.get("/api/v1/me", headers=_bearer(bare))).status_code == 401


async def test_the_revocation_list_is_read_once_per_cache_window(
    infrastructure: Infrastructure, database: Database
) -> None:
    async with running_gateway(infrastructure, database, gateway_revocation_cache_s=60) as cached:
        tokens = await _dev_login(cached)
        revoked = revocations(cached.app)
        loads = revoked.loads
        for _ in range(5):
            me = await cached.client.get("/api/v1/me", headers=_bearer(tokens["access_token"]))
            assert me.status_code == 200
        assert revoked.loads - loads == 1
        # Another worker, with its own copy of the list.
        elsewhere = RevocationList(
            database, cache_s=60, access_ttl_s=cached.settings.gateway_access_token_ttl_s
        )
        family = cached.app.state.client_tokens.verify_session(tokens["access_token"])[1]
        assert not await elsewhere.is_revoked(family)
        out = await cached.client.post(
            "/api/v1/auth/logout", json={"refresh_token": tokens["refresh_token"]}
        )
        assert out.status_code == 204
        # The worker that took the logout forgot its copy at once.
        refused = await cached.client.get("/api/v1/me", headers=_bearer(tokens["access_token"]))
        assert refused.status_code == 401
        # The other one learns it when its window ends (clearing its copy stands for that).
        elsewhere.clear()
        assert await elsewhere.is_revoked(family)
