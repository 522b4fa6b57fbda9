"""The sharing service as the other services ask it: material resolution (intake), lookups for
prefill (intake) and for 秒批 rules (approval).

A service calls as itself (a service identity named after it: the access policy names
consumers), never as the citizen. When a department's data system does not answer, sharing
says so and the caller gets "unavailable": a 秒批 case then goes to a person — never refused
because a lookup failed — and a material is asked of the applicant. When the sharing service
itself cannot answer (down, restarting, overloaded), the call raises
:class:`SharingUnavailable` (503, retryable, nothing stored): a submission is refused for now,
and approval's consumer holds the event and asks again once sharing is back. Sending every
case in flight to a person, or telling a citizen to bring a certificate the government
holds, because our own service was restarting, would be wrong.

The service asks as itself, but on behalf of someone: the person whose request is being handled
(a window clerk filing an application, the applicant online) is sent along as a second signed
internal token in :data:`ACTOR_HEADER`, taken from the verified identity of the request
(:data:`wangban.auth.identity_var`) — never from a request body, so no field can name someone
else. Sharing records that person with every lookup; with no request behind it (秒批 in a
consumer) no actor is sent and the record names the service alone.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import httpx

from contracts.sharing.api_v1 import LookupAnswer as LookupAnswer
from contracts.sharing.api_v1 import SharedResolution as SharedResolution
from wangban.auth import AssuranceLevel, Identity, InternalTokens, identity_var
from wangban.errors import ServiceUnavailable
from wangban.http import service_client
from wangban.settings import Settings

logger = logging.getLogger(__name__)

ACTOR_HEADER = "X-Wangban-Actor"
"""A signed internal token of the person a service asks sharing on behalf of."""


class SharingUnavailable(ServiceUnavailable):
    type_slug = "sharing-unavailable"
    title = "数据共享服务暂时不可用"

    def __init__(self) -> None:
        super().__init__("暂时无法核验您的共享材料，申请未提交，请稍后重试")


class SharingClient:
    def __init__(
        self,
        settings: Settings,
        *,
        caller: str,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._caller = caller
        self._identity = Identity(
            subject=caller, kind="service", assurance=AssuranceLevel.REAL_PERSON
        )
        self._client = service_client(settings, "sharing", caller=caller, transport=transport)
        self._tokens = InternalTokens.from_settings(settings)

    async def resolve(
        self,
        *,
        item_version_id: str,
        applicant_kind: str,
        applicant_id: str,
        application_id: str,
        on_behalf_of: Identity | None = None,
    ) -> Sequence[SharedResolution]:
        try:
            response = await self._client.post(
                "/materials/resolve",
                json={
                    "item_version_id": item_version_id,
                    "applicant": {"kind": applicant_kind, "id": applicant_id},
                    "application_id": application_id,
                },
                headers=self._headers(on_behalf_of),
            )
        except httpx.HTTPError as exc:
            logger.warning("sharing service unreachable: %s", type(exc).__name__)
            raise SharingUnavailable() from exc
        if response.status_code != 200:
            logger.warning(
                "sharing service answered %s to material resolution", response.status_code
            )
            raise SharingUnavailable()
        return [SharedResolution.from_answer(m) for m in response.json().get("materials", [])]

    async def lookup(
        self,
        *,
        dataset: str,
        subject_kind: str,
        subject_id: str,
        fields: list[str],
        item_code: str,
        application_id: str | None,
        on_behalf_of: Identity | None = None,
    ) -> LookupAnswer:
        try:
            response = await self._client.post(
                "/lookups",
                json={
                    "subject": {"kind": subject_kind, "id": subject_id},
                    "dataset": dataset,
                    "fields": fields,
                    "purpose": {"item_code": item_code, "application_id": application_id},
                },
                headers=self._headers(on_behalf_of),
            )
        except httpx.HTTPError as exc:
            logger.warning("sharing service unreachable: %s", type(exc).__name__)
            raise SharingUnavailable() from exc
        if response.status_code in (401, 403):
            logger.info("lookup in %s refused (%s)", dataset, response.status_code)
            return LookupAnswer(status="refused")
        if response.status_code != 200:
            logger.warning("lookup in %s answered %s", dataset, response.status_code)
            if response.status_code >= 500 and not _department_unavailable(response):
                # Our own sharing service is down or overloaded: a restart must not send
                # every 秒批 case in flight to a person. The caller waits and asks again.
                raise SharingUnavailable()
            return LookupAnswer(status="unavailable")
        return LookupAnswer.from_answer(response.json())

    async def verify_identity(
        self,
        *,
        id_number: str,
        name: str,
        item_code: str,
        application_id: str | None,
        on_behalf_of: Identity | None = None,
    ) -> bool:
        """Whether ``name`` matches the population register for ``id_number`` (window intake;
        the clerk is the actor). False for another name and for no such person alike. Raises
        :class:`SharingUnavailable` when the answer cannot be had (sharing or the register
        down, or the check refused): nothing may be looked up unverified."""
        try:
            response = await self._client.post(
                "/identity/verify",
                json={
                    "subject": {"kind": "person", "id": id_number},
                    "name": name,
                    "purpose": {"item_code": item_code, "application_id": application_id},
                },
                headers=self._headers(on_behalf_of),
            )
        except httpx.HTTPError as exc:
            logger.warning("sharing service unreachable: %s", type(exc).__name__)
            raise SharingUnavailable() from exc
        if response.status_code != 200:
            logger.warning("identity check answered %s", response.status_code)
            raise SharingUnavailable()
        return bool(response.json().get("matches"))

    def _headers(self, on_behalf_of: Identity | None) -> dict[str, str]:
        token = self._tokens.issue(self._identity, issuer=self._caller)
        headers = {"Authorization": f"Bearer {token}"}
        person = on_behalf_of or identity_var.get()
        if person is not None and person.kind != "service":
            headers[ACTOR_HEADER] = self._tokens.issue(person, issuer=self._caller)
        return headers

    async def close(self) -> None:
        await self._client.aclose()


def _department_unavailable(response: httpx.Response) -> bool:
    """Sharing answered, and says the department's system is what failed."""
    try:
        problem_type = response.json().get("type", "")
    except ValueError:
        return False
    return isinstance(problem_type, str) and problem_type.endswith(":provider-unavailable")
