"""The object store in a bucket of an S3-compatible store (:class:`wangban.storage.ObjectStore`).

The client is aiobotocore (botocore, the AWS SDK's core, on asyncio). Chosen over obstore
(the Rust object_store bindings) after trying both against the test suite's S3 server:

- async: both; but obstore's asyncio futures, resolved from a Tokio thread, abort the whole
  Python process at exit now and then (a PyO3 race at interpreter shutdown: 4 of 40 short
  scripts here died with SIGABRT), which would fail test runs and kill services on shutdown;
  its blocking API in threads avoids that, at one thread held per transfer.
- presigned URLs: both sign locally, but only botocore signs ``response-content-disposition``
  and ``response-content-type`` into the URL, so a presigned download carries the same
  ``attachment`` header as a streamed one.
- multipart: obstore does it inside ``put``; with botocore it is the S3 calls (create, parts,
  complete, abort on failure) below.
- errors: botocore gives the S3 error code and HTTP status as data; obstore only as text.
- credentials: botocore's chain is the reference (environment, shared files and profiles,
  web identity, ECS/EKS container, IMDSv2 instance profile); object_store's covers the same
  server cases but not profiles.
- path-style MinIO/Ceph endpoints: both (``addressing_style``).
- weight: obstore is one 16 MB wheel with no dependencies; aiobotocore brings botocore
  (31 MB), aiohttp and a few small packages: about 45 MB more in the image.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from datetime import timedelta
from typing import Any, Final, Literal
from urllib.parse import urlsplit

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import BotoCoreError, ClientError
from botocore.loaders import Loader, create_loader

from wangban.db import check_no_transaction
from wangban.storage import (
    BUCKET_NAME,
    ObjectNotFound,
    ObjectStoreError,
    content_disposition,
    validate_key,
)

__all__ = ["S3ObjectStore"]


@functools.cache
def _service_models(data_path: str | None) -> Loader:
    """botocore's reader of its service descriptions (the S3 API's JSON, the endpoint rules),
    shared by every session of the process: each new session would parse them again, about a
    tenth of a second of CPU per store. Credentials stay per session."""
    return create_loader(data_path)


_MIN_PART_BYTES: Final = 5 * 1024 * 1024  # S3's smallest part but the last
_MAX_PARTS: Final = 10_000
_MAX_PRESIGN: Final = timedelta(days=7)  # SigV4 query signatures last at most a week


class S3ObjectStore:
    """Objects in a bucket of an S3-compatible store, under ``prefix``, through aiobotocore.

    Path-style URLs (``{endpoint}/{bucket}/{prefix}{key}``) by default, which every
    S3-compatible server accepts and which need no wildcard DNS; ``addressing_style="virtual"``
    for stores that want the bucket in the host name. Requests are signed with SigV4 by
    botocore, payload included (also over HTTPS, so the store rejects a body altered on the
    way). Checksums are sent only where S3 requires them: the CRC trailers newer botocore adds
    by default are refused by several S3-compatible servers (older MinIO, Ceph RGW).

    Without ``access_key``/``secret_key`` the credentials come from botocore's default chain:
    ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``/``AWS_SESSION_TOKEN``, the shared
    credentials and config files (``AWS_PROFILE``), web identity (``AWS_WEB_IDENTITY_TOKEN_FILE``
    with ``AWS_ROLE_ARN``: Kubernetes service-account roles), container credentials (ECS, EKS
    pod identity) and the instance profile (IMDSv2), refreshed before they expire.

    Objects larger than ``multipart_threshold`` are uploaded in parts of that size (S3 refuses
    single PUTs above 5 GiB, and a part that fails is retried alone); a failed multipart upload
    is aborted so its parts are not billed. Repeatable failures (connection errors, 500/502/503/
    504, throttling) are retried ``retries`` times with backoff: every operation is idempotent.
    """

    def __init__(
        self,
        *,
        endpoint_url: str | None,
        bucket: str,
        prefix: str = "",
        region: str,
        access_key: str | None = None,
        secret_key: str | None = None,
        addressing_style: Literal["path", "virtual"] = "path",
        multipart_threshold: int = 16 * 1024 * 1024,
        timeout_s: float = 10.0,
        retries: int = 2,
        caller: str = "wangban",
    ) -> None:
        if endpoint_url is not None:
            parts = urlsplit(endpoint_url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"S3 endpoint must be an http(s) URL, not {endpoint_url!r}")
        if not BUCKET_NAME.fullmatch(bucket):
            raise ValueError(f"{bucket!r} is not a valid bucket name")
        if prefix:
            prefix = validate_key(prefix.strip("/")) + "/"
        if (access_key is None) != (secret_key is None):
            raise ValueError("give both the S3 access key and the secret key, or neither")
        if multipart_threshold < _MIN_PART_BYTES:
            raise ValueError(
                f"multipart threshold below S3's 5 MiB part minimum: {multipart_threshold}"
            )
        self.bucket = bucket
        self.prefix = prefix
        self.region = region
        self.multipart_threshold = multipart_threshold
        self._endpoint = endpoint_url
        self._caller = caller
        self._client_args: dict[str, object] = {
            "region_name": region,
            "endpoint_url": endpoint_url,
            "aws_access_key_id": access_key,
            "aws_secret_access_key": secret_key,
            "config": AioConfig(
                signature_version="s3v4",
                s3={"addressing_style": addressing_style, "payload_signing_enabled": True},
                connect_timeout=timeout_s,
                read_timeout=timeout_s,
                retries={"max_attempts": retries + 1, "mode": "standard"},
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
            ),
        }
        self._client: Any = None
        self._exit = contextlib.AsyncExitStack()
        self._opening = asyncio.Lock()

    def __repr__(self) -> str:
        return f"S3ObjectStore({self._endpoint or 'AWS'}/{self.bucket}/{self.prefix})"

    async def _s3(self, method: str, key: str) -> tuple[Any, str]:
        """The client (opened on first use: opening is async) and the object's key in the
        bucket, after the checks every call makes before it reaches the network."""
        object_key = self.prefix + validate_key(key)
        # No call while a transaction of ours is open (the guard of wangban.http).
        check_no_transaction(f"{self._caller} → object store {method}", detail=key)
        if self._client is None:
            async with self._opening:
                if self._client is None:
                    session = get_session()
                    session.register_component(
                        "data_loader",
                        _service_models(session.get_config_variable("data_path")),
                    )
                    self._client = await self._exit.enter_async_context(
                        session.create_client("s3", **self._client_args)
                    )
        return self._client, object_key

    def _error(self, method: str, key: str, exc: Exception) -> ObjectStoreError:
        if isinstance(exc, ClientError):
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            code = exc.response.get("Error", {}).get("Code")
            # HEAD answers carry no body: botocore then names the error by its status.
            if code is not None and code == str(status):
                code = None
            return ObjectStoreError(
                f"S3 {method} {key!r} answered {status}" + (f" {code}" if code else ""),
                status=status,
                code=code,
            )
        return ObjectStoreError(f"S3 {method} {key!r} failed: {type(exc).__name__}: {exc}")

    async def put(self, key: str, data: bytes, *, content_type: str) -> None:
        client, object_key = await self._s3("PUT", key)
        data = bytes(data)
        try:
            if len(data) > self.multipart_threshold:
                await self._put_in_parts(client, object_key, data, content_type=content_type)
            else:
                await client.put_object(
                    Bucket=self.bucket, Key=object_key, Body=data, ContentType=content_type
                )
        except (ClientError, BotoCoreError) as exc:
            raise self._error("PUT", key, exc) from exc

    async def _put_in_parts(
        self, client: Any, object_key: str, data: bytes, *, content_type: str
    ) -> None:
        part_size = max(self.multipart_threshold, -(-len(data) // _MAX_PARTS))
        created = await client.create_multipart_upload(
            Bucket=self.bucket, Key=object_key, ContentType=content_type
        )
        upload_id = created["UploadId"]
        try:
            parts = []
            view = memoryview(data)
            for number, start in enumerate(range(0, len(data), part_size), start=1):
                answer = await client.upload_part(
                    Bucket=self.bucket,
                    Key=object_key,
                    UploadId=upload_id,
                    PartNumber=number,
                    Body=bytes(view[start : start + part_size]),
                )
                parts.append({"ETag": answer["ETag"], "PartNumber": number})
            await client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=object_key,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
            )
        except BaseException:
            # Until aborted, the parts stay in the bucket (and are billed) though no object
            # shows them; the original error is the one worth raising.
            with contextlib.suppress(Exception):
                await asyncio.shield(
                    client.abort_multipart_upload(
                        Bucket=self.bucket, Key=object_key, UploadId=upload_id
                    )
                )
            raise

    async def get(self, key: str) -> bytes:
        client, object_key = await self._s3("GET", key)
        try:
            answer = await client.get_object(Bucket=self.bucket, Key=object_key)
            async with answer["Body"] as body:
                return bytes(await body.read())
        except ClientError as exc:
            error = self._error("GET", key, exc)
            # A missing bucket is also a 404, but it is a broken configuration, not a
            # missing file.
            if error.status == 404 and error.code != "NoSuchBucket":
                raise ObjectNotFound(key) from None
            raise error from exc
        except BotoCoreError as exc:
            raise self._error("GET", key, exc) from exc

    async def delete(self, key: str) -> None:
        client, object_key = await self._s3("DELETE", key)
        try:
            await client.delete_object(Bucket=self.bucket, Key=object_key)
        except ClientError as exc:
            error = self._error("DELETE", key, exc)
            if error.status == 404 and error.code != "NoSuchBucket":
                return
            raise error from exc
        except BotoCoreError as exc:
            raise self._error("DELETE", key, exc) from exc

    async def exists(self, key: str) -> bool:
        client, object_key = await self._s3("HEAD", key)
        try:
            await client.head_object(Bucket=self.bucket, Key=object_key)
        except ClientError as exc:
            error = self._error("HEAD", key, exc)
            # HEAD answers have no body, so a missing bucket also reads as "no such object".
            if error.status == 404:
                return False
            raise error from exc
        except BotoCoreError as exc:
            raise self._error("HEAD", key, exc) from exc
        return True

    async def download_url(
        self,
        key: str,
        *,
        expires_in: timedelta,
        filename: str | None = None,
        content_type: str | None = None,
    ) -> str | None:
        """A presigned GET URL (SigV4 query signature, made locally: no request is sent).

        The store answers it with ``Content-Disposition: attachment`` (and the file name when
        given) and with ``content_type`` when given, both signed into the URL, so a changed
        header or key is refused like an expired URL."""
        if not timedelta(seconds=1) <= expires_in <= _MAX_PRESIGN:
            raise ValueError(f"a presigned URL lasts 1 s to 7 days, not {expires_in}")
        client, object_key = await self._s3("PRESIGN", key)
        params = {
            "Bucket": self.bucket,
            "Key": object_key,
            "ResponseContentDisposition": content_disposition(filename),
        }
        if content_type is not None:
            params["ResponseContentType"] = content_type
        try:
            url: str = await client.generate_presigned_url(
                "get_object", Params=params, ExpiresIn=int(expires_in.total_seconds())
            )
        except BotoCoreError as exc:  # no credentials to be had from the chain
            raise self._error("PRESIGN", key, exc) from exc
        return url

    async def close(self) -> None:
        await self._exit.aclose()
        self._client = None
