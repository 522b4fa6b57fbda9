"""Serving an ASGI app on a real local port inside the test's event loop, so another component
talks to it over HTTP exactly as in production."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn


class _PromptServer(uvicorn.Server):
    """uvicorn's server, stopped as soon as it is asked to.

    uvicorn notices ``should_exit`` on a 0.1 s tick and then sleeps another 0.1 s before it
    waits for open connections: about 0.2 s for every test that serves a fake, which added up
    to a minute of the fast lane's two workers. Here the stop is an event, and the wait for
    connections to finish polls briefly. What is served, and how, is uvicorn's own."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.stop_requested = asyncio.Event()

    async def main_loop(self) -> None:
        # on_tick with a count divisible by ten refreshes the Date header, as uvicorn's
        # loop does once a second; it answers True once should_exit is set.
        while not await self.on_tick(0):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop_requested.wait(), 1.0)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()
        for connection in list(self.server_state.connections):
            connection.shutdown()  # idle keep-alive connections close now, busy ones after
        state = self.server_state
        try:
            async with asyncio.timeout(self.config.timeout_graceful_shutdown):
                # uvicorn's connection and task sets signal nothing when they empty.
                while state.connections or state.tasks:  # noqa: ASYNC110
                    await asyncio.sleep(0.005)
        except TimeoutError:
            for task in state.tasks:
                task.cancel("the test's server stopped")
        for server in self.servers:
            await server.wait_closed()


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
    server = _PromptServer(config)
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
        server.stop_requested.set()
        await asyncio.wait_for(task, 10)
