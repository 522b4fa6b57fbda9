"""The real-name verification provider: one contract for the sandbox register and for the HTTP
adapter talking to a real local service that serves the same register over the documented
protocol; then the HTTP adapter's failures, every one of which is "unavailable", never an
answer."""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import AsyncIterator, Iterator
from datetime import date

import pytest

import sandbox
from gateway.identity_provider import HttpIdentityVerifier, IdentityVerifier, VerifierUnavailable
from sandbox import COMPANIES, PERSONAS, SandboxPopulation
from sandbox.register import SandboxIdentityVerifier
from tests.fakes.identity_provider import FakeVerificationService, serve_verifier
from wangban.errors import ServiceUnavailable

TOKEN = "identity-provider-test-token"
ZHOU = next(p for p in PERSONAS if p.key == "zhou_guohua")  # represents 华粤 and 恒发
LUO = next(p for p in PERSONAS if p.key == "luo_wenhua")  # represents nothing
HUAYUE = sandbox.USCC_HUAYUE
AGENT_NAME, AGENT_ID = "袁淑仪", sandbox.ID_YUAN_SHUYI  # agent of 华粤 only
NOBODY = "110101200001011232"  # a valid number the register does not hold
NO_COMPANY = "91441900MA4XXXXX18"  # a valid code the register does not hold


@pytest.fixture(params=["sandbox", "http"])
async def verifier(request: pytest.FixtureRequest) -> AsyncIterator[IdentityVerifier]:
    register = SandboxIdentityVerifier()
    if request.param == "sandbox":
        yield register
        await register.close()
        return
    async with serve_verifier(register, token=TOKEN) as service:
        http = HttpIdentityVerifier(base_url=service.base_url, token=TOKEN, timeout_s=5.0)
        try:
            yield http
        finally:
            await http.close()


# --- the contract -----------------------------------------------------------------------------


async def test_the_right_name_with_the_number_matches(verifier: IdentityVerifier) -> None:
    check = await verifier.verify_person(name=ZHOU.name, id_number=ZHOU.id_number)
    assert check.result == "match"


async def test_another_name_with_a_known_number_is_a_mismatch(verifier: IdentityVerifier) -> None:
    check = await verifier.verify_person(name=LUO.name, id_number=ZHOU.id_number)
    assert check.result == "mismatch"


async def test_a_number_the_register_does_not_hold_is_not_found(
    verifier: IdentityVerifier,
) -> None:
    check = await verifier.verify_person(name=ZHOU.name, id_number=NOBODY)
    assert check.result == "not_found"


async def test_the_legal_representative_acts_for_the_company(verifier: IdentityVerifier) -> None:
    check = await verifier.company_role(uscc=HUAYUE, name=ZHOU.name, id_number=ZHOU.id_number)
    assert check.role == "legal_representative"
    assert check.company_name == "东莞市华粤精密五金制品有限公司"


async def test_a_registered_agent_acts_for_the_company_as_agent(
    verifier: IdentityVerifier,
) -> None:
    check = await verifier.company_role(uscc=HUAYUE, name=AGENT_NAME, id_number=AGENT_ID)
    assert check.role == "agent"
    assert check.company_name == "东莞市华粤精密五金制品有限公司"
    elsewhere = await verifier.company_role(
        uscc=sandbox.USCC_HENGFA, name=AGENT_NAME, id_number=AGENT_ID
    )
    assert elsewhere.role is None


async def test_a_stranger_may_not_act_for_the_company(verifier: IdentityVerifier) -> None:
    check = await verifier.company_role(uscc=HUAYUE, name=LUO.name, id_number=LUO.id_number)
    assert check.role is None


async def test_the_representatives_number_under_another_name_gets_no_role(
    verifier: IdentityVerifier,
) -> None:
    check = await verifier.company_role(uscc=HUAYUE, name=LUO.name, id_number=ZHOU.id_number)
    assert check.role is None


async def test_an_unknown_company_has_no_name_and_no_role(verifier: IdentityVerifier) -> None:
    check = await verifier.company_role(uscc=NO_COMPANY, name=ZHOU.name, id_number=ZHOU.id_number)
    assert check.role is None and check.company_name is None


# --- the sandbox register ---------------------------------------------------------------------


async def test_every_demo_persona_and_representative_can_bind_their_real_name() -> None:
    register = SandboxIdentityVerifier()
    for persona in PERSONAS:
        check = await register.verify_person(name=persona.name, id_number=persona.id_number)
        assert check.result == "match", persona.key
    for company in COMPANIES:
        rep = await register.verify_person(
            name=company.representative, id_number=company.representative_id
        )
        assert rep.result == "match", company.key
        role = await register.company_role(
            uscc=company.uscc, name=company.representative, id_number=company.representative_id
        )
        assert (role.role, role.company_name) == ("legal_representative", company.name)


async def test_the_sandbox_agents_are_who_the_sandbox_population_says() -> None:
    population = SandboxPopulation.build(today=date(2026, 11, 23))
    for name, id_number in ((AGENT_NAME, AGENT_ID), ("蔡美玉", sandbox.ID_CAI_MEIYU)):
        record = population.record("gongan.huji", id_number)
        assert record is not None and record["name"] == name
    register = SandboxIdentityVerifier()
    check = await register.company_role(
        uscc=sandbox.USCC_XINDA, name="蔡美玉", id_number=sandbox.ID_CAI_MEIYU
    )
    assert check.role == "agent"


# --- the HTTP adapter: what goes over the wire ------------------------------------------------


@pytest.fixture
async def service() -> AsyncIterator[FakeVerificationService]:
    async with serve_verifier(SandboxIdentityVerifier(), token=TOKEN) as running:
        yield running


@pytest.fixture
async def http(service: FakeVerificationService) -> AsyncIterator[HttpIdentityVerifier]:
    adapter = HttpIdentityVerifier(base_url=service.base_url + "/", token=TOKEN, timeout_s=2.0)
    yield adapter
    await adapter.close()


async def test_requests_carry_the_token_and_keep_personal_data_in_the_body(
    service: FakeVerificationService, http: HttpIdentityVerifier
) -> None:
    await http.company_role(uscc=HUAYUE, name=ZHOU.name, id_number=ZHOU.id_number)
    assert service.last_headers["authorization"] == f"Bearer {TOKEN}"
    assert service.last_headers["content-type"] == "application/json"
    assert service.last_headers["x-request-id"]
    assert service.last_body == {"uscc": HUAYUE, "name": ZHOU.name, "id_number": ZHOU.id_number}
    assert ZHOU.id_number not in repr(http)


# --- the HTTP adapter: every failure is "unavailable" -----------------------------------------


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Everything logged; after the test, checked for personal data and the token."""
    caplog.set_level(logging.DEBUG)
    yield caplog
    for record in caplog.records:
        text = record.getMessage() + json.dumps(getattr(record, "fields", {}), ensure_ascii=False)
        for secret in (ZHOU.name, ZHOU.id_number, TOKEN):
            assert secret not in text, record.getMessage()


async def _ask(http: HttpIdentityVerifier) -> None:
    await http.verify_person(name=ZHOU.name, id_number=ZHOU.id_number)


@pytest.mark.parametrize("status", [500, 502, 503, 429, 404, 400])
async def test_a_failing_status_is_unavailable(
    service: FakeVerificationService,
    http: HttpIdentityVerifier,
    logs: pytest.LogCaptureFixture,
    status: int,
) -> None:
    service.set_failure(status)
    with pytest.raises(VerifierUnavailable):
        await _ask(http)
    assert any(
        r.levelno == logging.WARNING and f"HTTP {status}" in r.getMessage() for r in logs.records
    )


async def test_a_refused_token_is_unavailable_and_logged_as_an_error(
    service: FakeVerificationService, logs: pytest.LogCaptureFixture
) -> None:
    wrong = HttpIdentityVerifier(base_url=service.base_url, token="not-the-token", timeout_s=2.0)
    try:
        with pytest.raises(VerifierUnavailable):
            await _ask(wrong)
        with pytest.raises(VerifierUnavailable):
            await wrong.company_role(uscc=HUAYUE, name=ZHOU.name, id_number=ZHOU.id_number)
    finally:
        await wrong.close()
    errors = [r for r in logs.records if r.levelno == logging.ERROR]
    assert len(errors) == 2 and all("401" in r.getMessage() for r in errors)


async def test_a_forbidden_answer_is_a_credential_problem_too(
    service: FakeVerificationService, http: HttpIdentityVerifier, logs: pytest.LogCaptureFixture
) -> None:
    service.set_raw_response(b'{"error": "forbidden"}', status=403)
    with pytest.raises(VerifierUnavailable):
        await _ask(http)
    assert any(r.levelno == logging.ERROR for r in logs.records)


async def test_no_answer_within_the_timeout_is_unavailable(
    service: FakeVerificationService, logs: pytest.LogCaptureFixture
) -> None:
    service.set_delay(30)
    slow = HttpIdentityVerifier(base_url=service.base_url, token=TOKEN, timeout_s=0.3)
    try:
        with pytest.raises(VerifierUnavailable):
            await _ask(slow)
    finally:
        await slow.close()
    assert any("no answer within" in r.getMessage() for r in logs.records)


async def test_nobody_listening_is_unavailable(logs: pytest.LogCaptureFixture) -> None:
    # A bound socket that does not listen: connecting to it is refused, and no one else can
    # take the port meanwhile.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as held:
        held.bind(("127.0.0.1", 0))
        port = held.getsockname()[1]
        closed = HttpIdentityVerifier(
            base_url=f"http://127.0.0.1:{port}", token=TOKEN, timeout_s=2.0
        )
        try:
            with pytest.raises(VerifierUnavailable):
                await _ask(closed)
        finally:
            await closed.close()


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"<html>gateway error</html>", "text/html"),
        (b'["match"]', "application/json"),
        (b'{"result": "probably"}', "application/json"),
        (b'{"result": null}', "application/json"),
        (b"{}", "application/json"),
        (b'{"result": "match", "padding": "' + b"x" * 70_000 + b'"}', "application/json"),
    ],
    ids=["html", "array", "unknown-result", "null-result", "empty", "too-large"],
)
async def test_garbage_about_a_person_is_unavailable(
    service: FakeVerificationService,
    http: HttpIdentityVerifier,
    logs: pytest.LogCaptureFixture,
    body: bytes,
    content_type: str,
) -> None:
    service.set_raw_response(body, content_type=content_type)
    with pytest.raises(VerifierUnavailable):
        await _ask(http)


@pytest.mark.parametrize(
    "answer",
    [
        {"company_name": "某公司"},  # role missing
        {"company_name": "某公司", "role": "owner"},
        {"company_name": None, "role": "agent"},  # a role for no company
        {"company_name": 42, "role": None},
        {"company_name": "", "role": "legal_representative"},
        {"company_name": "长" * 201, "role": "agent"},
    ],
    ids=["no-role", "unknown-role", "role-without-name", "number-name", "empty-name", "long-name"],
)
async def test_garbage_about_a_company_is_unavailable(
    service: FakeVerificationService,
    http: HttpIdentityVerifier,
    logs: pytest.LogCaptureFixture,
    answer: dict[str, object],
) -> None:
    service.set_raw_response(json.dumps(answer, ensure_ascii=False).encode())
    with pytest.raises(VerifierUnavailable):
        await http.company_role(uscc=HUAYUE, name=ZHOU.name, id_number=ZHOU.id_number)


async def test_a_redirect_is_not_followed(
    service: FakeVerificationService, http: HttpIdentityVerifier
) -> None:
    service.set_raw_response(b"", status=302)
    with pytest.raises(VerifierUnavailable):
        await _ask(http)
    assert service.requests_seen == 1


def test_unavailability_is_a_503_problem_in_chinese_with_retry_after() -> None:
    problem = VerifierUnavailable()
    assert isinstance(problem, ServiceUnavailable)
    assert problem.status == 503 and problem.headers["Retry-After"]
    body = problem.to_body(None, None)
    assert body["type"] == "urn:wangban:problem:verifier-unavailable"
    assert body["detail"] == "实名核验服务暂不可用，请稍后再试"


@pytest.mark.parametrize(
    "arguments",
    [
        {"base_url": "ftp://register.example", "token": TOKEN, "timeout_s": 1.0},
        {"base_url": "https://register.example", "token": "", "timeout_s": 1.0},
        {"base_url": "https://register.example", "token": TOKEN, "timeout_s": 0},
    ],
    ids=["not-http", "no-token", "no-timeout"],
)
def test_a_misconfigured_adapter_is_refused_at_construction(arguments: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        HttpIdentityVerifier(**arguments)  # type: ignore[arg-type]
