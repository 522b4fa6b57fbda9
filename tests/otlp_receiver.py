"""A local OTLP/HTTP trace receiver for tests: what a collector does with ``POST /v1/traces``
(an ``ExportTraceServiceRequest`` in protobuf, maybe gzipped), keeping every span it is sent."""

from __future__ import annotations

import gzip
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from starlette.types import Receive, Scope, Send

from tests.serving import serve_asgi

KINDS = {0: "unspecified", 1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}


def _value(value: AnyValue) -> Any:
    which = value.WhichOneof("value")
    if which == "array_value":
        return [_value(v) for v in value.array_value.values]
    if which == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, which) if which else None


@dataclass
class Receiver:
    spans: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = dict(scope["headers"])
        status = 404
        answer = b""
        if scope["method"] == "POST" and scope["path"] == "/v1/traces":
            if headers.get(b"content-encoding") == b"gzip":
                body = gzip.decompress(body)
            if headers.get(b"content-type") == b"application/x-protobuf":
                self._keep(ExportTraceServiceRequest.FromString(body))
                status, answer = 200, ExportTraceServiceResponse().SerializeToString()
            else:
                status = 415
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/x-protobuf")],
            }
        )
        await send({"type": "http.response.body", "body": answer})

    def _keep(self, request: ExportTraceServiceRequest) -> None:
        for resource_spans in request.resource_spans:
            resource = {kv.key: _value(kv.value) for kv in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    self.spans.append(
                        {
                            "service": resource.get("service.name"),
                            "trace_id": span.trace_id.hex(),
                            "span_id": span.span_id.hex(),
                            "parent_span_id": span.parent_span_id.hex() or None,
                            "name": span.name,
                            "kind": KINDS.get(span.kind, str(span.kind)),
                            "start_ns": span.start_time_unix_nano,
                            "end_ns": span.end_time_unix_nano,
                            "attributes": {kv.key: _value(kv.value) for kv in span.attributes},
                            "events": [
                                {
                                    "name": e.name,
                                    "attributes": {kv.key: _value(kv.value) for kv in e.attributes},
                                }
                                for e in span.events
                            ],
                            "status": {
                                "code": span.status.code,
                                "message": span.status.message,
                            },
                            "scope": scope_spans.scope.name,
                        }
                    )

    def trace(self, trace_id: str) -> list[dict[str, Any]]:
        return [s for s in self.spans if s["trace_id"] == trace_id]


@asynccontextmanager
async def otlp_receiver() -> AsyncIterator[Receiver]:
    """A receiver on a local port; its ``url`` is the base an ``OTEL_EXPORTER_OTLP_ENDPOINT``
    names."""
    receiver = Receiver()
    async with serve_asgi(receiver) as url:
        receiver.url = url
        yield receiver
