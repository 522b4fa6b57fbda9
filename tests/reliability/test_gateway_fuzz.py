"""Reliability scenario 5: fuzz the gateway's OpenAPI document with schemathesis.

Every ``/api/v1`` operation of the gateway's own document gets generated requests — valid ones
(positive) and ones that break the documented contract (negative) — as an anonymous caller, as a
real-person-verified citizen and as staff of several roles. The gateway runs in process in front
of every real service (real PostgreSQL, no mocks), exactly as in ``tests/gateway``.

Each answer must be no 5xx, carry a documented status code, a documented content type and a body
that matches the documented schema. Generation is derandomised with a small fixed number of
examples per operation, so a run is deterministic and bounded (about a minute).

The pass-through routes' success answers and, where the gateway passes the body or query on
unread, their request bodies and query parameters come from the services' own documents
(gateway/contract.py): so the fuzzing reaches the services' validation and their answers are
checked against what the services promise.

Hypothesis drives generation synchronously, while the app's database pools live on the test's
event loop: the fuzzing runs in a worker thread and hands each request to that loop.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, reject, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from sandbox import PERSONAS
from tests.fakes.wechat import serve_fake_wechat
from tests.gateway.support import Gateway, running_gateway
from tests.infrastructure import Infrastructure
from tests.reliability.support import report
from wangban.db import Database

pytestmark = pytest.mark.slow  # left out of `./dev test --fast`

API = "/api/v1"
BASE_URL = "http://gateway"
MAX_EXAMPLES = 10
"""Per operation, principal and generation mode: at most this many requests (fewer when an
operation has fewer distinct inputs, e.g. none at all). About 1 000 requests per principal."""
REQUEST_TIMEOUT_S = 30.0
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
MODES = (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE)
PRINCIPALS = ("anonymous", "citizen", "reviewer", "catalog_admin", "ops")

EXCLUDED: dict[tuple[str, str], str] = {}
"""Operations not fuzzed, each with the reason (none at present)."""


@dataclass
class FuzzWorld:
    gateway: Gateway
    headers: dict[str, dict[str, str]]
    schema: Any
    """The loaded schemathesis schema of the gateway's document."""


@dataclass
class Findings:
    failures: dict[tuple[str, str, str], str] = field(default_factory=dict)
    """(operation, failure title, status) -> one example report."""
    requests: Counter[str] = field(default_factory=Counter)
    """Requests sent, by operation."""
    nothing_to_negate: list[str] = field(default_factory=list)

    def add(self, operation: str, status: int, failure: Failure, reproduce: str) -> None:
        key = (operation, failure.title, str(status))
        self.failures.setdefault(key, f"{failure.title}: {failure.message}\n    {reproduce}")


@pytest.fixture(scope="module")
async def world(infrastructure: Infrastructure, database: Database) -> AsyncIterator[FuzzWorld]:
    persona = PERSONAS[0]
    async with (
        serve_fake_wechat(appid="wx-fuzz", secret="fuzz-secret") as wechat,
        running_gateway(
            infrastructure,
            database,
            wechat_api_base=wechat.base_url,
            wechat_appid="wx-fuzz",
            wechat_app_secret="fuzz-secret",
            # Fuzzing logs in hundreds of times from one address: the limits are tested elsewhere.
            gateway_login_per_minute_per_ip=100_000,
            gateway_staff_login_per_minute_per_ip=100_000,
            gateway_submissions_per_minute_per_ip=100_000,
            gateway_submissions_per_minute_per_user=100_000,
            gateway_real_name_per_hour_per_user=100_000,
        ) as gateway,
    ):
        headers = {
            "anonymous": {},
            "citizen": await gateway.citizen(name=persona.name, id_number=persona.id_number),
            "reviewer": gateway.staff("reviewer", department="东莞市民政局"),
            "catalog_admin": gateway.staff("catalog_admin"),
            "ops": gateway.staff("ops"),
        }
        document = gateway.app.openapi()
        document = {
            **document,
            "paths": {p: ops for p, ops in document["paths"].items() if p.startswith(API)},
        }
        schema = schemathesis.openapi.from_dict(document)
        yield FuzzWorld(gateway, headers, schema)


def _operations(world: FuzzWorld) -> list[Any]:
    operations = [result.ok() for result in world.schema.get_all_operations()]
    return [
        op for op in operations if (op.method.upper(), op.path.removeprefix(API)) not in EXCLUDED
    ]


def _send(
    world: FuzzWorld,
    loop: asyncio.AbstractEventLoop,
    case: schemathesis.Case,
    headers: dict[str, str],
) -> httpx.Response:
    """Serialise the case as schemathesis would for ``requests``, send it through the gateway's
    in-process client on the test's loop, and wait for the answer."""
    kwargs = case.as_transport_kwargs(base_url=BASE_URL, headers=headers)
    prepared = requests.Request(
        method=kwargs["method"],
        url=kwargs["url"],
        headers=kwargs.get("headers"),
        params=kwargs.get("params"),
        cookies=kwargs.get("cookies"),
        json=kwargs.get("json"),
        data=kwargs.get("data"),
        files=kwargs.get("files"),
    ).prepare()
    try:
        httpx.URL(str(prepared.url))
    except httpx.InvalidURL:
        # Longer than any HTTP client or server takes (a 20 000-character query value of
        # non-ASCII text, percent-encoded): nothing could send it, so the example is dropped.
        reject()
    body = prepared.body.encode() if isinstance(prepared.body, str) else prepared.body
    assert body is None or isinstance(body, bytes), type(body)
    call = world.gateway.client.request(
        str(prepared.method),
        str(prepared.url),
        headers={k: v if isinstance(v, str) else v.decode() for k, v in prepared.headers.items()},
        content=body,
    )
    return asyncio.run_coroutine_threadsafe(call, loop).result(timeout=REQUEST_TIMEOUT_S)


def _fuzz_operation(
    world: FuzzWorld,
    loop: asyncio.AbstractEventLoop,
    operation: Any,
    principal: str,
    mode: schemathesis.GenerationMode,
    findings: Findings,
) -> None:
    headers = world.headers[principal]

    @settings(
        max_examples=MAX_EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        phases=(Phase.explicit, Phase.generate),
        suppress_health_check=list(HealthCheck),
        report_multiple_bugs=False,
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: schemathesis.Case) -> None:
        response = _send(world, loop, case, headers)
        findings.requests[operation.label] += 1
        try:
            case.validate_response(response, checks=CHECKS, headers=headers)
        except FailureGroup as group:
            curl = case.as_curl_command(headers=headers)
            for failure in group.exceptions:
                findings.add(operation.label, response.status_code, failure, curl)
        except Failure as failure:
            curl = case.as_curl_command(headers=headers)
            findings.add(operation.label, response.status_code, failure, curl)

    try:
        run()
    except Unsatisfiable:
        # Nothing of this operation can be made invalid after all (``_modes`` guesses from the
        # document): negative generation has nothing to send. Positive generation still ran.
        if mode is not schemathesis.GenerationMode.NEGATIVE:
            raise
        findings.nothing_to_negate.append(operation.label)


def _modes(operation: Any) -> tuple[schemathesis.GenerationMode, ...]:
    """Negative generation needs something that can be invalid: a body, a query or header
    parameter, or a constrained path parameter. A bare string in the path cannot be (every
    string is one), and asking Hypothesis to try anyway burns hundreds of rejected draws."""
    definition: dict[str, Any] = operation.definition.raw
    negatable = "requestBody" in definition or any(
        parameter["in"] != "path"
        or parameter.get("schema", {}).get("type") != "string"
        or set(parameter.get("schema", {})) - {"type", "title", "description"}
        for parameter in definition.get("parameters", [])
    )
    return MODES if negatable else MODES[:1]


def _fuzz(world: FuzzWorld, loop: asyncio.AbstractEventLoop, principal: str) -> Findings:
    findings = Findings()
    for operation in _operations(world):
        for mode in _modes(operation):
            _fuzz_operation(world, loop, operation, principal, mode, findings)
    return findings


def _report(principal: str, findings: Findings) -> str:
    lines = [f"{len(findings.failures)} distinct failures as {principal}:"]
    for (operation, title, status), example in sorted(findings.failures.items()):
        lines.append(f"- {operation} [{status}] {title}\n    {example}")
    return "\n".join(lines)


async def test_the_document_covers_the_whole_api(world: FuzzWorld) -> None:
    operations = _operations(world)
    declared = sum(
        1
        for path, ops in world.gateway.app.openapi()["paths"].items()
        if path.startswith(API)
        for _ in ops
    )
    assert len(operations) + len(EXCLUDED) == declared
    assert len(operations) >= 60


@pytest.mark.parametrize("principal", PRINCIPALS)
async def test_fuzzed_requests_get_documented_answers(world: FuzzWorld, principal: str) -> None:
    findings = await asyncio.to_thread(_fuzz, world, asyncio.get_running_loop(), principal)
    reached = set(findings.requests)
    assert reached == {op.label for op in _operations(world)}, "operations never requested"
    assert findings.requests.total() >= 10 * len(reached)
    assert not findings.failures, _report(principal, findings)
    report(
        f"fuzz_{principal}",
        operations=len(reached),
        requests=findings.requests.total(),
        server_errors=0,
        schema_mismatches=0,
    )
