"""Reading a file upload from a request: a plain body or ``multipart/form-data``, with a size
limit enforced while the body streams in (a client cannot make us buffer more than the limit,
whatever Content-Length it declares)."""

from __future__ import annotations

from dataclasses import dataclass
from email import message_from_bytes
from email.policy import HTTP

from starlette.requests import Request

from wangban.errors import Problem


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
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise too_large
    content_type = request.headers.get("content-type", "")
    if not content_type.lower().startswith("multipart/form-data"):
        return {plain_part: Part(media_type=content_type, filename="", data=bytes(body))}
    message = message_from_bytes(
        f"Content-Type: {content_type}\r\n\r\n".encode("latin-1") + bytes(body), policy=HTTP
    )
    parts: dict[str, Part] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if isinstance(name, str) and isinstance(payload, bytes):
            media = part.get_content_type() if part.get("content-type") else ""
            parts[name] = Part(media_type=media, filename=part.get_filename() or "", data=payload)
    return parts


def size_text(limit: int) -> str:
    """``20 MB`` or ``512 KB``: a limit as people read it."""
    return f"{limit // 2**20} MB" if limit % 2**20 == 0 else f"{limit // 1024} KB"
