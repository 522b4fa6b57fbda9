"""WeChatClient against a local fake WeChat on 127.0.0.1: the access token (cached, shared by
workers through the token store, refreshed once on rejection), the mapping of every errcode
the delivery rules care about, technical failures, and that neither the openid nor the token
leaks into results or logs."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from notify_service.channels import SendResult
from notify_service.wechat import WeChatClient
from tests.fakes.wechat import FakeWeChat, serve_fake_wechat
from wangban.embedded import free_port
from wangban.wechat import MemoryTokenStore, StoredToken, token_usable_until

APPID = "wx5f0e1d2c3b4a5968"
SECRET = "wechat-test-secret-7d2e9f"
OPENID = "oQz3X5-citizen-openid-Kp9w"
DATA = {"thing1": "营业执照变更登记", "phrase2": "已办结"}


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class CountingStore(MemoryTokenStore):
    """A real MemoryTokenStore that counts how often it is read."""

    def __init__(self, *, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        super().__init__(clock=clock)
        self.loads = 0
        self.refreshes: list[str | None] = []

    async def load(self) -> StoredToken | None:
        self.loads += 1
        return await super().load()

    async def refresh(
        self, fetch: Callable[[], Awaitable[StoredToken]], *, replacing: str | None
    ) -> StoredToken:
        self.refreshes.append(replacing)
        return await super().refresh(fetch, replacing=replacing)


@pytest.fixture
async def fake() -> AsyncIterator[FakeWeChat]:
    async with serve_fake_wechat(appid=APPID, secret=SECRET) as running:
        yield running


@pytest.fixture
async def make_client(
    fake: FakeWeChat,
) -> AsyncIterator[Callable[..., WeChatClient]]:
    made: list[WeChatClient] = []

    def make(**overrides: object) -> WeChatClient:
        options: dict[str, object] = {
            "base_url": fake.base_url,
            "appid": APPID,
            "secret": SECRET,
            "token_store": MemoryTokenStore(),
            "timeout_s": 5.0,
        }
        options.update(overrides)
        client = WeChatClient(**options)  # type: ignore[arg-type]
        made.append(client)
        return client

    yield make
    for client in made:
        await client.close()


@pytest.fixture
def client(make_client: Callable[..., WeChatClient]) -> WeChatClient:
    return make_client()


async def send(client: WeChatClient, openid: str = OPENID, template_id: str = "TPL") -> SendResult:
    return await client.send_subscription(
        openid=openid,
        template_id=template_id,
        page="pages/detail?id=7",
        data=DATA,
        miniprogram_state="formal",
        lang="zh_CN",
    )


async def force_refresh_elsewhere(fake: FakeWeChat) -> None:
    """Another party (a second deployment, a developer's tool) force-refreshes the token."""
    async with httpx.AsyncClient(trust_env=False) as other:
        answer = await other.post(
            f"{fake.base_url}/cgi-bin/stable_token",
            json={
                "grant_type": "client_credential",
                "appid": APPID,
                "secret": SECRET,
                "force_refresh": True,
            },
        )
    assert "access_token" in answer.json()


# -- the wire ----------------------------------------------------------------------------


async def test_the_request_is_the_documented_shape(fake: FakeWeChat, client: WeChatClient) -> None:
    result = await client.send_subscription(
        openid=OPENID,
        template_id="TPL-1",
        page=None,
        data={"thing1": "材料补正", "time2": "2026-11-23 09:30"},
        miniprogram_state="developer",
        lang="zh_CN",
    )
    assert result.outcome == "delivered"
    assert result.provider_ref is not None and result.provider_ref.isdigit()
    # page is omitted when None, not sent as null.
    assert fake.sent == [
        {
            "touser": OPENID,
            "template_id": "TPL-1",
            "data": {"thing1": {"value": "材料补正"}, "time2": {"value": "2026-11-23 09:30"}},
            "miniprogram_state": "developer",
            "lang": "zh_CN",
        }
    ]
    assert fake.tokens_used == [fake.current_token]


def test_tokens_are_replaced_before_they_lapse() -> None:
    fetched = datetime(2026, 1, 1, tzinfo=UTC)
    # A full two-hour token: 5 minutes early. A short life: 10 % of it early.
    assert token_usable_until(fetched, 7200) == fetched + timedelta(seconds=6900)
    assert token_usable_until(fetched, 600) == fetched + timedelta(seconds=540)
    assert token_usable_until(fetched, 60) == fetched + timedelta(seconds=54)


def test_a_stored_token_must_carry_a_timezone() -> None:
    with pytest.raises(ValueError, match="timezone"):
        StoredToken(token="t", expires_at=datetime(2026, 1, 1))
    assert "t0ken-value" not in repr(StoredToken(token="t0ken-value", expires_at=datetime.now(UTC)))


# -- the token ---------------------------------------------------------------------------


async def test_one_token_serves_many_sends(
    fake: FakeWeChat, make_client: Callable[..., WeChatClient]
) -> None:
    store = CountingStore()
    client = make_client(token_store=store)
    results = [await send(client) for _ in range(5)]
    assert {r.outcome for r in results} == {"delivered"}
    assert fake.token_calls == [False]  # one normal-mode stable_token call
    # The in-process copy spares the shared store: read once, on the first send.
    assert store.loads == 1 and store.refreshes == [None]
    assert len(set(fake.tokens_used)) == 1


async def test_a_token_is_fetched_again_shortly_before_it_lapses(
    fake: FakeWeChat, make_client: Callable[..., WeChatClient]
) -> None:
    clock = Clock()
    store = MemoryTokenStore(clock=clock)
    client = make_client(token_store=store, clock=clock)
    assert (await send(client)).outcome == "delivered"
    stored = await store.load()
    assert stored is not None and stored.expires_at == clock.now + timedelta(seconds=6900)

    clock.advance(6899)
    assert (await send(client)).outcome == "delivered"
    assert fake.token_calls == [False]

    clock.advance(2)  # under 5 minutes left: replaced, in normal mode (no forced refresh)
    assert (await send(client)).outcome == "delivered"
    assert fake.token_calls == [False, False]


async def test_a_token_another_worker_stored_is_used(
    fake: FakeWeChat, make_client: Callable[..., WeChatClient]
) -> None:
    store = MemoryTokenStore()
    assert (await send(make_client(token_store=store))).outcome == "delivered"
    assert (await send(make_client(token_store=store))).outcome == "delivered"
    assert fake.token_calls == [False]


async def test_a_token_replaced_elsewhere_is_refreshed_and_the_send_retried_once(
    fake: FakeWeChat, make_client: Callable[..., WeChatClient]
) -> None:
    store = CountingStore()
    client = make_client(token_store=store)
    assert (await send(client)).outcome == "delivered"
    first_token = fake.tokens_used[0]
    await force_refresh_elsewhere(fake)  # our copy is now "not latest": WeChat says 40001

    result = await send(client)
    assert result.outcome == "delivered"
    assert fake.send_calls == 3  # the first send, the refused one, its one retry
    # Ours, the other party's forced one, then ours in normal mode: WeChat's current token is
    # the other party's, which is all we need (forcing again would end theirs).
    assert fake.token_calls == [False, True, False]
    assert store.refreshes == [None, first_token]
    assert fake.tokens_used[1] == first_token != fake.tokens_used[2] == fake.current_token


async def test_an_expired_token_is_refreshed_and_the_send_retried_once(
    fake: FakeWeChat, client: WeChatClient
) -> None:
    assert (await send(client)).outcome == "delivered"
    fake.expire_token()  # WeChat answers 42001 to the next send with it
    result = await send(client)
    assert result.outcome == "delivered"
    assert fake.send_calls == 3
    assert fake.token_calls == [False, False]  # normal mode gives a new one for an expired one
    assert len(fake.sent) == 2


async def test_a_token_refused_again_after_refresh_is_a_technical_failure(
    fake: FakeWeChat, client: WeChatClient
) -> None:
    fake.reject_tokens = 5
    result = await send(client)
    assert (result.outcome, result.code) == ("technical-failure", "40001")
    assert fake.send_calls == 2  # exactly one retry, never a loop
    # Normal mode handed back the refused token, so only then a forced one.
    assert fake.token_calls == [False, False, True]
    # The next send does not trust the refused token either.
    fake.reject_tokens = 0
    assert (await send(client)).outcome == "delivered"


async def test_two_workers_sharing_a_store_fetch_one_token(
    fake: FakeWeChat, make_client: Callable[..., WeChatClient]
) -> None:
    store = MemoryTokenStore()
    workers = [make_client(token_store=store), make_client(token_store=store)]
    fake.delay_s = 0.05  # the token fetch is in flight while the other worker asks
    results = await asyncio.gather(*(send(w) for w in workers for _ in range(3)))
    assert {r.outcome for r in results} == {"delivered"}
    assert fake.token_calls == [False]


async def test_two_workers_refused_the_same_token_refresh_it_once(
    fake: FakeWeChat, make_client: Callable[..., WeChatClient]
) -> None:
    store = MemoryTokenStore()
    workers = [make_client(token_store=store), make_client(token_store=store)]
    for worker in workers:
        assert (await send(worker)).outcome == "delivered"
    fake.expire_token()
    results = await asyncio.gather(*(send(w) for w in workers))
    assert {r.outcome for r in results} == {"delivered"}
    # The second worker found the token the first one fetched, instead of fetching again.
    assert fake.token_calls == [False, False]


async def test_wrong_app_secret_is_a_technical_failure_without_sending(
    fake: FakeWeChat, make_client: Callable[..., WeChatClient]
) -> None:
    result = await send(make_client(secret="not-the-secret"))
    assert (result.outcome, result.code) == ("technical-failure", "40125")
    assert result.detail is not None and "access_token" in result.detail
    assert fake.send_calls == 0


async def test_token_endpoint_failures_are_technical(
    fake: FakeWeChat, client: WeChatClient
) -> None:
    fake.token_errcode = -1
    result = await send(client)
    assert (result.outcome, result.code) == ("technical-failure", "-1")
    fake.token_errcode = None
    fake.http_status = 503
    assert (await send(client)).outcome == "technical-failure"
    fake.http_status = None
    assert (await send(client)).outcome == "delivered"


# -- errcodes ----------------------------------------------------------------------------


async def test_no_consent(fake: FakeWeChat, client: WeChatClient) -> None:
    fake.openid_errors[OPENID] = 43101
    result = await send(client)
    assert (result.outcome, result.code) == ("no-consent", "43101")
    assert result.detail and "订阅" in result.detail


async def test_a_field_wechat_refuses_is_named(fake: FakeWeChat, client: WeChatClient) -> None:
    fake.reject_field = "thing1"
    result = await send(client)
    assert (result.outcome, result.code, result.field) == ("permanent-failure", "47003", "thing1")
    assert result.detail is not None and "thing1" in result.detail


async def test_47003_without_a_field_name_is_still_permanent(
    fake: FakeWeChat, client: WeChatClient
) -> None:
    fake.errcode = 47003
    fake.errmsg = "argument invalid!"
    result = await send(client)
    assert (result.outcome, result.code, result.field) == ("permanent-failure", "47003", None)


@pytest.mark.parametrize(
    ("arrange", "code"),
    [
        (lambda f: f.openid_errors.__setitem__(OPENID, 40003), "40003"),
        (lambda f: f.invalid_templates.add("TPL"), "40037"),
        (lambda f: setattr(f, "errcode", 41030), "41030"),
        (lambda f: setattr(f, "errcode", 48001), "48001"),  # one we have no text for
    ],
    ids=["invalid-openid", "invalid-template", "invalid-page", "unknown-code"],
)
async def test_permanent_failures(
    fake: FakeWeChat, client: WeChatClient, arrange: Callable[[FakeWeChat], None], code: str
) -> None:
    arrange(fake)
    result = await send(client)
    assert (result.outcome, result.code) == ("permanent-failure", code)
    assert result.detail and code in result.detail
    assert fake.token_calls == [False]  # not mistaken for a token problem


@pytest.mark.parametrize("errcode", [-1, 45009, 45011])
async def test_busy_and_rate_limits_are_temporary(
    fake: FakeWeChat, client: WeChatClient, errcode: int
) -> None:
    fake.errcode = errcode
    result = await send(client)
    assert (result.outcome, result.code) == ("temporary-failure", str(errcode))
    assert result.detail


# -- technical failures -----------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 404])
async def test_http_errors_are_technical(
    fake: FakeWeChat, make_client: Callable[..., WeChatClient], status: int
) -> None:
    store = MemoryTokenStore()
    assert (await send(make_client(token_store=store))).outcome == "delivered"
    fake.http_status = status
    result = await send(make_client(token_store=store))
    assert result.outcome == "technical-failure"
    assert result.detail is not None and str(status) in result.detail


async def test_an_answer_that_is_not_json_is_technical(
    fake: FakeWeChat, client: WeChatClient
) -> None:
    assert (await send(client)).outcome == "delivered"
    fake.garbage = True
    assert (await send(client)).outcome == "technical-failure"


async def test_a_slow_answer_is_a_technical_failure(
    fake: FakeWeChat, make_client: Callable[..., WeChatClient]
) -> None:
    # Delivered first by a patient client (the access token kept in the shared store), so the
    # impatient one's only call is the one that cannot be answered in time, however loaded the
    # machine running the test is.
    tokens = MemoryTokenStore()
    assert (await send(make_client(token_store=tokens))).outcome == "delivered"
    client = make_client(timeout_s=0.3, token_store=tokens)
    fake.delay_s = 10
    result = await send(client)
    assert result.outcome == "technical-failure"
    assert result.detail is not None and "超时" in result.detail


async def test_nobody_listening_is_a_technical_failure() -> None:
    client = WeChatClient(
        base_url=f"http://127.0.0.1:{free_port()}",
        appid=APPID,
        secret=SECRET,
        token_store=MemoryTokenStore(),
        timeout_s=2.0,
    )
    try:
        result = await send(client)
    finally:
        await client.close()
    assert result.outcome == "technical-failure"


def test_the_secret_is_not_in_the_repr() -> None:
    client = WeChatClient(
        base_url="https://api.weixin.qq.com",
        appid=APPID,
        secret=SECRET,
        token_store=MemoryTokenStore(),
    )
    assert SECRET not in repr(client) and APPID in repr(client)


# -- privacy -----------------------------------------------------------------------------


async def test_neither_openid_nor_token_leaks_into_results_or_logs(
    fake: FakeWeChat, client: WeChatClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    results = [await send(client)]
    fake.expire_token()
    results.append(await send(client))  # 42001, refresh, retry
    fake.openid_errors[OPENID] = 43101
    results.append(await send(client))
    fake.openid_errors[OPENID] = 40003
    results.append(await send(client))
    fake.openid_errors.clear()
    fake.reject_field = "thing1"
    results.append(await send(client))
    fake.reject_field = None
    # A code we pass WeChat's own message on for, with that message echoing the openid.
    fake.errcode = 48001
    fake.errmsg = f"api unauthorized for touser {OPENID}"
    results.append(await send(client))
    fake.errcode = None
    fake.reject_tokens = 2
    results.append(await send(client))
    fake.http_status = 500
    results.append(await send(client))

    assert [r.outcome for r in results] == [
        "delivered",
        "delivered",
        "no-consent",
        "permanent-failure",
        "permanent-failure",
        "permanent-failure",
        "technical-failure",
        "technical-failure",
    ]
    tokens = set(fake.tokens_used)
    assert len(tokens) >= 2
    secrets = {OPENID, SECRET, *tokens}
    # uvicorn's records are the fake WeChat's own access log: WeChat's side, not ours (it runs
    # only because pytest attaches its handler to uvicorn's non-propagating access logger).
    ours = [r for r in caplog.records if not r.name.startswith("uvicorn")]
    rendered = [caplog.handler.format(record) for record in ours]
    assert any("errcode" in line for line in rendered)  # the errcode is logged
    assert any("HTTP Request" in line for line in rendered)  # httpx's URL line was captured
    for text in [*rendered, *(json.dumps(r.__dict__, ensure_ascii=False) for r in results)]:
        for secret in secrets:
            assert secret not in text
