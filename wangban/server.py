"""``wangban serve <service>``: one service under uvicorn, as a container runs it."""

from __future__ import annotations

from typing import Any

import uvicorn

from wangban.app import create_service_app
from wangban.observability import configure_logging
from wangban.services import app_module, load_spec
from wangban.settings import Settings


def uvicorn_options(
    service: str, settings: Settings, *, host: str | None = None, port: int | None = None
) -> dict[str, Any]:
    """How uvicorn serves a service: also what the tests serve the gateway with, so the way a
    client's address is found is tested as it runs."""
    return {
        "host": host or settings.host,
        "port": settings.port_of(service) if port is None else port,
        "log_config": None,  # keep our JSON, redacting handler for uvicorn's loggers too
        # Never uvicorn's own X-Forwarded-For handling: it believes any local peer (a sidecar,
        # another pod's port-forward) and would let a client pick the address its rate limits
        # count. The gateway finds the client itself, from WANGBAN_TRUSTED_PROXIES only.
        "proxy_headers": False,
        "timeout_graceful_shutdown": 10,
    }


def serve(
    service: str, settings: Settings, *, host: str | None = None, port: int | None = None
) -> None:
    configure_logging(service=service, level=settings.log_level, json_format=settings.log_json)
    options = uvicorn_options(service, settings, host=host, port=port)
    if settings.web_workers > 1:
        # Worker processes import the app themselves (each with its own engine, relay and
        # consumers: relays coordinate through row locks, consumers through their group).
        uvicorn.run(
            f"{app_module(service)}:create_app",
            factory=True,
            workers=settings.web_workers,
            **options,
        )
        return
    uvicorn.run(create_service_app(load_spec(service), settings), **options)
