"""While the identity register answers, the gateway holds no transaction: real-name binding reads
the account, asks the register, and only then locks the account and writes. The one-account-per-
person rule still holds when two accounts bind the same person at the same moment.

The register is the protocol's fake (a real HTTP server on 127.0.0.1) in front of the sandbox
register, made slow; ``pg_stat_activity`` is watched while it waits."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from sqlalchemy import delete, func, select

from gateway.models import Account
from sandbox import PERSONAS
from sandbox.register import SandboxIdentityVerifier
from tests.fakes.identity_provider import FakeVerificationService, serve_verifier
from tests.gateway.support import Gateway, running_gateway
from tests.infrastructure import Infrastructure
from tests.transactions import watching_idle_in_transaction
from wangban.crypto import BlindIndex
from wangban.db import Database

TOKEN = "slow-register-token"
DELAY_S = 0.6


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
        http_timeout_s=5.0,
        gateway_real_name_per_hour_per_user=1000,
    ) as running:
        yield running


def _person_ref(gateway: Gateway, id_number: str) -> str:
    return BlindIndex.from_settings(gateway.settings).resident_id(id_number)


async def _release(gateway: Gateway, id_number: str) -> None:
    """Accounts persist between tests: an earlier one for this person steps aside."""
    async with gateway.database.sessionmaker() as session, session.begin():
        await session.execute(
            delete(Account).where(Account.person_ref == _person_ref(gateway, id_number))
        )


async def _until(condition: Callable[[], bool]) -> None:
    """Polls: the fake register counts requests but has nothing to wait on."""
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("not within 10 s")


def _bind(gateway: Gateway, headers: dict[str, str], name: str, id_number: str) -> asyncio.Task:
    return asyncio.create_task(
        gateway.client.post(
            "/api/v1/me/real-name", json={"name": name, "id_number": id_number}, headers=headers
        )
    )


async def _assurance(gateway: Gateway, headers: dict[str, str]) -> str:
    me = await gateway.client.get("/api/v1/me", headers=headers)
    assert me.status_code == 200, me.text
    return str(me.json()["assurance"])


async def test_no_backend_idles_in_transaction_while_the_register_is_slow(
    gateway: Gateway, register: FakeVerificationService
) -> None:
    person = PERSONAS[7]
    await _release(gateway, person.id_number)
    newcomer = await gateway.citizen(assurance="wechat")
    register.set_delay(DELAY_S)
    before = register.requests_seen

    async with watching_idle_in_transaction(gateway.database, longer_than_s=DELAY_S / 2) as samples:
        binding = _bind(gateway, newcomer, person.name, person.id_number)
        await _until(lambda: register.requests_seen > before)
        await asyncio.sleep(DELAY_S / 2)  # well inside the register's delay
        asked_while_waiting = len(samples)
        answer: httpx.Response = await binding

    assert answer.status_code == 200, answer.text
    assert asked_while_waiting >= 3  # the watcher looked while the register was answering
    assert samples and max(samples) == 0
    assert await _assurance(gateway, newcomer) == "real_name"


async def test_two_accounts_binding_the_same_person_at_once_only_one_succeeds(
    gateway: Gateway, register: FakeVerificationService
) -> None:
    person = PERSONAS[8]
    await _release(gateway, person.id_number)
    first = await gateway.citizen(assurance="wechat")
    second = await gateway.citizen(assurance="wechat")
    register.set_delay(DELAY_S)
    before = register.requests_seen

    bindings = [_bind(gateway, h, person.name, person.id_number) for h in (first, second)]
    # Both are with the register at once: neither has written anything yet.
    await _until(lambda: register.requests_seen == before + 2)
    assert not any(b.done() for b in bindings)
    answers: list[httpx.Response] = list(await asyncio.gather(*bindings))

    assert sorted(a.status_code for a in answers) == [200, 422], [a.text for a in answers]
    [refused] = [a for a in answers if a.status_code == 422]
    # The answer a wrong name gets: nothing tells that the person is bound elsewhere.
    assert refused.json()["type"] == "urn:wangban:problem:real-name-mismatch"
    async with gateway.database.read_sessionmaker() as reads:
        holders = await reads.scalar(
            select(func.count())
            .select_from(Account)
            .where(Account.person_ref == _person_ref(gateway, person.id_number))
        )
    assert holders == 1
    assurances = sorted([await _assurance(gateway, first), await _assurance(gateway, second)])
    assert assurances == ["real_name", "wechat"]
