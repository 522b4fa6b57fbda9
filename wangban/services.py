"""The platform's services, found by entry point: each service package declares itself in the
``wangban.services`` group (``gateway = "gateway.app:SPEC"`` in ``pyproject.toml``), so the kit
names no service package. Everything that iterates over "all services" (migrate, seed, up, the
server, dead letters) reads :data:`SERVICE_PACKAGES` or :func:`load_spec`.

The names and their order are the platform's (``SERVICE_NAMES``: settings give each one a URL
and a port); an installed service missing from that list, or a name without an installed
service, is a packaging error reported at once rather than a service silently left out.
"""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING

from wangban.settings import SERVICE_NAMES

if TYPE_CHECKING:
    from wangban.app import ServiceSpec

GROUP = "wangban.services"


class ServicesNotInstalled(RuntimeError):
    """The installed distribution does not declare the platform's services (an install from
    before entry points, or a broken one): reinstall (``pip install .``)."""


def _declared() -> dict[str, EntryPoint]:
    found = {ep.name: ep for ep in entry_points(group=GROUP)}
    missing = [name for name in SERVICE_NAMES if name not in found]
    unknown = [name for name in found if name not in SERVICE_NAMES]
    if missing or unknown:
        raise ServicesNotInstalled(
            f"entry points {GROUP!r}: missing {missing or 'none'}, unknown {unknown or 'none'}; "
            "reinstall the project (pip install .)"
        )
    return {name: found[name] for name in SERVICE_NAMES}


_ENTRY_POINTS = _declared()

SERVICE_PACKAGES: dict[str, str] = {
    name: ep.module.split(".")[0] for name, ep in _ENTRY_POINTS.items()
}
"""Service name → its Python package, from the entry points."""


def app_module(service: str) -> str:
    """The module holding the service's ``SPEC`` and ``create_app`` (``gateway.app``)."""
    return _entry_point(service).module


def _entry_point(service: str) -> EntryPoint:
    try:
        return _ENTRY_POINTS[service]
    except KeyError:
        raise ValueError(
            f"unknown service {service!r}; expected one of {', '.join(_ENTRY_POINTS)}"
        ) from None


def load_spec(service: str) -> ServiceSpec:
    """Import a service's app module and return its :class:`~wangban.app.ServiceSpec`."""
    spec: ServiceSpec = _entry_point(service).load()
    return spec


def all_specs() -> list[ServiceSpec]:
    return [load_spec(name) for name in SERVICE_NAMES]
