"""Long admin operations as jobs (issue 18, defect 9): importing the real 1,135-item list through
the gateway answered 503 after the gateway's timeout while the catalogue committed it seconds
later. Now the import answers 202 with a job the admin polls through the gateway: progress,
counts, the report, or per-row errors of a bad file with nothing committed; and the list's
主项 (main_item) is kept."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import func, select

from catalog_service.models import Item
from tests.catalog.jobs_support import poll, running_worker
from tests.catalog.support import GUANGAN_CSV
from tests.gateway.support import Gateway, running_gateway
from tests.infrastructure import Infrastructure
from wangban.db import Database

STAFF = "/api/v1/staff/catalog"


@pytest.fixture(scope="module")
async def gateway(infrastructure: Infrastructure, database: Database) -> AsyncIterator[Gateway]:
    # The production timeout of the gateway's calls to services is what the import outlasted.
    async with running_gateway(infrastructure, database) as gw:
        yield gw


def _real_list(tag: str) -> tuple[str, list[dict[str, str]]]:
    """The published list with codes of this test's own (so it meets no other test's items)."""
    with GUANGAN_CSV.open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        row["item_code"] = f"{row['item_code']}-{tag}"
    out = io.StringIO(newline="")
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue(), rows


async def _items_with_suffix(gateway: Gateway, tag: str) -> int:
    async with gateway.database.sessionmaker() as session:
        count = await session.execute(
            select(func.count()).select_from(Item).where(Item.implementing_code.like(f"%-{tag}"))
        )
        return int(count.scalar_one())


async def test_the_real_list_imports_as_a_job_polled_through_the_gateway(
    gateway: Gateway,
) -> None:
    tag = uuid.uuid4().hex[:6]
    body, rows = _real_list(tag)
    admin = gateway.staff("platform_catalog_admin")
    catalog = gateway.services["catalog"]

    answer = await gateway.client.post(
        f"{STAFF}/imports",
        params={"mapping": "guangan"},
        content=body.encode(),
        headers={**admin, "Content-Type": "text/csv"},
    )
    # At once, whatever the file's size: the work is the job's.
    assert answer.status_code == 202, answer.text
    job_id = answer.json()["id"]
    assert answer.json()["status"] == "queued"
    assert answer.headers["location"] == f"{STAFF}/jobs/{job_id}"

    seen: list[Any] = []
    async with running_worker(catalog.state.database, gateway.settings):
        job = await poll(gateway.client, answer.headers["location"], admin, seen=seen)
    assert {code for code, _ in seen} == {200}  # never "unavailable" for work that succeeds
    assert job["status"] == "succeeded", job
    assert job["total"] == job["done"] == len(rows) == 1135
    assert job["errors"] == [] and job["problem"] is None and job["finished_at"] is not None
    report = job["result"]
    assert report["rows"] == report["created"] == report["drafts_incomplete"] == 1135
    assert report["ignored_columns"] == []
    assert await _items_with_suffix(gateway, tag) == 1135

    # 主项 kept: every row naming one carries it, 未分类 is none; the export gives it back.
    exported = await gateway.client.get(f"{STAFF}/exports", headers=admin)
    mine = {
        e["implementing_code"]: e for e in exported.json() if e["implementing_code"].endswith(tag)
    }
    assert len(mine) == 1135
    for row in rows:
        expected = None if row["main_item"] == "未分类" else row["main_item"]
        assert mine[row["item_code"]]["main_item"] == expected
    assert sum(1 for e in mine.values() if e["main_item"]) == 520

    # Another admin does not read the job; an auditor does.
    location = answer.headers["location"]
    other = gateway.staff("catalog_admin", department="东莞市公安局")
    assert (await gateway.client.get(location, headers=other)).status_code == 404
    auditor = gateway.staff("auditor")
    assert (await gateway.client.get(location, headers=auditor)).status_code == 200


async def test_a_bad_file_fails_its_job_with_every_bad_row_and_commits_nothing(
    gateway: Gateway,
) -> None:
    tag = uuid.uuid4().hex[:6]
    body, _ = _real_list(tag)
    lines = body.splitlines()
    # Row 3 gets a type code the mapping does not know, row 600 loses its name.
    lines[2] = lines[2].replace(",1,511602000000", ",99,511602000000")
    cells = next(csv.reader([lines[599]]))
    cells[2] = ""
    lines[599] = ",".join(cells)
    admin = gateway.staff("platform_catalog_admin")

    answer = await gateway.client.post(
        f"{STAFF}/imports",
        params={"mapping": "guangan"},
        content=("\n".join(lines) + "\n").encode(),
        headers={**admin, "Content-Type": "text/csv"},
    )
    assert answer.status_code == 202, answer.text
    async with running_worker(gateway.services["catalog"].state.database, gateway.settings):
        job = await poll(gateway.client, answer.headers["location"], admin)
    assert job["status"] == "failed" and job["result"] is None
    assert job["problem"]["type"] == "urn:wangban:problem:import-rejected"
    assert [(e["row"], e["column"]) for e in job["errors"]] == [(3, "task_type"), (600, "name")]
    assert all(e["reason"] for e in job["errors"])
    assert await _items_with_suffix(gateway, tag) == 0
