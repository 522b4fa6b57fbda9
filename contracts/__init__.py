"""What the services say to each other and to partner departments, and nothing else: the event
envelope and registry (:mod:`contracts.events`), every event model and the encryption contexts
its fields are sealed under, one module per producing service and version
(``contracts/intake/v1.py``), and the answers of internal HTTP APIs that more than one service
reads (``contracts/<service>/api_v1.py``).

Only pydantic and the standard library: a service imports the contracts of the services it
listens to without importing their code, their tables or a web framework (a test checks).
"""

from __future__ import annotations

import importlib
import pkgutil

from contracts.events import EventRegistry, registry


def load_all() -> EventRegistry:
    """Import every contract module, so the registry holds the whole platform's events and
    topics (event docs, topic creation by ``wangban up``)."""
    for module in pkgutil.walk_packages(__path__, prefix=f"{__name__}."):
        importlib.import_module(module.name)
    return registry
