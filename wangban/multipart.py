"""Reading a file upload from a request: a plain body or ``multipart/form-data``, with a size
limit enforced while the body streams in (a client cannot make us buffer more than the limit,
whatever Content-Length it declares).

Multipart bodies are parsed as they arrive by Starlette's parser (python-multipart underneath):
a file part is spooled (in memory up to 1 MB, then a temporary file) rather than the whole body
being held and copied again by a MIME parser, and the number of parts and the size of each
plain field are bounded.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from typing import Final

from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request

from wangban.errors import BadRequest, Problem

MAX_FILES: Final = 8
"""File parts in one upload (an import sends at most two: the items and their materials)."""
MAX_FIELDS: Final = 16
"""Plain fields in one upload (a material's name, the applicant's kind and number, …)."""
MAX_FIELD_BYTES: Final = 64 * 1024
"""A plain field is a name or a number, never a document."""


@dataclass(frozen=True)
class Part:
    media_type: str
    """As declared by the client (may be empty); check the content, not this."""
    filename: str
    data: bytes


async def read_parts(
    request: Request, *, limit: int, too_large: Problem, plain_part: str
) -> dict[str, Part]:
    """The request's parts by name; a body that is not multipart is the part ``plain_part``.
    Raises ``too_large`` as soon as more than ``limit`` bytes arrived."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    body = _limited(request.stream(), limit=limit, too_large=too_large)
    content_type = request.headers.get("content-type", "")
    if not content_type.lower().startswith("multipart/form-data"):
        data = b"".join([chunk async for chunk in body])
        return {plain_part: Part(media_type=content_type, filename="", data=data)}
    parser = MultiPartParser(
        request.headers,
        body,
        max_files=MAX_FILES,
        max_fields=MAX_FIELDS,
        max_part_size=MAX_FIELD_BYTES,
    )
    try:
        form = await parser.parse()
    except MultiPartException as refused:
        raise BadRequest(f"上传内容不是有效的 multipart/form-data：{refused.message}") from None
    try:
        parts: dict[str, Part] = {}
        for name, value in form.multi_items():
            if isinstance(value, UploadFile):
                media = (value.content_type or "").split(";")[0].strip()
                data = await value.read()
                parts[name] = Part(media_type=media, filename=value.filename or "", data=data)
            else:
                parts[name] = Part(media_type="", filename="", data=value.encode("utf-8"))
        return parts
    finally:
        await form.close()


async def _limited(
    stream: AsyncIterator[bytes], *, limit: int, too_large: Problem
) -> AsyncGenerator[bytes, None]:
    received = 0
    async for chunk in stream:
        received += len(chunk)
        if received > limit:
            raise too_large
        yield chunk


def size_text(limit: int) -> str:
    """``20 MB`` or ``512 KB``: a limit as people read it."""
    return f"{limit // 2**20} MB" if limit % 2**20 == 0 else f"{limit // 1024} KB"
