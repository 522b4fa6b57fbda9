"""Committed OpenAPI snapshots of the services behind the gateway.

The gateway's document describes what its pass-through routes answer with the services' own
schemas. It used to build every service's app inside the gateway to read them, so the gateway
process imported all services (and jieba). Instead each service's document is generated into
``contracts/openapi/<service>.json`` by ``wangban openapi write``, committed, and shipped as
package data of :mod:`contracts`; the gateway reads the files. ``wangban openapi write
--check`` (and a test) fails when a snapshot no longer matches its service, so the gateway never
describes an answer the service has moved away from.
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from pathlib import Path
from typing import Any

from wangban.settings import SERVICE_NAMES, Environment, Settings

SNAPSHOT_PACKAGE = "contracts"
SNAPSHOT_DIR = "openapi"
DEFAULT_OUT = Path(SNAPSHOT_PACKAGE) / SNAPSHOT_DIR
"""Where ``wangban openapi write`` writes, relative to the repository root."""

SNAPSHOT_SERVICES: tuple[str, ...] = tuple(name for name in SERVICE_NAMES if name != "gateway")
"""Every service the gateway fronts (the gateway's own document is built from theirs)."""


def service_document(service: str) -> dict[str, Any]:
    """``service``'s OpenAPI document, from its app built (not started) with local settings:
    what the service answers does not depend on where it runs. A fresh copy each call."""
    document: dict[str, Any] = json.loads(_rendered_document(service))
    return document


@functools.cache
def _rendered_document(service: str) -> str:
    # Built once per process: building an app and generating its document takes a good part
    # of a second, and the document cannot change while the code that makes it runs.
    from wangban.app import create_service_app
    from wangban.services import load_spec

    settings = Settings(env=Environment.LOCAL)
    app = create_service_app(load_spec(service), settings, background=False)
    return render(app.openapi())


def render(document: dict[str, Any]) -> str:
    """The snapshot's text: stable key order as generated, Chinese kept readable."""
    return json.dumps(document, ensure_ascii=False, indent=2) + "\n"


def write_snapshots(
    out: Path, *, check: bool = False, services: tuple[str, ...] = SNAPSHOT_SERVICES
) -> list[Path]:
    """Write each service's snapshot under ``out``; with ``check``, write nothing and return
    the files that are missing or differ (else the files written)."""
    changed: list[Path] = []
    for service in services:
        path = out / f"{service}.json"
        text = _rendered_document(service)
        if check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                changed.append(path)
            continue
        out.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        changed.append(path)
    return changed


def read_snapshot(service: str) -> dict[str, Any]:
    """The committed document of ``service``, as installed with :mod:`contracts`."""
    source = resources.files(SNAPSHOT_PACKAGE).joinpath(SNAPSHOT_DIR, f"{service}.json")
    try:
        text = source.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise LookupError(
            f"no OpenAPI snapshot of {service}: run `wangban openapi write` and commit it"
        ) from None
    document: dict[str, Any] = json.loads(text)
    return document
