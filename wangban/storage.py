"""Where applicants' uploaded materials are kept: a local folder or an S3-compatible store.

Services depend on the :class:`ObjectStore` protocol only; :func:`object_store_from_settings`
picks the implementation. Objects are whole byte strings addressed by a key that our own code
makes up (never a user's file name), so keys are checked strictly and the same key means the
same object on a laptop folder and in a bucket. The S3 store is :mod:`wangban.s3`, imported
only when one is configured (its client costs about half a second and 17 MB to import).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Final, Protocol
from urllib.parse import quote, urlsplit

from wangban.db import check_no_transaction
from wangban.settings import ConfigurationError

if TYPE_CHECKING:
    from pydantic import SecretStr

    from wangban.settings import Settings

__all__ = [
    "LocalObjectStore",
    "ObjectNotFound",
    "ObjectStore",
    "ObjectStoreError",
    "content_disposition",
    "object_store_from_settings",
    "validate_key",
]

MAX_KEY_LENGTH: Final = 512
_KEY_CHARS = re.compile(r"[A-Za-z0-9/_.-]+")
BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_DIR_MODE: Final = 0o700


class ObjectNotFound(LookupError):
    """No object is stored under the key."""

    def __init__(self, key: str) -> None:
        super().__init__(f"no object stored under {key!r}")
        self.key = key


class ObjectStoreError(RuntimeError):
    """The store failed or refused the request (network, permissions, signature, disk).

    ``status`` is the HTTP status from an S3-compatible store (None for local or transport
    failures); ``code`` is the S3 error code when the store sent one (``AccessDenied``,
    ``SignatureDoesNotMatch``…).
    """

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None):
        super().__init__(message)
        self.status = status
        self.code = code


class ObjectStore(Protocol):
    async def put(self, key: str, data: bytes, *, content_type: str) -> None:
        """Store ``data`` under ``key``, replacing whatever was there, all or nothing."""
        ...

    async def get(self, key: str) -> bytes:
        """The object's bytes; :class:`ObjectNotFound` when there is none."""
        ...

    async def delete(self, key: str) -> None:
        """Remove the object; removing a missing object is not an error."""
        ...

    async def exists(self, key: str) -> bool: ...

    async def download_url(
        self,
        key: str,
        *,
        expires_in: timedelta,
        filename: str | None = None,
        content_type: str | None = None,
    ) -> str | None:
        """A URL anyone holding it may GET the object from until ``expires_in`` has passed,
        answered as an attachment (named ``filename``) of ``content_type``; None where the
        store has no such URLs (the caller then streams :meth:`get`)."""
        ...

    async def close(self) -> None: ...


def validate_key(key: str) -> str:
    """Return ``key`` if it is a valid object key, else raise ValueError.

    Keys are ``[A-Za-z0-9/_.-]``, at most 512 characters, with no leading ``/``, no ``..``
    anywhere, and no empty or ``.`` segments. The last two rules are stricter than S3 needs:
    on a local disk ``a//b``, ``a/./b`` and ``a/b`` would be one file, and a store that
    quietly merges keys is worse than one that refuses them.
    """
    if not isinstance(key, str) or not key:
        raise ValueError("object key must be a non-empty string")
    if len(key) > MAX_KEY_LENGTH:
        raise ValueError(f"object key longer than {MAX_KEY_LENGTH} characters")
    if not _KEY_CHARS.fullmatch(key):
        raise ValueError(f"object key {key!r} has characters outside [A-Za-z0-9/_.-]")
    if key.startswith("/"):
        raise ValueError(f"object key {key!r} starts with '/'")
    if ".." in key:
        raise ValueError(f"object key {key!r} contains '..'")
    if any(segment in ("", ".") for segment in key.split("/")):
        raise ValueError(f"object key {key!r} has an empty or '.' segment")
    return key


# --- Local folder ------------------------------------------------------------------------


class LocalObjectStore:
    """Objects as files under ``root`` (``<data_dir>/objects`` by default).

    For one machine: a laptop, a test, a single-node deployment. Writes are atomic (a
    temporary file in the same directory, fsynced, then renamed over the target, then the
    directory fsynced), so a reader sees the old object or the new one, never a mix, and a
    crash leaves at worst an orphaned ``.upload-*.tmp`` file, never a half-written object.
    Files are 0600 and directories 0700: these are scans of ID cards. The content type is
    not kept; the caller records it with the material.

    A key cannot be both an object and a "folder" here (``a`` and ``a/b``), unlike S3; such a
    put fails with :class:`ObjectStoreError`. Directories emptied by deletes are left in place
    (removing them would race with a concurrent put into the same directory).
    """

    def __init__(self, root: Path, *, caller: str = "wangban") -> None:
        self.root = Path(root).absolute()
        self._caller = caller

    def _path(self, key: str, method: str) -> Path:
        # The same guard as the S3 store's client, so a test on the folder store catches a
        # transaction held across a store call that S3 would make wait on the network.
        check_no_transaction(f"{self._caller} → object store {method}", detail=key)
        return self.root.joinpath(*validate_key(key).split("/"))

    async def put(self, key: str, data: bytes, *, content_type: str) -> None:
        path = self._path(key, "PUT")
        try:
            await asyncio.to_thread(self._write, path, bytes(data))
        except OSError as exc:
            raise ObjectStoreError(f"cannot store {key!r}: {exc.strerror or exc}") from exc

    async def get(self, key: str) -> bytes:
        path = self._path(key, "GET")
        try:
            return await asyncio.to_thread(path.read_bytes)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise ObjectNotFound(key) from None
        except OSError as exc:
            raise ObjectStoreError(f"cannot read {key!r}: {exc.strerror or exc}") from exc

    async def delete(self, key: str) -> None:
        path = self._path(key, "DELETE")
        try:
            await asyncio.to_thread(path.unlink)
        except (FileNotFoundError, NotADirectoryError):
            return
        except OSError as exc:
            raise ObjectStoreError(f"cannot delete {key!r}: {exc.strerror or exc}") from exc

    async def exists(self, key: str) -> bool:
        path = self._path(key, "HEAD")
        return await asyncio.to_thread(path.is_file)

    async def download_url(
        self,
        key: str,
        *,
        expires_in: timedelta,
        filename: str | None = None,
        content_type: str | None = None,
    ) -> str | None:
        validate_key(key)
        return None  # no server of its own: the service streams the file

    async def close(self) -> None:
        return None

    def _write(self, path: Path, data: bytes) -> None:
        self._make_dirs(path.parent)
        # mkstemp opens with O_EXCL and mode 0600 (whatever the umask), so the file is never
        # readable by others, not even for the moment before the rename.
        fd, temp_name = tempfile.mkstemp(dir=path.parent, prefix=".upload-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp_name, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp_name)
            raise
        # The rename is durable only once the directory entry is on disk.
        _fsync_dir(path.parent)

    def _make_dirs(self, directory: Path) -> None:
        # Path.mkdir(parents=True) gives parents the default mode; create each level 0700.
        missing: list[Path] = []
        current = directory
        while not current.is_dir():
            missing.append(current)
            if current == current.parent:
                break
            current = current.parent
        for level in reversed(missing):
            with contextlib.suppress(FileExistsError):
                level.mkdir(mode=_DIR_MODE)
        # A concurrent put may have won the race with a file where we need a directory.
        if not directory.is_dir():
            raise NotADirectoryError(f"{directory} is not a directory")


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# --- Either store ------------------------------------------------------------------------


def content_disposition(filename: str | None) -> str:
    """``attachment``, with the file name as RFC 6266 ``filename*`` when there is one: the
    header a download carries, whether we stream it or the store answers a presigned URL."""
    if not filename:
        return "attachment"
    return f"attachment; filename*=UTF-8''{quote(filename, safe='')}"


def object_store_from_settings(settings: Settings, *, caller: str = "wangban") -> ObjectStore:
    """The store ``WANGBAN_OBJECT_STORE_URL`` names: empty for ``<data_dir>/objects``,
    ``s3://bucket/prefix`` for an S3-compatible store (``WANGBAN_S3_*``). ``caller``, the
    service using it, labels the transaction guard's reports."""
    url = settings.object_store_url
    if not url:
        return LocalObjectStore(Path(settings.data_dir) / "objects", caller=caller)
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc or parts.query or parts.fragment:
        raise ConfigurationError(
            f"WANGBAN_OBJECT_STORE_URL must be empty or s3://bucket/prefix, not {url!r}"
        )
    if (settings.s3_access_key is None) != (settings.s3_secret_key is None):
        raise ConfigurationError(
            "set both WANGBAN_S3_ACCESS_KEY and WANGBAN_S3_SECRET_KEY, or neither (then the "
            "standard AWS credential chain: environment, web identity, instance profile)"
        )
    from wangban.s3 import S3ObjectStore

    try:
        return S3ObjectStore(
            endpoint_url=settings.s3_endpoint_url or None,
            bucket=parts.netloc,
            prefix=parts.path.strip("/"),
            region=settings.s3_region,
            access_key=_secret(settings.s3_access_key),
            secret_key=_secret(settings.s3_secret_key),
            addressing_style=settings.s3_addressing_style,
            multipart_threshold=settings.s3_multipart_threshold_bytes,
            caller=caller,
        )
    except ValueError as exc:
        raise ConfigurationError(
            f"WANGBAN_OBJECT_STORE_URL / WANGBAN_S3_ENDPOINT_URL: {exc}"
        ) from exc


def _secret(value: SecretStr | None) -> str | None:
    return None if value is None else value.get_secret_value()
