"""What the routes share: the app's runtime (keys, calendar, clients, store), the roles a route
asks for, and the identity's access to an application."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, FastAPI, Request
from sqlalchemy.ext.asyncio import AsyncSession

from intake_service import catalog_copies, repository
from intake_service.applications.creation import Keys
from intake_service.applications.errors import (
    AlreadyGranted,
    ApplicantMismatch,
    ApplicationNotFound,
    ApplicationOpen,
    IdempotencyKeyMissing,
    IdempotencyKeyReused,
    InvalidApplicant,
    InvalidForm,
    ItemNotFound,
    ItemVersionNotAvailable,
    MaterialsIncomplete,
    ScopeNotAllowed,
)
from intake_service.applying import Services
from intake_service.catalog_copies import CatalogUnavailable
from intake_service.models import Application
from intake_service.sharing import Sharing, SharingUnavailable
from wangban.auth import (
    AUDITOR,
    REVIEWER,
    WINDOW_CLERK,
    Identity,
    InsufficientAssurance,
    require_roles,
)
from wangban.calendar import WorkingDayCalendar
from wangban.crypto import BlindIndex, FieldCipher
from wangban.db import Database
from wangban.settings import Settings
from wangban.storage import ObjectStore, object_store_from_settings

# --- per-app objects ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Runtime(Services):
    """What the routes share within one running app: what applying uses (keys, calendar,
    clients, the database), the settings and the object store."""

    settings: Settings
    store: ObjectStore

    @classmethod
    def of(cls, settings: Settings, database: Database) -> Runtime:
        return cls(
            database=database,
            catalog=catalog_copies.catalog_calls(settings),
            sharing=Sharing(settings),
            keys=Keys(FieldCipher.from_settings(settings), BlindIndex.from_settings(settings)),
            calendar=WorkingDayCalendar.from_settings(settings),
            settings=settings,
            store=object_store_from_settings(settings, caller="intake"),
        )


async def _runtime(request: Request) -> Runtime:
    state = request.app.state
    if not hasattr(state, "intake_runtime"):
        state.intake_runtime = Runtime.of(state.settings, state.database)
    runtime: Runtime = state.intake_runtime
    return runtime


async def close_runtime(app: FastAPI) -> None:
    runtime = getattr(app.state, "intake_runtime", None)
    if runtime is not None:
        await runtime.sharing.aclose()
        await runtime.catalog.aclose()
        await runtime.store.close()


Shared = Annotated[Runtime, Depends(_runtime)]

# What applying may answer, besides the application (the routes' documented problems).
APPLY_ERRORS = (
    SharingUnavailable,
    CatalogUnavailable,
    IdempotencyKeyMissing,
    IdempotencyKeyReused,
    InsufficientAssurance,
    InvalidApplicant,
    ApplicantMismatch,
    ItemNotFound,
    ItemVersionNotAvailable,
    InvalidForm,
    MaterialsIncomplete,
    ScopeNotAllowed,
    ApplicationOpen,
    AlreadyGranted,
)

# --- roles --------------------------------------------------------------------------------------

Clerk = Annotated[Identity, Depends(require_roles(WINDOW_CLERK))]
StaffMember = Annotated[Identity, Depends(require_roles(WINDOW_CLERK, REVIEWER, AUDITOR))]
Reviewer = Annotated[Identity, Depends(require_roles(REVIEWER))]
Manager = Annotated[Identity, Depends(require_roles(REVIEWER, AUDITOR))]

# --- access -------------------------------------------------------------------------------------


def can_read(identity: Identity, application: Application) -> bool:
    if identity.kind in ("citizen", "company"):
        return application.applicant_subject == identity.subject or (
            application.agent_subject == identity.subject
        )
    if identity.kind != "staff":
        return False
    if identity.has_any_role(AUDITOR):
        return True
    if identity.has_any_role(REVIEWER) and identity.department == application.department:
        return True
    return identity.has_any_role(WINDOW_CLERK) and (
        application.accepting_window is not None
        and application.accepting_window == identity.department
    )


async def readable(session: AsyncSession, identity: Identity, application_id: str) -> Application:
    try:
        uuid.UUID(application_id)
    except ValueError:
        raise ApplicationNotFound() from None
    application = await repository.application(session, application_id)
    if application is None or not can_read(identity, application):
        raise ApplicationNotFound()
    return application


def own(identity: Identity, application: Application) -> None:
    if application.applicant_subject != identity.subject:
        raise ApplicationNotFound()


def can_accept(identity: Identity, application: Application) -> bool:
    """Who handles an application: the deciding department's reviewers, and the window that
    took it in. Online submissions are checked by the department (its reviewers)."""
    if identity.kind != "staff":
        return False
    if identity.has_any_role(REVIEWER) and identity.department == application.department:
        return True
    return identity.has_any_role(WINDOW_CLERK) and (
        application.accepting_window is not None
        and application.accepting_window == identity.department
    )


async def readable_for_acceptance(
    session: AsyncSession, member: Identity, application_id: str, *, lock: bool = True
) -> Application:
    """The application if ``member`` handles it (:func:`can_accept`); else as if it did not
    exist. Locked for an action; ``lock=False`` to read it."""
    try:
        uuid.UUID(application_id)
    except ValueError:
        raise ApplicationNotFound() from None
    application = await repository.application(session, application_id, lock=lock)
    if application is None or not can_accept(member, application):
        raise ApplicationNotFound()
    return application
