"""Where applicants' uploaded materials are kept: a local folder or an S3-compatible store.

Services depend on the :class:`ObjectStore` protocol only; :func:`object_store_from_settings`
picks the implementation. Objects are whole byte strings addressed by a key that our own code
makes up (never a user's file name), so keys are checked strictly and the same key means the
same object on a laptop folder and in a bucket.

The S3 client is plain httpx plus our own AWS Signature Version 4 (header-based, signed
payload, path-style URLs). It speaks to AWS S3 and to the S3-compatible stores government
clouds run (MinIO, Ceph RGW and the like) without pulling in an SDK.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import os
import re
import tempfile
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Final, Protocol
from urllib.parse import urlsplit

import httpx

from wangban.db import check_no_transaction
from wangban.http import RetryingTransport, external_client
from wangban.settings import ConfigurationError

if TYPE_CHECKING:
    from wangban.settings import Settings

__all__ = [
    "LocalObjectStore",
    "ObjectNotFound",
    "ObjectStore",
    "ObjectStoreError",
    "S3ObjectStore",
    "object_store_from_settings",
    "sigv4_authorization",
    "sigv4_canonical_request",
    "sigv4_signing_key",
    "sigv4_string_to_sign",
    "sigv4_uri_encode",
    "validate_key",
]

MAX_KEY_LENGTH: Final = 512
_KEY_CHARS = re.compile(r"[A-Za-z0-9/_.-]+")
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
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


# --- AWS Signature Version 4 ---------------------------------------------------------------

SIGV4_ALGORITHM: Final = "AWS4-HMAC-SHA256"
EMPTY_SHA256: Final = hashlib.sha256(b"").hexdigest()
_UNRESERVED: Final = frozenset(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~"
)
_SPACES = re.compile(r" +")


def sigv4_uri_encode(text: str, *, encode_slash: bool) -> str:
    """SigV4's UriEncode: UTF-8 bytes, unreserved characters kept, every other byte ``%XX``
    in upper-case hex; ``/`` kept only when ``encode_slash`` is false (object paths).

    Python's ``urllib.parse.quote`` differs in small ways across versions (``~``), so the rule
    is written out here rather than trusted to a library default.
    """
    out: list[str] = []
    for byte in text.encode("utf-8"):
        if byte in _UNRESERVED or (byte == 0x2F and not encode_slash):
            out.append(chr(byte))
        else:
            out.append(f"%{byte:02X}")
    return "".join(out)


def sigv4_canonical_request(
    *,
    method: str,
    canonical_uri: str,
    canonical_query: str = "",
    headers: Mapping[str, str],
    payload_sha256: str,
) -> tuple[str, str]:
    """The canonical request and the signed-headers list, for exactly the ``headers`` given.

    ``canonical_uri`` is already URI-encoded (S3 encodes each path segment once and does not
    normalise ``.`` segments). Header names are lower-cased and sorted; values are trimmed and
    runs of spaces collapsed.
    """
    canonical: dict[str, str] = {}
    for name, value in headers.items():
        lowered = name.strip().lower()
        if lowered in canonical:
            raise ValueError(f"header {lowered!r} given twice")
        canonical[lowered] = _SPACES.sub(" ", value.strip())
    names = sorted(canonical)
    header_block = "".join(f"{name}:{canonical[name]}\n" for name in names)
    signed_headers = ";".join(names)
    text = "\n".join(
        [
            method.upper(),
            canonical_uri,
            canonical_query,
            header_block,
            signed_headers,
            payload_sha256,
        ]
    )
    return text, signed_headers


def sigv4_string_to_sign(*, amz_date: str, scope: str, canonical_request: str) -> str:
    digest = hashlib.sha256(canonical_request.encode("utf-8")).hexdigest()
    return f"{SIGV4_ALGORITHM}\n{amz_date}\n{scope}\n{digest}"


def sigv4_signing_key(*, secret_key: str, date: str, region: str, service: str) -> bytes:
    key = ("AWS4" + secret_key).encode("utf-8")
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode("utf-8"), hashlib.sha256).digest()
    return key


def sigv4_authorization(
    *,
    access_key: str,
    secret_key: str,
    region: str,
    service: str,
    method: str,
    canonical_uri: str,
    canonical_query: str = "",
    headers: Mapping[str, str],
    payload_sha256: str,
) -> str:
    """The ``Authorization`` header value signing ``headers`` (which must hold x-amz-date)."""
    amz_date = next((v for k, v in headers.items() if k.lower() == "x-amz-date"), None)
    if amz_date is None:
        raise ValueError("headers to sign must include x-amz-date")
    date = amz_date[:8]
    scope = f"{date}/{region}/{service}/aws4_request"
    canonical_request, signed_headers = sigv4_canonical_request(
        method=method,
        canonical_uri=canonical_uri,
        canonical_query=canonical_query,
        headers=headers,
        payload_sha256=payload_sha256,
    )
    string_to_sign = sigv4_string_to_sign(
        amz_date=amz_date, scope=scope, canonical_request=canonical_request
    )
    key = sigv4_signing_key(secret_key=secret_key, date=date, region=region, service=service)
    signature = hmac.new(key, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()
    return (
        f"{SIGV4_ALGORITHM} Credential={access_key}/{scope},"
        f"SignedHeaders={signed_headers},Signature={signature}"
    )


# --- S3-compatible store -----------------------------------------------------------------

_ERROR_CODE = re.compile(r"<Code>([^<]{1,100})</Code>")


class S3ObjectStore:
    """Objects in a bucket of an S3-compatible store, under ``prefix``.

    Path-style URLs (``{endpoint}/{bucket}/{prefix}{key}``), which every S3-compatible
    server accepts and which need no wildcard DNS. Each request is signed with SigV4 over
    host, x-amz-content-sha256 (the payload's SHA-256, so the store rejects a body altered in
    transit), x-amz-date and, on PUT, content-type (AWS requires it to be signed when sent).
    Repeatable failures (connection errors, 502/503/504) are retried twice with backoff: all
    four operations are idempotent.
    """

    def __init__(
        self,
        *,
        endpoint_url: str,
        bucket: str,
        prefix: str = "",
        region: str,
        access_key: str,
        secret_key: str,
        timeout_s: float = 10.0,
        retries: int = 2,
        caller: str = "wangban",
    ) -> None:
        endpoint = httpx.URL(endpoint_url)
        if endpoint.scheme not in ("http", "https") or not endpoint.host:
            raise ValueError(f"S3 endpoint must be an http(s) URL, not {endpoint_url!r}")
        if not _BUCKET.fullmatch(bucket):
            raise ValueError(f"{bucket!r} is not a valid bucket name")
        if prefix:
            prefix = validate_key(prefix.strip("/")) + "/"
        self.bucket = bucket
        self.prefix = prefix
        self.region = region
        self._access_key = access_key
        self._secret_key = secret_key
        self._origin = f"{endpoint.scheme}://{endpoint.netloc.decode('ascii')}"
        # Host is signed, so the request carries exactly the value signed (httpx.URL has
        # already lower-cased it and dropped a default port) instead of one derived later.
        self._host = endpoint.netloc.decode("ascii")
        self._base_path = endpoint.path.rstrip("/")
        # No call while a transaction of ours is open (the guard of wangban.http). An object
        # store may be reached through the environment's proxy, as it always could.
        self._client = external_client(
            caller=caller,
            system="object store",
            transport=RetryingTransport(httpx.AsyncHTTPTransport(), retries=retries),
            timeout=httpx.Timeout(timeout_s),
            trust_env=True,
        )

    def __repr__(self) -> str:
        return f"S3ObjectStore({self._origin}/{self.bucket}/{self.prefix})"

    def _canonical_uri(self, key: str) -> str:
        return sigv4_uri_encode(
            f"{self._base_path}/{self.bucket}/{self.prefix}{key}", encode_slash=False
        )

    async def _send(
        self,
        method: str,
        key: str,
        *,
        body: bytes = b"",
        content_type: str | None = None,
    ) -> httpx.Response:
        canonical_uri = self._canonical_uri(validate_key(key))
        headers = {
            "host": self._host,
            "x-amz-content-sha256": hashlib.sha256(body).hexdigest(),
            "x-amz-date": datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ"),
        }
        if content_type is not None:
            headers["content-type"] = content_type
        headers["authorization"] = sigv4_authorization(
            access_key=self._access_key,
            secret_key=self._secret_key,
            region=self.region,
            service="s3",
            method=method,
            canonical_uri=canonical_uri,
            headers=headers,
            payload_sha256=headers["x-amz-content-sha256"],
        )
        try:
            return await self._client.request(
                method,
                self._origin + canonical_uri,
                content=body if method == "PUT" else None,
                headers=headers,
            )
        except httpx.HTTPError as exc:
            raise ObjectStoreError(
                f"S3 {method} {key!r} failed: {type(exc).__name__}: {exc}"
            ) from exc

    def _error(self, method: str, key: str, response: httpx.Response) -> ObjectStoreError:
        match = _ERROR_CODE.search(response.text)
        code = match.group(1) if match else None
        return ObjectStoreError(
            f"S3 {method} {key!r} answered {response.status_code}" + (f" {code}" if code else ""),
            status=response.status_code,
            code=code,
        )

    async def put(self, key: str, data: bytes, *, content_type: str) -> None:
        response = await self._send("PUT", key, body=bytes(data), content_type=content_type)
        if not response.is_success:
            raise self._error("PUT", key, response)

    async def get(self, key: str) -> bytes:
        response = await self._send("GET", key)
        if response.status_code == 200:
            return response.content
        error = self._error("GET", key, response)
        # A missing bucket is also a 404, but it is a broken configuration, not a missing file.
        if response.status_code == 404 and error.code != "NoSuchBucket":
            raise ObjectNotFound(key)
        raise error

    async def delete(self, key: str) -> None:
        response = await self._send("DELETE", key)
        if response.is_success:
            return
        error = self._error("DELETE", key, response)
        if response.status_code == 404 and error.code != "NoSuchBucket":
            return
        raise error

    async def exists(self, key: str) -> bool:
        # HEAD answers have no body, so a missing bucket also reads as "no such object" here.
        response = await self._send("HEAD", key)
        if response.status_code == 200:
            return True
        if response.status_code == 404:
            return False
        raise self._error("HEAD", key, response)

    async def close(self) -> None:
        await self._client.aclose()


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
    if settings.s3_access_key is None or settings.s3_secret_key is None:
        raise ConfigurationError(
            "an s3:// object store needs WANGBAN_S3_ACCESS_KEY and WANGBAN_S3_SECRET_KEY"
        )
    endpoint = settings.s3_endpoint_url or f"https://s3.{settings.s3_region}.amazonaws.com"
    try:
        return S3ObjectStore(
            endpoint_url=endpoint,
            bucket=parts.netloc,
            prefix=parts.path.strip("/"),
            region=settings.s3_region,
            access_key=settings.s3_access_key.get_secret_value(),
            secret_key=settings.s3_secret_key.get_secret_value(),
            caller=caller,
        )
    except ValueError as exc:
        raise ConfigurationError(
            f"WANGBAN_OBJECT_STORE_URL / WANGBAN_S3_ENDPOINT_URL: {exc}"
        ) from exc
