"""HttpProvider against a real provider server on 127.0.0.1: found, not found and every way
of being unavailable, timeouts, the one retry, and the circuit breaker."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from sharing_service.http_provider import (
    CircuitBreaker,
    CircuitOpen,
    CircuitState,
    CredentialRejected,
    HttpProvider,
    ProviderMetrics,
)
from sharing_service.providers import ProviderRecord, ProviderUnavailable, Subject
from tests.fakes.provider import ProviderServer, serve_provider
from tests.unit.synthetic import resident_id
from wangban.embedded import free_port

TOKEN = "provider-test-token-6f1c0a9e"
DATASET = "gongan.huji"
SOURCE = "测试人口信息系统"
UPDATED = datetime(2024, 5, 1, 8, 30, tzinfo=timezone(timedelta(hours=8)))
PERSON = Subject(kind="person", id=resident_id())
STRANGER = Subject(kind="person", id=resident_id(sequence="998"))
RECORDS = {
    (DATASET, PERSON.id): {
        "name": "测试甲",
        "gender": "女",
        "birth_date": "1990-03-07",
        "registered_address": "广东省东莞市测试路 1 号",
    },
}


class MemoryProvider:
    """The smallest honest DataProvider: a dict, restricted to the requested fields."""

    async def fetch(
        self, *, dataset: str, subject: Subject, fields: Sequence[str], request_id: str
    ) -> ProviderRecord | None:
        record = RECORDS.get((dataset, subject.id))
        if record is None:
            return None
        values = {name: record[name] for name in fields if name in record}
        return ProviderRecord(values=values, updated_at=UPDATED, source=SOURCE)

    async def close(self) -> None:
        return None


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
async def server() -> AsyncIterator[ProviderServer]:
    async with serve_provider(MemoryProvider(), token=TOKEN) as running:
        yield running


@pytest.fixture
async def make_provider() -> AsyncIterator[Callable[..., HttpProvider]]:
    made: list[HttpProvider] = []

    def make(base_url: str, **overrides: Any) -> HttpProvider:
        options: dict[str, Any] = {
            "name": "test-gongan",
            "base_url": base_url,
            "token": TOKEN,
            "connect_timeout_s": 1.0,
            "read_timeout_s": 2.0,
            "consumer": "sharing",
        }
        options.update(overrides)
        provider = HttpProvider(**options)
        made.append(provider)
        return provider

    yield make
    for provider in made:
        await provider.close()


async def fetch(
    provider: HttpProvider,
    subject: Subject = PERSON,
    fields: Sequence[str] = ("name", "birth_date"),
    request_id: str = "req-test-1",
) -> ProviderRecord | None:
    return await provider.fetch(
        dataset=DATASET, subject=subject, fields=fields, request_id=request_id
    )


# --- answers ------------------------------------------------------------------------------


async def test_found_record_carries_only_requested_fields(
    server: ProviderServer,
    make_provider: Callable[..., HttpProvider],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A leaky provider: sends fields nobody asked for. They must not get past the adapter.
    server.set_extra_fields({"household_members": [{"name": "测试乙"}], "ethnicity": "汉"})
    provider = make_provider(server.base_url)
    caplog.set_level(logging.INFO, logger="sharing_service.http_provider")

    record = await fetch(provider, fields=["name", "birth_date", "not_in_dataset"])

    assert record is not None
    assert record.values == {"name": "测试甲", "birth_date": "1990-03-07"}
    assert record.updated_at == UPDATED
    assert record.source == SOURCE
    assert server.last_body["fields"] == ["name", "birth_date", "not_in_dataset"]
    assert any("dropped" in r.getMessage() for r in caplog.records)


async def test_not_found_is_none(
    server: ProviderServer, make_provider: Callable[..., HttpProvider]
) -> None:
    assert await fetch(make_provider(server.base_url), subject=STRANGER) is None
    assert server.requests_seen == 1


async def test_404_with_not_found_answer_is_none(
    server: ProviderServer, make_provider: Callable[..., HttpProvider]
) -> None:
    server.set_raw_response(b'{"found": false}', status=404)
    assert await fetch(make_provider(server.base_url)) is None


async def test_404_without_not_found_answer_is_unavailable(
    server: ProviderServer, make_provider: Callable[..., HttpProvider]
) -> None:
    server.set_raw_response(b"<h1>Not Found</h1>", status=404, content_type="text/html")
    with pytest.raises(ProviderUnavailable, match="404"):
        await fetch(make_provider(server.base_url))


async def test_unknown_route_is_unavailable_not_not_found(
    server: ProviderServer, make_provider: Callable[..., HttpProvider]
) -> None:
    # A base URL with a wrong prefix: the server's own 404, not a protocol answer.
    with pytest.raises(ProviderUnavailable, match="404"):
        await fetch(make_provider(server.base_url + "/wrong-prefix"))


async def test_empty_field_list_asks_only_whether_a_record_exists(
    server: ProviderServer, make_provider: Callable[..., HttpProvider]
) -> None:
    provider = make_provider(server.base_url)
    record = await fetch(provider, fields=[])
    assert record is not None and record.values == {}
    assert await fetch(provider, subject=STRANGER, fields=[]) is None


async def test_a_bare_string_is_not_a_field_list(
    server: ProviderServer, make_provider: Callable[..., HttpProvider]
) -> None:
    with pytest.raises(TypeError):
        await fetch(make_provider(server.base_url), fields="name")
    assert server.requests_seen == 0


# --- request ------------------------------------------------------------------------------


async def test_request_carries_ids_consumer_and_credential(
    server: ProviderServer, make_provider: Callable[..., HttpProvider]
) -> None:
    provider = make_provider(server.base_url, consumer="sharing-test")
    await fetch(provider, request_id="req-abc-123")

    headers = server.last_headers
    assert headers["x-request-id"] == "req-abc-123"
    assert headers["x-wangban-consumer"] == "sharing-test"
    assert headers["authorization"] == f"Bearer {TOKEN}"
    assert headers["content-type"] == "application/json"
    assert server.last_body == {
        "subject": {"kind": "person", "id": PERSON.id},
        "fields": ["name", "birth_date"],
    }


# --- unavailable --------------------------------------------------------------------------


async def test_wrong_token_is_a_credential_problem(
    server: ProviderServer, make_provider: Callable[..., HttpProvider]
) -> None:
    provider = make_provider(server.base_url, token="not-the-token")
    with pytest.raises(CredentialRejected) as caught:
        await fetch(provider)
    assert "credential" in caught.value.reason
    assert "401" in caught.value.reason
    assert server.requests_seen == 1  # not retried


@pytest.mark.parametrize("status", [500, 503, 429, 400, 302])
async def test_error_statuses_are_unavailable(
    server: ProviderServer, make_provider: Callable[..., HttpProvider], status: int
) -> None:
    server.set_failure(status)
    with pytest.raises(ProviderUnavailable, match=str(status)) as caught:
        await fetch(make_provider(server.base_url))
    assert not isinstance(caught.value, CredentialRejected)
    assert server.requests_seen == 1  # statuses are never retried


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"found": true, "record": {"name": "x"', "not valid JSON"),
        (b"<html>ok</html>", "not valid JSON"),
        (b'["found"]', "not a JSON object"),
        (b'{"record": {}}', "boolean 'found'"),
        (b'{"found": "false"}', "boolean 'found'"),
        (
            b'{"found": true, "record": ["name"], "updated_at": "2024-05-01T08:30:00+08:00"}',
            "'record' is not an object",
        ),
        (b'{"found": true, "record": {"name": "x"}}', "updated_at"),
        (
            b'{"found": true, "record": {"name": "x"}, "updated_at": "2024-05-01T08:30:00"}',
            "offset",
        ),
        (b'{"found": true, "record": {"name": "x"}, "updated_at": "yesterday"}', "updated_at"),
    ],
)
async def test_malformed_answers_are_unavailable(
    server: ProviderServer,
    make_provider: Callable[..., HttpProvider],
    body: bytes,
    reason: str,
) -> None:
    server.set_raw_response(body)
    with pytest.raises(ProviderUnavailable) as caught:
        await fetch(make_provider(server.base_url))
    assert reason in caught.value.reason


async def test_zulu_timestamps_are_accepted(
    server: ProviderServer, make_provider: Callable[..., HttpProvider]
) -> None:
    server.set_raw_response(
        b'{"found": true, "record": {"name": "x"}, "updated_at": "2024-05-01T00:30:00Z"}'
    )
    record = await fetch(make_provider(server.base_url))
    assert record is not None
    assert record.updated_at == UPDATED.astimezone(UTC)
    assert record.source == ""


async def test_oversized_answer_is_unavailable(
    server: ProviderServer, make_provider: Callable[..., HttpProvider]
) -> None:
    padding = "x" * 5000
    server.set_raw_response(
        b'{"found": true, "record": {"name": "%s"}, "updated_at": "2024-05-01T00:30:00Z"}'
        % padding.encode()
    )
    with pytest.raises(ProviderUnavailable, match="larger than"):
        await fetch(make_provider(server.base_url, max_response_bytes=1000))


async def test_slow_provider_times_out_near_the_deadline(
    server: ProviderServer, make_provider: Callable[..., HttpProvider]
) -> None:
    timeout = 0.3
    server.set_delay(10 * timeout)
    provider = make_provider(server.base_url, read_timeout_s=timeout)

    started = time.perf_counter()
    with pytest.raises(ProviderUnavailable, match="timed out"):
        await fetch(provider)
    elapsed = time.perf_counter() - started

    # The deadline ended the wait, not the answer: it came before the server would have answered
    # (a loaded machine stretches the 0.3 s, never to the 3 s delay).
    assert elapsed < 10 * timeout
    assert server.requests_seen == 1  # timeouts are not retried


async def test_connection_refused_is_unavailable(
    make_provider: Callable[..., HttpProvider],
) -> None:
    provider = make_provider(f"http://127.0.0.1:{free_port()}")  # nothing listens there
    with pytest.raises(ProviderUnavailable, match="connection failed"):
        await fetch(provider)


class DroppingServer:
    """Raw TCP server that hangs up on the first ``drop`` connections without answering,
    then answers every request with a protocol not-found."""

    def __init__(self, *, drop: int) -> None:
        self.drop = drop
        self.connections = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            if self.connections > self.drop:
                head = await reader.readuntil(b"\r\n\r\n")
                length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
                await reader.readexactly(int(length[1]) if length else 0)
                body = b'{"found": false}'
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body)
                )
                await writer.drain()
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


@contextlib.asynccontextmanager
async def dropping_server(*, drop: int) -> AsyncIterator[tuple[str, DroppingServer]]:
    handler = DroppingServer(drop=drop)
    tcp = await asyncio.start_server(handler.handle, "127.0.0.1", 0)
    try:
        port = tcp.sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}", handler
    finally:
        tcp.close()
        await tcp.wait_closed()


async def test_a_dropped_connection_is_retried_once(
    make_provider: Callable[..., HttpProvider],
) -> None:
    async with dropping_server(drop=1) as (url, handler):
        assert await fetch(make_provider(url)) is None
        assert handler.connections == 2


async def test_a_second_dropped_connection_is_not_retried(
    make_provider: Callable[..., HttpProvider],
) -> None:
    async with dropping_server(drop=5) as (url, handler):
        with pytest.raises(ProviderUnavailable, match="connection failed"):
            await fetch(make_provider(url))
        assert handler.connections == 2


# --- circuit breaker ----------------------------------------------------------------------


async def test_circuit_opens_after_threshold_and_recovers_after_reset(
    server: ProviderServer, make_provider: Callable[..., HttpProvider]
) -> None:
    clock = FakeClock()
    provider = make_provider(server.base_url, failure_threshold=3, reset_after_s=30.0, clock=clock)
    server.set_failure(503)
    for _ in range(3):
        with pytest.raises(ProviderUnavailable, match="503"):
            await fetch(provider)
    assert server.requests_seen == 3
    assert provider.breaker.state is CircuitState.OPEN

    # Open: refused at once, the provider is not called.
    for _ in range(5):
        with pytest.raises(CircuitOpen) as caught:
            await fetch(provider)
        assert caught.value.reason.startswith("circuit open")
        assert "503" in caught.value.reason  # says why it opened
    assert server.requests_seen == 3

    clock.advance(29.9)
    with pytest.raises(CircuitOpen):
        await fetch(provider)
    assert server.requests_seen == 3

    # Half-open: one trial goes through; its success closes the circuit.
    clock.advance(0.1)
    assert provider.breaker.state is CircuitState.HALF_OPEN
    server.set_failure(None)
    assert await fetch(provider) is not None
    assert server.requests_seen == 4
    assert provider.breaker.state is CircuitState.CLOSED
    assert await fetch(provider) is not None
    assert server.requests_seen == 5


async def test_failed_trial_opens_the_circuit_again(
    server: ProviderServer, make_provider: Callable[..., HttpProvider]
) -> None:
    clock = FakeClock()
    provider = make_provider(server.base_url, failure_threshold=2, reset_after_s=10.0, clock=clock)
    server.set_failure(500)
    for _ in range(2):
        with pytest.raises(ProviderUnavailable):
            await fetch(provider)
    clock.advance(10)

    with pytest.raises(ProviderUnavailable, match="500") as caught:
        await fetch(provider)  # the trial reaches the provider and fails
    assert not isinstance(caught.value, CircuitOpen)
    assert server.requests_seen == 3
    assert provider.breaker.state is CircuitState.OPEN
    with pytest.raises(CircuitOpen):
        await fetch(provider)
    assert server.requests_seen == 3

    clock.advance(10)
    server.set_failure(None)
    assert await fetch(provider) is not None
    assert provider.breaker.state is CircuitState.CLOSED


async def test_half_open_lets_a_single_trial_through(
    server: ProviderServer, make_provider: Callable[..., HttpProvider]
) -> None:
    clock = FakeClock()
    provider = make_provider(server.base_url, failure_threshold=1, reset_after_s=5.0, clock=clock)
    server.set_failure(503)
    with pytest.raises(ProviderUnavailable):
        await fetch(provider)
    clock.advance(5)
    server.set_failure(None)
    server.set_delay(0.2)  # keep the trial in flight while the others arrive

    results = await asyncio.gather(*(fetch(provider) for _ in range(3)), return_exceptions=True)

    assert sum(isinstance(r, ProviderRecord) for r in results) == 1
    assert sum(isinstance(r, CircuitOpen) for r in results) == 2
    assert server.requests_seen == 2
    assert provider.breaker.state is CircuitState.CLOSED


async def test_not_found_counts_as_success(
    server: ProviderServer, make_provider: Callable[..., HttpProvider]
) -> None:
    provider = make_provider(server.base_url, failure_threshold=2)
    server.set_failure(503)
    with pytest.raises(ProviderUnavailable):
        await fetch(provider)
    server.set_failure(None)
    assert await fetch(provider, subject=STRANGER) is None
    server.set_failure(503)
    with pytest.raises(ProviderUnavailable):
        await fetch(provider)
    assert provider.breaker.state is CircuitState.CLOSED
    assert provider.breaker.consecutive_failures == 1


async def test_timeouts_and_refusals_count_towards_the_threshold(
    make_provider: Callable[..., HttpProvider],
) -> None:
    provider = make_provider(f"http://127.0.0.1:{free_port()}", failure_threshold=2)
    for _ in range(2):
        with pytest.raises(ProviderUnavailable, match="connection failed"):
            await fetch(provider)
    with pytest.raises(CircuitOpen, match="connection failed"):
        await fetch(provider)


def test_breaker_straggler_failures_do_not_postpone_the_trial() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=2, reset_after_s=10, clock=clock)
    assert breaker.acquire() is False
    assert breaker.acquire() is False
    assert breaker.acquire() is False  # three calls in flight while closed
    assert breaker.record_failure("a", trial=False) is False
    assert breaker.record_failure("b", trial=False) is True  # opens
    clock.advance(9)
    assert breaker.record_failure("c", trial=False) is False  # the straggler
    clock.advance(1)
    assert breaker.state is CircuitState.HALF_OPEN


def test_breaker_cancelled_trial_frees_the_slot() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, reset_after_s=10, clock=clock)
    breaker.acquire()
    breaker.record_failure("down", trial=False)
    clock.advance(10)
    assert breaker.acquire() is True
    with pytest.raises(CircuitOpen, match="trial request in flight"):
        breaker.acquire()
    breaker.abandon(trial=True)
    assert breaker.acquire() is True  # the next caller becomes the trial
    assert breaker.record_success() is True
    assert breaker.state is CircuitState.CLOSED


async def test_cancelled_trial_does_not_wedge_the_circuit(
    server: ProviderServer, make_provider: Callable[..., HttpProvider]
) -> None:
    clock = FakeClock()
    provider = make_provider(server.base_url, failure_threshold=1, reset_after_s=5.0, clock=clock)
    server.set_failure(503)
    with pytest.raises(ProviderUnavailable):
        await fetch(provider)
    clock.advance(5)
    server.set_failure(None)
    server.set_delay(1.0)
    trial = asyncio.create_task(fetch(provider))
    await server.wait_for_requests(2)  # the trial is at the provider
    trial.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await trial

    server.set_delay(0)
    assert await fetch(provider) is not None
    assert provider.breaker.state is CircuitState.CLOSED


# --- observability ------------------------------------------------------------------------


async def test_logs_never_carry_the_subject_id_or_the_token(
    server: ProviderServer,
    make_provider: Callable[..., HttpProvider],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    provider = make_provider(server.base_url, failure_threshold=2)
    server.set_extra_fields({"ethnicity": "汉"})
    await fetch(provider)
    server.set_failure(503)
    for _ in range(3):
        with pytest.raises(ProviderUnavailable):
            await fetch(provider)
    server.set_failure(None)
    with pytest.raises(CredentialRejected):
        await fetch(make_provider(server.base_url, token="wrong-token-3b9d"))

    assert caplog.records
    ours = [r for r in caplog.records if r.name == "sharing_service.http_provider"]
    assert {getattr(r, "request_id", None) for r in ours} == {"req-test-1"}
    for record in caplog.records:
        text = record.getMessage() + repr(record.__dict__)
        assert PERSON.id not in text
        assert TOKEN not in text
        assert "wrong-token-3b9d" not in text
        assert "测试甲" not in text  # nor field values
    assert TOKEN not in repr(provider)


async def test_metrics_count_outcomes_and_show_the_circuit(
    server: ProviderServer, make_provider: Callable[..., HttpProvider]
) -> None:
    registry = CollectorRegistry()
    metrics = ProviderMetrics(registry)
    provider = make_provider(server.base_url, metrics=metrics, failure_threshold=1)
    await fetch(provider)
    await fetch(provider, subject=STRANGER)
    server.set_failure(500)
    with pytest.raises(ProviderUnavailable):
        await fetch(provider)
    with pytest.raises(CircuitOpen):
        await fetch(provider)

    def calls(outcome: str) -> float | None:
        return registry.get_sample_value(
            "wangban_provider_calls_total",
            {"provider": "test-gongan", "dataset": DATASET, "outcome": outcome},
        )

    assert [calls(o) for o in ("found", "not_found", "unavailable", "circuit_open")] == [1] * 4
    assert (
        registry.get_sample_value("wangban_provider_circuit_state", {"provider": "test-gongan"})
        == 2
    )
    assert (
        registry.get_sample_value(
            "wangban_provider_call_duration_seconds_count", {"provider": "test-gongan"}
        )
        == 3
    )
