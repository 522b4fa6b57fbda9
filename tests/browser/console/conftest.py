"""The staff console as the gateway serves it (``/console/`` of the platform that
``tests/browser/conftest.py`` starts), and the demo staff logins ``./dev staff`` makes there."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.browser.support import ROOT, Desk, Platform

PASSWORD = "Console-test-2026"


@pytest.fixture(scope="session")
def desk(platform: Platform) -> Desk:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANGBAN_")}
    env["WANGBAN_DATA_DIR"] = str(platform.data_dir)
    env["WANGBAN_DEMO_STAFF_PASSWORD"] = PASSWORD
    made = subprocess.run(
        [str(ROOT / "dev"), "staff"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert made.returncode == 0, f"./dev staff failed:\n{made.stdout}\n{made.stderr}"
    return Desk(url=f"{platform.gateway}/console/", password=PASSWORD)
