"""The contracts package: what services say to each other, importable without any service.

A consumer imports the contract of the events it reads, never the producer's code: so the
contracts must load without SQLAlchemy, FastAPI, the kit or a service package, every encryption
context an event's fields are sealed under is defined once (in the contract), and reading an
event is tolerant of fields added within its version while building one stays strict.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

import contracts
from contracts.approval.v1 import CaseApproved
from contracts.events import Event
from contracts.intake.v1 import ApplicationSubmitted

ROOT = Path(__file__).parents[2]
SERVICES = (
    "gateway",
    "catalog_service",
    "intake_service",
    "approval_service",
    "sharing_service",
    "notify_service",
)


def test_contracts_import_no_database_web_framework_kit_or_service() -> None:
    probe = (
        "import json, sys, contracts; contracts.load_all(); "
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr
    loaded = set(json.loads(result.stdout))
    assert "contracts" in loaded and "pydantic" in loaded
    forbidden = {"sqlalchemy", "fastapi", "starlette", "asyncpg", "aiokafka", "wangban", *SERVICES}
    assert loaded & forbidden == set()


def test_every_event_type_is_in_the_contracts() -> None:
    registry = contracts.load_all()
    assert len(registry.events) >= 30
    for event_type, model in registry.events.items():
        assert model.__module__.startswith("contracts."), event_type
        assert model.__module__.split(".")[-1] == f"v{event_type.rsplit('.v', 1)[1]}", event_type


def _context_constants() -> dict[str, str]:
    """Every ``*_CONTEXT`` string defined in a contract module: value → where."""
    found: dict[str, str] = {}
    for path in sorted((ROOT / "contracts").rglob("*.py")):
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
                for target in node.targets:
                    if isinstance(target, ast.Name) and target.id.endswith("_CONTEXT"):
                        value = node.value.value
                        assert value not in found, f"{value!r} defined twice"
                        found[str(value)] = f"{path.relative_to(ROOT)}:{target.id}"
    return found


def test_each_contract_encryption_context_is_defined_once_in_the_contracts() -> None:
    """A service that seals or opens an event's field imports the context from the contract;
    a copy of the string elsewhere could drift (and a reused name with another value did)."""
    contexts = _context_constants()
    assert {"approval.holder", "application.form", "application.subject"} <= set(contexts)
    copies = []
    for package in (*SERVICES, "wangban"):
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" in path.parts:
                continue  # frozen copies, on purpose
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if (
                    isinstance(node, ast.Assign)
                    and isinstance(node.value, ast.Constant)
                    and node.value.value in contexts
                ):
                    copies.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert copies == []


def _submitted(**extra: object) -> dict[str, object]:
    return {
        "application_id": "a-1",
        "item_version_id": "v-1",
        "item_code": "ITEM-1",
        "department": "民政局",
        "channel": "wechat",
        "applicant_kind": "person",
        "applicant_id_enc": "v1.k.id",
        "applicant_name_enc": "v1.k.name",
        "form_enc": "v1.k.form",
        "materials": [{"name": "身份证", "source": "shared", "status": "met"}],
        "submitted_at": "2026-11-23T08:00:00+00:00",
        **extra,
    }


def test_reading_ignores_fields_added_at_any_depth() -> None:
    data = _submitted(review_hint="fast")
    data["materials"] = [{"name": "身份证", "source": "shared", "status": "met", "pages": 2}]
    event = ApplicationSubmitted.read(data)
    assert event.application_id == "a-1"
    assert event.materials[0].name == "身份证"
    assert "review_hint" not in event.model_dump()


def test_an_event_from_before_minimisation_still_reads() -> None:
    """``application.submitted`` once carried these in clear; such an event (still on the topic,
    or replayed from a dead letter) reads without them."""
    retired = {
        "region_code": "441900",
        "applicant_subject": "u-1",
        "applicant_age": 81,
        "applicant_region_code": "441900",
    }
    event = ApplicationSubmitted.read(_submitted(**retired))
    assert not set(retired) & set(event.model_dump())


def test_reading_still_needs_every_required_field_with_its_type() -> None:
    data = _submitted()
    del data["form_enc"]
    with pytest.raises(ValidationError, match="form_enc"):
        ApplicationSubmitted.read(data)
    with pytest.raises(ValidationError, match="materials"):
        ApplicationSubmitted.read(_submitted(materials="身份证"))


def test_building_an_event_is_strict() -> None:
    with pytest.raises(ValidationError, match="review_hint"):
        ApplicationSubmitted(**_submitted(review_hint="fast"))  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="pages"):
        ApplicationSubmitted.model_validate(
            _submitted(materials=[{"name": "x", "source": "s", "status": "met", "pages": 2}])
        )
    with pytest.raises(ValidationError, match="decided_at"):
        CaseApproved(
            application_id="a-1",
            item_id="i-1",
            item_version_id="v-1",
            item_code="ITEM-1",
            decided_at=20261123,  # type: ignore[arg-type]
            decided_by="auto",
            result_kind="none",
        )


@pytest.mark.parametrize("event_type", sorted(contracts.load_all().events))
def test_every_published_schema_lets_readers_ignore_added_fields(event_type: str) -> None:
    """The JSON Schemas partners validate with say the same as our readers do: ``data`` (and
    every object in it that a model defines) allows properties it does not list."""
    schema = json.loads((ROOT / "docs" / "events" / f"{event_type}.json").read_text("utf-8"))
    assert schema["properties"]["data"]["additionalProperties"] is True
    for name, definition in schema.get("$defs", {}).items():
        if definition.get("type") == "object" and "properties" in definition:
            assert definition.get("additionalProperties", True) is True, name


def test_the_event_base_is_what_every_registered_model_reads_with() -> None:
    for model in contracts.load_all().events.values():
        assert issubclass(model, Event)
        assert model.read.__func__ is Event.read.__func__  # type: ignore[attr-defined]
