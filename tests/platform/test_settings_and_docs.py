"""Settings refuse unsafe production values; the partner event docs are never stale."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import jsonschema
import pytest
import yaml

from tests.production_keys import production_keys
from wangban.asyncapi import render, write_docs
from wangban.events import EventDeadLettered, envelope_for, load_all_event_modules
from wangban.settings import ConfigurationError, Environment, Settings

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_production_refuses_dev_only_values() -> None:
    with pytest.raises(ConfigurationError) as refused:
        Settings(env=Environment.PRODUCTION)
    message = str(refused.value)
    for variable in (
        "WANGBAN_DATABASE_URL",
        "WANGBAN_KAFKA_BOOTSTRAP",
        "WANGBAN_INTERNAL_TOKEN_KEY",
        "WANGBAN_FIELD_ENCRYPTION_KEYS",
        "WANGBAN_BLIND_INDEX_KEY",
        "WANGBAN_NOTIFY_TEST_MODE",
        "WANGBAN_WECHAT_APP_SECRET",
        "WANGBAN_SMS_ACCESS_KEY_SECRET",
        "WANGBAN_GATEWAY_TOKEN_KEY",
        "WANGBAN_IDENTITY_PROVIDER_URL",
    ):
        assert variable in message


def test_production_starts_with_real_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANGBAN_ENV", "production")
    monkeypatch.setenv("WANGBAN_DATABASE_URL", "postgresql://wangban@db.internal/wangban")
    monkeypatch.setenv("WANGBAN_KAFKA_BOOTSTRAP", "kafka-0.internal:9093")
    monkeypatch.setenv("WANGBAN_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("WANGBAN_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("WANGBAN_KAFKA_SASL_USERNAME", "wangban")
    monkeypatch.setenv("WANGBAN_KAFKA_SASL_PASSWORD", "s3cret-from-vault")
    monkeypatch.setenv("WANGBAN_KAFKA_IDEMPOTENCE", "true")
    # Every key random and distinct (the production rule, tests/platform/test_key_strength.py).
    for name, value in production_keys(field_key_id="2026a").items():
        monkeypatch.setenv(
            f"WANGBAN_{name.upper()}", json.dumps(value) if isinstance(value, dict) else value
        )
    monkeypatch.setenv("WANGBAN_FIELD_ENCRYPTION_ACTIVE_KEY", "2026a")
    monkeypatch.setenv("WANGBAN_NOTIFY_TEST_MODE", "false")
    monkeypatch.setenv("WANGBAN_WECHAT_APP_SECRET", "w" * 32)
    monkeypatch.setenv("WANGBAN_SMS_ACCESS_KEY_SECRET", "s" * 32)
    monkeypatch.setenv("WANGBAN_IDENTITY_PROVIDER_URL", "https://verify.gov.internal")
    monkeypatch.setenv("WANGBAN_IDENTITY_PROVIDER_TOKEN", "t" * 32)
    settings = Settings()
    assert settings.env is Environment.PRODUCTION
    assert settings.kafka_idempotence is True
    assert settings.url_of("catalog") == "http://127.0.0.1:8001"


def test_sasl_without_credentials_is_refused_in_production(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigurationError, match="SASL"):
        Settings(
            env=Environment.PRODUCTION,
            database_url="postgresql://db/w",
            kafka_bootstrap="k:9093",
            kafka_security_protocol="SASL_SSL",
            internal_token_key="k" * 48,  # type: ignore[arg-type]
            field_encryption_keys={"p1": "A" * 43 + "="},  # type: ignore[dict-item]
            field_encryption_active_key="p1",
            blind_index_key="b" * 48,  # type: ignore[arg-type]
        )


def test_event_docs_are_up_to_date() -> None:
    stale = write_docs(DOCS, check=True)
    assert stale == [], "run `wangban events docs` and commit docs/: " + ", ".join(map(str, stale))


def test_asyncapi_lists_every_registered_type_on_its_topic() -> None:
    registry = load_all_event_modules()
    document = yaml.safe_load(render(registry)["asyncapi.yaml"])
    assert document["asyncapi"].startswith("3.")
    addresses = {c["address"]: c for c in document["channels"].values()}
    for event_type, model in registry.events.items():
        channel = addresses[model.topic]
        assert model.__name__ in channel["messages"]
        message = document["components"]["messages"][model.__name__]
        assert message["name"] == event_type
        assert message["payload"]["$ref"] == f"events/{event_type}.json"


def test_a_real_envelope_validates_against_its_published_schema() -> None:
    envelope = envelope_for(
        EventDeadLettered(
            dead_letter_id="0193a0b2-0000-7000-8000-000000000001",
            consumer="approval.auto",
            key="app-1",
            original_topic="wangban.intake.applications",
            original_event_id="0193a0b2-0000-7000-8000-000000000002",
            original_type="cn.wangban.intake.application.submitted.v1",
            attempts=5,
            error="RuntimeError('x')",
            original={"id": "x"},
        ),
        source="/wangban/approval",
    )
    schema = json.loads((DOCS / "events" / f"{EventDeadLettered.event_type}.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    message = json.loads(envelope.to_bytes())
    jsonschema.validate(message, schema)
    assert datetime.fromisoformat(message["time"]).tzinfo is not None
    # The message names the schema it follows, and a message that does not is refused.
    assert message["dataschema"] == schema["$id"]
    for missing in ("dataschema", "specversion"):
        without = {k: v for k, v in message.items() if k != missing}
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(without, schema)
    message["type"] = "cn.wangban.other.thing.v1"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(message, schema)


def test_asyncapi_documents_the_production_brokers_and_the_timestamps() -> None:
    """What a partner department connects to (TLS with SCRAM, as docs/partners.md says) and
    what its parser may rely on: every timestamp and date field in the data is typed so."""
    registry = load_all_event_modules()
    files = render(registry)
    document = yaml.safe_load(files["asyncapi.yaml"])
    production = document["servers"]["production"]
    assert production["protocol"] == "kafka-secure"
    (scheme_ref,) = production["security"]
    scheme = document["components"]["securitySchemes"][scheme_ref["$ref"].rsplit("/", 1)[1]]
    assert scheme["type"] == "scramSha512"
    timestamps = 0
    for event_type in registry.events:
        data = json.loads(files[f"events/{event_type}.json"])["properties"]["data"]
        for name, field in data.get("properties", {}).items():
            if name == "at" or name.endswith("_at"):
                assert field.get("format") == "date-time" or any(
                    option.get("format") == "date-time" for option in field.get("anyOf", [])
                ), f"{event_type}: {name}"
                timestamps += 1
            if name in ("due_date", "valid_until"):
                assert field.get("format") == "date" or any(
                    option.get("format") == "date" for option in field.get("anyOf", [])
                ), f"{event_type}: {name}"
    assert timestamps >= 25
    # Descriptions are the docstrings as written, not indented as the source file holds them
    # (which Python 3.13 would strip, making the committed files stale there).
    for event_type in registry.events:
        description = json.loads(files[f"events/{event_type}.json"])["description"]
        assert "\n    " not in description, event_type
