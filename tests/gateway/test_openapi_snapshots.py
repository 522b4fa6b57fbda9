"""The gateway's OpenAPI document is merged from the services' committed snapshots
(``contracts/openapi/<service>.json``), not by building their apps: a snapshot that no longer
matches its service fails here (and ``wangban openapi write --check``), and the gateway process,
document included, loads no other service's code, no jieba, no Kafka client."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from wangban.cli import main
from wangban.openapi import (
    SNAPSHOT_SERVICES,
    read_snapshot,
    render,
    service_document,
    write_snapshots,
)

ROOT = Path(__file__).parents[2]
SNAPSHOTS = ROOT / "contracts" / "openapi"


def test_every_snapshot_matches_its_service() -> None:
    stale = write_snapshots(SNAPSHOTS, check=True)
    assert stale == [], f"stale: {stale}; run `wangban openapi write` and commit the result"
    assert main(["openapi", "write", "--check", "--out", str(SNAPSHOTS)]) == 0
    # What the gateway reads (package data) is what is committed.
    for service in SNAPSHOT_SERVICES:
        assert read_snapshot(service) == json.loads(
            (SNAPSHOTS / f"{service}.json").read_text(encoding="utf-8")
        )


def test_a_stale_or_missing_snapshot_is_reported(tmp_path: Path) -> None:
    assert main(["openapi", "write", "--check", "--out", str(tmp_path)]) == 1
    assert main(["openapi", "write", "--out", str(tmp_path)]) == 0
    assert write_snapshots(tmp_path, check=True) == []
    # A service that changed since its snapshot: a field dropped from one of its answers.
    catalog = tmp_path / "catalog.json"
    document = json.loads(catalog.read_text(encoding="utf-8"))
    page = document["components"]["schemas"]["ItemPage"]
    page["properties"].pop(next(iter(page["properties"])))
    catalog.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
    assert write_snapshots(tmp_path, check=True) == [catalog]
    assert main(["openapi", "write", "--check", "--out", str(tmp_path)]) == 1


def test_pass_through_answers_come_from_the_snapshots() -> None:
    from gateway.app import create_app

    document = create_app().openapi()
    schemas = document["components"]["schemas"]
    # GET /api/v1/items passes the catalog's answer through: its 200 is the catalog's page.
    answer = document["paths"]["/api/v1/items"]["get"]["responses"]["200"]
    ref = answer["content"]["application/json"]["schema"]["$ref"]
    assert ref == "#/components/schemas/catalog.ItemPage"
    assert schemas["catalog.ItemPage"]["properties"].keys() == (
        service_document("catalog")["components"]["schemas"]["ItemPage"]["properties"].keys()
    )


SERVICE_CODE = (
    "catalog_service",
    "intake_service",
    "approval_service",
    "sharing_service",
    "notify_service",
    "jieba",
    "pypinyin",
    "aiokafka",
    "sandbox",
)

_PROBE = """
import json, sys
from gateway.app import create_app

app = create_app()
document = app.openapi()
assert "/api/v1/items" in document["paths"], "the document lost its pass-through routes"
loaded = sorted({name.split(".")[0] for name in sys.modules} & set(sys.argv[1:]))
print(json.dumps(loaded))
"""


def test_the_gateway_process_imports_no_other_service() -> None:
    """In a fresh interpreter: the gateway's app, configured as in production (the register's
    verification service rather than the development sandbox), and its whole OpenAPI
    document; and then nothing of the five services, their search dictionaries, the sandbox
    or a Kafka client is loaded."""
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, *SERVICE_CODE],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={
            "PATH": "/usr/bin:/bin",
            "PYTHONPATH": str(ROOT),
            "WANGBAN_ENV": "local",
            "WANGBAN_IDENTITY_PROVIDER_URL": "https://register.example.gov.cn",
        },
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []


def _references(value: object) -> list[str]:
    if isinstance(value, dict):
        return [
            ref
            for key, item in value.items()
            for ref in ([item] if key == "$ref" else _references(item))
        ]
    if isinstance(value, list):
        return [ref for item in value for ref in _references(item)]
    return []


def test_the_clients_document_is_the_gateways_own() -> None:
    """The mini-program and the console generate their API types from the committed document:
    a gateway change that was not written there would reach neither."""
    committed = (ROOT / "contracts" / "clients" / "gateway.json").read_text(encoding="utf-8")
    assert committed == render(service_document("gateway")), (
        "run `wangban openapi gateway` and `npm run gen:api` in miniprogram/ and console/"
    )


def test_the_gateway_document_is_one_a_client_can_be_generated_from() -> None:
    """What the mini-program's API types are generated from: every reference resolves, no GET
    asks for a body, and the first screen's parts are the services' own summaries."""
    document = service_document("gateway")
    schemas = document["components"]["schemas"]
    dangling = {ref for ref in _references(document) if ref.rsplit("/", 1)[-1] not in schemas}
    assert dangling == set()
    with_body = [
        f"{method.upper()} {path}"
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
        if method in ("get", "head", "delete") and "requestBody" in operation
    ]
    assert with_body == []
    verify = document["paths"]["/api/v1/certificates/verify"]["get"]
    assert {p["name"] for p in verify["parameters"]} == {"id", "qr"}
    home = schemas["HomeOut"]["properties"]
    assert home["hot_items"]["items"] == {"$ref": "#/components/schemas/catalog.ItemSummary"}
    assert home["my_open_applications"]["items"] == {
        "$ref": "#/components/schemas/intake.ApplicationSummary"
    }
