"""A department's data system reached over HTTP, speaking ``docs/provider-protocol.md``.

The adapter's one job beyond the HTTP call is to keep three answers apart: a record, no
record, and "could not find out". Anything short of a well-formed found/not-found answer
(an error status, a timeout, a bad credential, a malformed body) raises
:class:`ProviderUnavailable`, because reading a broken answer as "no record" would reject a
citizen for a department's outage.

Deliberately not built on ``wangban.http.service_client``: that client is for Wangban's own
services. It attaches an internal identity token when the caller has one (which must never
reach a department) and retries read timeouts and 5xx, which this protocol does not want.
"""

from __future__ import annotations

import asyncio
import enum
import json
import logging
import random
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Final
from urllib.parse import quote

import httpx
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from pydantic import SecretStr

from sharing_service.egress import ProviderUrlPolicy, UrlRefused
from sharing_service.providers import DataProvider, ProviderRecord, ProviderUnavailable, Subject
from wangban.http import guard_transactions, tls_context
from wangban.observability import HTTP_DURATION_BUCKETS, REQUEST_ID_HEADER, safe_incoming_id

__all__ = [
    "CONSUMER_HEADER",
    "CircuitBreaker",
    "CircuitOpen",
    "CircuitState",
    "CredentialRejected",
    "HttpProvider",
    "ProviderMetrics",
]

logger = logging.getLogger(__name__)

CONSUMER_HEADER: Final = "X-Wangban-Consumer"
MAX_RESPONSE_BYTES: Final = 1024 * 1024
"""One subject's record is a few kilobytes; a larger body is a misbehaving provider, and
reading it whole would let one department exhaust the sharing service's memory."""

# A connection refused or dropped before an answer is usually a pooled connection the
# provider closed, or one instance of several restarting: a short pause, then one more try.
_RETRY_PAUSE_S: Final = (0.05, 0.15)
_RETRYABLE: Final = (httpx.NetworkError, httpx.RemoteProtocolError)


class CircuitOpen(ProviderUnavailable):
    """The breaker refused the call without touching the network."""


class CredentialRejected(ProviderUnavailable):
    """The provider answered 401 or 403: our credential for it is wrong, expired or lacks
    rights. Not an outage; someone has to fix the configuration."""


# ---------------------------------------------------------------------------------------
# Circuit breaker
# ---------------------------------------------------------------------------------------


class CircuitState(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Stops calls to a provider that keeps failing, then probes it with one call at a time.

    closed → (``failure_threshold`` consecutive failures) → open → (``reset_after_s``
    elapsed) → half-open: the first caller is let through as the trial, everyone else is
    still refused until it ends; its success closes the circuit, its failure opens it again
    for another ``reset_after_s``.

    Half-open is derived from the clock rather than set by a timer, so an idle provider costs
    nothing and tests move time by injecting ``clock``. Not thread-safe; one event loop only
    (no ``await`` happens inside any method, so tasks cannot interleave within one).
    """

    def __init__(
        self,
        *,
        failure_threshold: int = 5,
        reset_after_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        if reset_after_s <= 0:
            raise ValueError("reset_after_s must be positive")
        self.failure_threshold = failure_threshold
        self.reset_after_s = reset_after_s
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._trial_in_flight = False
        self._last_failure = ""

    @property
    def state(self) -> CircuitState:
        if self._opened_at is None:
            return CircuitState.CLOSED
        if self._clock() - self._opened_at >= self.reset_after_s:
            return CircuitState.HALF_OPEN
        return CircuitState.OPEN

    @property
    def consecutive_failures(self) -> int:
        return self._failures

    def acquire(self) -> bool:
        """Let a call through, or raise :class:`CircuitOpen`.

        Returns whether the call is the half-open trial; pass that back to
        :meth:`record_failure` or :meth:`abandon`.
        """
        state = self.state
        if state is CircuitState.CLOSED:
            return False
        if state is CircuitState.HALF_OPEN and not self._trial_in_flight:
            self._trial_in_flight = True
            return True
        if state is CircuitState.HALF_OPEN:
            raise CircuitOpen(f"circuit open: trial request in flight (last: {self._last_failure})")
        assert self._opened_at is not None
        remaining = self.reset_after_s - (self._clock() - self._opened_at)
        raise CircuitOpen(
            f"circuit open after {self._failures} consecutive failures "
            f"(last: {self._last_failure}); next trial in {remaining:.1f}s"
        )

    def record_success(self) -> bool:
        """The provider answered properly. Returns whether this closed an open circuit.

        Any success closes it, even one from a call that started before it opened: the
        provider has just shown it answers.
        """
        was_open = self._opened_at is not None
        self._failures = 0
        self._opened_at = None
        self._trial_in_flight = False
        return was_open

    def record_failure(self, reason: str, *, trial: bool) -> bool:
        """The call ended unavailable. Returns whether this opened (or re-opened) the circuit."""
        self._failures += 1
        self._last_failure = reason
        if trial:
            self._trial_in_flight = False
            self._opened_at = self._clock()
            return True
        if self._opened_at is None and self._failures >= self.failure_threshold:
            self._opened_at = self._clock()
            return True
        # A straggler that started before the circuit opened: it must not push the next
        # trial further away.
        return False

    def abandon(self, *, trial: bool) -> None:
        """The call was cancelled by its caller: no verdict on the provider. A cancelled
        trial frees the slot so the next caller can try, instead of the circuit staying
        half-open with a trial that will never report."""
        if trial:
            self._trial_in_flight = False


# ---------------------------------------------------------------------------------------
# Metrics
# ---------------------------------------------------------------------------------------

_STATE_VALUE: Final = {CircuitState.CLOSED: 0, CircuitState.HALF_OPEN: 1, CircuitState.OPEN: 2}


class ProviderMetrics:
    """Provider call metrics, registered once per registry and shared by all providers
    (prometheus_client refuses a second registration of the same name).

    The service passes ``app.state.metrics.registry`` so they appear on its ``/metrics``.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.calls_total = Counter(
            "provider_calls_total",
            "Lookups sent to data providers, by outcome "
            "(found, not_found, unavailable, credential, circuit_open)",
            ["provider", "dataset", "outcome"],
            namespace="wangban",
            registry=registry,
        )
        self.call_duration_seconds = Histogram(
            "provider_call_duration_seconds",
            "Duration of lookups that reached the network",
            ["provider"],
            buckets=HTTP_DURATION_BUCKETS,
            namespace="wangban",
            registry=registry,
        )
        self.circuit_state = Gauge(
            "provider_circuit_state",
            "Circuit breaker per provider: 0 closed, 1 half-open, 2 open",
            ["provider"],
            namespace="wangban",
            registry=registry,
        )


# ---------------------------------------------------------------------------------------
# The provider
# ---------------------------------------------------------------------------------------


def _default_client(timeout: httpx.Timeout) -> httpx.AsyncClient:
    # trust_env=False: a call carrying a department credential goes exactly where the
    # configuration says, not through whatever proxy the process environment names.
    # No redirects: a 3xx is a misconfigured URL, and following it would resend the token.
    # HttpProvider puts the kit's transaction guard on it (and on a factory's client).
    return httpx.AsyncClient(
        timeout=timeout,
        verify=tls_context(trust_env=False),
        trust_env=False,
        follow_redirects=False,
        limits=httpx.Limits(max_connections=50, max_keepalive_connections=10),
    )


class HttpProvider(DataProvider):
    """:class:`~sharing_service.providers.DataProvider` for one department's REST endpoint.

    ``read_timeout_s`` is the total deadline of one ``fetch`` (connection, request, answer
    and the one retry together), so a caller never waits longer whatever the provider does;
    ``connect_timeout_s`` bounds establishing a connection within it. ``client_factory``
    builds the ``httpx.AsyncClient`` from the timeout, for TLS settings (a department's CA,
    a client certificate) or an explicit proxy.
    """

    def __init__(
        self,
        *,
        name: str,
        base_url: str,
        token: str | SecretStr,
        connect_timeout_s: float = 2.0,
        read_timeout_s: float = 5.0,
        consumer: str = "sharing",
        failure_threshold: int = 5,
        reset_after_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        client_factory: Callable[[httpx.Timeout], httpx.AsyncClient] | None = None,
        metrics: ProviderMetrics | None = None,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
        url_policy: ProviderUrlPolicy | None = None,
    ) -> None:
        secret = token if isinstance(token, SecretStr) else SecretStr(token)
        if not secret.get_secret_value().strip():
            raise ValueError(f"provider {name!r}: token is empty")
        if connect_timeout_s <= 0 or read_timeout_s <= 0:
            raise ValueError(f"provider {name!r}: timeouts must be positive")
        url = httpx.URL(base_url)
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError(f"provider {name!r}: base_url must be an http(s) URL")
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.consumer = consumer
        self.read_timeout_s = read_timeout_s
        self.max_response_bytes = max_response_bytes
        self._url_policy = url_policy
        self._token = secret
        self.breaker = CircuitBreaker(
            failure_threshold=failure_threshold, reset_after_s=reset_after_s, clock=clock
        )
        # read/write/pool get the whole budget; the outer deadline in fetch() is what
        # actually bounds the call, since httpx's read timeout is per chunk, not total.
        timeout = httpx.Timeout(read_timeout_s, connect=connect_timeout_s)
        # A department may take up to the deadline: no transaction of ours waits for it,
        # whichever client the factory built (the kit's guard before each request).
        self._client = guard_transactions(
            (client_factory or _default_client)(timeout),
            caller=consumer,
            system=f"provider {name}",
        )
        self._metrics = metrics
        if metrics is not None:
            metrics.circuit_state.labels(name).set_function(
                lambda: _STATE_VALUE[self.breaker.state]
            )

    def __repr__(self) -> str:
        return f"HttpProvider(name={self.name!r}, base_url={self.base_url!r})"

    async def fetch(
        self,
        *,
        dataset: str,
        subject: Subject,
        fields: Sequence[str],
        request_id: str,
    ) -> ProviderRecord | None:
        if isinstance(fields, str):
            # A bare string is a Sequence[str] too, and would ask for one field per letter.
            raise TypeError("fields must be a sequence of field names, not a string")
        wanted = list(dict.fromkeys(fields))
        started = time.perf_counter()
        try:
            trial = self.breaker.acquire()
        except CircuitOpen as exc:
            self._report(dataset, request_id, "circuit_open", None, started, exc.reason)
            raise
        status: int | None = None
        try:
            try:
                async with asyncio.timeout(self.read_timeout_s):
                    status, body = await self._post(dataset, subject, wanted, request_id)
            except TimeoutError:
                raise ProviderUnavailable(f"timed out after {self.read_timeout_s:g}s") from None
            record = self._interpret(status, body, wanted, dataset, request_id)
        except ProviderUnavailable as exc:
            if self.breaker.record_failure(exc.reason, trial=trial):
                logger.warning(
                    "provider %s circuit opened for %gs: %s",
                    self.name,
                    self.breaker.reset_after_s,
                    exc.reason,
                    extra={
                        "request_id": request_id,
                        "fields": {"provider": self.name, "circuit": "open"},
                    },
                )
            outcome = "credential" if isinstance(exc, CredentialRejected) else "unavailable"
            self._report(dataset, request_id, outcome, status, started, exc.reason)
            raise
        except BaseException:
            # Cancelled by the caller (or a bug): says nothing about the provider's health.
            self.breaker.abandon(trial=trial)
            raise
        if self.breaker.record_success():
            logger.info(
                "provider %s circuit closed",
                self.name,
                extra={
                    "request_id": request_id,
                    "fields": {"provider": self.name, "circuit": "closed"},
                },
            )
        self._report(
            dataset, request_id, "not_found" if record is None else "found", status, started
        )
        return record

    async def close(self) -> None:
        await self._client.aclose()
        if self._metrics is not None:
            self._metrics.circuit_state.remove(self.name)

    # -- the exchange -----------------------------------------------------------------

    async def _post(
        self, dataset: str, subject: Subject, fields: list[str], request_id: str
    ) -> tuple[int, bytes]:
        url = f"{self.base_url}/datasets/{quote(dataset, safe='')}/records:query"
        if self._url_policy is not None:
            # Again at every call, not only at registration: the name may resolve elsewhere
            # now (DNS changed, or was made to).
            try:
                await self._url_policy.check(self.base_url)
            except UrlRefused as refused:
                raise ProviderUnavailable(f"address refused: {refused}") from None
        # The subject's ID travels only in the body: URLs end up in access logs.
        body = json.dumps(
            {"subject": {"kind": subject.kind, "id": subject.id}, "fields": fields},
            ensure_ascii=False,
        ).encode()
        headers = {
            "Authorization": f"Bearer {self._token.get_secret_value()}",
            # Kit request ids always pass; anything else (a newline, a huge value) would fail
            # inside httpx and be counted against the provider, so it is replaced instead.
            REQUEST_ID_HEADER: safe_incoming_id(request_id) or uuid.uuid4().hex,
            CONSUMER_HEADER: self.consumer,
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": f"wangban-{self.consumer}",
        }
        # One retry, for connection failures only. Safe because records:query is a read
        # (POST only to keep the ID out of the URL): running it twice changes nothing, and
        # the repeat carries the same request id. Timeouts are not retried (TimeoutException
        # is not in _RETRYABLE): a slow provider is likely overloaded, and the deadline
        # would leave the second attempt too little time anyway.
        for attempt in (1, 2):
            try:
                return await self._exchange(url, body, headers)
            except _RETRYABLE as exc:
                if attempt == 2:
                    raise ProviderUnavailable(f"connection failed: {_describe(exc)}") from exc
                logger.info(
                    "provider %s: retrying once after %s",
                    self.name,
                    type(exc).__name__,
                    extra={"request_id": request_id, "fields": {"provider": self.name}},
                )
                await asyncio.sleep(random.uniform(*_RETRY_PAUSE_S))
            except httpx.TimeoutException:
                raise ProviderUnavailable(f"timed out after {self.read_timeout_s:g}s") from None
            except httpx.HTTPError as exc:  # undecodable content encoding, bad URL, …
                raise ProviderUnavailable(f"HTTP failure: {_describe(exc)}") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    async def _exchange(self, url: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        # Never follow a redirect, whatever client the factory built: it would resend the
        # department's credential and the citizen's ID to wherever the 3xx points.
        async with self._client.stream(
            "POST", url, content=body, headers=headers, follow_redirects=False
        ) as response:
            received = bytearray()
            async for chunk in response.aiter_bytes():
                received += chunk
                if len(received) > self.max_response_bytes:
                    raise ProviderUnavailable(
                        f"response larger than {self.max_response_bytes} bytes "
                        f"(HTTP {response.status_code})"
                    )
            return response.status_code, bytes(received)

    def _interpret(
        self, status: int, body: bytes, fields: list[str], dataset: str, request_id: str
    ) -> ProviderRecord | None:
        if status in (401, 403):
            raise CredentialRejected(
                f"credential rejected by the provider (HTTP {status}): check its token"
            )
        if status == 404:
            # Only an explicit protocol answer means "no record"; a bare 404 is a wrong
            # base URL or a dataset the provider does not serve.
            try:
                document = json.loads(body)
            except ValueError:
                document = None
            if isinstance(document, dict) and document.get("found") is False:
                return None
            raise ProviderUnavailable("HTTP 404 without a not-found answer (wrong URL or dataset?)")
        if status == 429:
            raise ProviderUnavailable("rate limited by the provider (HTTP 429)")
        if status >= 500:
            raise ProviderUnavailable(f"provider error (HTTP {status})")
        if status != 200:
            raise ProviderUnavailable(f"unexpected HTTP {status}")

        try:
            document = json.loads(body)
        except ValueError:
            raise ProviderUnavailable("response is not valid JSON") from None
        if not isinstance(document, dict):
            raise ProviderUnavailable("response is not a JSON object")
        found = document.get("found")
        if not isinstance(found, bool):
            raise ProviderUnavailable("response lacks a boolean 'found'")
        if not found:
            return None
        record = document.get("record")
        if not isinstance(record, dict):
            raise ProviderUnavailable("'record' is not an object")
        updated_at = _parse_timestamp(document.get("updated_at"))
        if updated_at is None:
            raise ProviderUnavailable("'updated_at' is not an RFC 3339 timestamp with an offset")
        source = document.get("source")

        # Defence in depth: whatever the provider sends, only requested fields go on.
        values = {name: record[name] for name in fields if name in record}
        dropped = len(record) - len(values)
        if dropped:
            # The count, not the names: a misbehaving provider controls the keys too.
            logger.warning(
                "provider %s returned %d field(s) not asked for in %s; dropped",
                self.name,
                dropped,
                dataset,
                extra={
                    "request_id": request_id,
                    "fields": {"provider": self.name, "dataset": dataset, "dropped": dropped},
                },
            )
        return ProviderRecord(
            values=values,
            updated_at=updated_at,
            source=source if isinstance(source, str) else "",
        )

    # -- reporting --------------------------------------------------------------------

    def _report(
        self,
        dataset: str,
        request_id: str,
        outcome: str,
        status: int | None,
        started: float,
        reason: str | None = None,
    ) -> None:
        # Dataset, request id, status, duration and our own reason text; never the subject,
        # the field values or the token.
        duration_s = time.perf_counter() - started
        if self._metrics is not None:
            self._metrics.calls_total.labels(self.name, dataset, outcome).inc()
            if outcome != "circuit_open":
                self._metrics.call_duration_seconds.labels(self.name).observe(duration_s)
        duration_ms = round(duration_s * 1000, 2)
        fields: dict[str, Any] = {
            "provider": self.name,
            "dataset": dataset,
            "outcome": outcome,
            "status": status,
            "duration_ms": duration_ms,
        }
        if reason is None:
            level = logging.INFO
        else:
            fields["reason"] = reason
            # While the circuit is open every lookup is refused; the opening was logged once.
            level = logging.DEBUG if outcome == "circuit_open" else logging.WARNING
        logger.log(
            level,
            "provider %s %s %s %s %.2fms%s",
            self.name,
            dataset,
            outcome,
            status if status is not None else "-",
            duration_ms,
            f": {reason}" if reason else "",
            extra={"request_id": request_id, "fields": fields},
        )


def _parse_timestamp(value: object) -> datetime | None:
    if not isinstance(value, str) or len(value) < len("2024-01-01T00:00:00Z"):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    # A stamp without an offset cannot be placed in time: 08:00 where?
    return parsed if parsed.tzinfo is not None else None


def _describe(exc: Exception) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}"[:200] if text else type(exc).__name__
