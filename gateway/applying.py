"""Applying through the mini-program: the citizen names an item by its implementing code (or a
bundle) and the gateway fills in what the citizen may not choose.

The applicant is the logged-in person's verified name and ID number, or a company they are
bound to (then the call to intake acts for it). The item is passed on by its code: intake binds
the application to the version it has of it (its copy of the catalogue, which it asks the
catalog to complete when it has never seen the code), so an application costs the catalog
nothing. The submission counts against the citizen's and the address's limits (one statement,
:func:`gateway.ratelimit.count`), and is given back when it was refused for the platform's
fault.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from fastapi import Response

from gateway import accounts, ratelimit
from gateway.schemas import ApplyIn
from gateway.upstream import Upstreams
from wangban.auth import Identity, identity_var
from wangban.crypto import FieldCipher
from wangban.db import Database
from wangban.errors import NotFound, Problem
from wangban.http import IDEMPOTENCY_KEY_HEADER


async def current_bundle(services: Upstreams, bundle_id: str) -> Any:
    """The current version of a bundle, named by its bundle id or its version's id: from the
    gateway's short-lived copy of the catalogue's list, and when it is not there (a bundle
    published since), from the catalogue itself."""
    for fresh in (False, True):
        if fresh:
            bundles = await services.json("catalog", "GET", "/bundles")
        else:
            bundles = await services.json_public("catalog", "/bundles")
        for version in bundles:
            if bundle_id in (version.get("bundle_id"), version.get("id")):
                return version
    raise NotFound("一件事主题不存在")


async def apply(
    *,
    body: ApplyIn,
    identity: Identity,
    services: Upstreams,
    database: Database,
    cipher: FieldCipher,
    idempotency_key: str,
    counted: ratelimit.Counted,
    now: datetime,
) -> Response:
    """Count the submission against each of ``counted`` ((limit, who) pairs), submit it, and
    answer with intake's answer; a submission refused for our fault (a service down, an item
    intake has not learnt yet) does not use up the limits."""
    await ratelimit.count(database, counted=counted, now=now)
    try:
        answer = await _submit(
            body=body,
            identity=identity,
            services=services,
            database=database,
            cipher=cipher,
            idempotency_key=idempotency_key,
        )
    except Exception as refused:
        if ratelimit.our_fault(refused.status if isinstance(refused, Problem) else 500, None):
            await ratelimit.give_back(database, counted=counted, now=now)
        raise
    if ratelimit.our_fault(answer.status_code, _problem_type(answer)):
        await ratelimit.give_back(database, counted=counted, now=now)
    return answer


def _problem_type(answer: Response) -> str | None:
    if not answer.headers.get("content-type", "").startswith("application/problem+json"):
        return None
    try:
        found = json.loads(bytes(answer.body))
    except ValueError:
        return None
    return str(found.get("type")) if isinstance(found, dict) else None


async def _submit(
    *,
    body: ApplyIn,
    identity: Identity,
    services: Upstreams,
    database: Database,
    cipher: FieldCipher,
    idempotency_key: str,
) -> Response:
    # The account is read in autocommit, its session closed before intake (or the catalog, for
    # a bundle) is called: a submission waiting for them holds no pooled connection (a burst
    # of slow submissions once emptied the gateway's pool and stalled every route).
    async with database.read_sessionmaker() as reads:
        account = await accounts.account_of(reads, identity)
        person = accounts.verified_person(account, cipher)
        applicant: dict[str, str] = {
            "kind": "person",
            "id_number": person.id_number,
            "name": person.name,
        }
        caller = identity
        if body.act_for_company:
            company = await accounts.company_to_act_for(
                reads, account=account, uscc=body.act_for_company
            )
            applicant = {
                "kind": "company",
                "id_number": company.uscc,
                "name": company.company_name,
            }
            caller = accounts.citizen_identity(account, acting_for=company.uscc)
    if caller is not identity:
        identity_var.set(caller)
    target: dict[str, Any]
    if body.item_code is not None:
        target = {"item_code": body.item_code}
    else:
        bundle = await current_bundle(services, str(body.bundle_id))
        target = {"bundle_version_id": bundle["id"]}
    return await services.forward(
        "intake",
        "POST",
        "/applications",
        json={
            **target,
            "applicant": applicant,
            "form": body.form,
            "materials": body.materials,
            "member_materials": body.member_materials,
            "channel": "mini_program",
            "draft": body.draft,
        },
        headers={IDEMPOTENCY_KEY_HEADER: idempotency_key},
    )
