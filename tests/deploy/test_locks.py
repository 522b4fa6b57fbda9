"""The locks (requirements/*.txt, written by ``./dev lock``) agree with what the projects declare.

``requirements/runtime.txt`` is what the image installs (deploy/Dockerfile, ``--require-hashes
--no-deps``), ``requirements/dev.txt`` what ./dev installs for development and the tests. A
requirement added to pyproject.toml without re-locking, a pin outside its range, a pin without
hashes, or a development package in the image's lock fails here, before an image is built.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
RUNTIME = ROOT / "requirements" / "runtime.txt"
DEV = ROOT / "requirements" / "dev.txt"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
PIN = re.compile(
    r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[^\s;\\]+)"
    r"\s*(?:;\s*(?P<marker>[^\\]+?))?\s*\\?$"
)
HASH = re.compile(r"^\s+--hash=sha256:[0-9a-f]{64}\s*\\?$")
# Our own distributions: installed from the checkout, never from the lock.
OURS = {"wangban", "wangban-sandbox"}


VIA = re.compile(r"^\s+# (?:via )?\s*(?P<via>\S.*)$")
PROJECT = "wangban (pyproject.toml)"


@dataclass(frozen=True)
class Pin:
    version: str
    marker: Marker | None
    hashes: int


def read_lock(path: Path) -> dict[str, Pin]:
    return read_lock_and_vias(path)[0]


def read_lock_and_vias(path: Path) -> tuple[dict[str, Pin], dict[str, set[str]]]:
    """The pins, and for each what uv says required it (its ``# via`` lines): a package name,
    the project itself, or the constraint file."""
    pins: dict[str, Pin] = {}
    vias: dict[str, set[str]] = {}
    current: str | None = None
    for line in path.read_text("utf-8").splitlines():
        if not line.strip():
            continue
        if line.lstrip().startswith("#"):
            via = VIA.match(line)
            if current and line.startswith(" ") and via and via["via"] != "via":
                vias[current].add(via["via"].strip())
            continue
        if HASH.match(line):
            assert current, f"{path.name}: a hash before any pin: {line!r}"
            pin = pins[current]
            pins[current] = Pin(pin.version, pin.marker, pin.hashes + 1)
            continue
        match = PIN.match(line)
        assert match, f"{path.name}: neither an exact pin nor a hash: {line!r}"
        current = canonicalize_name(match["name"])
        assert current not in pins, f"{path.name}: {current} pinned twice"
        marker = Marker(match["marker"]) if match["marker"] else None
        pins[current] = Pin(match["version"], marker, 0)
        vias[current] = set()
    return pins, vias


def declared(pyproject: Path, *groups: str) -> list[Requirement]:
    project = tomllib.loads(pyproject.read_text("utf-8"))["project"]
    found = [Requirement(r) for r in project.get("dependencies", [])]
    for group in groups:
        found += [Requirement(r) for r in project["optional-dependencies"][group]]
    return [r for r in found if canonicalize_name(r.name) not in OURS]


RUNTIME_DECLARED = declared(ROOT / "pyproject.toml")
DEV_DECLARED = [
    *declared(ROOT / "pyproject.toml", "dev", "embedded"),
    *declared(ROOT / "sandbox" / "pyproject.toml"),
]


def assert_pinned(requirement: Requirement, pins: dict[str, Pin], lock: Path) -> None:
    name = canonicalize_name(requirement.name)
    assert name in pins, f"{requirement} is declared but not in {lock.name}: run ./dev lock"
    pin = pins[name]
    assert requirement.specifier.contains(pin.version, prereleases=True), (
        f"{lock.name} pins {name}=={pin.version}, outside {requirement}: run ./dev lock"
    )
    # Installed where the declaration says, no more and no less (uvloop: not on Windows).
    assert str(pin.marker) == str(requirement.marker), (
        f"{lock.name}: {name} ; {pin.marker} but declared ; {requirement.marker}"
    )


@pytest.mark.parametrize("requirement", RUNTIME_DECLARED, ids=str)
def test_every_runtime_requirement_is_pinned_in_both_locks(requirement: Requirement) -> None:
    assert_pinned(requirement, read_lock(RUNTIME), RUNTIME)
    assert_pinned(requirement, read_lock(DEV), DEV)


@pytest.mark.parametrize("requirement", DEV_DECLARED, ids=str)
def test_every_development_requirement_is_pinned_in_the_dev_lock(
    requirement: Requirement,
) -> None:
    assert_pinned(requirement, read_lock(DEV), DEV)


@pytest.mark.parametrize("lock", [RUNTIME, DEV], ids=lambda p: p.name)
def test_every_pin_is_exact_and_has_hashes(lock: Path) -> None:
    pins = read_lock(lock)
    assert len(pins) > 20
    assert not OURS & set(pins), f"{lock.name} pins our own project"
    assert [name for name, pin in pins.items() if pin.hashes == 0] == []
    # Made by the one command the docs name (uv writes it into the header).
    assert "#    ./dev lock\n" in lock.read_text("utf-8")


def test_the_image_lock_holds_no_development_package_and_the_versions_the_tests_ran() -> None:
    (runtime, vias), dev = read_lock_and_vias(RUNTIME), read_lock(DEV)
    runtime_names = {canonicalize_name(r.name) for r in RUNTIME_DECLARED}
    development_only = {canonicalize_name(r.name) for r in DEV_DECLARED} - runtime_names
    assert development_only, "the dev extra declares something"
    # Only what `dependencies` declares comes from the project itself (an extra would say so
    # too); everything else is there because a package of the image needs it (packaging is
    # declared for the tests, and aiokafka needs it as well).
    from_project = {name for name, via in vias.items() if PROJECT in via}
    assert sorted(from_project - runtime_names) == []
    reached = set(from_project)
    while grown := {n for n, via in vias.items() if n not in reached and via & reached}:
        reached |= grown
    # So a development package is there only where an image package needs it.
    assert sorted(set(runtime) - reached) == []
    # The image's lock is resolved within the development lock (`./dev lock` passes -c): the
    # image runs exactly the versions the test suite ran with.
    assert set(runtime) <= set(dev)
    differ = {n: (p.version, dev[n].version) for n, p in runtime.items() if p != dev[n]}
    assert differ == {}


def test_the_image_and_dev_install_from_the_locks_with_hashes() -> None:
    dockerfile = DOCKERFILE.read_text("utf-8")
    assert "pip install --require-hashes --no-deps -r requirements/runtime.txt" in dockerfile
    assert "COPY requirements/runtime.txt" in dockerfile
    dev_script = (ROOT / "dev").read_text("utf-8")
    assert "pip install --quiet --require-hashes --no-deps -r requirements/dev.txt" in dev_script
