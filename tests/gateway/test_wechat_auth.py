"""WeChatAuth against a local fake WeChat on 127.0.0.1: login (every errcode of code2Session
as its problem, the session key dropped, a code good once), face verification (only
verify_ret 10000 passes; the result is bound to the openid, out_seq_no and certificate it was
started with), the access token (one fetch for many calls, one refresh when WeChat rejects
it, shared through PostgreSQL) and that no credential or personal data reaches the logs."""

from __future__ import annotations

import dataclasses
import json
import logging
import uuid
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import delete, select

from gateway.models import wechat_access_token
from gateway.wechat import (
    FaceResult,
    FaceVerificationFailed,
    HighRiskUser,
    InvalidLoginCode,
    LoginRateLimited,
    WeChatAuth,
    WeChatBusy,
    WeChatSession,
    WeChatUnavailable,
    face_cert_hash,
)
from tests.fakes.wechat import SESSION_KEY, FakeWeChat, documented_cert_hash, serve_fake_wechat
from tests.serving import serve_asgi
from wangban.crypto import FieldCipher
from wangban.db import Database
from wangban.embedded import free_port
from wangban.errors import Problem, install_problem_handlers
from wangban.settings import Settings
from wangban.wechat import MemoryTokenStore, PostgresTokenStore, StoredToken

APPID = "wx7a1b2c3d4e5f6a7b"
SECRET = "gateway-wechat-secret-4e1d"
OPENID = "oGw9-citizen-openid-Zq3T"
UNIONID = "uGw9-citizen-unionid-Lm2P"
NAME = "王小明"
ID_NUMBER = "110101199003074515"


class CountingStore(MemoryTokenStore):
    """A real MemoryTokenStore that counts how often it is read."""

    def __init__(self) -> None:
        super().__init__()
        self.loads = 0

    async def load(self) -> StoredToken | None:
        self.loads += 1
        return await super().load()


@pytest.fixture
async def fake() -> AsyncIterator[FakeWeChat]:
    async with serve_fake_wechat(appid=APPID, secret=SECRET) as running:
        yield running


@pytest.fixture
async def make_auth(fake: FakeWeChat) -> AsyncIterator[Callable[..., WeChatAuth]]:
    made: list[WeChatAuth] = []

    def make(**overrides: object) -> WeChatAuth:
        options: dict[str, object] = {
            "base_url": fake.base_url,
            "appid": APPID,
            "secret": SECRET,
            "token_store": MemoryTokenStore(),
            "timeout_s": 5.0,
        }
        options.update(overrides)
        auth = WeChatAuth(**options)  # type: ignore[arg-type]
        made.append(auth)
        return auth

    yield make
    for auth in made:
        await auth.close()


@pytest.fixture
def auth(make_auth: Callable[..., WeChatAuth]) -> WeChatAuth:
    return make_auth()


async def start(auth: WeChatAuth, out_seq_no: str = "seq-0001") -> str:
    started = await auth.start_face_verification(
        openid=OPENID, name=NAME, id_number=ID_NUMBER, out_seq_no=out_seq_no
    )
    return started.verify_id


async def result(auth: WeChatAuth, verify_id: str, out_seq_no: str = "seq-0001") -> FaceResult:
    return await auth.face_result(
        verify_id=verify_id,
        out_seq_no=out_seq_no,
        openid=OPENID,
        name=NAME,
        id_number=ID_NUMBER,
    )


def has_chinese(text: str | None) -> bool:
    return text is not None and any("\u4e00" <= ch <= "\u9fff" for ch in text)


# -- login ---------------------------------------------------------------------------------


async def test_a_login_answers_who_wechat_says_it_is(fake: FakeWeChat, auth: WeChatAuth) -> None:
    fake.login_codes["code-1"] = (OPENID, UNIONID)
    session = await auth.code_to_session("code-1")
    assert session == WeChatSession(openid=OPENID, unionid=UNIONID)
    # The documented request: a GET with the four query parameters.
    assert fake.login_calls == [
        {
            "appid": APPID,
            "secret": SECRET,
            "js_code": "code-1",
            "grant_type": "authorization_code",
        }
    ]
    assert fake.token_calls == []  # a login needs no access token


async def test_success_has_no_errcode_and_the_unionid_is_optional(
    fake: FakeWeChat, auth: WeChatAuth
) -> None:
    # The fake answers success as WeChat does today: no errcode at all, and no unionid when
    # the mini-program is not bound to an open-platform account.
    fake.login_codes["code-2"] = (OPENID, None)
    assert await auth.code_to_session("code-2") == WeChatSession(openid=OPENID, unionid=None)


async def test_the_session_key_is_dropped(
    fake: FakeWeChat, auth: WeChatAuth, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fake.login_codes["code-3"] = (OPENID, UNIONID)
    session = await auth.code_to_session("code-3")
    assert [f.name for f in dataclasses.fields(session)] == ["openid", "unionid"]
    assert SESSION_KEY not in repr(session) and SESSION_KEY not in str(vars(session))
    assert OPENID not in repr(session)  # not in tracebacks or log lines either
    ours = [r for r in caplog.records if not r.name.startswith("uvicorn")]
    rendered = [caplog.handler.format(record) for record in ours]
    assert any("HTTP Request" in line for line in rendered)  # httpx's URL line was captured
    for line in rendered:
        for secret in (SESSION_KEY, SECRET, "code-3", OPENID, UNIONID):
            assert secret not in line


async def test_a_code_works_once(fake: FakeWeChat, auth: WeChatAuth) -> None:
    fake.login_codes["code-4"] = (OPENID, None)
    assert (await auth.code_to_session("code-4")).openid == OPENID
    with pytest.raises(InvalidLoginCode) as refused:
        await auth.code_to_session("code-4")
    assert refused.value.status == 401
    # WeChat answers a used code with 40163: the client is asked for a new wx.login.
    assert refused.value.detail == (
        "登录凭证已使用过，请重新登录（小程序需重新调用 wx.login 获取新的登录凭证）"
    )


async def test_an_empty_code_is_refused_without_asking_wechat(
    fake: FakeWeChat, auth: WeChatAuth
) -> None:
    with pytest.raises(InvalidLoginCode):
        await auth.code_to_session("")
    assert fake.login_calls == []


@pytest.mark.parametrize(
    ("errcode", "problem", "status"),
    [
        (40029, InvalidLoginCode, 401),
        (45011, LoginRateLimited, 429),
        (40226, HighRiskUser, 403),
        (-1, WeChatBusy, 503),
        (40013, WeChatUnavailable, 503),  # one we have no mapping for
    ],
    ids=["invalid-code", "rate-limited", "high-risk", "busy", "other"],
)
async def test_each_login_errcode_is_its_problem(
    fake: FakeWeChat, auth: WeChatAuth, errcode: int, problem: type[Problem], status: int
) -> None:
    fake.login_codes["code-5"] = (OPENID, None)
    fake.login_errcode = errcode
    with pytest.raises(Problem) as raised:
        await auth.code_to_session("code-5")
    assert type(raised.value) is problem
    assert raised.value.status == status
    assert has_chinese(raised.value.detail)
    if errcode == 40029:
        assert raised.value.detail == "登录凭证无效或已过期，请重新登录"
    if errcode == 45011:
        assert raised.value.headers["Retry-After"] == "60"
    if status == 503:
        assert "Retry-After" in raised.value.headers  # retryable


async def test_a_wrong_secret_is_unavailability_not_the_users_fault(
    fake: FakeWeChat, make_auth: Callable[..., WeChatAuth]
) -> None:
    fake.login_codes["code-6"] = (OPENID, None)
    with pytest.raises(WeChatUnavailable):
        await make_auth(secret="not-the-secret").code_to_session("code-6")


@pytest.mark.parametrize("failure", ["http-500", "not-json", "timeout"])
async def test_login_transport_failures_are_unavailability(
    fake: FakeWeChat, make_auth: Callable[..., WeChatAuth], failure: str
) -> None:
    fake.login_codes["code-7"] = (OPENID, None)
    if failure == "http-500":
        fake.http_status = 500
    elif failure == "not-json":
        fake.garbage = True
    else:
        fake.delay_s = 10
    with pytest.raises(WeChatUnavailable) as raised:
        await make_auth(timeout_s=0.3).code_to_session("code-7")
    assert raised.value.status == 503 and has_chinese(raised.value.detail)


async def test_nobody_listening_is_unavailability() -> None:
    auth = WeChatAuth(
        base_url=f"http://127.0.0.1:{free_port()}",
        appid=APPID,
        secret=SECRET,
        token_store=MemoryTokenStore(),
        timeout_s=2.0,
    )
    try:
        with pytest.raises(WeChatUnavailable):
            await auth.code_to_session("code-8")
        with pytest.raises(WeChatUnavailable):
            await auth.start_face_verification(
                openid=OPENID, name=NAME, id_number=ID_NUMBER, out_seq_no="seq"
            )
    finally:
        await auth.close()


async def test_a_route_that_lets_the_problems_propagate_answers_them(
    fake: FakeWeChat, auth: WeChatAuth
) -> None:
    """What the gateway's login route relies on: the problem reaches the client as
    problem+json with its status and headers."""
    app = FastAPI()
    install_problem_handlers(app)

    @app.post("/login/{code}")
    async def login(code: str) -> dict[str, str]:
        return {"openid": (await auth.code_to_session(code)).openid}

    async with serve_asgi(app) as base_url, httpx.AsyncClient(base_url=base_url) as client:
        fake.login_codes["code-9"] = (OPENID, None)
        assert (await client.post("/login/code-9")).json() == {"openid": OPENID}

        reused = await client.post("/login/code-9")
        assert reused.status_code == 401
        assert reused.headers["content-type"].startswith("application/problem+json")
        assert "wx.login" in reused.json()["detail"]
        assert reused.json()["type"].endswith("invalid-login-code")

        fake.login_errcode = 45011
        limited = await client.post("/login/code-10")
        assert limited.status_code == 429 and limited.headers["retry-after"] == "60"


def test_the_secret_is_not_in_the_repr() -> None:
    auth = WeChatAuth(
        base_url="https://api.weixin.qq.com",
        appid=APPID,
        secret=SECRET,
        token_store=MemoryTokenStore(),
    )
    assert SECRET not in repr(auth) and APPID in repr(auth)


# -- face verification ---------------------------------------------------------------------


def test_the_cert_hash_is_the_documented_one() -> None:
    # The example of WeChat's queryVerifyInfo documentation.
    assert (
        face_cert_hash(name="张三", id_number="310101199801011234")
        == "3c241f7ff324977aeb91f173bb2a7b06569e6fd784d5573db34a636d8671108b"
    )
    assert face_cert_hash(name=NAME, id_number=ID_NUMBER) == documented_cert_hash(
        "IDENTITY_CARD", NAME, ID_NUMBER
    )


async def test_a_face_verification_is_started_with_the_documented_request(
    fake: FakeWeChat, auth: WeChatAuth
) -> None:
    started = await auth.start_face_verification(
        openid=OPENID, name=NAME, id_number=ID_NUMBER, out_seq_no="seq-start"
    )
    assert started.verify_id and started.expires_in == 3600
    assert fake.face_calls == [
        (
            "getverifyid",
            {
                "out_seq_no": "seq-start",
                "cert_info": {
                    "cert_type": "IDENTITY_CARD",
                    "cert_name": NAME,
                    "cert_no": ID_NUMBER,
                },
                "openid": OPENID,
            },
        )
    ]
    assert fake.tokens_used == [fake.current_token]


async def test_a_face_check_that_succeeded_passes(fake: FakeWeChat, auth: WeChatAuth) -> None:
    verify_id = await start(auth)
    fake.complete_face(OPENID, 10000)
    outcome = await result(auth, verify_id)
    assert (outcome.verify_ret, outcome.passed) == (10000, True)
    name, body = fake.face_calls[-1]
    assert name == "queryverifyinfo"
    assert body == {
        "verify_id": verify_id,
        "out_seq_no": "seq-0001",
        "cert_hash": documented_cert_hash("IDENTITY_CARD", NAME, ID_NUMBER),
        "openid": OPENID,
    }


@pytest.mark.parametrize("verify_ret", [10001, 10002, 10003, 10004, 90002, 90017, 0, 1])
async def test_any_other_verify_ret_does_not_pass(
    fake: FakeWeChat, auth: WeChatAuth, verify_ret: int
) -> None:
    verify_id = await start(auth)
    fake.complete_face(OPENID, verify_ret)
    outcome = await result(auth, verify_id)
    assert (outcome.verify_ret, outcome.passed) == (verify_ret, False)


async def test_a_face_check_not_yet_done_does_not_pass(fake: FakeWeChat, auth: WeChatAuth) -> None:
    verify_id = await start(auth)
    assert not (await result(auth, verify_id)).passed


async def test_the_result_of_one_verification_is_its_own(
    fake: FakeWeChat, auth: WeChatAuth
) -> None:
    first = await start(auth, "seq-a")
    second = await start(auth, "seq-b")
    fake.face_results[first] = 10004  # a verify_id's own result wins over the openid's
    fake.complete_face(OPENID, 10000)
    assert not (await result(auth, first, "seq-a")).passed
    assert (await result(auth, second, "seq-b")).passed


def test_passed_cannot_be_claimed() -> None:
    assert FaceResult(verify_ret=10000).passed
    assert not FaceResult(verify_ret=90004).passed
    with pytest.raises(TypeError):
        FaceResult(verify_ret=90004, passed=True)  # type: ignore[call-arg]


async def test_an_unknown_verify_id_fails_the_verification(
    fake: FakeWeChat, auth: WeChatAuth
) -> None:
    await start(auth)
    with pytest.raises(FaceVerificationFailed) as raised:
        await result(auth, "no-such-verify-id")
    assert raised.value.status == 422 and has_chinese(raised.value.detail)


async def test_the_result_is_not_given_for_another_person_or_sequence(
    fake: FakeWeChat, auth: WeChatAuth
) -> None:
    verify_id = await start(auth)
    fake.complete_face(OPENID, 10000)
    with pytest.raises(FaceVerificationFailed):
        await auth.face_result(
            verify_id=verify_id,
            out_seq_no="seq-0001",
            openid=OPENID,
            name="李四",  # another certificate: another cert_hash
            id_number=ID_NUMBER,
        )
    with pytest.raises(FaceVerificationFailed):
        await result(auth, verify_id, out_seq_no="seq-other")
    with pytest.raises(FaceVerificationFailed):
        await auth.face_result(
            verify_id=verify_id,
            out_seq_no="seq-0001",
            openid="o-someone-else",
            name=NAME,
            id_number=ID_NUMBER,
        )


@pytest.mark.parametrize(
    ("errcode", "problem"),
    [(-1, WeChatBusy), (48001, WeChatUnavailable), (45009, WeChatUnavailable)],
    ids=["busy", "api-unauthorized", "daily-quota"],
)
async def test_face_errcodes_about_wechat_or_us_are_unavailability(
    fake: FakeWeChat, auth: WeChatAuth, errcode: int, problem: type[Problem]
) -> None:
    fake.face_errcode = errcode
    with pytest.raises(Problem) as raised:
        await start(auth)
    assert type(raised.value) is problem and raised.value.status == 503


@pytest.mark.parametrize("failure", ["http-502", "not-json"])
async def test_face_transport_failures_are_unavailability(
    fake: FakeWeChat, auth: WeChatAuth, failure: str
) -> None:
    verify_id = await start(auth)
    if failure == "http-502":
        fake.http_status = 502
    else:
        fake.garbage = True
    with pytest.raises(WeChatUnavailable):
        await result(auth, verify_id)


# -- the access token ----------------------------------------------------------------------


async def test_one_token_serves_many_calls(
    fake: FakeWeChat, make_auth: Callable[..., WeChatAuth]
) -> None:
    store = CountingStore()
    auth = make_auth(token_store=store)
    verify_id = await start(auth)
    fake.complete_face(OPENID)
    for _ in range(3):
        assert (await result(auth, verify_id)).passed
    assert fake.token_calls == [False]  # one normal-mode stable_token call
    assert store.loads == 1  # then the in-process copy
    assert len(fake.tokens_used) == 4 and set(fake.tokens_used) == {fake.current_token}


async def test_an_expired_token_is_refreshed_once_and_the_call_retried(
    fake: FakeWeChat, auth: WeChatAuth
) -> None:
    verify_id = await start(auth)
    first_token = fake.current_token
    fake.complete_face(OPENID)
    fake.expire_token()  # the next call with it gets 42001
    assert (await result(auth, verify_id)).passed
    assert fake.token_calls == [False, False]  # one more fetch: normal mode gives a new one
    assert fake.tokens_used == [first_token, first_token, fake.current_token]
    assert first_token != fake.current_token
    assert [name for name, _ in fake.face_calls] == ["getverifyid", "queryverifyinfo"]
    # The new token then serves on, with no further fetch.
    assert (await result(auth, verify_id)).passed
    assert fake.token_calls == [False, False]


async def test_a_token_refused_again_after_refresh_is_unavailability(
    fake: FakeWeChat, auth: WeChatAuth
) -> None:
    fake.reject_tokens = 2
    with pytest.raises(WeChatUnavailable):
        await start(auth)
    # Exactly one retry, never a loop: normal mode gave the refused token back, then forced.
    assert fake.token_calls == [False, False, True]
    assert fake.face_calls == []
    assert (await start(auth)).startswith("fake-verify-")  # and it recovers


async def test_token_endpoint_failures_are_unavailability(
    fake: FakeWeChat, auth: WeChatAuth
) -> None:
    fake.token_errcode = 40164  # IP not whitelisted
    with pytest.raises(WeChatUnavailable):
        await start(auth)
    assert fake.face_calls == []


async def test_workers_share_the_token_through_postgres(
    fake: FakeWeChat,
    make_auth: Callable[..., WeChatAuth],
    database: Database,
    settings: Settings,
) -> None:
    appid = f"wx-gw-{uuid.uuid4().hex[:10]}"
    fake.appid = appid
    cipher = FieldCipher.from_settings(settings)

    def store() -> PostgresTokenStore:
        return PostgresTokenStore(
            database,
            table=wechat_access_token,
            appid=appid,
            cipher=cipher,
            context="gateway.wechat_token",
        )

    try:
        workers = [make_auth(appid=appid, token_store=store()) for _ in range(2)]
        for worker in workers:
            await worker.start_face_verification(
                openid=OPENID, name=NAME, id_number=ID_NUMBER, out_seq_no="seq-pg"
            )
        assert fake.token_calls == [False]  # the second worker found the first's token

        fake.expire_token()
        for worker in workers:
            await worker.start_face_verification(
                openid=OPENID, name=NAME, id_number=ID_NUMBER, out_seq_no="seq-pg"
            )
        # The first worker replaced it; the second found the replacement instead of fetching.
        assert fake.token_calls == [False, False]

        async with database.sessionmaker() as session:
            row = (
                await session.execute(
                    select(wechat_access_token).where(wechat_access_token.c.appid == appid)
                )
            ).one()
        token = fake.current_token
        assert token is not None and token not in row.token_enc  # encrypted
        stored = await store().load()
        assert stored is not None and stored.token == token
    finally:
        async with database.sessionmaker() as session, session.begin():
            await session.execute(
                delete(wechat_access_token).where(wechat_access_token.c.appid == appid)
            )


# -- privacy -------------------------------------------------------------------------------


async def test_no_credential_or_personal_data_reaches_the_logs(
    fake: FakeWeChat, auth: WeChatAuth, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fake.login_codes["code-private"] = (OPENID, UNIONID)
    await auth.code_to_session("code-private")
    with pytest.raises(InvalidLoginCode):
        await auth.code_to_session("code-private")
    verify_id = await start(auth)
    fake.expire_token()
    fake.complete_face(OPENID, 10003)
    outcome = await result(auth, verify_id)  # 42001, refresh, retry
    with pytest.raises(FaceVerificationFailed):
        await result(auth, "unknown-verify-id")
    fake.face_errcode = -1
    with pytest.raises(WeChatBusy):
        await result(auth, verify_id)

    secrets = {
        SECRET,
        SESSION_KEY,
        "code-private",
        OPENID,
        UNIONID,
        NAME,
        ID_NUMBER,
        documented_cert_hash("IDENTITY_CARD", NAME, ID_NUMBER),
        *fake.tokens_used,
    }
    ours = [r for r in caplog.records if not r.name.startswith("uvicorn")]
    rendered = [caplog.handler.format(record) for record in ours]
    assert any("errcode" in line for line in rendered)  # errcodes are logged
    assert any("HTTP Request" in line for line in rendered)
    texts = [*rendered, repr(outcome), json.dumps(dataclasses.asdict(outcome))]
    for text in texts:
        for secret in secrets:
            assert secret not in text
