"""The sharing service as intake asks it: which materials of an application sharing supplies
(免证明), government values for a form's prefill, and the window's name check.

Intake asks as itself, on behalf of the person whose request it handles (the applicant online,
the window clerk filing for someone): the kit's :class:`~wangban.http.ServiceCalls` sends both,
and sharing records that person with every lookup. The requests and answers are sharing's
contract (:mod:`contracts.sharing.api_v1`).

When a department's system does not answer, sharing says so and the material is asked of the
applicant, or the prefill left for them to type. When sharing itself cannot answer (down,
restarting, overloaded), the call raises :class:`SharingUnavailable` (503, retryable, nothing
stored): the submission is refused for now, rather than telling a citizen to bring a
certificate the government holds because our own service was restarting.
"""

from __future__ import annotations

from collections.abc import Mapping

import httpx

from contracts.sharing.api_v1 import (
    IDENTITY_VERIFY_PATH,
    LOOKUPS_PATH,
    RESOLVE_PATH,
    IdentityCheckRequest,
    LookupAnswer,
    LookupRequest,
    Purpose,
    ResolutionRequest,
    SharedResolution,
    Subject,
)
from wangban.auth import Identity
from wangban.errors import ServiceUnavailable
from wangban.http import ServiceCalls
from wangban.settings import Settings


class SharingUnavailable(ServiceUnavailable):
    type_slug = "sharing-unavailable"
    title = "数据共享服务暂时不可用"

    def __init__(self) -> None:
        super().__init__("暂时无法核验您的共享材料，申请未提交，请稍后重试")


class Sharing:
    def __init__(
        self, settings: Settings, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self._calls = ServiceCalls(
            settings,
            "sharing",
            caller="intake",
            unavailable=SharingUnavailable,
            transport=transport,
        )

    async def resolve(
        self,
        *,
        item_version_id: str,
        applicant_kind: str,
        applicant_id: str,
        application_id: str,
    ) -> list[SharedResolution]:
        """Sharing's answer for each material of the version it resolves; raises
        :class:`SharingUnavailable` unless it answers."""
        answer = await self._calls.post(
            RESOLVE_PATH,
            ResolutionRequest(
                item_version_id=item_version_id,
                applicant=Subject.model_validate({"kind": applicant_kind, "id": applicant_id}),
                application_id=application_id,
            ),
        )
        if answer.status != 200 or not isinstance(answer.body, Mapping):
            raise SharingUnavailable()
        return [SharedResolution.from_answer(m) for m in answer.body.get("materials", [])]

    async def lookup(
        self,
        *,
        dataset: str,
        subject_kind: str,
        subject_id: str,
        fields: list[str],
        item_code: str,
        application_id: str | None,
    ) -> LookupAnswer:
        answer = await self._calls.post(
            LOOKUPS_PATH,
            LookupRequest(
                subject=Subject.model_validate({"kind": subject_kind, "id": subject_id}),
                dataset=dataset,
                fields=fields,
                purpose=Purpose(item_code=item_code, application_id=application_id),
            ),
        )
        looked_up = LookupAnswer.from_response(answer.status, answer.body)
        if looked_up is None:
            raise SharingUnavailable()
        return looked_up

    async def verify_identity(
        self,
        *,
        id_number: str,
        name: str,
        item_code: str,
        application_id: str | None,
        on_behalf_of: Identity,
    ) -> bool:
        """Whether ``name`` matches the population register for ``id_number`` (window intake;
        the clerk is the actor). False for another name and for no such person alike. Raises
        :class:`SharingUnavailable` when the answer cannot be had (sharing or the register
        down, or the check refused): nothing may be looked up unverified."""
        answer = await self._calls.post(
            IDENTITY_VERIFY_PATH,
            IdentityCheckRequest(
                subject=Subject(kind="person", id=id_number),
                name=name,
                purpose=Purpose(item_code=item_code, application_id=application_id),
            ),
            on_behalf_of=on_behalf_of,
        )
        if answer.status != 200 or not isinstance(answer.body, Mapping):
            raise SharingUnavailable()
        return bool(answer.body.get("matches"))

    async def aclose(self) -> None:
        await self._calls.aclose()
