"""Who may call what, over every path of the gateway, from one table.

Each row is one route with a concrete request and who gets which status. Requests are chosen to
pass authorisation and then stop cheaply (an id that does not exist, a body the service
refuses), so a 404 or 422 for a principal means "let through", and a 401 or 403 means "stopped".
The test fails when the gateway has a route the table does not list, so a new path cannot be
added without deciding who may call it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from catalog_service import service as catalog
from sandbox import PERSONAS
from tests.catalog.support import item_content
from tests.fakes.wechat import serve_fake_wechat
from tests.gateway.authorization_table import (
    PRINCIPALS,
    STAFF,
    TABLE,
    Row,
    table_allows,
)
from tests.gateway.support import Gateway, running_gateway
from tests.infrastructure import Infrastructure
from tests.notify.support import application_of, seed_templates, tell
from wangban.db import Database


@dataclass
class World:
    gateway: Gateway
    headers: dict[str, dict[str, str]]
    a_notification: str
    an_item: str
    a_version: str
    a_submitted: str


@pytest.fixture(scope="module")
async def world(infrastructure: Infrastructure, database: Database) -> AsyncIterator[World]:
    persona_a, persona_b = PERSONAS[0], PERSONAS[1]
    async with (
        serve_fake_wechat(appid="wx-matrix", secret="matrix-secret") as wechat,
        running_gateway(
            infrastructure,
            database,
            wechat_api_base=wechat.base_url,
            wechat_appid="wx-matrix",
            wechat_app_secret="matrix-secret",
            gateway_login_per_minute_per_ip=10_000,
            gateway_staff_login_per_minute_per_ip=10_000,
            gateway_submissions_per_minute_per_ip=10_000,
        ) as gateway,
    ):
        headers: dict[str, dict[str, str]] = {
            "anonymous": {},
            "citizen_a": await gateway.citizen(name=persona_a.name, id_number=persona_a.id_number),
            "citizen_b": await gateway.citizen(name=persona_b.name, id_number=persona_b.id_number),
            "citizen_low": await gateway.citizen(assurance="wechat"),
            "window_clerk": gateway.staff("window_clerk", department="东莞市民政局"),
            "reviewer": gateway.staff("reviewer", department="东莞市民政局"),
            "reviewer_other": gateway.staff("reviewer", department="东莞市公安局"),
            "catalog_admin": gateway.staff("catalog_admin", department="东莞市民政局"),
            "catalog_admin_other": gateway.staff("catalog_admin", department="东莞市公安局"),
            "catalog_admin_elsewhere": gateway.staff(
                "catalog_admin", department="东莞市民政局", region="440300"
            ),
            "catalog_approver": gateway.staff("catalog_approver", department="东莞市民政局"),
            "catalog_approver_other": gateway.staff("catalog_approver", department="东莞市公安局"),
            "auditor": gateway.staff("auditor"),
            "ops": gateway.staff("ops"),
        }
        me = (await gateway.client.get("/api/v1/me", headers=headers["citizen_a"])).json()
        await seed_templates(database, gateway.settings)
        application = await application_of(database, me["subject"])
        notification = await tell(database, application)
        assert notification is not None
        # 民政局's items: one published, one change its approver submitted (as its author).
        async with database.sessionmaker() as session, session.begin():
            draft = await catalog.create_item_draft(session, content=item_content())
            published = await catalog.publish_version(session, version_id=draft.id)
            author = "s-catalog_approver-东莞市民政局"
            submitted = await catalog.create_item_draft(session, content=item_content(), by=author)
            submitted.status, submitted.submitted_by = "submitted", author
        yield World(gateway, headers, notification, published.item_id, published.id, submitted.id)


def _declared_routes(gateway: Gateway) -> set[tuple[str, str]]:
    """Every operation of the gateway's OpenAPI document (the mini-program's contract)."""
    paths = gateway.app.openapi()["paths"]
    return {
        (method.upper(), path.removeprefix("/api/v1"))
        for path, operations in paths.items()
        if path.startswith("/api/v1")
        for method in operations
    }


async def test_every_route_of_the_gateway_has_a_row(world: World) -> None:
    listed = {(row.method, row.route) for row in TABLE}
    declared = _declared_routes(world.gateway)
    assert declared - listed == set(), "routes without a row in the authorisation table"
    assert listed - declared == set(), "rows for routes that do not exist"
    assert len(listed) == len(TABLE), "a route listed twice"


@pytest.mark.parametrize("row", TABLE, ids=lambda r: f"{r.method} {r.route}")
async def test_who_may_call_what(world: World, row: Row) -> None:
    path = "/api/v1" + (row.path or row.route).format(
        a_notification=world.a_notification,
        an_item=world.an_item,
        a_version=world.a_version,
        a_submitted=world.a_submitted,
    )
    seen: dict[str, int] = {}
    for principal in PRINCIPALS:
        answer = await world.gateway.client.request(
            row.method,
            path,
            json=row.json,
            params=row.params,
            headers={**world.headers[principal], **row.headers},
        )
        seen[principal] = answer.status_code
        if answer.status_code >= 400:
            assert answer.headers["content-type"].startswith("application/problem+json"), (
                principal,
                answer.text,
            )
            assert answer.status_code < 500, (principal, answer.text)
    assert seen == row.expected


async def test_the_console_is_offered_exactly_what_the_table_lets_through(world: World) -> None:
    """``/me`` tells a staff member the operations their roles allow (from the services' own
    role requirements); the staff console shows those and no others. For every staff route of
    the table, an operation is offered to a principal exactly when the table does not refuse
    them (403), bar the documented four-eyes case."""
    offered: dict[str, set[str]] = {}
    for principal in STAFF:
        me = await world.gateway.client.get("/api/v1/me", headers=world.headers[principal])
        assert me.status_code == 200, me.text
        offered[principal] = set(me.json()["operations"])
    for principal in STAFF:
        assert offered[principal] == table_allows(principal), principal
    # Citizens are offered nothing.
    me = await world.gateway.client.get("/api/v1/me", headers=world.headers["citizen_a"])
    assert me.json()["operations"] == []
