"""The import boundaries of ARCHITECTURE.md, checked by import-linter against the contracts in
``pyproject.toml``: the six services import only the kit and the contracts, never each other;
the kit and the contracts import no service; production code loads the demo population
(``sandbox``) only where local and test settings select it. A second test shows the check is
not a formality: one added cross-service import in a copy of the tree breaks it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]
PACKAGES = (
    "sandbox",
    "wangban",
    "contracts",
    "gateway",
    "catalog_service",
    "intake_service",
    "approval_service",
    "sharing_service",
    "notify_service",
)
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def _lint(cwd: Path) -> subprocess.CompletedProcess[str]:
    # The tree in ``cwd`` comes first on the path, so a copy is analysed rather than the
    # installed project; no cache, so a stale analysis never answers for a changed tree.
    env = {**os.environ, "PYTHONPATH": str(cwd)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", str(cwd / "pyproject.toml")],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_services_import_only_the_kit_and_the_contracts() -> None:
    result = _lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 3 kept, 0 broken." in result.stdout


def test_one_cross_service_import_breaks_the_contract(tmp_path: Path) -> None:
    for package in PACKAGES:
        shutil.copytree(
            ROOT / package,
            tmp_path / package,
            ignore=shutil.ignore_patterns("__pycache__", "migrations", "demo"),
        )
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    (tmp_path / "intake_service" / "shortcut.py").write_text(
        '"""A shortcut someone might take: reading the catalogue\'s tables directly."""\n\n'
        "from catalog_service import repository  # noqa: F401\n",
        encoding="utf-8",
    )
    (tmp_path / "wangban" / "shortcut.py").write_text(
        "from sharing_service import certificates  # noqa: F401\n", encoding="utf-8"
    )
    (tmp_path / "catalog_service" / "demo_shortcut.py").write_text(
        "from sandbox import PERSONAS  # noqa: F401\n", encoding="utf-8"
    )
    result = _lint(tmp_path)
    assert result.returncode != 0
    assert "intake_service.shortcut -> catalog_service.repository" in result.stdout
    assert "wangban.shortcut -> sharing_service.certificates" in result.stdout
    assert "catalog_service.demo_shortcut -> sandbox" in result.stdout
