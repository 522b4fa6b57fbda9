"""The real-name verification provider: the population register's checking service, asked
whether a name goes with a resident ID number (实名) and whether that person may act for a
company (法人: its legal representative or a registered agent).

It is an external system, spoken to over ``docs/identity-provider-protocol.md`` by
:class:`HttpIdentityVerifier`. Local and test runs use the sandbox register
(``sandbox.register.SandboxIdentityVerifier``, installed with the sandbox, never in production):
the same invented people and companies the sandbox provider serves, so the demo personas can
bind their real names and companies in development.

Names and ID numbers are personal data: they travel only in request bodies and are never
logged, put in an exception message or in a repr.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal, Protocol, TypeGuard, TypeVar

import httpx

from wangban.errors import ServiceUnavailable
from wangban.http import external_client
from wangban.observability import REQUEST_ID_HEADER, request_id_var, safe_incoming_id

__all__ = [
    "UNAVAILABLE_DETAIL",
    "CompanyCheck",
    "CompanyRole",
    "HttpIdentityVerifier",
    "IdentityVerifier",
    "PersonCheck",
    "PersonResult",
    "VerifierUnavailable",
]

logger = logging.getLogger(__name__)

PersonResult = Literal["match", "mismatch", "not_found"]
CompanyRole = Literal["legal_representative", "agent"]

UNAVAILABLE_DETAIL: Final = "实名核验服务暂不可用，请稍后再试"
PERSON_PATH: Final = "/v1/person/verify"
COMPANY_PATH: Final = "/v1/company/role"
MAX_RESPONSE_BYTES: Final = 64 * 1024
"""Both answers are a few dozen bytes; anything near this is not the protocol."""
MAX_COMPANY_NAME: Final = 200
"""As long as :attr:`gateway.models.CompanyBinding.company_name` can hold."""

_PERSON_RESULTS: Final[frozenset[str]] = frozenset({"match", "mismatch", "not_found"})
_ROLES: Final[frozenset[str]] = frozenset({"legal_representative", "agent"})
_T = TypeVar("_T")


class VerifierUnavailable(ServiceUnavailable):
    """The provider could not give an answer (down, slow, refusing our token, talking
    nonsense). Nothing was decided: the citizen is told to try again later (503 with
    ``Retry-After``) and nothing about the account changes."""

    type_slug = "verifier-unavailable"
    title = "实名核验服务暂不可用"

    def __init__(self, detail: str | None = None, **kwargs: Any) -> None:
        super().__init__(detail or UNAVAILABLE_DETAIL, **kwargs)


@dataclass(frozen=True)
class PersonCheck:
    """What the register says about a name and an ID number: ``match`` (it holds this number
    under this name), ``mismatch`` (under another name) or ``not_found`` (no such number)."""

    result: PersonResult


@dataclass(frozen=True)
class CompanyCheck:
    """Whether a person may act for a company. ``role`` is None when they may not;
    ``company_name`` is the registered name, None when the register does not know the code
    (and possibly whenever ``role`` is None: a provider need not tell)."""

    company_name: str | None
    role: CompanyRole | None


class IdentityVerifier(Protocol):
    """The register's verification service, as the gateway uses it. Implementations raise
    :class:`VerifierUnavailable` when they cannot answer, never a wrong answer."""

    async def verify_person(self, *, name: str, id_number: str) -> PersonCheck: ...

    async def company_role(self, *, uscc: str, name: str, id_number: str) -> CompanyCheck: ...

    async def close(self) -> None: ...


# --- over HTTP --------------------------------------------------------------------------------


class _Failure(Exception):
    """Why an exchange gave no answer: our own words, never data from the request."""

    def __init__(self, reason: str, *, status: int | None = None, level: int = logging.WARNING):
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.level = level


class HttpIdentityVerifier:
    """The provider over HTTP(S) with a bearer token (``docs/identity-provider-protocol.md``).

    Every failure — connection refused, ``timeout_s`` exceeded for the whole exchange, a
    status other than 200, a body that is not the protocol — raises
    :class:`VerifierUnavailable`. A 401 or 403 means our token is wrong, a misconfiguration
    someone must fix, so it is logged at error level; the rest are logged as warnings. No
    retries: the citizen's 503 carries ``Retry-After``.
    """

    def __init__(
        self,
        *,
        base_url: str,
        token: str,
        timeout_s: float,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not base_url.startswith(("https://", "http://")):
            raise ValueError("identity provider: base_url must be an http(s) URL")
        if not token:
            raise ValueError("identity provider: a bearer token is required")
        if timeout_s <= 0:
            raise ValueError("identity provider: timeout_s must be positive")
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self._authorization = f"Bearer {token}"
        # No proxy from the environment between us and the register, no redirects (not the
        # protocol; the token stays here), and no call while a transaction of ours is open.
        self._client = external_client(
            caller="gateway",
            system="identity register",
            timeout=httpx.Timeout(timeout_s),
            transport=transport,
        )

    def __repr__(self) -> str:
        return f"HttpIdentityVerifier(base_url={self.base_url!r})"

    async def verify_person(self, *, name: str, id_number: str) -> PersonCheck:
        return await self._call(PERSON_PATH, {"name": name, "id_number": id_number}, _person_check)

    async def company_role(self, *, uscc: str, name: str, id_number: str) -> CompanyCheck:
        return await self._call(
            COMPANY_PATH, {"uscc": uscc, "name": name, "id_number": id_number}, _company_check
        )

    async def close(self) -> None:
        await self._client.aclose()

    # -- the exchange -----------------------------------------------------------------------

    async def _call(
        self, path: str, body: Mapping[str, str], read: Callable[[dict[str, Any]], _T]
    ) -> _T:
        started = time.perf_counter()
        status: int | None = None
        try:
            try:
                # httpx's timeouts are per operation (per chunk read); this bounds the whole.
                async with asyncio.timeout(self.timeout_s):
                    status, content = await self._exchange(path, body)
            except TimeoutError:
                raise _Failure(f"no answer within {self.timeout_s:g}s") from None
            answer = read(_document(status, content))
        except _Failure as failure:
            self._log(path, failure.level, failure.status or status, started, failure.reason)
            raise VerifierUnavailable() from None
        self._log(path, logging.INFO, status, started, None)
        return answer

    async def _exchange(self, path: str, body: Mapping[str, str]) -> tuple[int, bytes]:
        headers = {
            "Authorization": self._authorization,
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": "wangban-gateway",
            REQUEST_ID_HEADER: safe_incoming_id(request_id_var.get()) or uuid.uuid4().hex,
        }
        content = json.dumps(dict(body), ensure_ascii=False).encode()
        try:
            async with self._client.stream(
                "POST", self.base_url + path, content=content, headers=headers
            ) as response:
                received = bytearray()
                async for chunk in response.aiter_bytes():
                    received += chunk
                    if len(received) > MAX_RESPONSE_BYTES:
                        raise _Failure(
                            f"answer larger than {MAX_RESPONSE_BYTES} bytes",
                            status=response.status_code,
                        )
                return response.status_code, bytes(received)
        except httpx.TimeoutException:
            raise _Failure(f"no answer within {self.timeout_s:g}s") from None
        except httpx.HTTPError as exc:
            # The exception's text may hold the URL, never the body: safe, but keep it short.
            raise _Failure(f"HTTP failure: {type(exc).__name__}") from None

    def _log(
        self, path: str, level: int, status: int | None, started: float, reason: str | None
    ) -> None:
        # The path, status, duration and our own reason: never the name, number or token.
        duration_ms = round((time.perf_counter() - started) * 1000, 2)
        fields: dict[str, Any] = {
            "provider": "identity",
            "path": path,
            "status": status,
            "duration_ms": duration_ms,
            "outcome": "answered" if reason is None else "unavailable",
        }
        if reason is not None:
            fields["reason"] = reason
        logger.log(
            level,
            "identity provider %s %s %.2fms%s",
            path,
            status if status is not None else "-",
            duration_ms,
            f": {reason}" if reason else "",
            extra={"fields": fields},
        )


def _document(status: int, content: bytes) -> dict[str, Any]:
    if status in (401, 403):
        raise _Failure(
            f"our credentials were refused (HTTP {status}): check the identity provider token",
            status=status,
            level=logging.ERROR,
        )
    if status != 200:
        raise _Failure(f"unexpected HTTP {status}", status=status)
    try:
        document = json.loads(content)
    except ValueError:
        raise _Failure("answer is not JSON", status=status) from None
    if not isinstance(document, dict):
        raise _Failure("answer is not a JSON object", status=status)
    return document


def _person_check(document: dict[str, Any]) -> PersonCheck:
    result = document.get("result")
    if not _is_person_result(result):
        raise _Failure("'result' is not match, mismatch or not_found", status=200)
    return PersonCheck(result=result)


def _company_check(document: dict[str, Any]) -> CompanyCheck:
    if "role" not in document:
        raise _Failure("'role' is missing", status=200)
    role = document["role"]
    if role is not None and not _is_role(role):
        raise _Failure("'role' is not legal_representative, agent or null", status=200)
    company_name = document.get("company_name")
    if company_name is not None and (
        not isinstance(company_name, str)
        or not company_name.strip()
        or len(company_name) > MAX_COMPANY_NAME
    ):
        raise _Failure("'company_name' is not a name or null", status=200)
    if role is not None and company_name is None:
        raise _Failure("a role without the company's name", status=200)
    return CompanyCheck(company_name=company_name, role=role)


def _is_person_result(value: object) -> TypeGuard[PersonResult]:
    return isinstance(value, str) and value in _PERSON_RESULTS


def _is_role(value: object) -> TypeGuard[CompanyRole]:
    return isinstance(value, str) and value in _ROLES
