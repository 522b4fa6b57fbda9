"""Reading uploads (wangban/multipart.py): a plain body or multipart parts as they stream in,
the size limit enforced on what arrives rather than on what the client declares, and a body
that is not what it claims refused with a Chinese problem, never a 500."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx
import pytest
from starlette.requests import Request

from wangban.errors import BadRequest, Problem
from wangban.multipart import MAX_FIELD_BYTES, MAX_FILES, read_parts


class TooLarge(Problem):
    status = 413
    type_slug = "test-too-large"
    title = "太大"


def _request(
    body: bytes, content_type: str, *, chunk: int = 4096, declared: bool = True
) -> Request:
    """A request whose body arrives in ``chunk``-byte messages, as a server hands it over."""
    headers = [(b"content-type", content_type.encode("latin-1"))]
    if declared:
        headers.append((b"content-length", str(len(body)).encode()))
    pieces = [body[i : i + chunk] for i in range(0, len(body), chunk)] or [b""]
    messages: list[dict[str, Any]] = [
        {"type": "http.request", "body": piece, "more_body": i < len(pieces) - 1}
        for i, piece in enumerate(pieces)
    ]

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    scope = {"type": "http", "method": "POST", "path": "/upload", "headers": headers}
    return Request(scope, receive)


def _multipart(
    files: Sequence[tuple[str, tuple[str, bytes, str]]], data: dict[str, str] | None = None
) -> tuple[bytes, str]:
    """A multipart body as an HTTP client writes it."""
    built = httpx.Request("POST", "http://test/upload", files=list(files), data=data)
    return built.read(), built.headers["content-type"]


async def test_a_plain_body_is_the_named_part() -> None:
    parts = await read_parts(
        _request(b"a,b\n1,2\n", "text/csv"), limit=100, too_large=TooLarge(), plain_part="items"
    )
    assert parts["items"].data == b"a,b\n1,2\n" and parts["items"].media_type == "text/csv"


async def test_files_and_fields_come_back_by_name_with_their_declared_type() -> None:
    scan = b"%PDF-1.4\n" + bytes(range(256)) * 40  # binary, across several chunks
    body, content_type = _multipart(
        [("file", ("扫描件.pdf", scan, "application/pdf; name=x"))],
        {"material_name": "居民身份证", "applicant_kind": "person"},
    )
    parts = await read_parts(
        _request(body, content_type, chunk=1000),
        limit=len(body),
        too_large=TooLarge(),
        plain_part="x",
    )
    assert parts["file"].data == scan
    assert parts["file"].media_type == "application/pdf"
    assert parts["file"].filename == "扫描件.pdf"
    assert parts["material_name"].data.decode() == "居民身份证"
    assert parts["applicant_kind"].data == b"person"


async def test_the_limit_holds_on_what_arrives_whatever_is_declared() -> None:
    body, content_type = _multipart([("file", ("big.pdf", b"0" * 50_000, "application/pdf"))])
    with pytest.raises(TooLarge):
        await read_parts(
            _request(body, content_type, declared=False),
            limit=10_000,
            too_large=TooLarge(),
            plain_part="x",
        )
    with pytest.raises(TooLarge):  # declared too large: refused before reading
        await read_parts(
            _request(body, content_type), limit=10_000, too_large=TooLarge(), plain_part="x"
        )
    with pytest.raises(TooLarge):  # a plain body too
        await read_parts(
            _request(b"x" * 20_000, "text/csv", declared=False),
            limit=10_000,
            too_large=TooLarge(),
            plain_part="items",
        )


@pytest.mark.parametrize(
    "case",
    ["no boundary", "too many files", "a field too long"],
)
async def test_a_body_that_is_not_a_reasonable_form_is_a_bad_request(case: str) -> None:
    if case == "no boundary":
        body, content_type = b"--x\r\nnonsense", "multipart/form-data"
    elif case == "too many files":
        body, content_type = _multipart(
            [(f"f{i}", (f"{i}.pdf", b"%PDF", "application/pdf")) for i in range(MAX_FILES + 1)]
        )
    else:
        body, content_type = _multipart(
            [("file", ("a.pdf", b"%PDF", "application/pdf"))],
            {"material_name": "长" * MAX_FIELD_BYTES},
        )
    with pytest.raises(BadRequest) as refused:
        await read_parts(
            _request(body, content_type), limit=10**7, too_large=TooLarge(), plain_part="x"
        )
    assert "multipart/form-data" in str(refused.value.detail)
