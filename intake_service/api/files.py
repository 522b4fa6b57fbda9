"""The applicant's material library: uploading a file, listing and downloading them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from fastapi import APIRouter, Request, Response

from intake_service import repository
from intake_service.api.deps import Shared, can_accept
from intake_service.applications.errors import FileNotFound, FileRejected
from intake_service.models import StoredFile
from intake_service.schemas import FileOut
from wangban.auth import CurrentIdentity
from wangban.db import UnitOfWork
from wangban.errors import BadRequest, problem_responses
from wangban.multipart import read_parts, size_text
from wangban.uploads import UploadRejected, check_upload

router = APIRouter(tags=["applications"])


@router.post(
    "/files",
    status_code=201,
    summary="Upload a material (multipart: part `file`, field `material_name`)",
    responses=problem_responses(FileRejected, BadRequest),
)
async def upload_file(
    request: Request, session: UnitOfWork, identity: CurrentIdentity, runtime: Shared
) -> FileOut:
    limit = runtime.settings.upload_max_bytes
    parts = await read_parts(
        request,
        limit=limit + 64 * 1024,  # room for the multipart envelope; the file is checked below
        too_large=FileRejected(f"文件超过 {size_text(limit)}"),
        plain_part="file",
    )
    file = parts.get("file")
    name_part = parts.get("material_name")
    if file is None or name_part is None:
        raise BadRequest("请在 multipart 请求中提供 file 和 material_name 两部分")
    material_name = name_part.data.decode("utf-8", errors="replace").strip()[:200]
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
        owner_subject=identity.subject,
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
