"""The operator's CLI against the real database: migrate, and list/replay dead letters."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.kit.support import eventually, make_kit
from wangban.consumer import ConsumerRunner
from wangban.db import Database
from wangban.services import load_spec
from wangban.settings import Settings

pytestmark = pytest.mark.slow  # left out of `./dev test --fast`

ROOT = Path(__file__).resolve().parents[2]


def wangban(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "WANGBAN_DATABASE_URL": settings.database_url or "",
        "WANGBAN_KAFKA_BOOTSTRAP": settings.kafka_bootstrap or "",
        "WANGBAN_DATA_DIR": str(settings.data_dir),
    }
    return subprocess.run(
        [sys.executable, "-m", "wangban", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_migrate_is_idempotent(settings: Settings, database: Database) -> None:
    result = wangban(settings, "migrate")
    assert result.returncode == 0, result.stderr
    assert "migrated: gateway, catalog, intake, approval, sharing, notify" in result.stdout


async def test_operator_lists_and_replays_a_dead_letter(
    settings: Settings, database: Database
) -> None:
    catalog = load_spec("catalog").outbox
    assert catalog is not None
    kit = make_kit("cli")
    await kit.create(database)

    async def always_fail(note: str) -> None:
        raise RuntimeError("downstream rejected the record")

    relay = kit.relay(settings, database)
    runner = ConsumerRunner(
        settings=settings,
        database=database,
        outbox=catalog,  # the dead letter lands in the catalog service's tables
        consumer=kit.consumer("catalog.cli-test", behaviour=always_fail),
    )
    relay.start()
    runner.start()
    try:
        async with database.sessionmaker() as session, session.begin():
            poisoned = await kit.record(session, "cannot-apply")
        dead_letters = catalog.tables.dead_letter

        async def dead_lettered() -> bool:
            async with database.sessionmaker() as session:
                row = await session.execute(
                    select(dead_letters.c.id).where(dead_letters.c.event_id == poisoned.id)
                )
                return row.first() is not None

        await eventually(dead_lettered)
    finally:
        await runner.stop()
        await relay.stop()

    listed = wangban(settings, "events", "dlq", "list", "--service", "catalog", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    [row] = [r for r in rows if r["event_id"] == poisoned.id]
    assert row["consumer"] == "catalog.cli-test" and row["service"] == "catalog"
    assert "downstream rejected" in row["error"]

    replayed = wangban(settings, "events", "dlq", "replay", row["id"])
    assert replayed.returncode == 0, replayed.stderr
    assert "catalog" in replayed.stdout
    outbox = catalog.tables.outbox
    async with database.sessionmaker() as session:
        republished = (
            (await session.execute(select(outbox.c.topic).where(outbox.c.event_id == poisoned.id)))
            .scalars()
            .all()
        )
    assert republished == [kit.event.topic]  # back on its topic, under its original id

    again = wangban(settings, "events", "dlq", "replay", row["id"])
    assert again.returncode == 2 and "already replayed" in again.stderr
    bogus = wangban(settings, "events", "dlq", "replay", "not-an-id")
    assert bogus.returncode == 2 and "not a dead letter id" in bogus.stderr
    remaining = wangban(settings, "events", "dlq", "list", "--service", "catalog", "--json")
    assert poisoned.id not in remaining.stdout


def test_the_audit_chain_is_verified_from_the_command_line(
    settings: Settings, database: Database
) -> None:
    result = wangban(settings, "audit", "verify")
    assert result.returncode == 0, result.stderr
    assert "audit chain intact" in result.stdout


def test_an_operator_loads_a_years_holiday_notice(
    settings: Settings, database: Database, tmp_path: Path
) -> None:
    notice = tmp_path / "2031.json"
    notice.write_text(
        json.dumps(
            {
                "years": [2031],
                "source": "test data, not an official notice",
                "days": {"2031-01-01": "holiday", "2031-01-26": "workday"},
            }
        )
    )
    result = wangban(settings, "calendar", "load", str(notice))
    assert result.returncode == 0, result.stderr
    assert "loaded 2 days; years complete: 2031" in result.stdout
    broken = tmp_path / "broken.json"
    broken.write_text('{"years": [2032], "days": {}}')
    refused = wangban(settings, "calendar", "load", str(broken))
    assert refused.returncode == 2 and "broken.json" in refused.stderr


def test_production_settings_are_refused_with_a_clear_message(settings: Settings) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANGBAN_")}
    env["WANGBAN_ENV"] = "production"
    result = subprocess.run(
        [sys.executable, "-m", "wangban", "migrate"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "WANGBAN_DATABASE_URL is required" in result.stderr
    assert "WANGBAN_INTERNAL_TOKEN_KEY" in result.stderr


def test_staff_accounts_are_created_from_the_command_line(
    settings: Settings, database: Database
) -> None:
    username = f"clerk-{uuid.uuid4().hex[:8]}"
    args = ("staff", "add", username, "--name", "窗口一号", "--role", "window_clerk")
    missing = wangban(settings, *args)
    assert missing.returncode == 2 and "WANGBAN_NEW_STAFF_PASSWORD" in missing.stderr
    os.environ["WANGBAN_NEW_STAFF_PASSWORD"] = "short"
    try:
        weak = wangban(settings, *args)
        assert weak.returncode == 2 and "12" in weak.stderr
        os.environ["WANGBAN_NEW_STAFF_PASSWORD"] = "Window-clerk-2026"
        created = wangban(settings, *args, "--department", "东莞市民政局")
        assert created.returncode == 0, created.stderr
        assert username in created.stdout and "Window-clerk-2026" not in created.stdout
        twice = wangban(settings, *args)
        assert twice.returncode == 2 and "already exists" in twice.stderr
    finally:
        del os.environ["WANGBAN_NEW_STAFF_PASSWORD"]
