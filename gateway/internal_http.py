"""A lean HTTP/1.1 client for the gateway's reads from the services behind it.

The gateway is a pass-through: most of what it does for a citizen's read (a search, the first
screen's four parts, my applications) is one GET to a service on the same network. Through
httpx each such call cost about 1.5 ms of the gateway's CPU — more than the catalog spends
answering a search — almost all of it in httpx's and httpcore's layers (request and URL
objects, anyio streams, h11), not in the network. This client does the same GET with asyncio's
streams and httptools' C parser (uvicorn's own) in about a tenth of that.

It keeps what the kit's service client guarantees (``wangban.http.service_client``): the
transaction guard before each call, the request and correlation ids and the caller's identity
as a fresh internal token, the same timeout, and the same retries of a GET (a connection that
fails or times out, a 502/503/504, with short backoff and jitter, not past a ``Retry-After``
longer than an interactive call waits). A kept-alive connection that the service closed while
idle (uvicorn closes them after 5 s) is noticed before any byte of the answer and the GET is
sent again on a new one, which is safe for a GET and is not counted as a retry.

Only GETs without a body, to ``http://`` services; everything else (writes, uploads, TLS, the
tests' in-process transports) goes through httpx as before (:class:`gateway.upstream.Upstreams`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import urlencode, urlsplit

import httptools
from opentelemetry.trace import SpanKind, Status, StatusCode

from wangban import tracing
from wangban.auth import InternalTokens, identity_var
from wangban.db import GuardMode, check_no_transaction
from wangban.http import RETRY_STATUSES
from wangban.observability import (
    CORRELATION_ID_HEADER,
    REQUEST_ID_HEADER,
    TRACEPARENT_HEADER,
    current_context,
    outbound_calls,
)

log = logging.getLogger(__name__)

KEEP_IDLE_S: Final = 4.0
"""A kept-alive connection idle longer than this is closed rather than reused: uvicorn closes
its side after 5 s (``timeout_keep_alive``), and a GET written into a connection being closed
would have to be sent again."""
BACKOFF_BASE_S: Final = 0.05
BACKOFF_MAX_S: Final = 1.0
MAX_HEAD_BYTES: Final = 64 * 1024


class TransportError(Exception):
    """The service could not be reached or did not answer in time (the gateway's 503)."""


class _Stale(Exception):
    """A kept-alive connection was closed by the service before it answered: send again."""


class Answer:
    """A service's answer: what :class:`gateway.upstream.Upstreams` reads of an
    ``httpx.Response`` (``status_code``, ``headers`` with lower-case names, ``content``,
    ``json()``)."""

    __slots__ = ("content", "headers", "status_code")

    def __init__(self, status_code: int, headers: dict[str, str], content: bytes) -> None:
        self.status_code = status_code
        self.headers = headers
        self.content = content

    def json(self) -> Any:
        return json.loads(self.content)


class _Reading:
    """httptools' callbacks for one answer."""

    __slots__ = ("body", "complete", "headers", "keep_alive", "parser")

    def __init__(self) -> None:
        self.headers: dict[str, str] = {}
        self.body: list[bytes] = []
        self.complete = False
        self.keep_alive = False
        self.parser = httptools.HttpResponseParser(self)

    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        # Repeated fields joined as one, as HTTP allows for all but Set-Cookie (none of ours).
        self.headers[key] = f"{self.headers[key]}, {text}" if key in self.headers else text

    def on_headers_complete(self) -> None:
        # Asked here: once the message is complete the parser has reset and says False.
        self.keep_alive = self.parser.should_keep_alive()

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        self.complete = True


def _query(params: Mapping[str, Any]) -> str:
    # As httpx renders values: booleans as true/false, None left out by the caller.
    return urlencode(
        [(k, ("true" if v else "false") if isinstance(v, bool) else v) for k, v in params.items()]
    )


class _Connection:
    __slots__ = ("idle_since", "reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.idle_since = 0.0

    def usable(self, now: float) -> bool:
        return (
            not self.writer.is_closing()
            and not self.reader.at_eof()
            and now - self.idle_since < KEEP_IDLE_S
        )

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()


class InternalGets:
    """GETs to one service, as ``caller``, on kept-alive connections (at most
    ``max_connections`` at once; more calls wait for one)."""

    def __init__(
        self,
        *,
        base_url: str,
        service: str,
        caller: str,
        tokens: InternalTokens,
        timeout_s: float,
        retries: int,
        guard: GuardMode | None = None,
        max_connections: int = 16,
    ) -> None:
        url = urlsplit(base_url)
        if url.scheme != "http" or not url.hostname:
            raise ValueError(f"{base_url!r}: only plain http:// service URLs")
        self.host = url.hostname
        self.port = url.port or 80
        self.prefix = url.path.rstrip("/")
        self.service = service
        self.caller = caller
        self.tokens = tokens
        self.timeout_s = timeout_s
        self.retries = max(retries, 0)
        self.guard = guard
        self._host_header = f"Host: {url.netloc}\r\nUser-Agent: wangban-{caller}\r\n"
        self._slots = asyncio.Semaphore(max_connections)
        self._idle: list[_Connection] = []
        self._closed = False
        self._calls = outbound_calls(caller)

    async def get(
        self,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Answer:
        if not tracing.enabled(self.caller):
            return await self._get(path, params=params, headers=headers)
        # A client span, as the kit's httpx client gets: its traceparent is the one sent. The
        # path only (the query holds what the citizen typed).
        with tracing.tracer(self.caller).start_as_current_span(
            "GET",
            kind=SpanKind.CLIENT,
            attributes={
                "http.request.method": "GET",
                "server.address": self.host,
                "server.port": self.port,
                "url.path": self.prefix + path,
                "peer.service": self.service,
            },
        ) as span:
            answer = await self._get(path, params=params, headers=headers)
            span.set_attribute("http.response.status_code", answer.status_code)
            if answer.status_code >= 500:
                span.set_status(Status(StatusCode.ERROR))
            return answer

    async def _get(
        self,
        path: str,
        *,
        params: Mapping[str, Any] | None,
        headers: Mapping[str, str] | None,
    ) -> Answer:
        # The path only in the guard's report, never the query.
        check_no_transaction(f"{self.caller} → {self.service} GET", detail=path, mode=self.guard)
        target = self.prefix + path
        if params:
            target = f"{target}?{_query(params)}"
        head = self._head(target, headers or {})
        attempt = 0
        started = time.perf_counter()
        while True:
            delay: float | None
            try:
                answer = await self._exchange(head)
            except TransportError as exc:
                if attempt >= self.retries:
                    self._observe(None, started)
                    raise
                delay = _backoff(attempt)
                log.info(
                    "retrying GET %s on %s after %s (attempt %d of %d)",
                    path,
                    self.service,
                    exc,
                    attempt + 1,
                    self.retries,
                )
            else:
                if answer.status_code not in RETRY_STATUSES or attempt >= self.retries:
                    self._observe(answer.status_code, started)
                    return answer
                delay = _backoff(attempt, answer.headers.get("retry-after"))
                if delay is None:
                    self._observe(answer.status_code, started)
                    return answer
            attempt += 1
            await asyncio.sleep(delay or 0.0)

    def _observe(self, status: int | None, started: float) -> None:
        # As the kit's MeteredTransport counts the gateway's other calls (httpx).
        duration_s = time.perf_counter() - started
        self._calls.observe(target=self.service, method="GET", status=status, duration_s=duration_s)

    def _head(self, target: str, headers: Mapping[str, str]) -> bytes:
        _one_line(target)
        lines = [f"GET {target} HTTP/1.1\r\n", self._host_header]
        given = {name.lower() for name in headers}
        for name, value in headers.items():
            lines.append(f"{_one_line(name)}: {_one_line(value)}\r\n")
        context = current_context()
        for name, known in (
            (REQUEST_ID_HEADER, context["request_id"]),
            (CORRELATION_ID_HEADER, context["correlation_id"] or context["request_id"]),
            (TRACEPARENT_HEADER, context["traceparent"]),
        ):
            if known and name.lower() not in given:
                lines.append(f"{name}: {_one_line(known)}\r\n")
        identity = identity_var.get()
        if identity is not None and "authorization" not in given:
            token = self.tokens.issue(identity, issuer=self.caller)
            lines.append(f"Authorization: Bearer {token}\r\n")
        lines.append("\r\n")
        return "".join(lines).encode("latin-1")

    async def _exchange(self, head: bytes) -> Answer:
        if self._closed:
            raise TransportError("client closed")
        try:
            async with asyncio.timeout(self.timeout_s), self._slots:
                while True:
                    connection, reused = await self._connection()
                    try:
                        answer, keep = await self._send(connection, head, reused=reused)
                    except _Stale:
                        connection.close()
                        continue  # another kept connection, or a new one
                    except BaseException:
                        connection.close()  # in an unknown state: never reused
                        raise
                    if keep and not self._closed:
                        connection.idle_since = time.monotonic()
                        self._idle.append(connection)
                    else:
                        connection.close()
                    return answer
        except TimeoutError:
            raise TransportError(f"no answer within {self.timeout_s} s") from None
        except (OSError, EOFError, httptools.HttpParserError) as exc:
            raise TransportError(type(exc).__name__) from None

    async def _connection(self) -> tuple[_Connection, bool]:
        now = time.monotonic()
        while self._idle:
            connection = self._idle.pop()  # the most recently used: the likeliest still open
            if connection.usable(now):
                return connection, True
            connection.close()
        reader, writer = await asyncio.open_connection(self.host, self.port)
        return _Connection(reader, writer), False

    async def _send(
        self, connection: _Connection, head: bytes, *, reused: bool
    ) -> tuple[Answer, bool]:
        connection.writer.write(head)
        reading = _Reading()
        parser = reading.parser
        received = 0
        while not reading.complete:
            data = await connection.reader.read(65536)
            if not data:
                if reused and received == 0:
                    raise _Stale()
                raise EOFError("the service closed the connection before it answered")
            received += len(data)
            parser.feed_data(data)
            if received > MAX_HEAD_BYTES and not reading.headers:
                raise EOFError("no answer head in the first 64 KiB")
        answer = Answer(parser.get_status_code(), reading.headers, b"".join(reading.body))
        return answer, reading.keep_alive

    async def aclose(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()


def _one_line(text: str) -> str:
    """``text`` if it cannot end the line it is written on (no CR, LF or NUL): no caller's
    value can add a header or a request. The ids and tokens we write never hold one, paths
    are percent-encoded (``gateway.upstream.segment``) and so are query values."""
    if "\r" in text or "\n" in text or "\x00" in text:
        raise ValueError("a line break or NUL in a request line or header")
    return text


def _backoff(attempt: int, retry_after: str | None = None) -> float | None:
    """Seconds before the next attempt (as ``wangban.http.RetryingTransport``), or None when
    the service asked for more time than an interactive call waits."""
    backoff = min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2**attempt)
    delay = backoff * (0.5 + random.random() / 2)
    if retry_after is not None:
        try:
            seconds = float(retry_after)
        except ValueError:
            return delay
        if seconds > BACKOFF_MAX_S:
            return None
        delay = max(delay, seconds)
    return delay
