"""Test modules import no other test module and no conftest: what tests share lives in support
modules (``tests/<area>/support.py``, ``tests/fakes/``, ``tests/infrastructure.py``), so that
changing, moving or deleting one test module never breaks another, and importing one never
runs another's module-level code. Checked on the source (``ast``), bench included."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).parents[2]


def _is_test_module(module: str) -> bool:
    parts = module.split(".")
    return parts[0] == "tests" and (parts[-1] == "conftest" or parts[-1].startswith("test_"))


def _module_file(root: Path, module: str) -> Path:
    return root.joinpath(*module.split(".")).with_suffix(".py")


def _targets(node: ast.Import | ast.ImportFrom, package: str, root: Path) -> list[str]:
    """The modules an import statement loads, relative imports resolved against ``package``."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        parts = package.split(".")
        parts = parts[: len(parts) - (node.level - 1)]
        base = ".".join([*parts, base] if base else parts)
    # ``from tests.area import test_x`` loads the module test_x (a name is a module when its
    # file exists; a function named test_… in a support module is not one).
    submodules = [
        f"{base}.{a.name}" for a in node.names if _module_file(root, f"{base}.{a.name}").exists()
    ]
    return [base, *submodules]


def imports_of_test_modules(
    root: Path, directories: tuple[str, ...] = ("tests", "bench")
) -> list[str]:
    """Every import, under ``directories`` of ``root``, of a test module or a conftest."""
    found: list[str] = []
    for directory in directories:
        for path in sorted((root / directory).rglob("*.py")):
            relative = path.relative_to(root)
            package = ".".join(relative.with_suffix("").parts[:-1])
            tree = ast.parse(path.read_text("utf-8"), filename=str(relative))
            for node in ast.walk(tree):
                if not isinstance(node, ast.Import | ast.ImportFrom):
                    continue
                found.extend(
                    f"{relative}:{node.lineno} imports {target}"
                    for target in _targets(node, package, root)
                    if _is_test_module(target)
                )
    return found


def test_no_test_module_imports_another_or_a_conftest() -> None:
    found = imports_of_test_modules(ROOT)
    assert found == [], "move what is shared to a support module:\n" + "\n".join(found)


def test_each_way_of_importing_a_test_module_is_found(tmp_path: Path) -> None:
    files = {
        "tests/__init__.py": "",
        "tests/conftest.py": "",
        "tests/area/__init__.py": "",
        "tests/area/support.py": "def test_like_helper() -> None: ...\n",
        "tests/area/test_one.py": "X = 1\n",
        "tests/area/test_two.py": (
            "from tests.area.test_one import X\n"
            "from tests.conftest import Y\n"
            "from tests.area import test_one\n"
            "from .test_one import X as Z\n"
            "from . import support\n"
            "from tests.area.support import test_like_helper\n"
            "def f() -> None:\n"
            "    import tests.area.test_one\n"
        ),
        "bench/__init__.py": "",
        "bench/load.py": "from tests.area.test_one import X\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert imports_of_test_modules(tmp_path) == [
        "tests/area/test_two.py:1 imports tests.area.test_one",
        "tests/area/test_two.py:2 imports tests.conftest",
        "tests/area/test_two.py:3 imports tests.area.test_one",
        "tests/area/test_two.py:4 imports tests.area.test_one",
        "tests/area/test_two.py:8 imports tests.area.test_one",
        "bench/load.py:1 imports tests.area.test_one",
    ]
