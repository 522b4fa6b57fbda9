"""The applicant's material library: uploading a file, listing and downloading them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Literal

from fastapi import APIRouter, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from intake_service import repository
from intake_service.api.deps import Clerk, Runtime, Shared, can_accept
from intake_service.applications.errors import FileNotFound, FileRejected, InvalidApplicant
from intake_service.applying import counter_applicant
from intake_service.models import StoredFile
from intake_service.schemas import FileOut
from wangban.auth import CurrentIdentity
from wangban.db import UnitOfWork
from wangban.errors import BadRequest, problem_responses
from wangban.multipart import Part, read_parts, size_text
from wangban.uploads import UploadRejected, check_upload

router = APIRouter(tags=["applications"])

APPLICANT_KINDS: dict[str, Literal["person", "company"]] = {
    "person": "person",
    "company": "company",
}


def _multipart(**fields: dict[str, object]) -> dict[str, object]:
    """The request body a route reads itself (multipart, checked by content), as OpenAPI says
    it, so clients generated from the document can send it."""
    return {
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["file", "material_name"],
                        "properties": {
                            "file": {"type": "string", "format": "binary"},
                            "material_name": {"type": "string", "maxLength": 200},
                            **fields,
                        },
                    }
                }
            },
        }
    }


@router.post(
    "/files",
    status_code=201,
    summary="Upload a material (multipart: part `file`, field `material_name`)",
    responses=problem_responses(FileRejected, BadRequest),
    openapi_extra=_multipart(),
)
async def upload_file(
    request: Request, session: UnitOfWork, identity: CurrentIdentity, runtime: Shared
) -> FileOut:
    parts = await _upload_parts(request, runtime)
    return await _store(session, runtime, parts, owner_subject=identity.subject)


@router.post(
    "/staff/files",
    status_code=201,
    summary="A window clerk scans a paper material for the applicant at the counter "
    "(multipart: `file`, `material_name`, `applicant_kind`, `applicant_id_number`)",
    description="The file goes into the applicant's material library, so the window "
    "application filed for them can name it, and they find it again online.",
    responses=problem_responses(FileRejected, BadRequest, InvalidApplicant),
    openapi_extra=_multipart(
        applicant_kind={"type": "string", "enum": ["person", "company"], "default": "person"},
        applicant_id_number={"type": "string", "maxLength": 18},
    ),
)
async def upload_for_applicant(
    request: Request, session: UnitOfWork, clerk: Clerk, runtime: Shared
) -> FileOut:
    parts = await _upload_parts(request, runtime)
    kind = APPLICANT_KINDS.get(_text(parts, "applicant_kind") or "person")
    if kind is None:
        raise BadRequest("applicant_kind 只能是 person 或 company")
    applicant = counter_applicant(
        kind=kind, id_number=_text(parts, "applicant_id_number"), name="", keys=runtime.keys
    )
    return await _store(session, runtime, parts, owner_subject=applicant.subject)


def _text(parts: dict[str, Part], name: str) -> str:
    part = parts.get(name)
    return "" if part is None else part.data.decode("utf-8", errors="replace").strip()


async def _upload_parts(request: Request, runtime: Runtime) -> dict[str, Part]:
    limit = runtime.settings.upload_max_bytes
    return await read_parts(
        request,
        limit=limit + 64 * 1024,  # room for the multipart envelope; the file is checked below
        too_large=FileRejected(f"文件超过 {size_text(limit)}"),
        plain_part="file",
    )


async def _store(
    session: AsyncSession, runtime: Runtime, parts: dict[str, Part], *, owner_subject: str
) -> FileOut:
    """Check the upload's ``file`` (size, type by its content) and keep it in the owner's
    material library."""
    limit = runtime.settings.upload_max_bytes
    file = parts.get("file")
    if file is None or parts.get("material_name") is None:
        raise BadRequest("请在 multipart 请求中提供 file 和 material_name 两部分")
    material_name = _text(parts, "material_name")[:200]
    try:
        checked = check_upload(
            data=file.data,
            declared_type=file.media_type,
            filename=file.filename,
            max_bytes=limit,
            allowed_types=runtime.settings.upload_allowed_types,
        )
    except UploadRejected as exc:
        raise FileRejected(str(exc), extra={"reason": exc.reason}) from exc
    file_id = str(uuid.uuid4())
    key = f"materials/{file_id}"
    await runtime.store.put(key, file.data, content_type=checked.media_type)
    row = StoredFile(
        id=file_id,
        owner_subject=owner_subject,
        material_name=material_name,
        filename=checked.filename,
        media_type=checked.media_type,
        size=checked.size,
        sha256=checked.sha256,
        storage_key=key,
        created_at=datetime.now(UTC),
    )
    session.add(row)
    await session.flush()
    return FileOut.model_validate(row)


@router.get("/files", summary="My material library (一次提交、重复使用)")
async def my_files(
    session: UnitOfWork, identity: CurrentIdentity, material_name: str | None = None
) -> list[FileOut]:
    rows = await repository.library(
        session, owner_subject=identity.subject, material_name=material_name
    )
    return [FileOut.model_validate(r) for r in rows]


@router.get(
    "/files/{file_id}",
    summary="Download a file: its owner, or staff handling an application that uses it",
    response_class=Response,
    responses=problem_responses(FileNotFound),
)
async def download_file(
    file_id: str, session: UnitOfWork, identity: CurrentIdentity, runtime: Shared
) -> Response:
    try:
        uuid.UUID(file_id)
    except ValueError:
        raise FileNotFound() from None
    row = await repository.stored_file(session, file_id)
    if row is None:
        raise FileNotFound()
    allowed = row.owner_subject == identity.subject
    if not allowed and identity.kind == "staff":
        # Staff handling an application that uses the file: its reviewers and the window that
        # accepted it. Reading everything (auditors) does not extend to applicants' files.
        users = await repository.applications_using_file(session, file_id)
        allowed = any(can_accept(identity, a) for a in users)
    if not allowed:
        raise FileNotFound()
    settings = runtime.settings
    if settings.s3_presigned_downloads:
        # The store answers the download itself (None from a store that cannot: stream it).
        # Same headers as the streamed answer; the URL is for this entitled caller only and
        # short-lived, so it must not be kept by any cache on the way.
        url = await runtime.store.download_url(
            row.storage_key,
            expires_in=timedelta(seconds=settings.s3_presigned_expires_s),
            content_type=row.media_type,
        )
        if url is not None:
            return Response(
                status_code=307,
                headers={"Location": url, "Cache-Control": "private, no-store"},
            )
    data = await runtime.store.get(row.storage_key)
    return Response(
        data,
        media_type=row.media_type,
        headers={
            "Content-Disposition": "attachment",
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "private, no-store",
        },
    )
