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
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from fastapi import FastAPI

from wangban.auth import ROLES_EXTENSION
from wangban.http import IDEMPOTENCY_KEY_HEADER
from wangban.openapi import SNAPSHOT_SERVICES, read_snapshot

Upstream = tuple[str, str, str]
"""(service, method, path on the service)."""

_REF = "#/components/schemas/"
SERVICES_WITH_SNAPSHOTS = frozenset(SNAPSHOT_SERVICES)
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


_METHODS_WITHOUT_BODY = frozenset({"GET", "HEAD", "DELETE", "OPTIONS"})


def service_schema(service: str, model: str) -> dict[str, str]:
    """A reference, from one of the gateway's own schemas, to a service's schema (a part of a
    composed answer that is the service's, unchanged): ``describe_pass_through`` copies it in."""
    return {"$ref": f"{_REF}{service}.{model}"}


def _references(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "$ref" and isinstance(item, str) and item.startswith(_REF):
                yield item.removeprefix(_REF)
            else:
                yield from _references(item)
    elif isinstance(value, list):
        for item in value:
            yield from _references(item)


def _copy_referenced_service_schemas(schemas: dict[str, Any], services: frozenset[str]) -> None:
    """Copy in each service schema that the gateway's own schemas refer to by ``service_schema``
    and no pass-through route brought in."""
    wanted = set(_references(schemas))
    missing = {name for name in wanted if name not in schemas and name.split(".", 1)[0] in services}
    if not missing:
        return
    documents = _service_documents({name.split(".", 1)[0] for name in missing})
    for name in sorted(missing):
        service, model = name.split(".", 1)
        source = documents[service].get("components", {}).get("schemas", {})
        if model not in source:
            raise LookupError(f"{service} has no schema {model}")
        _copy_with_refs({"$ref": _REF + model}, service, source, schemas)


def operation_roles(
    routes: Mapping[tuple[str, str], Upstream],
) -> dict[tuple[str, str], frozenset[str] | None]:
    """For each route ((METHOD, gateway path) → upstream), the roles its service operation
    requires (one of them), as the service's document states them (``x-wangban-roles``); None
    where it requires none."""
    documents = _service_documents({service for service, _, _ in routes.values()})
    found: dict[tuple[str, str], frozenset[str] | None] = {}
    for route, (service, method, path) in routes.items():
        operation = _operation(documents[service], method, path)
        if operation is None:
            raise LookupError(f"{service} has no {method} {path}")
        roles = operation.get(ROLES_EXTENSION)
        found[route] = frozenset(roles) if roles is not None else None
    return found


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
            # A route without a body of its own (a GET the gateway turns into the service's
            # POST, as certificate verification) takes the service's query, never its body.
            takes_body = method.upper() not in _METHODS_WITHOUT_BODY
            if takes_body and "requestBody" in theirs and "requestBody" not in ours:
                body = theirs["requestBody"]
                ours["requestBody"] = _copy_with_refs(body, service, source, schemas)
            if (method, path) in forwarding_query:
                # The query string is handed on as it came, and the Idempotency-Key header
                # (gateway.api.deps.raw): those parameters of the service are the route's.
                known = {p["name"].lower() for p in ours.get("parameters", [])}
                passed = [
                    _copy_with_refs(p, service, source, schemas)
                    for p in theirs.get("parameters", [])
                    if (p["in"] == "query" or p["name"].lower() == IDEMPOTENCY_KEY_HEADER.lower())
                    and p["name"].lower() not in known
                ]
                if passed:
                    ours["parameters"] = [*ours.get("parameters", []), *passed]
        _copy_referenced_service_schemas(schemas, SERVICES_WITH_SNAPSHOTS)
        app.openapi_schema = document
        return document

    app.openapi = openapi  # type: ignore[method-assign]
