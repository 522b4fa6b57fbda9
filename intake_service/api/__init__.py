"""Routes of the intake service, one module per area: parse, authorise, call, return.

Who sees what: an applicant only their own applications and files (anything else answers 404,
as if it did not exist); a window clerk what was accepted at their window; a reviewer their
department's applications; an auditor everything, changing nothing.

``ROUTERS`` in the order the service mounts them (the order of its OpenAPI document).
"""

from __future__ import annotations

from fastapi import APIRouter

from intake_service.api import citizen, files, ratings, staff, statistics, window

ROUTERS: tuple[APIRouter, ...] = (
    citizen.router,
    files.router,
    ratings.router,
    window.router,
    staff.router,
    ratings.staff_router,
    statistics.router,
)
