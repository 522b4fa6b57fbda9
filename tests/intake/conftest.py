"""The intake service over HTTP (in-process, its background tasks off), for the tests of its
API: the ``intake`` fixture."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.infrastructure import Infrastructure, make_settings
from tests.intake.support import Intake
from wangban.app import create_service_app
from wangban.db import Database
from wangban.services import load_spec


@pytest.fixture
async def intake(
    infrastructure: Infrastructure, database: Database, tmp_path: Path
) -> AsyncIterator[Intake]:
    settings = make_settings(
        infrastructure,
        data_dir=tmp_path,  # uploads land in tmp_path/objects
        sharing_url="http://127.0.0.1:9",  # nothing listens: materials are not resolved
        http_retries=0,
        upload_max_bytes=4096,
    )
    app = create_service_app(load_spec("intake"), settings, background=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://intake") as client:
            yield Intake(client, app, settings, database)
