"""Tracing: one OpenTelemetry trace from the gateway's request through every service it reaches,
across the outbox and the broker, exported over OTLP/HTTP when the standard ``OTEL_*``
variables name a collector.

Set up from the environment, as every OpenTelemetry SDK is:

- ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` (the full URL, ``…/v1/traces``) or
  ``OTEL_EXPORTER_OTLP_ENDPOINT`` (the collector's base URL): where spans go. Neither set (the
  default, locally and in tests): nothing is set up, every span below is the API's no-op one
  (which still carries an incoming ``traceparent`` along), nothing is exported.
- ``OTEL_SDK_DISABLED=true``: off even with an endpoint. ``OTEL_TRACES_EXPORTER=none`` too.
- ``OTEL_SERVICE_NAME``: the ``service.name`` of the spans; by default ``wangban-<service>``.
- ``OTEL_TRACES_SAMPLER`` / ``OTEL_TRACES_SAMPLER_ARG``, ``OTEL_RESOURCE_ATTRIBUTES``,
  ``OTEL_EXPORTER_OTLP_HEADERS``, ``OTEL_BSP_*``: read by the SDK itself.

Each service gets a tracer provider of its own (kept here by service name), not the process's
global one: production runs one service per process, so that is the same thing there, and a
test that runs several services in one process still sees each span under its own service.

What the spans carry is checked before it leaves the process (:class:`RedactingExporter`):
query strings are dropped from URLs, the caller's address and user agent are left out, and
every string attribute, event attribute and status
text passes through :func:`wangban.observability.redact`. Database spans hold the statement
text without its parameters (the SQLAlchemy instrumentation records none; kept so).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit, urlunsplit

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.propagate import set_global_textmap
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from wangban.observability import _PERSONAL_NUMBER, is_valid_traceparent, redact

if TYPE_CHECKING:
    import httpx
    from fastapi import FastAPI
    from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = [
    "RedactingExporter",
    "SafeTraceContext",
    "consumer_span",
    "enabled",
    "instrument_app",
    "instrument_client",
    "instrument_engine",
    "parent_from",
    "setup",
    "shutdown",
    "tracer",
]

log = logging.getLogger(__name__)

_lock = threading.Lock()
_providers: dict[str, TracerProvider] = {}
_NOOP: Final = trace.NoOpTracer()
# Probes and scrapes: a span each every few seconds would bury the traces that matter.
_EXCLUDED_URLS: Final = "/healthz,/readyz,/metrics"


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() == "true"


def _configured() -> bool:
    if _flag("OTEL_SDK_DISABLED"):
        return False
    if os.environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() in ("none", ""):
        return False
    return bool(
        os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    )


class SafeTraceContext(TraceContextTextMapPropagator):
    """W3C Trace Context, refusing a ``traceparent`` whose hex fields spell a mobile or ID
    number (as the request middleware refuses it): its trace id would be copied into every log
    line, span and event of the request."""

    def extract(self, carrier: Any, context: Context | None = None, getter: Any = None) -> Context:
        values = carrier.get("traceparent") if isinstance(carrier, Mapping) else None
        if getter is not None:
            found = getter.get(carrier, "traceparent")
            values = found[0] if found else None
        if isinstance(values, list | tuple):
            values = values[0] if values else None
        if isinstance(values, bytes):
            values = values.decode("latin-1")
        if values is not None and (
            not is_valid_traceparent(values)
            or any(_PERSONAL_NUMBER.search(part) for part in values.split("-"))
        ):
            return context if context is not None else Context()
        if getter is None:
            return super().extract(carrier, context)
        return super().extract(carrier, context, getter)


_PROPAGATOR: Final = SafeTraceContext()


class _SafeIds(RandomIdGenerator):
    """Random ids drawn again when their hex digits happen to spell a personal number (as
    :func:`wangban.observability.new_id` does): trace ids travel into logs and partners' events."""

    def generate_trace_id(self) -> int:
        while True:
            value = super().generate_trace_id()
            if not _PERSONAL_NUMBER.search(f"{value:032x}"):
                return value

    def generate_span_id(self) -> int:
        while True:
            value = super().generate_span_id()
            if not _PERSONAL_NUMBER.search(f"{value:016x}"):
                return value


class _WithinSpans:
    """A tracer for database statements that starts no span outside one (the relay's polls,
    periodic sweeps): a trace per poll would bury the requests' and events' traces."""

    def __init__(self, inner: trace.Tracer) -> None:
        self.inner = inner

    def start_span(self, name: str, *args: Any, **kwargs: Any) -> trace.Span:
        if not trace.get_current_span().get_span_context().is_valid:
            return trace.INVALID_SPAN
        return self.inner.start_span(name, *args, **kwargs)

    @contextmanager
    def start_as_current_span(self, name: str, *args: Any, **kwargs: Any) -> Iterator[trace.Span]:
        if not trace.get_current_span().get_span_context().is_valid:
            yield trace.INVALID_SPAN
            return
        with self.inner.start_as_current_span(name, *args, **kwargs) as span:
            yield span


_URL_KEYS: Final = frozenset({"http.url", "url.full", "http.target", "url.query"})
# Who is calling: a citizen's address and device are personal information, and the access log
# does not keep them either.
_DROPPED_KEYS: Final = frozenset(
    {
        "net.peer.ip",
        "net.peer.port",
        "client.address",
        "client.port",
        "http.client_ip",
        "network.peer.address",
        "network.peer.port",
        "http.user_agent",
        "user_agent.original",
    }
)


def _clean(key: str, value: Any) -> Any:
    if isinstance(value, str):
        if key == "url.query":
            return ""
        if key in _URL_KEYS:
            # Query strings carry what people typed (search terms); the path is ours.
            parts = urlsplit(value)
            value = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
        return redact(value)
    if isinstance(value, Sequence) and not isinstance(value, bytes):
        return tuple(redact(v) if isinstance(v, str) else v for v in value)
    return value


def _clean_all(attributes: Mapping[str, Any] | None) -> dict[str, Any]:
    return {
        key: _clean(key, value)
        for key, value in (attributes or {}).items()
        if key not in _DROPPED_KEYS
    }


class RedactingExporter(SpanExporter):
    """Hands the spans to ``inner`` with personal data and query strings taken out of every
    attribute, event and status text: whatever an instrumentation or a future span records,
    it passes here before leaving the process."""

    def __init__(self, inner: SpanExporter) -> None:
        self.inner = inner

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return self.inner.export([self._cleaned(span) for span in spans])

    @staticmethod
    def _cleaned(span: ReadableSpan) -> ReadableSpan:
        from opentelemetry.sdk.trace import Event

        status = span.status
        if status.description:
            status = Status(status.status_code, redact(status.description))
        return ReadableSpan(
            name=redact(span.name),
            context=span.context,
            parent=span.parent,
            resource=span.resource,
            attributes=_clean_all(span.attributes),
            events=[
                Event(e.name, _clean_all(e.attributes), timestamp=e.timestamp) for e in span.events
            ],
            links=span.links,
            kind=span.kind,
            status=status,
            start_time=span.start_time,
            end_time=span.end_time,
            instrumentation_scope=span.instrumentation_scope,
        )

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


def setup(service: str) -> TracerProvider | None:
    """The tracer provider of ``service``, made on first call from the ``OTEL_*`` variables;
    None when tracing is off (no endpoint, or disabled). Called by the app factory and by any
    process that runs a service's work without its app."""
    with _lock:
        provider = _providers.get(service)
        if provider is not None or not _configured():
            return provider
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        name = os.environ.get("OTEL_SERVICE_NAME") or f"wangban-{service}"
        resource = Resource.create({"service.name": name, "service.namespace": "wangban"})
        # The sampler comes from OTEL_TRACES_SAMPLER (parent-based always-on by default).
        provider = TracerProvider(resource=resource, id_generator=_SafeIds())
        provider.add_span_processor(BatchSpanProcessor(RedactingExporter(OTLPSpanExporter())))
        _providers[service] = provider
        # What the instrumentations extract from requests: Trace Context only (no baggage: it
        # is free text from the client) and never a traceparent spelling a personal number.
        set_global_textmap(_PROPAGATOR)
        log.info("tracing on", extra={"fields": {"service_name": name}})
        return provider


def enabled(service: str) -> bool:
    return service in _providers


def tracer(service: str) -> trace.Tracer:
    """The service's tracer; the no-op one when tracing is off (its spans cost next to nothing
    and still carry a parent's context along)."""
    provider = _providers.get(service)
    return provider.get_tracer("wangban") if provider is not None else _NOOP


def shutdown(service: str) -> None:
    """Export what is buffered and stop (the app's shutdown)."""
    with _lock:
        provider = _providers.pop(service, None)
    if provider is not None:
        provider.shutdown()


def parent_from(traceparent: str | None) -> Context | None:
    """The context whose current span is the remote one ``traceparent`` names (None if none)."""
    if not traceparent:
        return None
    return _PROPAGATOR.extract({"traceparent": traceparent})


def instrument_app(app: FastAPI, *, service: str) -> None:
    """A server span per request (probes and scrapes left out)."""
    provider = _providers.get(service)
    if provider is None:
        return
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(
        app,
        tracer_provider=provider,
        excluded_urls=_EXCLUDED_URLS,
        # The ASGI instrumentation's per-message spans (one per body chunk) say nothing more.
        exclude_spans=["receive", "send"],
    )


def instrument_client(client: httpx.AsyncClient, *, service: str) -> None:
    """A client span per service-to-service call; its context goes in the ``traceparent``
    header (outside systems' clients are not instrumented: our trace ids stay ours)."""
    provider = _providers.get(service)
    if provider is None:
        return
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    HTTPXClientInstrumentor.instrument_client(client, tracer_provider=provider)


def instrument_engine(engine: AsyncEngine, *, service: str) -> None:
    """A span per statement: its text, never its parameters."""
    provider = _providers.get(service)
    if provider is None:
        return
    from opentelemetry.instrumentation.sqlalchemy import EngineTracer
    from opentelemetry.metrics import NoOpMeterProvider

    usage = (
        NoOpMeterProvider()
        .get_meter("wangban")
        .create_up_down_counter("db.client.connections.usage")
    )
    queries = _WithinSpans(provider.get_tracer("opentelemetry.instrumentation.sqlalchemy"))
    EngineTracer(queries, engine.sync_engine, usage)


@contextmanager
def consumer_span(
    service: str, *, event_type: str, event_id: str, consumer: str, traceparent: str | None
) -> Iterator[trace.Span]:
    """The span of one event's handling, a child of the span that wrote the event to the
    outbox (the envelope's ``traceparent``): the trace crosses the broker. Exceptions mark it
    failed by type only (their text may hold what the event carried)."""
    with tracer(service).start_as_current_span(
        f"process {event_type}",
        context=parent_from(traceparent),
        kind=SpanKind.CONSUMER,
        attributes={
            "messaging.system": "kafka",
            "messaging.operation.type": "process",
            "messaging.consumer.group.name": consumer,
            "messaging.message.id": event_id,
            "wangban.event.type": event_type,
        },
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        try:
            yield span
        except BaseException as exc:
            span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            raise
