"""``wangban serve <service>``: one service under uvicorn, as a container runs it."""

from __future__ import annotations

import uvicorn

from wangban.app import create_service_app
from wangban.observability import configure_logging
from wangban.services import SERVICE_PACKAGES, load_spec
from wangban.settings import Settings


def serve(
    service: str, settings: Settings, *, host: str | None = None, port: int | None = None
) -> None:
    configure_logging(service=service, level=settings.log_level, json_format=settings.log_json)
    options = {
        "host": host or settings.host,
        "port": port or settings.port_of(service),
        "log_config": None,  # keep our JSON, redacting handler for uvicorn's loggers too
        "proxy_headers": True,
        "timeout_graceful_shutdown": 10,
    }
    if settings.web_workers > 1:
        # Worker processes import the app themselves (each with its own engine, relay and
        # consumers: relays coordinate through row locks, consumers through their group).
        uvicorn.run(
            f"{SERVICE_PACKAGES[service]}.app:create_app",
            factory=True,
            workers=settings.web_workers,
            **options,  # type: ignore[arg-type]
        )
        return
    uvicorn.run(create_service_app(load_spec(service), settings), **options)  # type: ignore[arg-type]
