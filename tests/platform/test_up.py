"""`wangban up` on an empty data directory: everything ready, then nothing left behind."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from wangban.embedded import free_ports
from wangban.settings import SERVICE_NAMES

pytestmark = pytest.mark.slow  # left out of `./dev test --fast`

ROOT = Path(__file__).resolve().parents[2]


def _postmaster_pid(data_dir: Path) -> int | None:
    with contextlib.suppress(OSError, ValueError, IndexError):
        return int((data_dir / "postgres" / "postmaster.pid").read_text().splitlines()[0])
    return None


def test_up_starts_all_six_services_and_sigterm_leaves_nothing(tmp_path: Path) -> None:
    data_dir = tmp_path / "wangban-data"
    *service_ports, broker_port = free_ports(len(SERVICE_NAMES) + 1)
    ports = dict(zip(SERVICE_NAMES, service_ports, strict=True))
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANGBAN_")}
    env.update({f"WANGBAN_{name.upper()}_PORT": str(port) for name, port in ports.items()})
    env["WANGBAN_EMBEDDED_KAFKA_PORT"] = str(broker_port)
    env["WANGBAN_DATA_DIR"] = str(data_dir)
    env["WANGBAN_KAFKA_SESSION_TIMEOUT_MS"] = "2000"
    env["WANGBAN_KAFKA_HEARTBEAT_INTERVAL_MS"] = "300"

    first = _up_then_sigterm(env, ports, data_dir)
    assert "Migrations  applied" in first and "memory only" in first
    assert (data_dir / "postgres" / "PG_VERSION").exists()  # data kept for the next start

    # A second start reuses the same database (already migrated) and stops as cleanly.
    marker = (data_dir / "postgres" / "PG_VERSION").stat().st_ino
    _up_then_sigterm(env, ports, data_dir)
    assert (data_dir / "postgres" / "PG_VERSION").stat().st_ino == marker


def _up_then_sigterm(env: dict[str, str], ports: dict[str, int], data_dir: Path) -> str:
    up = subprocess.Popen(
        [sys.executable, "-m", "wangban", "up"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        ready = _wait_all_ready(up, ports, timeout_s=180)
        assert ready == set(SERVICE_NAMES)
        processes = psutil.Process(up.pid).children(recursive=True)
        assert len(processes) >= 7  # six services and the broker
        postmaster = _postmaster_pid(data_dir)
        assert postmaster is not None and psutil.pid_exists(postmaster)

        up.send_signal(signal.SIGTERM)
        output, _ = up.communicate(timeout=90)
        assert up.returncode == 0, output
        assert "Wangban is up" in output and "Stopped." in output
        _, alive = psutil.wait_procs(processes, timeout=10)
        assert alive == [], f"left running: {[p.pid for p in alive]}"
        deadline = time.monotonic() + 20
        while _is_running(postmaster) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _is_running(postmaster), "embedded PostgreSQL left running"
        return output
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()


def _is_running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _wait_all_ready(
    up: subprocess.Popen[str], ports: dict[str, int], *, timeout_s: float
) -> set[str]:
    ready: set[str] = set()
    deadline = time.monotonic() + timeout_s
    with httpx.Client(timeout=3) as client:
        while ready != set(ports) and time.monotonic() < deadline:
            if up.poll() is not None:
                raise AssertionError(
                    f"wangban up exited early:\n{up.stdout.read() if up.stdout else ''}"
                )
            for name, port in ports.items():
                if name in ready:
                    continue
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                        ready.add(name)
            time.sleep(0.5)
    return ready
