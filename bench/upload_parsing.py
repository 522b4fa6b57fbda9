"""Reading an upload (``wangban.multipart.read_parts``): time and peak memory for one
multipart body of ``--mib`` MiB, arriving in 64 KiB messages as uvicorn hands it over.

    python -m bench.upload_parsing [--mib 20]

Memory is Python's traced allocations (tracemalloc, which slows both the figure's subject and
itself; compare runs of this script, not with a server's RSS).
"""

from __future__ import annotations

import argparse
import asyncio
import time
import tracemalloc
from typing import Any

import httpx
from starlette.requests import Request

from wangban.errors import Problem
from wangban.multipart import read_parts

CHUNK = 64 * 1024


class _TooLarge(Problem):
    status = 413
    type_slug = "bench-too-large"
    title = "太大"


def _request(body: bytes, content_type: str) -> Request:
    pieces = [body[i : i + CHUNK] for i in range(0, len(body), CHUNK)]
    messages: list[dict[str, Any]] = [
        {"type": "http.request", "body": piece, "more_body": i < len(pieces) - 1}
        for i, piece in enumerate(pieces)
    ]

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    headers = [(b"content-type", content_type.encode("latin-1"))]
    return Request({"type": "http", "method": "POST", "path": "/", "headers": headers}, receive)


async def _measure(mib: int) -> tuple[float, float]:
    scan = b"%PDF-1.4\n" + bytes(range(256)) * (mib * 4096)
    built = httpx.Request(
        "POST",
        "http://bench/upload",
        files=[("file", ("scan.pdf", scan, "application/pdf"))],
        data={"material_name": "居民身份证"},
    )
    body, content_type = built.read(), built.headers["content-type"]
    request = _request(body, content_type)
    tracemalloc.start()
    started = time.perf_counter()
    parts = await read_parts(request, limit=len(body), too_large=_TooLarge(), plain_part="file")
    elapsed = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert parts["file"].data == scan
    return elapsed, peak / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=20)
    args = parser.parse_args()
    elapsed, peak = asyncio.run(_measure(args.mib))
    print(f"{args.mib} MiB multipart upload: {elapsed:.3f} s, peak traced memory {peak:.1f} MiB")


if __name__ == "__main__":
    main()
