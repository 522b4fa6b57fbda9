"""Serving an ASGI app on a real local port inside the test's event loop, so another component
talks to it over HTTP exactly as in production."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn


@asynccontextmanager
async def serve_asgi(app: Any, **options: Any) -> AsyncIterator[str]:
    """Serve ``app`` on 127.0.0.1 until the block ends; yields its base URL. The app's own
    lifespan is not run (enter it yourself if the app needs it). ``options`` replace uvicorn's
    settings (``wangban.server.uvicorn_options``: serve it as ``wangban serve`` does)."""
    settings: dict[str, Any] = {
        "log_config": None,
        "access_log": False,
        **options,
        "timeout_graceful_shutdown": 2,
        "host": "127.0.0.1",
        "port": 0,  # the OS picks a free port, read back below: no window for another taker
        "lifespan": "off",
    }
    config = uvicorn.Config(app, **settings)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(10):
            while not server.started:
                if task.done():
                    task.result()  # startup failed: raise its error here
                    raise RuntimeError("server exited before starting")
                await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
