"""Service-to-service HTTP: one way to build a client, with the same timeouts, retry
policy and propagated context everywhere.

A request made while handling another carries the caller's request and correlation
ids (so logs line up across services) and, when there is a current identity, a fresh
internal token for it (so the callee authorises the person, not the calling service).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import httpx
from pydantic import BaseModel

from contracts.internal_api import ACTOR_HEADER
from wangban import tracing
from wangban.auth import AssuranceLevel, Identity, InternalTokens, identity_var
from wangban.db import GuardMode, check_no_transaction
from wangban.errors import ServiceUnavailable
from wangban.observability import (
    CORRELATION_ID_HEADER,
    REQUEST_ID_HEADER,
    TRACEPARENT_HEADER,
    current_context,
    outbound_calls,
)
from wangban.settings import Settings

__all__ = [
    "IDEMPOTENCY_KEY_HEADER",
    "Answer",
    "RetryingTransport",
    "ServiceCalls",
    "external_client",
    "guard_transactions",
    "service_client",
]

logger = logging.getLogger(__name__)

IDEMPOTENCY_KEY_HEADER: Final = "Idempotency-Key"
IDEMPOTENT_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
RETRY_STATUSES: Final = frozenset({502, 503, 504})

# Transport failures worth another attempt. After a read failure the callee may already
# have acted, which is why only repeatable requests (see is_repeatable) are retried at all.
_RETRY_EXCEPTIONS: Final = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.ReadTimeout,
    httpx.ReadError,
    httpx.RemoteProtocolError,
)


class RetryingTransport(httpx.AsyncBaseTransport):
    """Wraps a transport and repeats requests that are safe to repeat.

    A request is repeatable when its method is idempotent, or when it is a POST/PATCH
    carrying an ``Idempotency-Key`` (the callee then deduplicates it). Repeats happen on
    connection failures, read timeouts and 502/503/504, with short exponential backoff
    and jitter so a fleet of callers does not retry in lockstep. A 503 whose Retry-After
    is longer than ``backoff_max_s`` is returned at once instead.
    """

    def __init__(
        self,
        inner: httpx.AsyncBaseTransport,
        *,
        retries: int,
        backoff_base_s: float = 0.05,
        backoff_max_s: float = 1.0,
    ) -> None:
        self._inner = inner
        self.retries = max(retries, 0)
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s

    @staticmethod
    def is_repeatable(request: httpx.Request) -> bool:
        idempotent = request.method in IDEMPOTENT_METHODS or (
            request.method in ("POST", "PATCH") and IDEMPOTENCY_KEY_HEADER in request.headers
        )
        if not idempotent:
            return False
        # A streamed body (async generator) is consumed by the first attempt.
        return isinstance(request.stream, httpx.ByteStream)

    def _delay(self, attempt: int, response: httpx.Response | None) -> float | None:
        """Seconds to wait before the next attempt, or None to give up now."""
        backoff = min(self.backoff_max_s, self.backoff_base_s * 2**attempt)
        delay = backoff * (0.5 + random.random() / 2)
        retry_after = _seconds(response.headers.get("retry-after")) if response else None
        if retry_after is not None:
            if retry_after > self.backoff_max_s:
                # The callee expects to be down longer than an interactive call can wait;
                # hammering it sooner than it asked would only add load.
                return None
            delay = max(delay, retry_after)
        return delay

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        repeatable = self.is_repeatable(request)
        attempt = 0
        while True:
            delay: float | None
            try:
                response = await self._inner.handle_async_request(request)
            except _RETRY_EXCEPTIONS as exc:
                if not repeatable or attempt >= self.retries:
                    raise
                delay = self._delay(attempt, None)
                logger.info(
                    "retrying %s %s after %s (attempt %d of %d)",
                    request.method,
                    request.url.path,
                    type(exc).__name__,
                    attempt + 1,
                    self.retries,
                )
            else:
                if (
                    response.status_code not in RETRY_STATUSES
                    or not repeatable
                    or attempt >= self.retries
                ):
                    return response
                delay = self._delay(attempt, response)
                if delay is None:
                    return response
                await response.aclose()
                logger.info(
                    "retrying %s %s after status %d (attempt %d of %d)",
                    request.method,
                    request.url.path,
                    response.status_code,
                    attempt + 1,
                    self.retries,
                )
            attempt += 1
            await asyncio.sleep(delay or 0.0)

    async def aclose(self) -> None:
        await self._inner.aclose()


class MeteredTransport(httpx.AsyncBaseTransport):
    """Wraps a transport and counts each call into the caller's outbound metrics
    (``wangban_http_client_*``): the target's name (a service, an outside system; never a URL,
    whose path holds ids), the method and the status class, or ``error`` when no answer came.
    Outside the retrying transport, so a call is timed as its caller waited for it."""

    def __init__(self, inner: httpx.AsyncBaseTransport, *, caller: str, target: str) -> None:
        self._inner = inner
        self._calls = outbound_calls(caller)
        self._target = target

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        started = time.perf_counter()
        status: int | None = None
        try:
            response = await self._inner.handle_async_request(request)
            status = response.status_code
            return response
        finally:
            self._calls.observe(
                target=self._target,
                method=request.method,
                status=status,
                duration_s=time.perf_counter() - started,
            )

    async def aclose(self) -> None:
        await self._inner.aclose()


def _seconds(value: str | None) -> float | None:
    # Only the delta-seconds form; an HTTP date from a peer service is not worth parsing.
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


class _PropagateContext:
    """Request hook: copy the observability context and the current identity onto an
    outgoing request. Headers set explicitly by the caller win."""

    def __init__(self, tokens: InternalTokens, *, caller: str) -> None:
        self._tokens = tokens
        self._caller = caller

    async def __call__(self, request: httpx.Request) -> None:
        context = current_context()
        for header, value in (
            (REQUEST_ID_HEADER, context["request_id"]),
            (CORRELATION_ID_HEADER, context["correlation_id"] or context["request_id"]),
            (TRACEPARENT_HEADER, context["traceparent"]),
        ):
            if value and header not in request.headers:
                request.headers[header] = value
        identity = identity_var.get()
        if identity is not None and "authorization" not in request.headers:
            # Fresh per request: tokens live for seconds, a cached one could expire
            # between two calls of a slow workflow.
            token = self._tokens.issue(identity, issuer=self._caller)
            request.headers["Authorization"] = f"Bearer {token}"


class _NoTransactionHeld:
    """Request hook: no call to another service or an outside system while the calling task
    holds an open database transaction (``wangban.db.check_no_transaction``): the transaction,
    its pooled connection and its row locks would wait as long as the callee, up to the
    client's timeout. ``mode`` None follows the process's ``WANGBAN_TRANSACTION_GUARD``."""

    def __init__(self, *, caller: str, target: str, mode: GuardMode | None) -> None:
        self._caller = caller
        self._target = target
        self._mode = mode

    async def __call__(self, request: httpx.Request) -> None:
        # The path only (never the query: WeChat's access token travels there).
        check_no_transaction(
            f"{self._caller} → {self._target} {request.method}",
            detail=request.url.path,
            mode=self._mode,
        )


def guard_transactions(
    client: httpx.AsyncClient, *, caller: str, system: str, mode: GuardMode | None = None
) -> httpx.AsyncClient:
    """Make ``client`` run the transaction guard before each request, as every client of the
    kit does: for a client built elsewhere (a deployment's factory with its own TLS settings).
    Returns the client."""
    hooks = client.event_hooks
    if not any(isinstance(hook, _NoTransactionHeld) for hook in hooks["request"]):
        hooks["request"].insert(0, _NoTransactionHeld(caller=caller, target=system, mode=mode))
        client.event_hooks = hooks
    return client


def external_client(
    *,
    caller: str,
    system: str,
    timeout: httpx.Timeout,
    transport: httpx.AsyncBaseTransport | None = None,
    limits: httpx.Limits | None = None,
    trust_env: bool = False,
    mode: GuardMode | None = None,
) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` for calling an outside system (the identity register, WeChat,
    the SMS gateway, the object store, a department) from service ``caller``.

    Like :func:`service_client`, every request first checks that the calling task holds no
    open database transaction (``mode`` None: the process's ``WANGBAN_TRANSACTION_GUARD``,
    set when its database is built); an outside system may take its whole timeout, and a
    transaction would wait with it. Unlike it, nothing of ours is attached (no internal token,
    no tracing headers) and nothing is retried: each system's client knows what it may repeat.
    No redirects (a 3xx would resend a credential elsewhere) and, by default, no proxy from
    the environment (``trust_env``): a credential goes exactly where configured.
    """
    limits = limits or httpx.Limits(max_connections=100, max_keepalive_connections=20)
    return guard_transactions(
        httpx.AsyncClient(
            timeout=timeout,
            transport=MeteredTransport(
                transport
                or httpx.AsyncHTTPTransport(
                    verify=tls_context(trust_env=trust_env), limits=limits, trust_env=trust_env
                ),
                caller=caller,
                target=system,
            ),
            limits=limits,
            trust_env=trust_env,
            follow_redirects=False,
        ),
        caller=caller,
        system=system,
        mode=mode,
    )


@functools.cache
def tls_context(*, trust_env: bool = True) -> ssl.SSLContext:
    """The TLS context every client of ours verifies servers with, built once per process.

    httpx builds one for each client and transport it is not given one, loading the whole CA
    bundle again each time: tens of milliseconds of CPU and a copy of the certificate store per
    client, for settings that are the same everywhere (certifi's bundle; ``SSL_CERT_FILE`` /
    ``SSL_CERT_DIR`` when ``trust_env``, as httpx reads them). A service builds several clients
    at start-up; the tests build thousands."""
    return httpx.create_ssl_context(trust_env=trust_env)


def service_client(
    settings: Settings,
    target: str,
    *,
    caller: str,
    transport: httpx.AsyncBaseTransport | None = None,
    max_connections: int = 16,
    max_keepalive_connections: int = 16,
) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` for calling service ``target`` from service ``caller``.

    Every request first checks that the calling task holds no open database transaction
    (``WANGBAN_TRANSACTION_GUARD``: raise in tests, warn in production).

    Build one per target at start-up and close it at shutdown: the connection pool is
    what keeps inter-service latency low. ``transport`` replaces the network transport
    (e.g. an ``httpx.ASGITransport`` in tests); retries and propagation still apply.

    Every connection the pool may open is also kept alive: with fewer kept than opened, a
    burst above the keep-alive count closed a connection after each request and opened a new
    one for the next (connection churn that cost the gateway most of its CPU at 100 searches/s).
    The pool is small on purpose: httpcore checks every pooled connection (a socket poll
    each) and compares every pair of them each time it assigns a request or takes one back,
    so its cost grows with the square of the pool. Sixteen connections to a service answering
    in milliseconds carry thousands of calls a second; more requests than that wait briefly
    for a connection rather than make every request slower.
    """
    inner = transport or httpx.AsyncHTTPTransport(
        verify=tls_context(),
        limits=httpx.Limits(
            max_connections=max_connections,
            max_keepalive_connections=max_keepalive_connections,
            keepalive_expiry=30.0,
        ),
    )
    propagate = _PropagateContext(InternalTokens.from_settings(settings), caller=caller)
    client = httpx.AsyncClient(
        base_url=settings.url_of(target),
        timeout=httpx.Timeout(settings.http_timeout_s),
        transport=MeteredTransport(
            RetryingTransport(inner, retries=settings.http_retries), caller=caller, target=target
        ),
        event_hooks={
            "request": [
                _NoTransactionHeld(caller=caller, target=target, mode=settings.transaction_guard),
                propagate,
            ]
        },
        headers={"User-Agent": f"wangban-{caller}"},
    )
    # A client span per call (tracing on); its traceparent replaces the one copied above.
    tracing.instrument_client(client, service=caller)
    return client


@dataclass(frozen=True)
class Answer:
    """What another service answered: its status and its JSON body (``None`` when the body is
    not JSON, e.g. a proxy's error page)."""

    status: int
    body: Any


class ServiceCalls:
    """Calls to service ``target`` as service ``caller``, on behalf of the request's person.

    Every call carries a fresh internal token of the caller's service identity (the callee's
    access policy names consuming services) and, unless ``send_actor`` is off, the person on
    whose behalf it is made as a second signed token in
    :data:`contracts.internal_api.ACTOR_HEADER`: the one given, else the verified identity of
    the request being handled (:data:`wangban.auth.identity_var`), never a service and never
    anything a request body says. With no request behind the call (a consumer) no actor goes.

    When the callee cannot be reached (refused, timed out, after the client's retries), the
    call raises ``unavailable()``: the caller's own :class:`~wangban.errors.ServiceUnavailable`,
    which says in its words what could not be done. Every answer is returned as it came
    (:class:`Answer`): what it means is the caller's to read, with the callee's contract.
    """

    def __init__(
        self,
        settings: Settings,
        target: str,
        *,
        caller: str,
        unavailable: Callable[[], ServiceUnavailable],
        send_actor: bool = True,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._target = target
        self._caller = caller
        self._unavailable = unavailable
        self._send_actor = send_actor
        self._identity = Identity(
            subject=caller, kind="service", assurance=AssuranceLevel.REAL_PERSON
        )
        self._tokens = InternalTokens.from_settings(settings)
        self._client = service_client(settings, target, caller=caller, transport=transport)

    async def get(self, path: str, *, on_behalf_of: Identity | None = None) -> Answer:
        return await self._call("GET", path, json=None, on_behalf_of=on_behalf_of)

    async def post(
        self, path: str, body: BaseModel, *, on_behalf_of: Identity | None = None
    ) -> Answer:
        """``body`` is the callee's request model (its contract), sent as JSON."""
        return await self._call(
            "POST", path, json=body.model_dump(mode="json"), on_behalf_of=on_behalf_of
        )

    async def fetch(self, path: str) -> Any | None:
        """The body of a ``200`` answer to ``GET path``; ``None`` on ``404`` (the callee has no
        such thing). Any other answer raises ``unavailable()``: the callee could not say."""
        answer = await self.get(path)
        if answer.status == 404:
            return None
        if answer.status != 200:
            raise self._unavailable()
        return answer.body

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _call(
        self, method: str, path: str, *, json: Any, on_behalf_of: Identity | None
    ) -> Answer:
        try:
            response = await self._client.request(
                method, path, json=json, headers=self._headers(on_behalf_of)
            )
        except httpx.HTTPError as exc:
            logger.warning(
                "%s unreachable for %s %s: %s", self._target, method, path, type(exc).__name__
            )
            raise self._unavailable() from exc
        if response.status_code >= 400:
            # The path only (ids of versions or applications, never a person's data); what the
            # answer means is the caller's to say.
            logger.log(
                logging.WARNING if response.status_code >= 500 else logging.INFO,
                "%s answered %s to %s %s",
                self._target,
                response.status_code,
                method,
                path,
            )
        try:
            body = response.json()
        except ValueError:
            body = None
        return Answer(status=response.status_code, body=body)

    def _headers(self, on_behalf_of: Identity | None) -> dict[str, str]:
        token = self._tokens.issue(self._identity, issuer=self._caller)
        headers = {"Authorization": f"Bearer {token}"}
        person = on_behalf_of or identity_var.get()
        if self._send_actor and person is not None and person.kind != "service":
            headers[ACTOR_HEADER] = self._tokens.issue(person, issuer=self._caller)
        return headers
