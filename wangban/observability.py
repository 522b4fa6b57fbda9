"""Request context, log redaction, structured logging and Prometheus metrics.

Every service uses this module the same way, so that a request id seen in the gateway's
log can be followed through intake, onto the event bus and back into another service's
HTTP log. Personal data (resident ID numbers, mobile numbers) and credentials are
scrubbed from log output before it leaves the process: logs are shipped to systems with
far wider access than the database, and PIPL treats ID numbers as sensitive data.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import socket
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from contextvars import ContextVar, Token
from datetime import UTC, datetime
from typing import Any, Final, TextIO

import uvicorn
from opentelemetry import trace as otel_trace
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "CORRELATION_ID_HEADER",
    "REQUEST_ID_HEADER",
    "TRACEPARENT_HEADER",
    "ContextFilter",
    "JsonFormatter",
    "Metrics",
    "MetricsServer",
    "RedactionFilter",
    "RequestContextMiddleware",
    "bound_context",
    "causation_id_var",
    "configure_logging",
    "correlation_id_var",
    "current_context",
    "current_trace_ids",
    "is_valid_traceparent",
    "new_id",
    "redact",
    "redact_value",
    "request_id_var",
    "safe_incoming_id",
    "traceparent_var",
]

REQUEST_ID_HEADER: Final = "X-Request-ID"
CORRELATION_ID_HEADER: Final = "X-Correlation-ID"
TRACEPARENT_HEADER: Final = "traceparent"

# ---------------------------------------------------------------------------------------
# Context
# ---------------------------------------------------------------------------------------

request_id_var: ContextVar[str | None] = ContextVar("wangban_request_id", default=None)
correlation_id_var: ContextVar[str | None] = ContextVar("wangban_correlation_id", default=None)
causation_id_var: ContextVar[str | None] = ContextVar("wangban_causation_id", default=None)
traceparent_var: ContextVar[str | None] = ContextVar("wangban_traceparent", default=None)

_CONTEXT_VARS: Final[dict[str, ContextVar[str | None]]] = {
    "request_id": request_id_var,
    "correlation_id": correlation_id_var,
    "causation_id": causation_id_var,
    "traceparent": traceparent_var,
}


def current_context() -> dict[str, str | None]:
    """The ids bound to the running task: request_id, correlation_id, causation_id,
    traceparent (each None when unset). The traceparent is the current span's when there is one
    (wangban.tracing: a request's, an event handler's), so calls and events made inside it
    become its children; else the one the request or event came with."""
    context = {name: var.get() for name, var in _CONTEXT_VARS.items()}
    span = otel_trace.get_current_span().get_span_context()
    if span.is_valid:
        context["traceparent"] = (
            f"00-{span.trace_id:032x}-{span.span_id:016x}-{int(span.trace_flags):02x}"
        )
    return context


def current_trace_ids() -> tuple[str | None, str | None]:
    """(trace_id, span_id) of the current span, for log lines; without a span, the trace id of
    the traceparent the request or event came with (and no span id)."""
    span = otel_trace.get_current_span().get_span_context()
    if span.is_valid:
        return f"{span.trace_id:032x}", f"{span.span_id:016x}"
    traceparent = traceparent_var.get()
    if traceparent and is_valid_traceparent(traceparent):
        return traceparent.split("-")[1], None
    return None, None


@contextlib.contextmanager
def bound_context(**values: str | None) -> Iterator[dict[str, str | None]]:
    """Bind some of the context ids for the duration of a ``with`` block.

    Kafka consumers use this to carry the correlation id of the HTTP request that caused
    an event into the handling of that event (and into any HTTP calls it makes). Only
    the names passed are changed; the previous values come back on exit even if the
    block raises, so a long-lived consumer task never leaks one event's ids into the next.
    """
    unknown = set(values) - set(_CONTEXT_VARS)
    if unknown:
        raise TypeError(
            f"unknown context name(s) {sorted(unknown)}; expected some of {sorted(_CONTEXT_VARS)}"
        )
    tokens: list[tuple[ContextVar[str | None], Token[str | None]]] = [
        (_CONTEXT_VARS[name], _CONTEXT_VARS[name].set(value)) for name, value in values.items()
    ]
    try:
        yield current_context()
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


_SAFE_ID = re.compile(r"[A-Za-z0-9-]{1,64}")
# What a personal number looks like once any dashes are dropped: a mainland mobile number, or the
# 15 digits every resident ID number holds (18-digit ones end in a digit or X). Searched for
# anywhere in the id, not as a whole word: "order13800138000" carries the number all the same.
_PERSONAL_NUMBER = re.compile(r"1[3-9][0-9]{9}|[0-9]{15}")


def safe_incoming_id(value: str | None) -> str | None:
    """Return ``value`` if it is safe to adopt as a request/correlation id, else None.

    Ids arrive from clients and end up in log lines, response headers and every event the
    request causes (``correlationid``, read by partner departments), so only up to 64 letters,
    digits and dashes are adopted (a UUID is one), and never one that holds a mobile or ID
    number: a client that uses a person's ID number as its correlation id must not have it
    copied into logs and topics.
    """
    if value is None or not _SAFE_ID.fullmatch(value):
        return None
    if _PERSONAL_NUMBER.search(value.replace("-", "")):
        return None
    return value


def new_id() -> str:
    """A fresh request id: 32 hex digits, drawn again in the rare case (about 1 in 70) that
    random digits happen to look like a personal number, so that the next service, which checks
    the ids it is given, adopts ours."""
    while True:
        value = uuid.uuid4().hex
        if safe_incoming_id(value) is not None:
            return value


_TRACEPARENT = re.compile(
    r"(?P<version>[0-9a-f]{2})-(?P<trace_id>[0-9a-f]{32})-(?P<parent_id>[0-9a-f]{16})"
    r"-(?P<flags>[0-9a-f]{2})(?P<rest>-.*)?"
)


def is_valid_traceparent(value: str | None) -> bool:
    """W3C Trace Context check; an invalid header must not be propagated."""
    if not value:
        return False
    match = _TRACEPARENT.fullmatch(value)
    if match is None:
        return False
    version = match["version"]
    if version == "ff":
        return False
    # Version 00 has exactly four fields; later versions may append more.
    if version == "00" and match["rest"] is not None:
        return False
    return match["trace_id"] != "0" * 32 and match["parent_id"] != "0" * 16


# ---------------------------------------------------------------------------------------
# Redaction
# ---------------------------------------------------------------------------------------

ID_PLACEHOLDER: Final = "[REDACTED-ID]"
PHONE_PLACEHOLDER: Final = "[REDACTED-PHONE]"
TOKEN_PLACEHOLDER: Final = "[REDACTED-TOKEN]"
SECRET_PLACEHOLDER: Final = "[REDACTED-SECRET]"

# Lookarounds use explicit ASCII classes: digits or letters glued to a candidate mean it is
# part of a longer identifier (order number, hash, hex id), not an ID or phone number. A
# percent-escape (``%E5%8F%B7`` in a logged request path) ends in hex digits yet is a boundary:
# the number after it is as readable as one after a slash.
_AFTER_ESCAPE = r"(?<=%[0-9A-Fa-f]{2})"
_NOT_AFTER_ALNUM = r"(?:(?<![0-9A-Za-z.])|" + _AFTER_ESCAPE + ")"
_NOT_BEFORE_ALNUM = r"(?![0-9A-Za-z]|\.[0-9])"

_MONTH = r"(?:0[1-9]|1[0-2])"
_DAY = r"(?:0[1-9]|[12][0-9]|3[01])"

_SECRET_KEYS = r"[A-Za-z_]*(?:password|passwd|pwd|secret|api[_-]?key|token)"

# Dash-joined codes (service item codes such as
# 511A0138000000-511602000000-000-115113010833722043-1-00, UUIDs) are public identifiers;
# one of their segments may look like an ID number by chance, so they are matched first
# and kept whole.
_CODE_RULE = (
    r"(?P<code>(?<![0-9A-Za-z+-])(?:[0-9A-Z]+(?:-[0-9A-Z]+){3,}|"
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})"
    r"(?![0-9A-Za-z-]))"
)
_RULES = (
    r"(?P<bearer>\b(?i:bearer)\s+)[A-Za-z0-9._~+/-]+=*",
    r"(?P<jwt>\beyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*)",
    r"(?P<secret>(?P<q>[\"']?)\b(?i:" + _SECRET_KEYS + r")(?P=q)\s*[:=]\s*)"
    r"(?P<value>\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'|[^\s,;&}\]]+)",
    # 18-digit resident ID: region, birth date 19xx/20xx, sequence, check digit or X.
    r"(?P<id18>"
    + _NOT_AFTER_ALNUM
    + r"[0-9]{6}(?:19|20)[0-9]{2}"
    + _MONTH
    + _DAY
    + r"[0-9]{3}[0-9Xx]"
    + _NOT_BEFORE_ALNUM
    + ")",
    # First-generation 15-digit ID: region, yymmdd, sequence.
    r"(?P<id15>"
    + _NOT_AFTER_ALNUM
    + r"[0-9]{6}[0-9]{2}"
    + _MONTH
    + _DAY
    + r"[0-9]{3}"
    + _NOT_BEFORE_ALNUM
    + ")",
    # Mainland mobile, optionally +86/0086/86-prefixed and split 3-4-4.
    r"(?P<phone>(?:(?<![0-9A-Za-z.+])|"
    + _AFTER_ESCAPE
    + r")(?:(?:\+|00)?86[ -]?)?1[3-9][0-9](?:[ -]?[0-9]{4}){2}"
    + _NOT_BEFORE_ALNUM
    + ")",
)
# One pass with every rule as an alternative: the leftmost match wins and replaced text is
# never rescanned, so rules cannot fight over the same digits.
_REDACTION = re.compile("|".join((_CODE_RULE, *_RULES)))
_REDACTION_WITHOUT_CODES = re.compile("|".join(_RULES))

# Item codes are 55 characters and UUIDs 36; a short dash-joined run of digits such as
# 86-138-0013-8000 is a phone number written with separators, not a code.
_MIN_CODE_LENGTH = 30


def _replace(match: re.Match[str]) -> str:
    if match["code"] is not None:
        code = match["code"]
        if len(code) >= _MIN_CODE_LENGTH:
            return code
        return _REDACTION_WITHOUT_CODES.sub(_replace_rule, code)
    return _replace_rule(match)


def _replace_rule(match: re.Match[str]) -> str:
    if match["bearer"] is not None:
        return match["bearer"] + TOKEN_PLACEHOLDER
    if match["jwt"] is not None:
        return TOKEN_PLACEHOLDER
    if match["value"] is not None:
        value = match["value"]
        quote = value[0] if value[:1] in ('"', "'") else ""
        return f"{match['secret']}{quote}{SECRET_PLACEHOLDER}{quote}"
    if match["id18"] is not None or match["id15"] is not None:
        return ID_PLACEHOLDER
    return PHONE_PLACEHOLDER


def redact(text: str) -> str:
    """Replace resident ID numbers, mobile numbers, bearer tokens, JWTs and
    ``password=…``-style secrets in ``text`` with fixed ASCII placeholders.

    Deliberately leaves alone ordinary numbers (amounts, 13-digit millisecond
    timestamps), UUIDs, service item codes and companies' unified social credit codes:
    those are not personal data and operators need them to investigate problems.
    """
    if not text:
        return text
    return _REDACTION.sub(_replace, text)


_SECRET_KEY_NAME = re.compile(_SECRET_KEYS, re.IGNORECASE)


def redact_value(value: Any, *, key: str | None = None) -> Any:
    """Redact a structured value (``extra`` log fields) recursively.

    A value under a secret-sounding key is hidden whole, because a bare password has no
    shape a pattern could recognise.
    """
    if key is not None and _SECRET_KEY_NAME.fullmatch(key) and value is not None:
        return SECRET_PLACEHOLDER
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, bool) or value is None or isinstance(value, float):
        return value
    if isinstance(value, int):
        # A phone or ID number may arrive as an int; keep ints that are not.
        as_text = str(value)
        redacted = redact(as_text)
        return value if redacted == as_text else redacted
    if isinstance(value, Mapping):
        return {str(k): redact_value(v, key=str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [redact_value(v) for v in value]
    return redact(str(value))


# ---------------------------------------------------------------------------------------
# Logging
# ---------------------------------------------------------------------------------------

_EXC_FORMATTER = logging.Formatter()


class RedactionFilter(logging.Filter):
    """Scrub personal data and credentials from every record a handler emits.

    Attached to the handler (not a logger) so records from every logger, including
    third-party ones and uvicorn's, pass through it. The message is rendered once with its
    arguments and stored back, because redacting the template alone would miss data
    passed as ``%s`` arguments.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string must not lose the record
            message = f"{record.msg!r} {record.args!r}"
        record.msg = redact(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = _EXC_FORMATTER.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        fields = getattr(record, "fields", None)
        if isinstance(fields, Mapping):
            record.fields = redact_value(fields)
        return True


class ContextFilter(logging.Filter):
    """Stamp the context ids on each record when it is created, not when it is
    formatted, so a handler that formats later (or elsewhere) still sees the right ids."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in current_context().items():
            if not hasattr(record, name):
                setattr(record, name, value)
        if not hasattr(record, "trace_id"):
            record.trace_id, record.span_id = current_trace_ids()
        return True


_RESERVED_KEYS: Final = frozenset(
    {
        "time",
        "level",
        "logger",
        "message",
        "service",
        "request_id",
        "correlation_id",
        "causation_id",
        "traceparent",
        "trace_id",
        "span_id",
        "exc_info",
        "stack_info",
    }
)


class JsonFormatter(logging.Formatter):
    """One JSON object per line, the shape the log pipeline indexes."""

    def __init__(self, *, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        context = current_context()
        body: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "service": self.service,
        }
        for name in ("request_id", "correlation_id", "causation_id"):
            body[name] = getattr(record, name, context[name])
        if hasattr(record, "trace_id"):
            body["trace_id"], body["span_id"] = record.trace_id, getattr(record, "span_id", None)
        else:
            body["trace_id"], body["span_id"] = current_trace_ids()
        fields = getattr(record, "fields", None)
        if isinstance(fields, Mapping):
            for key, value in fields.items():
                # Never let a caller's field overwrite the fields the pipeline relies on.
                body[f"extra_{key}" if key in _RESERVED_KEYS else str(key)] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            body["exc_info"] = record.exc_text
        if record.stack_info:
            body["stack_info"] = record.stack_info
        return json.dumps(body, ensure_ascii=False, default=str)


_TEXT_FORMAT: Final = "%(asctime)s %(levelname)-7s %(name)s [%(request_id)s] %(message)s"


def configure_logging(
    *,
    service: str,
    level: str = "INFO",
    json_format: bool = True,
    stream: TextIO | None = None,
) -> None:
    """Install the one root handler every log record of the process goes through.

    Idempotent: a second call replaces the handler installed by the first (so tests and
    reloads do not double every line). uvicorn's loggers are pointed at the root handler,
    so run uvicorn with ``log_config=None`` to keep it from installing its own.
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_wangban", False):
            root.removeHandler(handler)
            handler.close()
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler._wangban = True  # type: ignore[attr-defined]
    handler.addFilter(ContextFilter())
    handler.addFilter(RedactionFilter())
    if json_format:
        handler.setFormatter(JsonFormatter(service=service))
    else:
        handler.setFormatter(logging.Formatter(_TEXT_FORMAT))
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True


# ---------------------------------------------------------------------------------------
# Metrics
# ---------------------------------------------------------------------------------------

# Most calls are a few milliseconds; the tail matters up to the 10 s client timeout.
HTTP_DURATION_BUCKETS: Final = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)


class _TransactionGuardCollector(Collector):
    """``wangban_transaction_held_across_call_total``: remote calls made while the calling task
    held an open database transaction, by call and call site (``wangban.db``'s guard, which
    counts per process; in production every one is a site to restructure)."""

    def collect(self) -> Iterator[CounterMetricFamily]:
        from wangban.db import GUARD  # wangban.db imports this module (through wangban.errors)

        family = CounterMetricFamily(
            "wangban_transaction_held_across_call",
            "Remote calls made while the calling task held an open database transaction",
            labels=["call", "site"],
        )
        for (call, site), count in sorted(GUARD.counts.items()):
            family.add_metric([call, site], count)
        yield family


class _PoolCollector(Collector):
    """The database pool's state, read from the engine at each scrape (nothing to keep up to
    date on the request path). A pool exhausted (checked out = size + overflow allowed) makes the
    next unit of work wait up to ``WANGBAN_DATABASE_POOL_TIMEOUT_S`` and then answer 503."""

    def __init__(self) -> None:
        self.engine: Any = None  # an AsyncEngine, set once the lifespan has built the database

    def collect(self) -> Iterator[GaugeMetricFamily]:
        pool = getattr(getattr(self.engine, "sync_engine", None), "pool", None)
        if pool is None or not hasattr(pool, "checkedout"):
            return
        size = pool.size()
        for name, documentation, value in (
            ("size", "Connections the pool keeps open", size),
            (
                "max",
                "Connections the pool may hand out at once (size plus the overflow allowed)",
                size + max(getattr(pool, "_max_overflow", 0), 0),
            ),
            ("checked_out", "Connections handed out now", pool.checkedout()),
            ("overflow", "Connections open beyond the pool's size now", max(pool.overflow(), 0)),
        ):
            yield GaugeMetricFamily(f"wangban_db_pool_{name}", documentation, value=value)


class _GaugeOnceSet(Collector):
    """A gauge with no sample until it is first set (declared all the same): a service that
    never checks the broker (the gateway) must not say ``wangban_broker_up 0``, which reads as
    a broker down. prometheus_client's unlabelled Gauge starts at 0."""

    def __init__(self, name: str, documentation: str) -> None:
        self._name = name
        self._documentation = documentation
        self._value: float | None = None

    def set(self, value: float) -> None:
        self._value = float(value)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(self._name, self._documentation, labels=[])
        if self._value is not None:
            family.add_metric([], self._value)
        yield family


# Outbound calls are made by clients built far from the app (a service's module builds its
# ServiceCalls at import or start-up), so they count into a per-caller set of metrics kept by
# the process, and each service's registry reads its own set, as it does the guard's counts.
_OUTBOUND: dict[str, OutboundCalls] = {}


def status_class(status: int | None) -> str:
    """``2xx``…``5xx``, or ``error`` when no answer came (refused, timed out)."""
    return "error" if status is None else f"{status // 100}xx"


class OutboundCalls:
    """HTTP calls a service makes to another service or an outside system, by target (a service
    name or a system's name from the code, never a URL), method and status class."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests_total = Counter(
            "http_client_requests_total",
            "HTTP calls made to other services and outside systems, retries included in one",
            ["target", "method", "status_class"],
            namespace="wangban",
            registry=self.registry,
        )
        self.duration_seconds = Histogram(
            "http_client_request_duration_seconds",
            "HTTP call duration as the caller waited for it, retries included",
            ["target", "method"],
            buckets=HTTP_DURATION_BUCKETS,
            namespace="wangban",
            registry=self.registry,
        )

    def observe(self, *, target: str, method: str, status: int | None, duration_s: float) -> None:
        method = method if method in _KNOWN_METHODS else "OTHER"
        self.requests_total.labels(target, method, status_class(status)).inc()
        self.duration_seconds.labels(target, method).observe(duration_s)


def outbound_calls(caller: str) -> OutboundCalls:
    """The process's outbound-call metrics of service ``caller``."""
    calls = _OUTBOUND.get(caller)
    if calls is None:
        calls = _OUTBOUND.setdefault(caller, OutboundCalls())
    return calls


# The consumer handler's and the relay's work: a few milliseconds each; the tail up to seconds.
WORK_DURATION_BUCKETS: Final = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

# A checkout: tens of microseconds when a connection is free, a connect (milliseconds) within
# the overflow, up to the pool timeout (10 s by default) when every connection is out.
POOL_WAIT_BUCKETS: Final = (0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """The Prometheus metrics of one service, in a registry of their own.

    A private registry (rather than prometheus_client's global one) lets several apps
    live in one test process without "duplicated timeseries" errors. No series carries the
    service's name: the scrape target's ``job`` and ``pod`` labels say which service it is.
    """

    def __init__(self, service: str) -> None:
        self.service = service
        # No ``*_created`` series (one more per counter and histogram child, which dashboards and
        # alerts never read). prometheus_client's switch is process-wide: set where every
        # registry of ours is made.
        disable_created_metrics()
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        # CPU, memory, open file descriptors and the Python version: what tells a leak or a
        # saturated process from a slow database.
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        self.http_requests_total = Counter(
            "http_requests_total",
            "HTTP requests handled",
            ["method", "route", "status"],
            namespace="wangban",
            registry=r,
        )
        self.http_request_duration_seconds = Histogram(
            "http_request_duration_seconds",
            "HTTP request duration",
            ["method", "route"],
            buckets=HTTP_DURATION_BUCKETS,
            namespace="wangban",
            registry=r,
        )
        self.outbox_backlog = Gauge(
            "outbox_backlog",
            "Outbox rows not yet published",
            namespace="wangban",
            registry=r,
        )
        self.outbox_published_total = Counter(
            "outbox_published_total",
            "Outbox rows published",
            namespace="wangban",
            registry=r,
        )
        self.outbox_publish_errors_total = Counter(
            "outbox_publish_errors_total",
            "Outbox rows a publishing round could not get acknowledged (sent again later)",
            namespace="wangban",
            registry=r,
        )
        self.outbox_publish_duration_seconds = Histogram(
            "outbox_publish_duration_seconds",
            "Time to publish one batch of outbox rows and have the broker acknowledge it",
            buckets=WORK_DURATION_BUCKETS,
            namespace="wangban",
            registry=r,
        )
        self.consumer_lag = Gauge(
            "consumer_lag",
            "Messages behind the end of the partition",
            ["consumer", "topic", "partition"],
            namespace="wangban",
            registry=r,
        )
        self.events_consumed_total = Counter(
            "events_consumed_total",
            "Events handled by consumers",
            ["consumer", "type", "outcome"],
            namespace="wangban",
            registry=r,
        )
        self.consumer_handler_duration_seconds = Histogram(
            "consumer_handler_duration_seconds",
            "Time a consumer's handler took for one event (each attempt, failed ones too)",
            ["consumer", "type"],
            buckets=WORK_DURATION_BUCKETS,
            namespace="wangban",
            registry=r,
        )
        self.dead_letters_total = Counter(
            "dead_letters_total",
            "Events sent to the dead-letter topic",
            ["consumer"],
            namespace="wangban",
            registry=r,
        )
        r.register(_TransactionGuardCollector())
        self.broker_up = _GaugeOnceSet(
            "wangban_broker_up",
            "1 if the broker answered the last check, 0 if not (not part of readiness)",
        )
        r.register(self.broker_up)
        self._pool = _PoolCollector()
        r.register(self._pool)
        self.db_pool_checkout_seconds = Histogram(
            "db_pool_checkout_seconds",
            "Time a unit of work waited for a database connection (a free one, or a new one "
            "within the overflow); those that gave up are counted too",
            buckets=POOL_WAIT_BUCKETS,
            namespace="wangban",
            registry=r,
        )
        self.db_pool_timeouts_total = Counter(
            "db_pool_timeouts_total",
            "Checkouts that gave up after the pool timeout (the unit of work answered 503)",
            namespace="wangban",
            registry=r,
        )
        r.register(outbound_calls(service).registry)

    def watch_pool(self, engine: Any) -> None:
        """Export the pool of ``engine`` (the process's AsyncEngine) as ``wangban_db_pool_*``,
        with the time each checkout took when it is the kit's pool (``wangban.db.TimedPool``)."""
        self._pool.engine = engine
        pool = getattr(getattr(engine, "sync_engine", None), "pool", None)
        if pool is not None and hasattr(pool, "observer"):
            pool.observer = self.observe_pool_checkout

    def observe_pool_checkout(self, duration_s: float, timed_out: bool) -> None:
        self.db_pool_checkout_seconds.observe(duration_s)
        if timed_out:
            self.db_pool_timeouts_total.inc()

    def observe_publish(self, *, rows: int, sent: int, duration_s: float) -> None:
        """One batch the relay published: ``sent`` of ``rows`` acknowledged."""
        self.outbox_publish_duration_seconds.observe(duration_s)
        if rows > sent:
            self.outbox_publish_errors_total.inc(rows - sent)

    def observe_handler(self, *, consumer: str, event_type: str, duration_s: float) -> None:
        self.consumer_handler_duration_seconds.labels(consumer, event_type).observe(duration_s)

    def observe_request(self, *, method: str, route: str, status: int, duration_s: float) -> None:
        self.http_requests_total.labels(method, route, str(status)).inc()
        self.http_request_duration_seconds.labels(method, route).observe(duration_s)

    def render(self) -> tuple[bytes, str]:
        """Exposition body and its content type, for a ``/metrics`` endpoint."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class _SignalFreeServer(uvicorn.Server):
    """A uvicorn server that leaves signals to the process's main server: two servers each
    capturing SIGTERM would keep the main one from ever hearing it."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class MetricsServer:
    """``/metrics`` (and nothing else) on a port of its own, beside the service's port.

    In production the service port is reachable by whoever can reach the service (the gateway's
    by the whole internet); the metrics port is open only to Prometheus. The socket is bound
    with ``SO_REUSEPORT`` so that every worker process of a service binds the same port (each
    scrape then reads one worker, as a scrape of the service port did).
    """

    def __init__(self, metrics: Metrics, *, host: str, port: int) -> None:
        self.metrics = metrics
        self.host = host
        self.port = port
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None

    async def _app(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == "/metrics" and scope["method"] in ("GET", "HEAD"):
            status, (body, content_type) = 200, self.metrics.render()
        else:
            status, body, content_type = 404, b"not found\n", "text/plain; charset=utf-8"
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", content_type.encode()),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def start(self) -> int:
        """Listen, and return the port (the one the OS chose when asked for 0)."""
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if hasattr(socket, "SO_REUSEPORT"):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((self.host, self.port))
        sock.listen(64)
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self._app,
            interface="asgi3",
            log_config=None,
            access_log=False,
            proxy_headers=False,
            lifespan="off",
            timeout_graceful_shutdown=1,
        )
        self._server = _SignalFreeServer(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]), name="metrics")
        while not self._server.started:
            if self._task.done():
                self._task.result()  # failed to start: raise its error here
                raise RuntimeError("the metrics server exited before starting")
            await asyncio.sleep(0.01)
        return self.port

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task


# ---------------------------------------------------------------------------------------
# Middleware
# ---------------------------------------------------------------------------------------

access_logger = logging.getLogger("wangban.access")

_QUIET_PATHS: Final = frozenset({"/metrics", "/healthz", "/readyz"})
UNMATCHED_ROUTE: Final = "unmatched"
_KNOWN_METHODS: Final = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"}
)


def _route_template(scope: Scope) -> str:
    # The template ("/items/{item_id}"), never the raw path: raw paths carry ids and
    # would give every request its own time series.
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) and path else UNMATCHED_ROUTE


class RequestContextMiddleware:
    """Pure ASGI middleware: request/correlation ids, trace context, metrics, access log.

    Pure ASGI (not ``BaseHTTPMiddleware``) so the context variables it binds are visible
    to the endpoint and the exception handlers, and streaming responses are not buffered.
    """

    def __init__(self, app: ASGIApp, *, metrics: Metrics, service: str) -> None:
        self.app = app
        self.metrics = metrics
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        headers = Headers(scope=scope)
        request_id = safe_incoming_id(headers.get(REQUEST_ID_HEADER)) or new_id()
        correlation_id = safe_incoming_id(headers.get(CORRELATION_ID_HEADER)) or request_id
        traceparent = headers.get(TRACEPARENT_HEADER)
        # Also client-chosen and copied into every event: its hex fields can spell a number too
        # (checked one by one: joined, the fixed fields would make numbers of their own).
        if not is_valid_traceparent(traceparent) or any(
            _PERSONAL_NUMBER.search(part) for part in str(traceparent).split("-")
        ):
            traceparent = None
        # Also kept in the request state: the last-resort error handler runs outside this
        # middleware, after the context variables have been reset.
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        state["correlation_id"] = correlation_id

        status = 500
        started = time.perf_counter()

        async def send_with_ids(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = list(message.get("headers", []))
                response_headers = MutableHeaders(scope=message)
                response_headers[REQUEST_ID_HEADER] = request_id
                response_headers[CORRELATION_ID_HEADER] = correlation_id
            await send(message)

        with bound_context(
            request_id=request_id,
            correlation_id=correlation_id,
            causation_id=None,
            traceparent=traceparent,
        ):
            try:
                await self.app(scope, receive, send_with_ids)
            finally:
                self._record(scope, status, time.perf_counter() - started)

    def _record(self, scope: Scope, status: int, duration_s: float) -> None:
        method = scope["method"] if scope["method"] in _KNOWN_METHODS else "OTHER"
        route = UNMATCHED_ROUTE if status == 404 else _route_template(scope)
        self.metrics.observe_request(
            method=method, route=route, status=status, duration_s=duration_s
        )
        duration_ms = round(duration_s * 1000, 2)
        level = logging.DEBUG if scope["path"] in _QUIET_PATHS else logging.INFO
        access_logger.log(
            level,
            "%s %s %s %.2fms",
            method,
            route,
            status,
            duration_ms,
            extra={
                "fields": {
                    "method": method,
                    "route": route,
                    "status": status,
                    "duration_ms": duration_ms,
                }
            },
        )
