"""Certificates: the citizen's wallet (证照夹) and verifying a certificate (public)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from gateway.api import API
from gateway.api.deps import CITIZENS, Citizen, Services, problems
from gateway.schemas import PRINTABLE
from gateway.upstream import FORWARDED_PROBLEMS, segment

router = APIRouter(prefix=API)


# Declared before /certificates/{certificate_id}, which would otherwise take "verify" for an id.
@router.get(
    "/certificates/verify",
    tags=["public"],
    summary="Verify a certificate (id or QR payload)",
    responses=problems(FORWARDED_PROBLEMS),
)
async def verify_certificate(
    services: Services,
    id: Annotated[str | None, Query(max_length=120, pattern=PRINTABLE)] = None,
    qr: Annotated[str | None, Query(max_length=512, pattern=PRINTABLE)] = None,
) -> Response:
    return await services.forward(
        "sharing", "POST", "/certificates/verify", json={"certificate_id": id, "qr": qr}
    )


@router.get(
    "/certificates",
    tags=["citizen"],
    summary="My certificate wallet (证照夹)",
    responses=problems(CITIZENS, FORWARDED_PROBLEMS),
)
async def my_certificates(identity: Citizen, services: Services) -> Response:
    return await services.forward("sharing", "GET", "/me/certificates")


@router.get(
    "/certificates/{certificate_id}",
    tags=["citizen"],
    summary="One certificate of mine",
    responses=problems(CITIZENS, FORWARDED_PROBLEMS),
)
async def my_certificate(certificate_id: str, identity: Citizen, services: Services) -> Response:
    return await services.forward("sharing", "GET", f"/me/certificates/{segment(certificate_id)}")
