"""Tracing set up from the OTEL_* variables: off by default, what leaves the process redacted,
trace and span ids in every log line, and no client-chosen traceparent that spells a number."""

from __future__ import annotations

import io
import json
import logging
import os
from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from wangban import tracing
from wangban.observability import ID_PLACEHOLDER, configure_logging, current_context

from .synthetic import resident_id

ID = resident_id()


@pytest.fixture
def no_otel(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("OTEL_"):
            monkeypatch.delenv(name)


def test_off_without_an_endpoint_and_when_disabled(
    no_otel: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert tracing.setup("unit-off") is None
    assert not tracing.enabled("unit-off")
    # The no-op tracer still carries an event's traceparent to what its handler does.
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    with tracing.consumer_span(
        "unit-off", event_type="t", event_id="e", consumer="c", traceparent=parent
    ):
        assert current_context()["traceparent"] == parent
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    assert tracing.setup("unit-off") is None


def test_on_with_an_endpoint_named_after_the_service(
    no_otel: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://127.0.0.1:9/v1/traces")
    provider = tracing.setup("unit-on")
    try:
        assert provider is not None and tracing.enabled("unit-on")
        assert provider.resource.attributes["service.name"] == "wangban-unit-on"
    finally:
        tracing.shutdown("unit-on")
    assert not tracing.enabled("unit-on")


def test_what_leaves_the_process_holds_no_query_string_or_personal_number() -> None:
    kept = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(tracing.RedactingExporter(kept)))
    tracer = provider.get_tracer("unit")
    with tracer.start_as_current_span(
        f"lookup {ID}",
        kind=SpanKind.SERVER,
        attributes={
            "http.url": f"http://intake/applications?q={ID}&name=张三",
            "url.query": "name=张三",
            "http.route": "/applications",
            "client.address": "203.0.113.7",
            "http.user_agent": "Mozilla/5.0 (iPhone) MicroMessenger",
            "note": f"for {ID}",
            "count": 3,
        },
    ) as span:
        span.add_event("exception", {"exception.message": f"no person {ID}"})
    (exported,) = kept.get_finished_spans()
    text = json.dumps(
        [
            exported.name,
            dict(exported.attributes or {}),
            [dict(e.attributes or {}) for e in exported.events],
        ],
        ensure_ascii=False,
    )
    assert ID not in text and "张三" not in text
    attributes = exported.attributes or {}
    assert attributes["http.url"] == "http://intake/applications"
    assert attributes["note"] == f"for {ID_PLACEHOLDER}" and attributes["count"] == 3
    assert "client.address" not in attributes and "http.user_agent" not in attributes


def test_a_traceparent_spelling_a_personal_number_is_not_adopted() -> None:
    spelled = f"00-{ID[:15]}00000000000000000-b7ad6b7169203331-01"
    context = tracing.parent_from(spelled)
    assert not trace.get_current_span(context).get_span_context().is_valid
    good = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    assert trace.get_current_span(tracing.parent_from(good)).get_span_context().is_valid


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    configure_logging(service="unit", stream=stream)
    yield stream
    configure_logging(service="unit")


def test_every_log_line_names_the_current_trace_and_span(log_stream: io.StringIO) -> None:
    provider = TracerProvider()
    with provider.get_tracer("unit").start_as_current_span("work") as span:
        logging.getLogger("unit").warning("inside")
        ids = span.get_span_context()
    logging.getLogger("unit").warning("outside")
    inside, outside = (json.loads(line) for line in log_stream.getvalue().splitlines()[-2:])
    assert inside["trace_id"] == f"{ids.trace_id:032x}"
    assert inside["span_id"] == f"{ids.span_id:016x}"
    assert outside["trace_id"] is None and outside["span_id"] is None
