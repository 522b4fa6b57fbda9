"""The citizen's messages: the in-app inbox and the subscriptions WeChat pushes need (notify)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from gateway.api import API
from gateway.api.deps import CITIZENS, Citizen, Services, problems, raw
from gateway.upstream import FORWARDED_PROBLEMS, segment

router = APIRouter(prefix=API, tags=["citizen"])


@router.get(
    "/messages", summary="My in-app inbox", responses=problems(CITIZENS, FORWARDED_PROBLEMS)
)
async def my_messages(
    identity: Citizen,
    services: Services,
    unread: bool = False,
    before: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> Response:
    return await services.forward(
        "notify",
        "GET",
        "/me/notifications",
        params={"unread": unread, "before": before.isoformat() if before else None, "limit": limit},
    )


@router.post(
    "/messages/{message_id}/read",
    summary="Mark a message read",
    responses=problems(CITIZENS, FORWARDED_PROBLEMS),
)
async def read_message(message_id: str, identity: Citizen, services: Services) -> Response:
    return await services.forward("notify", "POST", f"/me/notifications/{segment(message_id)}/read")


@router.get(
    "/subscriptions/templates",
    summary="The WeChat template ids to ask consent for (wx.requestSubscribeMessage)",
    responses=problems(CITIZENS, FORWARDED_PROBLEMS),
)
async def subscription_templates(identity: Citizen, services: Services) -> Response:
    return await services.forward("notify", "GET", "/me/subscription-templates")


@router.post(
    "/subscriptions",
    summary="Report what wx.requestSubscribeMessage answered",
    responses=problems(CITIZENS, FORWARDED_PROBLEMS),
)
async def report_subscriptions(identity: Citizen, services: Services, request: Request) -> Response:
    content, headers = await raw(request)
    return await services.forward(
        "notify", "POST", "/me/subscriptions", content=content, headers=headers
    )
