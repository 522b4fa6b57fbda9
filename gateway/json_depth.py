"""A bound on how deep a JSON request body may nest, checked before anything parses it.

Python's parsers and every function that walks a parsed value recurse once per level: a body of
a few kilobytes nested ten thousand deep (``[[[[…]]]]``) made the gateway's own checks fail with
``RecursionError`` (500) and the services choke on it when it was passed through. No form, rule
set or catalogue item comes near 32 levels, so deeper bodies are refused at the door (422), in
one pass over the bytes that counts brackets outside strings and recurses on nothing.
"""

from __future__ import annotations

import json
import re
from email.message import Message as MimeMessage
from typing import Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from wangban.errors import ValidationFailed

MAX_DEPTH: Final = 32

# A whole string (escapes included; an unterminated one runs to the end) or one bracket: the
# brackets inside strings are skipped with their string.
_TOKENS: Final = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"?|[\[\]{}]', re.DOTALL)
_OPENING: Final = frozenset(b"[{")


class JsonTooDeep(ValidationFailed):
    type_slug = "json-too-deep"
    title = "请求内容嵌套过深"


def too_deep(body: bytes, max_depth: int = MAX_DEPTH) -> bool:
    """Whether the JSON text ``body`` nests arrays and objects deeper than ``max_depth``
    (whether or not it is valid JSON otherwise: the parser decides that)."""
    if body.count(b"[") + body.count(b"{") <= max_depth:
        return False  # not enough brackets to get there: nothing to scan
    depth = 0
    for token in _TOKENS.finditer(body):
        first = body[token.start()]
        if first in _OPENING:
            depth += 1
            if depth > max_depth:
                return True
        elif first != ord('"'):
            depth = max(depth - 1, 0)
    return False


def _is_json(scope: Scope) -> bool:
    """Bodies FastAPI would parse as JSON: declared JSON (``application/json``, ``…+json``) or
    undeclared. Uploads, CSV imports and forms are someone else's business."""
    declared = next((v for k, v in scope.get("headers", []) if k == b"content-type"), None)
    if declared is None:
        return True
    mime = MimeMessage()
    mime["content-type"] = declared.decode("latin-1")
    subtype = mime.get_content_subtype()
    return subtype == "json" or subtype.endswith("+json")


class JsonDepthLimit:
    """Reads a JSON request body whole (``BodyLimit``, outside, has bounded its size), refuses
    it with 422 if it nests deeper than ``max_depth``, else hands it on unchanged."""

    def __init__(self, app: ASGIApp, *, max_depth: int = MAX_DEPTH) -> None:
        self.app = app
        self.max_depth = max_depth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _is_json(scope):
            await self.app(scope, receive, send)
            return
        received: list[Message] = []
        while True:
            message = await receive()
            received.append(message)
            if message["type"] != "http.request" or not message.get("more_body", False):
                break
        body = b"".join(m.get("body", b"") for m in received if m["type"] == "http.request")
        if too_deep(body, self.max_depth):
            await _refuse(scope, send, self.max_depth)
            return

        async def replay() -> Message:
            if received:
                return received.pop(0)
            return await receive()

        await self.app(scope, replay, send)


async def _refuse(scope: Scope, send: Send, max_depth: int) -> None:
    problem = JsonTooDeep(f"请求内容的嵌套层数不能超过 {max_depth} 层")
    body = json.dumps(problem.to_body(scope.get("path"), None), ensure_ascii=False).encode()
    await send(
        {
            "type": "http.response.start",
            "status": problem.status,
            "headers": [
                (b"content-type", b"application/problem+json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
