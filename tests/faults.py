"""A loopback TCP proxy that can cut the line, for the reliability tests.

Put between a service and PostgreSQL or the broker, ``cut()`` does what an outage does to the
clients: every open connection is reset and new ones are refused (the listening socket is
closed), until ``restore()`` listens again on the same port. The server behind it keeps its
state, so a test sees exactly the client side of an outage, and can count what was lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Target:
    """Where the proxy forwards to: a TCP address, or a Unix socket path."""

    host: str | None = None
    port: int | None = None
    unix_path: str | None = None

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.unix_path is not None:
            return await asyncio.open_unix_connection(self.unix_path)
        assert self.host is not None and self.port is not None
        return await asyncio.open_connection(self.host, self.port)


@dataclass(eq=False)
class FaultProxy:
    target: Target
    port: int = 0
    cuts: int = 0
    connections_reset: int = 0
    _server: asyncio.Server | None = None
    _pipes: set[asyncio.Task[None]] = field(default_factory=set)
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> None:
        if self.port == 0:
            # Reserve a port first so that restore() can listen on the same one again.
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                self.port = probe.getsockname()[1]
        self._server = await asyncio.start_server(
            self._accept, "127.0.0.1", self.port, reuse_address=True
        )

    async def cut(self) -> None:
        """Refuse new connections and reset the open ones (RST, as when a host goes away)."""
        self.cuts += 1
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._writers):
            self._reset(writer)
            self.connections_reset += 1
        for task in list(self._pipes):
            task.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)

    async def restore(self) -> None:
        if self._server is None:
            await self.start()

    async def close(self) -> None:
        await self.cut()

    @staticmethod
    def _reset(writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            # SO_LINGER 0: close() sends RST instead of FIN, like a crashed peer.
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()
        FaultProxy._forget(writer)

    @staticmethod
    def _forget(writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            writer.close()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        cuts = self.cuts
        try:
            upstream_reader, upstream_writer = await self.target.connect()
        except OSError:
            writer.transport.abort()
            return
        if self.cuts != cuts or self._server is None:
            # Accepted just before a cut that came while the upstream connection was being
            # made: it must not outlive the cut (a consumer would keep its broker through an
            # outage the scenario believes total).
            self._reset(writer)
            self._reset(upstream_writer)
            return
        self._writers.update((writer, upstream_writer))
        tasks = {
            asyncio.create_task(self._pipe(reader, upstream_writer)),
            asyncio.create_task(self._pipe(upstream_reader, writer)),
        }
        self._pipes.update(tasks)
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._pipes.difference_update(tasks)
            for w in (writer, upstream_writer):
                self._writers.discard(w)
                self._forget(w)

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        with contextlib.suppress(Exception):
            writer.write_eof()


@asynccontextmanager
async def fault_proxy(target: Target) -> AsyncIterator[FaultProxy]:
    proxy = FaultProxy(target)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.close()


def postgres_target(database_url: str) -> Target:
    """The proxy target of a SQLAlchemy URL: its TCP host and port, or its Unix socket."""
    from sqlalchemy.engine import make_url

    url = make_url(database_url)
    socket_dir = url.query.get("host")
    if isinstance(socket_dir, tuple):
        socket_dir = socket_dir[0]
    if socket_dir and socket_dir.startswith("/"):
        return Target(unix_path=f"{socket_dir}/.s.PGSQL.{url.port or 5432}")
    return Target(host=url.host or "127.0.0.1", port=url.port or 5432)


def through_proxy(database_url: str, proxy: FaultProxy) -> str:
    """The same database reached over the proxy's TCP port."""
    from sqlalchemy.engine import make_url

    url = make_url(database_url)
    query = {k: v for k, v in url.query.items() if k != "host"}
    return url.set(host="127.0.0.1", port=proxy.port, query=query).render_as_string(
        hide_password=False
    )
