"""Where the gateway's contract and the services disagreed (issue 18, defect 10).

* The rating tags are a fixed list: the API contract publishes it (an enum in the rating body
  the gateway's document copies from intake's), and a tag outside it is refused.
* The comment of a rating: the contract said 2,000 characters, the service kept 500. Both say
  500 now, and the gateway's door agrees with its document.
* A problem passed through the gateway named the service's path in ``instance``
  (``/applications/…``), which the client never asked for: it is the gateway's path now,
  whether the answer is forwarded as is or raised again by the gateway."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from intake_service.ratings import COMMENT_MAX_LENGTH, RATING_TAGS
from sandbox import PERSONAS
from tests.gateway.support import Gateway, running_gateway
from tests.infrastructure import Infrastructure
from tests.intake import factories
from wangban.db import Database

RATING = "/api/v1/applications/{application_id}/rating"


@pytest.fixture(scope="module")
async def gateway(infrastructure: Infrastructure, database: Database) -> AsyncIterator[Gateway]:
    async with running_gateway(infrastructure, database) as gw:
        yield gw


def _resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


async def test_the_contract_publishes_the_rating_tags_and_the_comment_limit(
    gateway: Gateway,
) -> None:
    answer = await gateway.client.get("/openapi.json")
    assert answer.status_code == 200
    document = answer.json()
    operation = document["paths"][RATING]["post"]
    body = _resolve(document, operation["requestBody"]["content"]["application/json"]["schema"])
    tags = body["properties"]["tags"]
    assert _resolve(document, tags["items"])["enum"] == list(RATING_TAGS)
    assert body["properties"]["comment"]["maxLength"] == COMMENT_MAX_LENGTH == 500


async def _completed_application(gateway: Gateway, headers: dict[str, str]) -> str:
    me = (await gateway.client.get("/api/v1/me", headers=headers)).json()
    async with gateway.database.sessionmaker() as session, session.begin():
        row = await factories.application(
            session,
            department=factories.unique("contract"),
            status="completed",
            applicant_subject=me["subject"],
        )
        return row.id


async def test_the_door_keeps_to_the_published_rating_contract(gateway: Gateway) -> None:
    headers = await gateway.citizen(assurance="wechat")
    application_id = await _completed_application(gateway, headers)
    path = RATING.format(application_id=application_id)

    too_long = await gateway.client.post(
        path, json={"score": 4, "comment": "好" * (COMMENT_MAX_LENGTH + 1)}, headers=headers
    )
    assert too_long.status_code == 422, too_long.text
    unknown_tag = await gateway.client.post(
        path, json={"score": 4, "tags": ["随便写的标签"]}, headers=headers
    )
    assert unknown_tag.status_code == 422, unknown_tag.text

    rated = await gateway.client.post(
        path,
        json={"score": 5, "tags": list(RATING_TAGS[:2]), "comment": "好" * COMMENT_MAX_LENGTH},
        headers=headers,
    )
    assert rated.status_code in (200, 201), rated.text
    assert rated.json()["tags"] == list(RATING_TAGS[:2])
    assert len(rated.json()["comment"]) == COMMENT_MAX_LENGTH


async def test_a_problem_passed_through_names_the_gateway_s_path(gateway: Gateway) -> None:
    persona = PERSONAS[2]
    headers = await gateway.citizen(name=persona.name, id_number=persona.id_number)
    nobody = str(uuid.uuid4())

    # Forwarded as the service answered it (intake's 404).
    missing = await gateway.client.get(f"/api/v1/applications/{nobody}", headers=headers)
    assert missing.status_code == 404, missing.text
    assert missing.headers["content-type"] == "application/problem+json"
    assert missing.json()["instance"] == f"/api/v1/applications/{nobody}"
    assert missing.json()["type"] == "urn:wangban:problem:application-not-found"

    # Raised again by the gateway (the catalogue's 404 for an unknown item while applying).
    unknown = await gateway.client.post(
        "/api/v1/applications",
        json={"item_code": f"NO-SUCH-{uuid.uuid4().hex[:8]}", "form": {}},
        headers={**headers, "Idempotency-Key": str(uuid.uuid4())},
    )
    assert unknown.status_code == 404, unknown.text
    assert unknown.json()["instance"] == "/api/v1/applications"

    # A forwarded problem body keeps everything else the service said.
    rating = await gateway.client.post(
        RATING.format(application_id=nobody), json={"score": 3}, headers=headers
    )
    assert rating.status_code == 404, rating.text
    assert rating.json()["instance"] == RATING.format(application_id=nobody)
    assert rating.json()["title"] and rating.json()["status"] == 404
