"""The sharing service as approval asks it: the lookups a 秒批 rule set reads.

Approval asks as itself, with no person behind the call (its consumer handles an event), so
sharing records the service alone. The request and the answer are sharing's contract
(:mod:`contracts.sharing.api_v1`). A refused or unavailable lookup is an answer
(:func:`approval_service.cases.look_up_shared_data` sends that case to a person, never refuses
it); only when sharing itself cannot answer does the call raise :class:`SharingUnavailable`,
and the consumer holds the event and asks again once sharing is back: a restart of our own
service must not send every case in flight to a person.
"""

from __future__ import annotations

import httpx

from contracts.sharing.api_v1 import LOOKUPS_PATH, LookupAnswer, LookupRequest, Purpose, Subject
from wangban.errors import ServiceUnavailable
from wangban.http import ServiceCalls
from wangban.settings import Settings


class SharingUnavailable(ServiceUnavailable):
    type_slug = "sharing-unavailable"
    title = "数据共享服务暂时不可用"

    def __init__(self) -> None:
        super().__init__("暂时无法查询秒批所需的共享数据，稍后重试")


class Sharing:
    def __init__(
        self, settings: Settings, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self._calls = ServiceCalls(
            settings,
            "sharing",
            caller="approval",
            unavailable=SharingUnavailable,
            transport=transport,
        )

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

    async def aclose(self) -> None:
        await self._calls.aclose()
