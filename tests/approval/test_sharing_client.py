"""Approval asks sharing for what a 秒批 rule set reads with its own client
(``approval_service.sharing``), built on the kit's service calls and sharing's contract. Against
the sharing service itself: a record found or not, a lookup refused and a department that does
not answer are all answers (the latter two send the case to a person), and only sharing being
unreachable raises :class:`SharingUnavailable`, an unavailability, so the consumer holds the
event instead of sending every case in flight to a person while sharing restarts."""

from __future__ import annotations

import functools
import uuid
from datetime import date
from pathlib import Path

import httpx
import pytest

from approval_service.sharing import Sharing, SharingUnavailable
from sharing_service.directory import ProviderDirectory
from sharing_service.registry import put_grant, seed_registry
from tests.infrastructure import Infrastructure, make_settings
from tests.sharing.support import StaticProvider, item_code, keys, person_id
from wangban.app import create_service_app
from wangban.db import Database
from wangban.embedded import free_port
from wangban.errors import is_unavailability
from wangban.services import load_spec
from wangban.settings import Settings

ELDER = person_id(date(1936, 5, 2), 611)
NOBODY = person_id(date(1990, 1, 1), 612)


async def test_a_lookup_is_found_refused_or_unavailable_and_only_a_sharing_down_raises(
    infrastructure: Infrastructure, settings: Settings, database: Database, tmp_path: Path
) -> None:
    item = item_code()
    async with database.sessionmaker() as session, session.begin():
        await seed_registry(session)
        await put_grant(
            session,
            consumer="approval",
            dataset_code="gongan.huji",
            item_code=item,
            disclose_fields=["name"],
            verify_fields=[],
        )
    department = StaticProvider({("gongan.huji", ELDER): {"name": "李秀兰"}})
    sharing_app = create_service_app(load_spec("sharing"), settings, background=False)
    async with sharing_app.router.lifespan_context(sharing_app):
        cipher, _ = keys(settings)
        sharing_app.state.provider_directory = ProviderDirectory(cipher=cipher, sandbox=department)
        sharing = Sharing(settings, transport=httpx.ASGITransport(app=sharing_app))
        ask = functools.partial(
            sharing.lookup,
            dataset="gongan.huji",
            subject_kind="person",
            fields=["name"],
            application_id=str(uuid.uuid4()),
        )
        found = await ask(subject_id=ELDER, item_code=item)
        assert (found.status, found.value("name")) == ("found", "李秀兰")
        assert found.lookup_id
        assert (await ask(subject_id=NOBODY, item_code=item)).status == "not_found"
        # No grant for this item: the policy says no, which is not "no record".
        assert (await ask(subject_id=ELDER, item_code=item_code())).status == "refused"
        department.down.add("gongan.huji")
        assert (await ask(subject_id=ELDER, item_code=item)).status == "unavailable"
        await sharing.aclose()

    nowhere = make_settings(
        infrastructure,
        data_dir=tmp_path,
        sharing_url=f"http://127.0.0.1:{free_port()}",  # nothing listens: sharing is down
        http_retries=0,
    )
    down = Sharing(nowhere)
    with pytest.raises(SharingUnavailable) as raised:
        await down.lookup(
            dataset="gongan.huji",
            subject_kind="person",
            subject_id=ELDER,
            fields=["name"],
            item_code=item,
            application_id=None,
        )
    await down.aclose()
    assert is_unavailability(raised.value)
    assert raised.value.status == 503
