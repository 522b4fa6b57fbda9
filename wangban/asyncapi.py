"""Generate the partner-facing event documentation from the registry.

``docs/asyncapi.yaml`` (AsyncAPI 3.0) lists every topic, its key and its message types;
``docs/events/<type>.json`` is one JSON Schema per event type: the CloudEvents envelope with that
type's ``data``. Both are generated, committed, and checked for staleness by a test, so partners
never read a description that the code has moved away from.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

import yaml

from contracts.events import Envelope, Event, EventRegistry, schema_uri
from wangban.events import load_all_event_modules

ASYNCAPI_FILE = "asyncapi.yaml"
SCHEMA_DIR = "events"


def _message_name(model: type[Event]) -> str:
    return model.__name__


def _doc(model: type[Event]) -> str:
    """The model's docstring as written, whichever Python reads it (3.13 strips the common
    indentation of docstrings at compile time; cleandoc gives every version that text)."""
    return inspect.cleandoc(model.__doc__ or "")


def _as_read(schema: Any) -> Any:
    """The schema as a reader must apply it: objects that the producer's model closes
    (``additionalProperties: false``, strictness when an event is built) open, since a field may
    be added within a version and a reader ignores it (``Event.read``)."""
    if isinstance(schema, dict):
        return {
            key: True if key == "additionalProperties" and value is False else _as_read(value)
            for key, value in schema.items()
        }
    if isinstance(schema, list):
        return [_as_read(value) for value in schema]
    return schema


def event_json_schema(model: type[Event]) -> dict[str, Any]:
    """JSON Schema (2020-12) of a whole Kafka message of this type: envelope plus data."""
    envelope = Envelope.model_json_schema()
    data = _as_read(model.model_json_schema(ref_template="#/$defs/{model}"))
    defs = {**envelope.pop("$defs", {}), **data.pop("$defs", {})}
    properties = dict(envelope["properties"])
    properties["type"] = {"const": model.event_type, "description": "Event type and version"}
    properties["data"] = data
    properties["dataschema"] = {
        "const": schema_uri(model.event_type),
        "description": "This schema's $id: what the message says it follows",
    }
    doc = _doc(model)
    schema: dict[str, Any] = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": schema_uri(model.event_type),
        "title": model.__name__,
        "description": doc,
        "type": "object",
        "properties": properties,
        # What every producer sets, whatever the envelope model lets a reader go without.
        "required": sorted(
            {*envelope.get("required", []), "specversion", "type", "data", "dataschema"}
        ),
        "additionalProperties": True,
    }
    if defs:
        schema["$defs"] = defs
    return schema


def asyncapi_document(registry: EventRegistry) -> dict[str, Any]:
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for topic in sorted(registry.topics.values(), key=lambda t: t.name):
        models = sorted(
            (m for m in registry.events.values() if m.topic == topic.name),
            key=lambda m: m.event_type,
        )
        channel_id = topic.name.replace(".", "_")
        channels[channel_id] = {
            "address": topic.name,
            "description": topic.description,
            "messages": {
                _message_name(m): {"$ref": f"#/components/messages/{_message_name(m)}"}
                for m in models
            },
            "bindings": {"kafka": {"partitions": topic.partitions, "bindingVersion": "0.5.0"}},
        }
        if models:
            operations[f"consume_{channel_id}"] = {
                "action": "receive",
                "channel": {"$ref": f"#/channels/{channel_id}"},
                "summary": f"Read {topic.name}",
                "messages": [
                    {"$ref": f"#/channels/{channel_id}/messages/{_message_name(m)}"} for m in models
                ],
            }
        for model in models:
            doc = _doc(model)
            messages[_message_name(model)] = {
                "name": model.event_type,
                "title": model.__name__,
                "summary": doc.splitlines()[0],
                "description": doc,
                "contentType": "application/cloudevents+json",
                "payload": {"$ref": f"{SCHEMA_DIR}/{model.event_type}.json"},
                "bindings": {
                    "kafka": {
                        "key": {"type": "string", "description": topic.key_description},
                        "bindingVersion": "0.5.0",
                    }
                },
            }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Wangban (网办) event streams",
            "version": "1.0.0",
            "description": (
                "Domain events of the Wangban government-services platform, for partner "
                "departments. Every message is a CloudEvents 1.0 envelope in structured JSON "
                "mode; the Kafka key is the aggregate id, so one aggregate's events arrive in "
                "order. Delivery is at least once: de-duplicate by the envelope `id`. Within a "
                "type version changes are additive only; a breaking change is published as a new "
                "`.vN` type side by side."
            ),
        },
        "defaultContentType": "application/cloudevents+json",
        "servers": {
            "production": {
                "host": "kafka.example.gov.cn:9093",
                "protocol": "kafka-secure",
                "description": (
                    "The platform's brokers: TLS (SASL_SSL) with SCRAM-SHA-512 credentials issued "
                    "per partner department, read-only on the topics it was granted "
                    "(docs/partners.md)"
                ),
                "security": [{"$ref": "#/components/securitySchemes/partnerScram"}],
                "bindings": {"kafka": {"bindingVersion": "0.5.0"}},
            },
            "local": {
                "host": "127.0.0.1:19092",
                "protocol": "kafka",
                "description": "The embedded broker of `wangban up` (no TLS, no authentication)",
            },
        },
        "channels": channels,
        "operations": operations,
        "components": {
            "messages": messages,
            "securitySchemes": {
                "partnerScram": {
                    "type": "scramSha512",
                    "description": "SASL/SCRAM-SHA-512 over TLS: the department's user name "
                    "and password from the platform's operators",
                }
            },
        },
    }


def render(registry: EventRegistry) -> dict[str, str]:
    """Relative path → file content for every generated file."""
    files = {
        ASYNCAPI_FILE: yaml.safe_dump(
            asyncapi_document(registry), sort_keys=False, allow_unicode=True, width=100
        )
    }
    for event_type, model in sorted(registry.events.items()):
        files[f"{SCHEMA_DIR}/{event_type}.json"] = (
            json.dumps(event_json_schema(model), ensure_ascii=False, indent=2, sort_keys=True)
            + "\n"
        )
    return files


def write_docs(out: Path, *, check: bool = False) -> list[Path]:
    """Write the files (or, with ``check``, only compare); returns the stale or missing ones.

    Schema files of types no longer registered count as stale too, so a removed type cannot
    linger in the partner documentation.
    """
    files = render(load_all_event_modules())
    stale: list[Path] = []
    for relative, content in files.items():
        path = out / relative
        if not path.exists() or path.read_text(encoding="utf-8") != content:
            stale.append(path)
            if not check:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(content, encoding="utf-8")
    schema_dir = out / SCHEMA_DIR
    if schema_dir.exists():
        expected = {out / r for r in files}
        for orphan in sorted(schema_dir.glob("*.json")):
            if orphan not in expected:
                stale.append(orphan)
                if not check:
                    orphan.unlink()
    return stale
