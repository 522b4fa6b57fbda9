"""The staff console's built files (``console/dist``) at ``/console/``, from the gateway: the
console and the API it calls share one origin, so no CORS, and its tokens never cross sites.

Any path under ``/console/`` that is not a file is the console's own route (a single-page app):
it gets ``index.html``. Hashed assets are kept a year; ``index.html`` never, so a new console
reaches every desk on its next load. The pages get a policy that allows their own scripts and
styles (the API answers keep theirs, which allows nothing).
"""

from __future__ import annotations

import mimetypes
from pathlib import Path
from typing import Final

from fastapi import FastAPI
from fastapi.responses import FileResponse, RedirectResponse, Response

PREFIX: Final = "/console"

CONSOLE_POLICY: Final = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; "
    "frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
)
"""TDesign sets inline styles on its components: style-src allows them; scripts only ours."""

_IMMUTABLE: Final = "public, max-age=31536000, immutable"


def _file(directory: Path, relative: str) -> Path | None:
    """The file at ``relative`` inside ``directory``, or None (never outside it)."""
    candidate = (directory / relative).resolve()
    if not candidate.is_relative_to(directory) or not candidate.is_file():
        return None
    return candidate


def mount_console(app: FastAPI, directory: Path) -> None:
    root = directory.resolve()
    index = root / "index.html"
    if not index.is_file():
        raise RuntimeError(f"no built console at {root} (run `npm run build` in console/)")

    async def redirect() -> Response:
        return RedirectResponse(f"{PREFIX}/", status_code=308)

    async def serve(path: str = "") -> Response:
        found = _file(root, path) if path else None
        headers = {"content-security-policy": CONSOLE_POLICY}
        if found is None:
            # The console's own routes (and anything unknown) are the app's page.
            headers["cache-control"] = "no-cache"
            return FileResponse(index, media_type="text/html", headers=headers)
        headers["cache-control"] = "no-cache" if found == index else _IMMUTABLE
        media_type = mimetypes.guess_type(found.name)[0] or "application/octet-stream"
        return FileResponse(found, media_type=media_type, headers=headers)

    app.add_api_route(PREFIX, redirect, methods=["GET"], include_in_schema=False)
    app.add_api_route(f"{PREFIX}/", serve, methods=["GET"], include_in_schema=False)
    app.add_api_route(f"{PREFIX}/{{path:path}}", serve, methods=["GET"], include_in_schema=False)
