"""Materials kept in an S3-compatible store (tests.fakes.s3: moto checking every signature,
behind a front that checks presigned URLs as S3 does), downloaded by presigned URL
(``WANGBAN_S3_PRESIGNED_DOWNLOADS``): intake answers 307 to a URL the store serves itself."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import date
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from tests.fakes.s3 import REGION, S3Server, s3_server
from tests.infrastructure import Infrastructure, make_settings
from tests.intake.support import Intake
from tests.sharing.support import person_id
from wangban.app import create_service_app
from wangban.db import Database
from wangban.services import load_spec

PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
CAROL = person_id(date(1955, 5, 6), 603)
DAVE = person_id(date(1965, 7, 8), 604)


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    with s3_server() as server:
        yield server


@pytest.fixture
async def intake_on_s3(
    infrastructure: Infrastructure, database: Database, tmp_path: Path, s3: S3Server
) -> AsyncIterator[Intake]:
    settings = make_settings(
        infrastructure,
        data_dir=tmp_path,
        sharing_url="http://127.0.0.1:9",  # nothing listens: materials are not resolved
        http_retries=0,
        object_store_url="s3://materials/intake",
        s3_endpoint_url=s3.endpoint,
        s3_region=REGION,
        s3_access_key=SecretStr(s3.access_key),
        s3_secret_key=SecretStr(s3.secret_key),
        s3_presigned_downloads=True,
        s3_presigned_expires_s=60,
    )
    app = create_service_app(load_spec("intake"), settings, background=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://intake") as client:
            yield Intake(client, app, settings, database)


async def test_a_material_is_stored_in_the_bucket_and_downloaded_by_presigned_url(
    intake_on_s3: Intake, s3: S3Server, tmp_path: Path
) -> None:
    intake = intake_on_s3
    carol = intake.citizen("u-carol-s3", CAROL)
    stored = await intake.client.post(
        "/files",
        files={"file": ("card.pdf", PDF, "application/pdf")},
        data={"material_name": "银行卡复印件"},
        headers=carol,
    )
    assert stored.status_code == 201, stored.text
    file_id = stored.json()["id"]
    # In the bucket under the configured prefix, not on the service's disk.
    head = s3.client().head_object(Bucket="materials", Key=f"intake/materials/{file_id}")
    assert head["ContentLength"] == len(PDF)
    assert not (tmp_path / "objects").exists()

    download = await intake.client.get(f"/files/{file_id}", headers=carol)
    assert download.status_code == 307
    assert download.headers["cache-control"] == "private, no-store"
    url = download.headers["location"]
    assert url.startswith(f"{s3.endpoint}/materials/intake/materials/{file_id}?")
    async with httpx.AsyncClient(timeout=10.0) as plain:  # no credentials of ours
        fetched = await plain.get(url)
    assert fetched.status_code == 200, fetched.text
    assert fetched.content == PDF
    assert fetched.headers["content-type"] == "application/pdf"
    assert fetched.headers["content-disposition"] == "attachment"

    # Someone else learns nothing, not even a URL.
    other = await intake.client.get(f"/files/{file_id}", headers=intake.citizen("u-d", DAVE))
    assert other.status_code == 404
    assert "location" not in other.headers
