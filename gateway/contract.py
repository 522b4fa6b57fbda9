"""The gateway's OpenAPI document tells what its pass-through routes answer.

A pass-through route returns the service's answer unchanged, so its success statuses and bodies
are the service's: they are taken from the service's own document and put in the gateway's, with
the schemas they refer to copied under ``<service>.<Model>`` names. The gateway's own problem
answers (401, 403, 503, …) stay as its routes declare them.

The services' documents are their committed snapshots (``contracts/openapi/<service>.json``,
:mod:`wangban.openapi`), read the first time the gateway's document is asked for: the gateway
never imports or builds another service, so its process and image need none of their code (nor
jieba). A test fails when a snapshot no longer matches its service.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Mapping
from typing import Any

from fastapi import FastAPI

from wangban.openapi import read_snapshot

Upstream = tuple[str, str, str]
"""(service, method, path on the service)."""

_REF = "#/components/schemas/"
_PARAMETER = re.compile(r"\{[^}]+\}")


def _template(path: str) -> str:
    return _PARAMETER.sub("{}", path)


def _service_documents(services: set[str]) -> dict[str, dict[str, Any]]:
    return {name: read_snapshot(name) for name in sorted(services)}


def _operation(document: Mapping[str, Any], method: str, path: str) -> dict[str, Any] | None:
    for candidate, operations in document.get("paths", {}).items():
        if _template(candidate) == _template(path) and method.lower() in operations:
            found: dict[str, Any] = operations[method.lower()]
            return found
    return None


def _copy_with_refs(
    value: Any, service: str, source: Mapping[str, Any], target: dict[str, Any]
) -> Any:
    """``value`` with each schema reference renamed to ``<service>.<Model>``, and each schema it
    refers to (transitively) copied into ``target``."""
    if isinstance(value, list):
        return [_copy_with_refs(v, service, source, target) for v in value]
    if not isinstance(value, dict):
        return value
    result: dict[str, Any] = {}
    for key, item in value.items():
        if key == "$ref" and isinstance(item, str) and item.startswith(_REF):
            model = item.removeprefix(_REF)
            name = f"{service}.{model}"
            result[key] = _REF + name
            if name not in target:
                target[name] = {}  # placeholder first: schemas may refer to themselves
                target[name] = _copy_with_refs(
                    copy.deepcopy(source[model]), service, source, target
                )
        else:
            result[key] = _copy_with_refs(item, service, source, target)
    return result


def describe_pass_through(
    app: FastAPI,
    routes: Mapping[tuple[str, str], Upstream],
    *,
    forwarding_query: frozenset[tuple[str, str]] = frozenset(),
) -> None:
    """Make ``app.openapi()`` give each route of ``routes`` ((METHOD, gateway path) → upstream)
    the success answers its service documents for the upstream operation; and, where the route
    passes the body (or, for those in ``forwarding_query``, the query) through without reading
    it, the service's request body (and query parameters)."""
    build: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = build()
        documents = _service_documents({service for service, _, _ in routes.values()})
        schemas: dict[str, Any] = document.setdefault("components", {}).setdefault("schemas", {})
        for (method, path), (service, service_method, service_path) in routes.items():
            ours = document["paths"][path][method.lower()]
            theirs = _operation(documents[service], service_method, service_path)
            if theirs is None:
                raise LookupError(f"{service} has no {service_method} {service_path}")
            source = documents[service].get("components", {}).get("schemas", {})
            answers = ours["responses"]
            for status in [s for s in answers if s.startswith("2")]:
                del answers[status]
            for status, answer in theirs["responses"].items():
                if status.startswith("2"):
                    answers[status] = _copy_with_refs(answer, service, source, schemas)
            ours["responses"] = dict(sorted(answers.items()))
            if "requestBody" in theirs and "requestBody" not in ours:
                body = theirs["requestBody"]
                ours["requestBody"] = _copy_with_refs(body, service, source, schemas)
            if (method, path) in forwarding_query:
                known = {p["name"] for p in ours.get("parameters", [])}
                query = [
                    _copy_with_refs(p, service, source, schemas)
                    for p in theirs.get("parameters", [])
                    if p["in"] == "query" and p["name"] not in known
                ]
                if query:
                    ours["parameters"] = [*ours.get("parameters", []), *query]
        app.openapi_schema = document
        return document

    app.openapi = openapi  # type: ignore[method-assign]
