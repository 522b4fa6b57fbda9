"""The sharing service, as intake asks it which materials an applicant need not bring.

Intake calls as itself (a service identity ``intake``: the access policy names it), not as the
citizen. If the sharing service cannot answer, nothing is resolved and the applicant is asked
for the materials — an application is never refused because a lookup failed.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import httpx

from intake_service.applications import SharedResolution
from wangban.auth import AssuranceLevel, Identity, InternalTokens
from wangban.http import service_client
from wangban.settings import Settings

logger = logging.getLogger(__name__)

INTAKE = Identity(subject="intake", kind="service", assurance=AssuranceLevel.REAL_PERSON)


class SharingClient:
    def __init__(
        self, settings: Settings, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self._client = service_client(settings, "sharing", caller="intake", transport=transport)
        self._tokens = InternalTokens.from_settings(settings)

    async def resolve(
        self,
        *,
        item_version_id: str,
        applicant_kind: str,
        applicant_id: str,
        application_id: str,
    ) -> Sequence[SharedResolution]:
        token = self._tokens.issue(INTAKE, issuer="intake")
        try:
            response = await self._client.post(
                "/materials/resolve",
                json={
                    "item_version_id": item_version_id,
                    "applicant": {"kind": applicant_kind, "id": applicant_id},
                    "application_id": application_id,
                },
                headers={"Authorization": f"Bearer {token}"},
            )
        except httpx.HTTPError as exc:
            logger.warning("sharing service unreachable: %s", type(exc).__name__)
            return []
        if response.status_code != 200:
            logger.warning(
                "sharing service answered %s to material resolution", response.status_code
            )
            return []
        return [
            SharedResolution(
                index=int(m["index"]),
                status=str(m["status"]),
                evidence_kind=(m.get("evidence") or {}).get("kind"),
                evidence_id=(m.get("evidence") or {}).get("id"),
                message=str(m.get("message", "")),
            )
            for m in response.json().get("materials", [])
        ]

    async def lookup(
        self,
        *,
        dataset: str,
        subject_kind: str,
        subject_id: str,
        fields: list[str],
        item_code: str,
        application_id: str | None,
    ) -> dict[str, Any] | None:
        """A lookup for prefill; None when it was refused or failed (the applicant fills in)."""
        token = self._tokens.issue(INTAKE, issuer="intake")
        try:
            response = await self._client.post(
                "/lookups",
                json={
                    "subject": {"kind": subject_kind, "id": subject_id},
                    "dataset": dataset,
                    "fields": fields,
                    "purpose": {"item_code": item_code, "application_id": application_id},
                },
                headers={"Authorization": f"Bearer {token}"},
            )
        except httpx.HTTPError as exc:
            logger.warning("sharing service unreachable: %s", type(exc).__name__)
            return None
        if response.status_code != 200:
            logger.info("prefill lookup in %s answered %s", dataset, response.status_code)
            return None
        answer: dict[str, Any] = response.json()
        return answer

    async def close(self) -> None:
        await self._client.aclose()
