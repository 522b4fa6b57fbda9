"""Services as child processes, each exactly what a container runs (``wangban serve <name>``).

One place for starting, readiness, killing and restarting them: ``wangban up`` runs the whole
platform this way, the benchmarks measure it this way, and the reliability tests SIGKILL one
service in the middle of a stream of applications and start it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import IO

import httpx
import psutil


def service_env(
    *,
    database_url: str,
    kafka_bootstrap: str,
    data_dir: Path,
    ports: Mapping[str, int],
    base: Mapping[str, str] | None = None,
    **extra: str,
) -> dict[str, str]:
    """The environment of the service processes: the infrastructure's URLs, and a port and URL
    for every service named in ``ports`` — also those not started, so that no call can reach a
    platform running on the default ports by accident."""
    env = dict(os.environ if base is None else base)
    env.update(
        WANGBAN_DATABASE_URL=database_url,
        WANGBAN_KAFKA_BOOTSTRAP=kafka_bootstrap,
        WANGBAN_DATA_DIR=str(data_dir),
        WANGBAN_HOST="127.0.0.1",
    )
    for name, port in ports.items():
        env[f"WANGBAN_{name.upper()}_PORT"] = str(port)
        env[f"WANGBAN_{name.upper()}_URL"] = f"http://127.0.0.1:{port}"
    env.update(extra)
    return env


class ServiceProcesses:
    """The service processes of one platform; each logs to ``logs/<name>.log`` (appended, so a
    restarted service keeps its history in one file)."""

    def __init__(self, env: Mapping[str, str], logs: Path, urls: Mapping[str, str]):
        self.env = dict(env)
        self.logs = logs
        self.urls = dict(urls)
        self.children: dict[str, subprocess.Popen[bytes]] = {}
        self._log_files: dict[str, IO[bytes]] = {}

    def start(self, names: Iterable[str]) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        for name in names:
            running = self.children.get(name)
            if running is not None and running.poll() is None:
                raise RuntimeError(f"{name} is already running (pid {running.pid})")
            old = self._log_files.pop(name, None)
            if old is not None:
                old.close()
            log = open(self.logs / f"{name}.log", "ab")
            self._log_files[name] = log
            self.children[name] = subprocess.Popen(
                [sys.executable, "-m", "wangban", "serve", name],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def pid(self, name: str) -> int:
        return self.children[name].pid

    def log_tail(self, name: str, lines: int = 15) -> str:
        with contextlib.suppress(OSError):
            text = (self.logs / f"{name}.log").read_text(errors="replace")
            return "\n".join(text.splitlines()[-lines:])
        return ""

    async def wait_ready(self, names: Iterable[str] | None = None, *, timeout_s: float) -> None:
        """Until every named service answers ``/readyz`` with 200; a service that exits
        meanwhile fails at once, with the end of its log."""
        pending = set(self.children if names is None else names)
        deadline = time.monotonic() + timeout_s
        async with httpx.AsyncClient(timeout=5) as client:
            while pending:
                for name in sorted(pending):
                    child = self.children[name]
                    if child.poll() is not None:
                        raise RuntimeError(
                            f"{name} exited with {child.returncode}:\n{self.log_tail(name)}"
                        )
                    with contextlib.suppress(httpx.HTTPError):
                        if (await client.get(f"{self.urls[name]}/readyz")).status_code == 200:
                            pending.discard(name)
                if pending:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"not ready in time: {', '.join(sorted(pending))}")
                    await asyncio.sleep(0.3)

    def exited(self) -> dict[str, int]:
        """Services that have exited, with their return codes."""
        return {
            name: code
            for name, child in self.children.items()
            if (code := child.poll()) is not None
        }

    def kill(self, name: str, sig: signal.Signals = signal.SIGKILL) -> None:
        """Send ``sig`` (SIGKILL: no shutdown hook runs, in-flight work is lost as in a crash)
        and wait until the process is gone."""
        child = self.children[name]
        if child.poll() is None:
            child.send_signal(sig)
            child.wait(timeout=20)

    def stop(self, *, grace_s: float = 20.0) -> None:
        """SIGTERM to all, then SIGKILL (with their children) to whatever outlives ``grace_s``."""
        for child in self.children.values():
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for child in self.children.values():
            try:
                child.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                kill_tree(child.pid)
                child.wait(timeout=5)
        for log in self._log_files.values():
            log.close()
        self._log_files.clear()


def kill_tree(pid: int) -> None:
    with contextlib.suppress(psutil.NoSuchProcess):
        parent = psutil.Process(pid)
        for child in parent.children(recursive=True):
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()
        parent.kill()
