"""The staff console's API under ``/api/v1/staff``: one route per row of
:data:`~gateway.api.passthrough.STAFF_ROUTES`, each authenticating a staff member and passing
the request on (query string and body included) to the service, which checks the roles and the
department."""

from __future__ import annotations

import re

from fastapi import APIRouter, Request, Response

from gateway.api import API
from gateway.api.deps import STAFF, UPLOADS, Services, Staff, problems, raw
from gateway.api.passthrough import STAFF_ROUTES, StaffRoute
from gateway.upstream import FORWARDED_PROBLEMS, segment

router = APIRouter(prefix=f"{API}/staff", tags=["staff"])


def _pass_through(row: StaffRoute) -> None:
    async def route(staff: Staff, services: Services, request: Request) -> Response:
        content, headers = await raw(request)
        answer = await services.forward(
            row.service,
            row.method,
            row.service_path.format(**{k: segment(v) for k, v in request.path_params.items()}),
            params=dict(request.query_params),
            content=content or None,
            headers=headers,
        )
        # A job's Location names the catalogue's own route; the admin polls the gateway's.
        location = answer.headers.get("location", "")
        if row.service == "catalog" and location.startswith("/admin/jobs/"):
            answer.headers["location"] = f"{API}/staff/catalog/jobs/" + location.split("/")[-1]
        return answer

    route.__name__ = "staff_" + re.sub(r"\W+", "_", f"{row.method}_{row.path}").strip("_").lower()
    answers = (STAFF, UPLOADS) if row.uploads else (STAFF,)
    # The route reads its path parameters from the request, not its signature: the document
    # declares them, so a client's types take them as path parameters.
    path_parameters = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in re.findall(r"\{(\w+)\}", row.path)
    ]
    router.add_api_route(
        row.path,
        route,
        methods=[row.method],
        summary=row.summary,
        responses=problems(*answers, FORWARDED_PROBLEMS),
        openapi_extra={"parameters": path_parameters} if path_parameters else None,
    )


for _row in STAFF_ROUTES:
    _pass_through(_row)
