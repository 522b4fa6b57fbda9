"""Internal identity tokens and the FastAPI dependencies built on them."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from typing import Annotated

import httpx
import jwt
import pytest
from fastapi import Depends, FastAPI
from pydantic import SecretStr, ValidationError

from wangban.auth import (
    REVIEWER,
    WINDOW_CLERK,
    AssuranceLevel,
    Identity,
    InsufficientAssurance,
    InternalTokens,
    current_identity,
    identity_var,
    require_assurance,
    require_roles,
)
from wangban.errors import Unauthorized, install_problem_handlers
from wangban.settings import Environment, Settings

from .synthetic import resident_id

KEY = "unit-test-internal-token-key-0123456789"

CITIZEN = Identity(
    subject="u-7f3a",
    kind="citizen",
    assurance=AssuranceLevel.REAL_NAME,
    region="510100",
    acting_for="c-42",
)
REVIEWER_STAFF = Identity(
    subject="s-11",
    kind="staff",
    roles=frozenset({REVIEWER}),
    department="市场监管局",
    assurance=AssuranceLevel.REAL_PERSON,
)


@pytest.fixture
def tokens() -> InternalTokens:
    return InternalTokens(KEY, ttl_s=60)


def test_issue_and_verify_round_trip(tokens: InternalTokens) -> None:
    for identity in (CITIZEN, REVIEWER_STAFF):
        token = tokens.issue(identity, issuer="gateway")
        assert tokens.verify(token) == identity
    claims = jwt.decode(
        tokens.issue(CITIZEN, issuer="gateway"),
        KEY,
        algorithms=["HS256"],
        audience="wangban-internal",
    )
    assert claims["iss"] == "gateway"
    assert claims["exp"] - claims["iat"] == 60
    assert claims["jti"]


def test_expired_token(tokens: InternalTokens) -> None:
    expired = InternalTokens(KEY, ttl_s=-30).issue(CITIZEN, issuer="gateway")
    with pytest.raises(Unauthorized) as caught:
        tokens.verify(expired)
    assert caught.value.detail == "身份令牌已过期，请重新登录"


def test_small_clock_skew_is_tolerated(tokens: InternalTokens) -> None:
    just_expired = InternalTokens(KEY, ttl_s=-2).issue(CITIZEN, issuer="gateway")
    assert tokens.verify(just_expired) == CITIZEN


def test_a_remembered_token_is_still_refused_once_it_expires() -> None:
    tokens = InternalTokens(KEY, ttl_s=60)
    # Expired 4 s ago: still inside the 5 s clock leeway, so accepted (and remembered) now.
    nearly_gone = InternalTokens(KEY, ttl_s=-4).issue(CITIZEN, issuer="gateway")
    assert tokens.verify(nearly_gone) == CITIZEN
    time.sleep(1.1)
    with pytest.raises(Unauthorized) as caught:
        tokens.verify(nearly_gone)
    assert caught.value.detail == "身份令牌已过期，请重新登录"


def test_a_caller_reuses_its_token_only_in_the_first_half_of_its_life() -> None:
    tokens = InternalTokens(KEY, ttl_s=2)
    first = tokens.issue(CITIZEN, issuer="intake")
    assert tokens.issue(CITIZEN, issuer="intake") == first
    assert tokens.issue(CITIZEN, issuer="approval") != first  # another caller, another token
    assert tokens.issue(REVIEWER_STAFF, issuer="intake") != first
    time.sleep(1.1)
    renewed = tokens.issue(CITIZEN, issuer="intake")
    assert renewed != first
    assert tokens.verify(renewed) == CITIZEN


@pytest.mark.parametrize(
    "make_token",
    [
        # Built when the test runs, not at collection: a token made at import time would
        # expire before a long suite reaches it and fail for the wrong reason.
        lambda: InternalTokens("some-other-key-of-sufficient-length!!", ttl_s=60).issue(
            CITIZEN, issuer="gateway"
        ),
        lambda: InternalTokens(KEY, ttl_s=60, audience="somebody-else").issue(
            CITIZEN, issuer="gateway"
        ),
        lambda: jwt.encode({"sub": "u-1", "aud": "wangban-internal"}, KEY, algorithm="HS256"),
        lambda: "not-a-jwt",
    ],
    ids=["wrong-key", "wrong-audience", "missing-claims", "garbage"],
)
def test_invalid_tokens(tokens: InternalTokens, make_token: Callable[[], str]) -> None:
    with pytest.raises(Unauthorized) as caught:
        tokens.verify(make_token())
    assert caught.value.detail == "身份令牌无效"


def test_unsigned_token_is_refused(tokens: InternalTokens) -> None:
    good = tokens.issue(CITIZEN, issuer="gateway")
    header, payload, _ = good.split(".")
    none_header = jwt.utils.base64url_encode(b'{"alg":"none","typ":"JWT"}').decode()
    with pytest.raises(Unauthorized):
        tokens.verify(f"{none_header}.{payload}.")
    with pytest.raises(Unauthorized):
        tokens.verify(f"{header}.{payload}.")


def test_subject_must_not_be_an_id_number() -> None:
    with pytest.raises(ValidationError):
        Identity(subject=resident_id(), kind="citizen", assurance=AssuranceLevel.REAL_NAME)


def test_identity_is_frozen() -> None:
    with pytest.raises(ValidationError):
        CITIZEN.subject = "other"
    assert AssuranceLevel.REAL_PERSON > AssuranceLevel.REAL_NAME > AssuranceLevel.WECHAT


# --- dependencies ---------------------------------------------------------------------------


def make_app() -> FastAPI:
    app = FastAPI()
    app.state.settings = Settings(env=Environment.TEST, internal_token_key=SecretStr(KEY))
    install_problem_handlers(app)

    @app.get("/me")
    async def me(identity: Annotated[Identity, Depends(current_identity)]) -> dict[str, object]:
        return {"subject": identity.subject, "bound": identity_var.get() == identity}

    @app.post("/review")
    async def review(
        identity: Annotated[Identity, Depends(require_roles(REVIEWER, WINDOW_CLERK))],
    ) -> dict[str, str]:
        return {"by": identity.subject}

    @app.post("/face-required")
    async def face_required(
        identity: Annotated[Identity, Depends(require_assurance(AssuranceLevel.REAL_PERSON))],
    ) -> dict[str, str]:
        return {"by": identity.subject}

    return app


@pytest.fixture(scope="module")
async def client() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=make_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


def bearer(identity: Identity) -> dict[str, str]:
    token = InternalTokens(KEY, ttl_s=60).issue(identity, issuer="gateway")
    return {"Authorization": f"Bearer {token}"}


async def test_current_identity(client: httpx.AsyncClient) -> None:
    response = await client.get("/me", headers=bearer(CITIZEN))
    assert response.json() == {"subject": "u-7f3a", "bound": True}


async def test_missing_and_bad_tokens_are_401(client: httpx.AsyncClient) -> None:
    response = await client.get("/me")
    assert response.status_code == 401
    assert response.json()["detail"] == "缺少身份令牌"
    assert response.headers["www-authenticate"].startswith("Bearer")

    for header in ("Basic dXNlcjpwYXNz", "Bearer nonsense"):
        response = await client.get("/me", headers={"Authorization": header})
        assert response.status_code == 401
        assert response.json()["detail"] == "身份令牌无效"


async def test_require_roles(client: httpx.AsyncClient) -> None:
    assert (await client.post("/review", headers=bearer(REVIEWER_STAFF))).status_code == 200
    response = await client.post("/review", headers=bearer(CITIZEN))
    assert response.status_code == 403
    body = response.json()
    assert body["type"] == "urn:wangban:problem:forbidden"
    assert body["detail"] == "无权执行此操作"
    assert (await client.post("/review")).status_code == 401


async def test_require_assurance(client: httpx.AsyncClient) -> None:
    assert (await client.post("/face-required", headers=bearer(REVIEWER_STAFF))).status_code == 200
    response = await client.post("/face-required", headers=bearer(CITIZEN))
    assert response.status_code == 403
    body = response.json()
    assert body["type"] == "urn:wangban:problem:insufficient-assurance"
    assert body["detail"] == "此事项需要完成实人认证"
    assert body["required_assurance"] == "real_person"
    assert body["current_assurance"] == "real_name"


async def test_require_assurance_message_for_real_name() -> None:
    dependency = require_assurance(AssuranceLevel.REAL_NAME)
    weak = CITIZEN.model_copy(update={"assurance": AssuranceLevel.WECHAT})
    with pytest.raises(InsufficientAssurance) as caught:
        await dependency(weak)
    assert caught.value.detail == "此事项需要完成实名认证"
    assert await dependency(CITIZEN) == CITIZEN
