"""What partner departments see on our topics, checked as they would see it.

* A whole citizen journey runs on the real services; then the live topics are read with a
  non-Python Kafka client, as a partner would (kafkajs under Node.js, ``tools/partner-reader``:
  Debian's kcat cannot talk to the embedded broker), and every message is validated against the
  JSON Schema we publish in ``docs/events/<type>.json``.
* Every field of every event type that carries personal data is listed here with the reason it
  is needed; a new field that looks personal, or an entry for a field that is gone, fails.
* ``docs/partners.md`` names every registered topic and event type, so it cannot go stale
  silently.
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import json
import shutil
import subprocess
import textwrap
import uuid
from collections.abc import Iterator, Sequence
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any, get_args, get_origin

import jsonschema
import pytest
from pydantic import BaseModel
from sqlalchemy import delete

from catalog_service import repository as catalog_repository
from catalog_service import service as catalog
from catalog_service.schemas import ItemContent
from gateway.models import Account
from sandbox import ELDERLY_ALLOWANCE, persona_for
from sharing_service.registry import seed_registry
from tests.gateway.support import running_gateway
from tests.grant_limits import demo_item, set_aside_earlier_applications
from tests.infrastructure import Infrastructure
from tests.kit.support import eventually
from wangban.crypto import BlindIndex
from wangban.db import Database
from wangban.events import Envelope, load_all_event_modules
from wangban.kafka import ensure_topics

pytestmark = pytest.mark.slow  # left out of `./dev test --fast`

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
PARTNERS_DOC = DOCS / "partners.md"

READER = ROOT / "tools" / "partner-reader"
READER_MISSING = (
    "The partner reader is not installed: run `npm install` in tools/partner-reader (Node.js "
    "and npm needed); ./dev test does it."
)


# --- Reading topics as a partner ------------------------------------------------------------


def _node() -> str:
    path = shutil.which("node")
    assert path is not None and (READER / "node_modules" / "kafkajs").is_dir(), READER_MISSING
    return path


async def _partner_read(bootstrap: str, topics: Sequence[str]) -> list[dict[str, Any]]:
    """Every message of ``topics`` from the beginning to their current ends, as the reader
    prints them: ``{"topic", "partition", "offset", "key", "payload"}`` per line. One reader
    (one consumer group) for all of them: each group join costs a rebalance."""
    process = await asyncio.create_subprocess_exec(
        _node(),
        str(READER / "read.js"),
        bootstrap,
        *topics,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise AssertionError("the partner reader did not finish within 60 s") from None
    assert process.returncode == 0, f"reading failed: {err.decode(errors='replace')}"
    return [json.loads(line) for line in out.decode().splitlines() if line.strip()]


@cache
def _schema(event_type: str) -> dict[str, Any]:
    path = DOCS / "events" / f"{event_type}.json"
    assert path.exists(), f"no published schema for {event_type} ({path})"
    schema: dict[str, Any] = json.loads(path.read_text("utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return schema


def _seed_allowance_item() -> dict[str, Any]:
    return demo_item(ELDERLY_ALLOWANCE)


async def test_a_journey_s_events_read_by_a_partner_client_match_the_published_schemas(
    infrastructure: Infrastructure, database: Database, tmp_path: Path
) -> None:
    _node()  # fail first, and clearly, without the partner reader
    registry = load_all_event_modules()
    content = _seed_allowance_item()
    async with database.sessionmaker() as session, session.begin():
        await seed_registry(session)
        if not await catalog_repository.item_by_code(session, ELDERLY_ALLOWANCE):
            draft = await catalog.create_item_draft(
                session, content=ItemContent.model_validate(content)
            )
            await catalog.publish_version(session, version_id=draft.id)

    elder = persona_for(ELDERLY_ALLOWANCE)
    async with running_gateway(
        infrastructure, database, background=True, data_dir=tmp_path
    ) as gateway:
        api = gateway.client
        # One account per person: an earlier test's account for this persona steps aside.
        person_ref = BlindIndex.from_settings(gateway.settings).resident_id(elder.id_number)
        async with database.sessionmaker() as session, session.begin():
            await session.execute(delete(Account).where(Account.person_ref == person_ref))
        headers = await gateway.citizen(name=elder.name, id_number=elder.id_number)
        # The allowance is granted once per person: earlier tests' grants step aside.
        await set_aside_earlier_applications(
            database, gateway.settings, id_number=elder.id_number, item_code=ELDERLY_ALLOWANCE
        )

        application = {
            "item_code": ELDERLY_ALLOWANCE,
            "form": elder.form(ELDERLY_ALLOWANCE, today=date.today()),
            "materials": [
                {"index": i, "commitment": True}
                for i, m in enumerate(content["materials"])
                if m["source"] == "commitment"
            ],
        }

        async def applied_once() -> bool:
            # The item reaches intake through its topic: until then applying is refused.
            answer = await api.post(
                "/api/v1/applications",
                json=application,
                headers={**headers, "Idempotency-Key": str(uuid.uuid4())},
            )
            if answer.status_code == 201:
                applied.append(answer.json()["id"])
                return True
            return False

        applied: list[str] = []
        await eventually(applied_once, timeout_s=60, interval_s=0.5)
        application_id = applied[0]

        async def delivered() -> bool:
            answer = await api.get(f"/api/v1/applications/{application_id}", headers=headers)
            return bool(answer.json()["status"] == "delivered")

        await eventually(delivered, timeout_s=60)

        await ensure_topics(gateway.settings)
        bootstrap = gateway.settings.kafka_bootstrap
        assert bootstrap is not None
        wanted = {
            "cn.wangban.intake.application.submitted.v1",
            "cn.wangban.approval.case.approved.v1",
            "cn.wangban.sharing.certificate.issued.v1",
        }
        seen: set[str] = set()
        checked = 0

        async def all_read_and_valid() -> bool:
            nonlocal checked
            seen.clear()
            checked = 0
            for message in await _partner_read(bootstrap, sorted(registry.topics)):
                topic = message["topic"]
                where = f"{topic}[{message['partition']}]@{message['offset']}"
                assert message["payload"] is not None, f"{where}: empty message"
                envelope = json.loads(message["payload"])
                event_type = envelope.get("type")
                assert event_type in registry.events, f"{where}: unknown type {event_type!r}"
                assert registry.events[event_type].topic == topic, f"{where}: wrong topic"
                try:
                    jsonschema.validate(
                        envelope,
                        _schema(event_type),
                        cls=jsonschema.Draft202012Validator,
                        format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER,
                    )
                except jsonschema.ValidationError as invalid:
                    raise AssertionError(
                        f"{where}: {event_type} does not match docs/events/"
                        f"{event_type}.json: {invalid.message}"
                    ) from invalid
                checked += 1
                # The Kafka key is what partners partition and order by: the type's key field.
                key_field = registry.events[event_type].key_field
                assert message["key"] == str(envelope["data"][key_field]), f"{where}: key"
                if envelope["data"].get("application_id") == application_id:
                    seen.add(event_type)
            return wanted <= seen

        await eventually(all_read_and_valid, timeout_s=30, interval_s=1.0)
        assert checked >= len(wanted)


# --- Personal data in events ----------------------------------------------------------------

PERSONAL_FIELDS: dict[tuple[str, str], str] = {
    # Applications: approval decides from them and the certificate names the holder.
    (
        "cn.wangban.intake.application.submitted.v1",
        "applicant_subject_enc",
    ): "ciphertext of the applicant's account id (a stable id in clear would link one person's "
    "applications across partners): notify tells that account about its application",
    (
        "cn.wangban.intake.application.submitted.v1",
        "applicant_id_enc",
    ): "ciphertext of the ID number (or credit code): approval's data lookups and the "
    "certificate holder need it",
    (
        "cn.wangban.intake.application.submitted.v1",
        "applicant_name_enc",
    ): "ciphertext of the applicant's name: the certificate states it",
    (
        "cn.wangban.intake.application.submitted.v1",
        "form_enc",
    ): "ciphertext of the form (bank accounts, relatives' names): approval decides from it",
    (
        "cn.wangban.intake.application.submitted.v1",
        "materials[].evidence_id",
    ): "id of a certificate or upload proving a material (a reference, never the file): "
    "approval fetches the evidence by it",
    # Decisions: who decided, and what the certificate must state about its holder.
    (
        "cn.wangban.approval.case.approved.v1",
        "decided_by",
    ): "'auto' for 秒批 or the reviewer's staff account id: accountability for the decision",
    (
        "cn.wangban.approval.case.approved.v1",
        "certificate_facts_enc",
    ): "ciphertext of the form: the certificate takes the facts its type declares from it",
    (
        "cn.wangban.approval.case.approved.v1",
        "holder_name_enc",
    ): "ciphertext of the holder's name: printed on the certificate",
    (
        "cn.wangban.approval.case.approved.v1",
        "holder_id_enc",
    ): "ciphertext of the holder's ID number or credit code: printed on the certificate",
    (
        "cn.wangban.approval.case.accepted.v1",
        "reviewer",
    ): "'auto' or the reviewer's staff account id: who is working on the case",
    (
        "cn.wangban.approval.case.correction_requested.v1",
        "reviewer",
    ): "the reviewer's staff account id: who asked for the correction",
    (
        "cn.wangban.approval.case.denied.v1",
        "decided_by",
    ): "'auto' or the reviewer's staff account id: accountability for the decision",
    (
        "cn.wangban.approval.case.not_accepted.v1",
        "by",
    ): "the staff account id that refused: accountability for the decision",
    (
        "cn.wangban.intake.application.accepted.v1",
        "accepted_by",
    ): "'auto' or the window clerk's staff account id: accountability for 受理",
    (
        "cn.wangban.intake.application.submitted.v1",
        "acceptance[].accepted_by",
    ): "'intake' (accepted at once online) or the window clerk's staff account id: "
    "accountability for 受理 at submission",
    (
        "cn.wangban.intake.rectification.closed.v1",
        "closed_by",
    ): "the staff account id that closed the rectification: accountability",
    # Catalogue versions: who changed what decides applications (四眼原则).
    (
        "cn.wangban.catalog.item.published.v1",
        "submitted_by",
    ): "the staff account id that submitted the version: accountability for a rule change",
    (
        "cn.wangban.catalog.item.published.v1",
        "approved_by",
    ): "the staff account id of the second person who approved it: accountability",
    # Dead letters keep the original envelope whole (operators only).
    (
        "cn.wangban.platform.event.deadlettered.v1",
        "original",
    ): "the failed envelope, whatever ciphertext it carried: operators inspect and replay it",
}
"""(event type, field) → why the field, which holds personal data, must be in the event.

Nested fields are written ``list_field[].field``. Encrypted fields count: partners see only
ciphertext, but it is still personal data we send."""

NOT_PERSONAL: dict[tuple[str, str], str] = {
    ("cn.wangban.intake.application.submitted.v1", "item_name"): "the service item's name",
    ("cn.wangban.intake.application.submitted.v1", "applicant_kind"): "'person' or 'company'",
    ("cn.wangban.intake.application.submitted.v1", "materials[].name"): "the material's name",
    ("cn.wangban.approval.case.approved.v1", "holder_kind"): "'person' or 'company'",
    ("cn.wangban.sharing.certificate.issued.v1", "holder_kind"): "'person' or 'company'",
    ("cn.wangban.sharing.certificate.issued.v1", "type_name"): "the certificate type's name",
    ("cn.wangban.sharing.certificate.failed.v1", "type_name"): "the certificate type's name",
    (
        "cn.wangban.notify.message.failed.v1",
        "code",
    ): "the WeChat or SMS gateway's error code, not a phone number",
}
"""Fields the heuristics below flag that hold no personal data, each with why."""

_NAME_HINTS = (
    "id_number",
    "name",
    "phone",
    "mobile",
    "address",
    "form",
    "holder",
    "applicant",
    "_enc",
    "openid",
    "unionid",
    "subject",
    "birth",
    "reviewer",
    "evidence_id",
)
_NAME_EXACT = ("by", "original")
_NAME_SUFFIXES = ("_by",)
_DESCRIPTION_HINTS = (
    "id number",
    "phone",
    "mobile",
    "address",
    "personal data",
    "encrypted",
    "身份证",
    "姓名",
    "手机",
    "住址",
)


def _attribute_docstrings(model: type[BaseModel]) -> dict[str, str]:
    """The docstrings written under fields (pydantic does not keep them by default)."""
    docs: dict[str, str] = {}
    for klass in reversed(model.__mro__):
        if not (isinstance(klass, type) and issubclass(klass, BaseModel)):
            continue
        try:
            source = textwrap.dedent(inspect.getsource(klass))
        except (OSError, TypeError):
            continue
        body = ast.parse(source).body[0]
        assert isinstance(body, ast.ClassDef)
        for current, following in zip(body.body, body.body[1:], strict=False):
            if (
                isinstance(current, ast.AnnAssign)
                and isinstance(current.target, ast.Name)
                and isinstance(following, ast.Expr)
                and isinstance(following.value, ast.Constant)
                and isinstance(following.value.value, str)
            ):
                docs[current.target.id] = following.value.value
    return docs


def _nested_models(annotation: Any) -> Iterator[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
        return
    if get_origin(annotation) is not None:
        for argument in get_args(annotation):
            yield from _nested_models(argument)


def _fields(model: type[BaseModel], prefix: str = "") -> Iterator[tuple[str, str]]:
    """(path, description) of every field, nested models' fields included."""
    docs = _attribute_docstrings(model)
    for name, info in model.model_fields.items():
        path = f"{prefix}{name}"
        yield path, " ".join(filter(None, [info.description, docs.get(name)]))
        for nested in _nested_models(info.annotation):
            yield from _fields(nested, prefix=f"{path}[].")


def _looks_personal(path: str, description: str) -> bool:
    name = path.rsplit(".", 1)[-1].lower()
    text = description.lower()
    return (
        any(hint in name for hint in _NAME_HINTS)
        or name in _NAME_EXACT
        or name.endswith(_NAME_SUFFIXES)
        or any(hint in text for hint in _DESCRIPTION_HINTS)
    )


def _all_fields() -> dict[tuple[str, str], str]:
    registry = load_all_event_modules()
    return {
        (event_type, path): description
        for event_type, model in registry.events.items()
        for path, description in _fields(model)
    }


def test_every_personal_field_in_an_event_is_listed_with_its_reason() -> None:
    fields = _all_fields()
    unlisted = sorted(
        key
        for key, description in fields.items()
        if _looks_personal(key[1], description)
        and key not in PERSONAL_FIELDS
        and key not in NOT_PERSONAL
    )
    assert not unlisted, (
        "These event fields look like personal data: add each to PERSONAL_FIELDS with the "
        f"reason partners must receive it (or to NOT_PERSONAL, saying why not): {unlisted}"
    )
    gone = sorted(key for key in {*PERSONAL_FIELDS, *NOT_PERSONAL} if key not in fields)
    assert not gone, f"Listed fields no longer in any event type: {gone}"
    both = sorted(set(PERSONAL_FIELDS) & set(NOT_PERSONAL))
    assert not both, f"Listed as personal and as not personal: {both}"
    assert all(reason.strip() for reason in {**PERSONAL_FIELDS, **NOT_PERSONAL}.values())


def test_encrypted_fields_are_typed_as_ciphertext_strings() -> None:
    """An ``…_enc`` field carries ciphertext (a string), never a structured clear value."""
    registry = load_all_event_modules()
    for event_type, model in registry.events.items():
        for name, info in model.model_fields.items():
            if name.endswith("_enc"):
                assert info.annotation in (str, str | None), (event_type, name)


# --- The partner guide ----------------------------------------------------------------------


GENERATED_BEGIN = "<!-- BEGIN GENERATED: topics (tests/platform/test_partner_streams.py) -->"
GENERATED_END = "<!-- END GENERATED: topics -->"


def render_topic_tables() -> str:
    """The guide's topic and event-type tables, generated from the registry.

    ``python -m tests.platform.test_partner_streams`` rewrites them in docs/partners.md."""
    registry = load_all_event_modules()
    lines = [
        GENERATED_BEGIN,
        "",
        "| Topic | Partitions | Kafka key (what it means) | Description |",
        "|---|---|---|---|",
    ]
    for name, spec in sorted(registry.topics.items()):
        lines.append(
            f"| `{name}` | {spec.partitions} | {spec.key_description} | {spec.description} |"
        )
    for name in sorted(registry.topics):
        lines += ["", f"### `{name}`", ""]
        lines += [
            "| Event type | Version | Key field | Summary | Schema |",
            "|---|---|---|---|---|",
        ]
        for event_type, model in sorted(registry.events.items()):
            if model.topic != name:
                continue
            summary = " ".join((model.__doc__ or "").strip().split("\n\n")[0].split())
            version = event_type.rsplit(".", 1)[-1]
            lines.append(
                f"| `{event_type}` | {version} | `{model.key_field}` | {summary} | "
                f"[JSON Schema](events/{event_type}.json), "
                f"[AsyncAPI](asyncapi.yaml) `{model.__name__}` |"
            )
    lines += ["", GENERATED_END]
    return "\n".join(lines)


def _write_topic_tables() -> None:
    guide = PARTNERS_DOC.read_text("utf-8")
    start, end = guide.index(GENERATED_BEGIN), guide.index(GENERATED_END) + len(GENERATED_END)
    PARTNERS_DOC.write_text(guide[:start] + render_topic_tables() + guide[end:], "utf-8")


def test_the_partner_guide_names_every_topic_and_event_type() -> None:
    registry = load_all_event_modules()
    guide = PARTNERS_DOC.read_text("utf-8")
    assert render_topic_tables() in guide, (
        "docs/partners.md's topic tables are stale: run "
        "`.venv/bin/python -m tests.platform.test_partner_streams` and review the diff"
    )
    missing_topics = sorted(t for t in registry.topics if f"`{t}`" not in guide)
    assert not missing_topics, f"docs/partners.md does not describe topics {missing_topics}"
    missing_types = sorted(
        t for t in registry.events if f"`{t}`" not in guide or f"events/{t}.json" not in guide
    )
    assert not missing_types, (
        f"docs/partners.md does not list (with a schema link) event types {missing_types}"
    )
    for name in Envelope.model_fields:
        assert f"`{name}`" in guide, f"envelope field {name} missing from docs/partners.md"
    for _, field_name in PERSONAL_FIELDS:
        if field_name.endswith("_enc"):
            assert f"`{field_name}`" in guide, f"encrypted field {field_name} not explained"
    assert "asyncapi.yaml" in guide


if __name__ == "__main__":
    _write_topic_tables()
