"""The platform's services: name → Python package. Everything that iterates over "all services"
(migrate, seed, up, the AsyncAPI generator) reads this one table."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from wangban.app import ServiceSpec

SERVICE_PACKAGES: dict[str, str] = {
    "gateway": "gateway",
    "catalog": "catalog_service",
    "intake": "intake_service",
    "approval": "approval_service",
    "sharing": "sharing_service",
    "notify": "notify_service",
}


def load_spec(service: str) -> ServiceSpec:
    """Import a service's ``app`` module and return its :class:`~wangban.app.ServiceSpec`."""
    try:
        package = SERVICE_PACKAGES[service]
    except KeyError:
        raise ValueError(
            f"unknown service {service!r}; expected one of {', '.join(SERVICE_PACKAGES)}"
        ) from None
    module = importlib.import_module(f"{package}.app")
    spec: ServiceSpec = module.SPEC
    return spec


def all_specs() -> list[ServiceSpec]:
    return [load_spec(name) for name in SERVICE_PACKAGES]
