"""Object stores: the local folder on a real disk, SigV4 against AWS's published example, and
the S3 client against a real S3-protocol server (moto's, in this process, with IAM
authentication switched on so that it checks every signature)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest
from moto.server import ThreadedMotoServer
from pydantic import SecretStr

from wangban.embedded import free_port
from wangban.settings import ConfigurationError, Environment, Settings
from wangban.storage import (
    EMPTY_SHA256,
    LocalObjectStore,
    ObjectNotFound,
    ObjectStoreError,
    S3ObjectStore,
    object_store_from_settings,
    sigv4_authorization,
    sigv4_canonical_request,
    sigv4_string_to_sign,
    sigv4_uri_encode,
    validate_key,
)

PDF = b"%PDF-1.7\n" + os.urandom(4096)

# --- keys ----------------------------------------------------------------------------------

BAD_KEYS = [
    "",
    "../outside",
    "a/../../outside",
    "a/..",
    "a..b",
    "/etc/passwd",
    "a//b",
    "a/./b",
    "./a",
    "a/",
    "a b",
    "a\\b",
    "a\x00b",
    "材料/a.pdf",
    "a%2Fb",
    "x" * 513,
]


@pytest.mark.parametrize("key", BAD_KEYS)
def test_bad_keys_are_refused(key: str) -> None:
    with pytest.raises(ValueError):
        validate_key(key)


@pytest.mark.parametrize(
    "key", ["a", "applications/2024/0193a5c2-7d1e/3f9a.pdf", "A-Z_0.9/x.y", "x" * 512]
)
def test_good_keys_pass(key: str) -> None:
    assert validate_key(key) == key


# --- local folder --------------------------------------------------------------------------


@pytest.fixture
def local(tmp_path: Path) -> LocalObjectStore:
    return LocalObjectStore(tmp_path / "objects")


async def test_local_round_trip_and_overwrite(local: LocalObjectStore) -> None:
    key = "applications/0193a5c2/materials/id-card.pdf"
    assert not await local.exists(key)
    await local.put(key, PDF, content_type="application/pdf")
    assert await local.exists(key)
    assert await local.get(key) == PDF
    await local.put(key, b"%PDF-1.4 second", content_type="application/pdf")
    assert await local.get(key) == b"%PDF-1.4 second"
    await local.put("empty", b"", content_type="application/octet-stream")
    assert await local.get("empty") == b""
    await local.close()


async def test_local_missing_object(local: LocalObjectStore) -> None:
    with pytest.raises(ObjectNotFound) as caught:
        await local.get("no/such/object")
    assert caught.value.key == "no/such/object"
    assert not await local.exists("no/such/object")


async def test_local_delete_is_idempotent(local: LocalObjectStore) -> None:
    await local.put("a/b", b"x", content_type="text/plain")
    await local.delete("a/b")
    assert not await local.exists("a/b")
    await local.delete("a/b")
    await local.delete("never/existed")
    with pytest.raises(ObjectNotFound):
        await local.get("a/b")


async def test_local_files_are_private_and_no_temporary_files_remain(
    local: LocalObjectStore,
) -> None:
    for i in range(5):
        await local.put(f"deep/er/key-{i}", PDF, content_type="application/pdf")
    files = sorted(p for p in local.root.rglob("*") if p.is_file())
    assert [p.name for p in files] == [f"key-{i}" for i in range(5)]
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    for directory in (local.root, local.root / "deep", local.root / "deep" / "er"):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700


async def test_local_readers_see_whole_objects_only(local: LocalObjectStore) -> None:
    # Writers replace a 1 MB object with one of two contents while readers read it: a
    # non-atomic write would show a reader an empty, short or mixed file.
    first, second = b"A" * (1 << 20), b"B" * (1 << 20)
    await local.put("busy", first, content_type="application/octet-stream")
    seen: set[bytes] = set()

    async def write() -> None:
        for i in range(40):
            await local.put("busy", second if i % 2 else first, content_type="x/y")

    async def read() -> None:
        for _ in range(80):
            seen.add(await local.get("busy"))

    await asyncio.gather(write(), write(), read(), read())
    assert seen <= {first, second}
    assert [p.name for p in local.root.iterdir()] == ["busy"]


async def test_local_key_cannot_be_object_and_folder(local: LocalObjectStore) -> None:
    await local.put("a", b"x", content_type="text/plain")
    with pytest.raises(ObjectStoreError):
        await local.put("a/b", b"y", content_type="text/plain")
    with pytest.raises(ObjectNotFound):
        await local.get("a/b")
    assert not await local.exists("a/b")
    await local.delete("a/b")
    assert await local.get("a") == b"x"


@pytest.mark.parametrize("key", ["../outside", "a/../../outside", "/tmp/outside"])
async def test_local_path_traversal_touches_nothing(tmp_path: Path, key: str) -> None:
    store = LocalObjectStore(tmp_path / "objects")
    outside = tmp_path / "outside"
    outside.write_bytes(b"secret")
    with pytest.raises(ValueError):
        await store.get(key)
    with pytest.raises(ValueError):
        await store.put(key, b"overwritten", content_type="text/plain")
    with pytest.raises(ValueError):
        await store.delete(key)
    with pytest.raises(ValueError):
        await store.exists(key)
    assert outside.read_bytes() == b"secret"


# --- SigV4 ---------------------------------------------------------------------------------
# AWS's published example for header-based auth with a single-chunk payload ("Example: GET
# Object", Amazon S3 API reference, sig-v4-header-based-auth): the first 10 bytes of
# test.txt in examplebucket, with the documentation's example credentials.

AWS_ACCESS_KEY = "AKIAIOSFODNN7EXAMPLE"
AWS_SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
AWS_GET_HEADERS = {
    "Host": "examplebucket.s3.amazonaws.com",
    "Range": "bytes=0-9",
    "x-amz-content-sha256": EMPTY_SHA256,
    "x-amz-date": "20130524T000000Z",
}
AWS_GET_CANONICAL_REQUEST = "\n".join(
    [
        "GET",
        "/test.txt",
        "",
        "host:examplebucket.s3.amazonaws.com",
        "range:bytes=0-9",
        "x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "x-amz-date:20130524T000000Z",
        "",
        "host;range;x-amz-content-sha256;x-amz-date",
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    ]
)
AWS_GET_STRING_TO_SIGN = "\n".join(
    [
        "AWS4-HMAC-SHA256",
        "20130524T000000Z",
        "20130524/us-east-1/s3/aws4_request",
        "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972",
    ]
)
AWS_GET_AUTHORIZATION = (
    "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"
    "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,"
    "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
)


def test_sigv4_aws_get_object_example() -> None:
    canonical, signed_headers = sigv4_canonical_request(
        method="GET",
        canonical_uri="/test.txt",
        headers=AWS_GET_HEADERS,
        payload_sha256=EMPTY_SHA256,
    )
    assert canonical == AWS_GET_CANONICAL_REQUEST
    assert signed_headers == "host;range;x-amz-content-sha256;x-amz-date"
    assert (
        sigv4_string_to_sign(
            amz_date="20130524T000000Z",
            scope="20130524/us-east-1/s3/aws4_request",
            canonical_request=canonical,
        )
        == AWS_GET_STRING_TO_SIGN
    )
    assert (
        sigv4_authorization(
            access_key=AWS_ACCESS_KEY,
            secret_key=AWS_SECRET_KEY,
            region="us-east-1",
            service="s3",
            method="GET",
            canonical_uri="/test.txt",
            headers=AWS_GET_HEADERS,
            payload_sha256=EMPTY_SHA256,
        )
        == AWS_GET_AUTHORIZATION
    )


def test_sigv4_header_values_are_trimmed_and_spaces_collapsed() -> None:
    messy = {**AWS_GET_HEADERS, "Range": "  bytes=0-9 ", "HOST": "examplebucket.s3.amazonaws.com"}
    del messy["Host"]
    canonical, _ = sigv4_canonical_request(
        method="get", canonical_uri="/test.txt", headers=messy, payload_sha256=EMPTY_SHA256
    )
    assert canonical == AWS_GET_CANONICAL_REQUEST
    spaced, _ = sigv4_canonical_request(
        method="GET",
        canonical_uri="/",
        headers={"x-amz-meta-note": " a   b  c "},
        payload_sha256=EMPTY_SHA256,
    )
    assert "x-amz-meta-note:a b c\n" in spaced
    with pytest.raises(ValueError):
        sigv4_canonical_request(
            method="GET",
            canonical_uri="/",
            headers={"Host": "a", "host": "b"},
            payload_sha256=EMPTY_SHA256,
        )


def test_sigv4_uri_encoding() -> None:
    # UTF-8 bytes, upper-case hex, unreserved characters (including ~) left alone.
    assert sigv4_uri_encode("材料/a b~c-_.+", encode_slash=False) == (
        "%E6%9D%90%E6%96%99/a%20b~c-_.%2B"
    )
    assert sigv4_uri_encode("a/b=c", encode_slash=True) == "a%2Fb%3Dc"


# --- S3 against moto's server ----------------------------------------------------------------

REGION = "us-east-1"
ALLOW_S3 = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
}


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    access_key: str
    secret_key: str

    def store(self, bucket: str, **overrides: object) -> S3ObjectStore:
        values: dict[str, object] = {
            "endpoint_url": self.endpoint,
            "bucket": bucket,
            "region": REGION,
            "access_key": self.access_key,
            "secret_key": self.secret_key,
            "timeout_s": 5.0,
        }
        values.update(overrides)
        return S3ObjectStore(**values)  # type: ignore[arg-type]


def _signed(
    client: httpx.Client,
    endpoint: str,
    *,
    method: str,
    path: str,
    body: bytes,
    access_key: str,
    secret_key: str,
    service: str,
    content_type: str | None = None,
) -> httpx.Response:
    host = httpx.URL(endpoint).netloc.decode()
    headers = {
        "host": host,
        "x-amz-content-sha256": hashlib.sha256(body).hexdigest(),
        "x-amz-date": datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ"),
    }
    if content_type:
        headers["content-type"] = content_type
    headers["authorization"] = sigv4_authorization(
        access_key=access_key,
        secret_key=secret_key,
        region=REGION,
        service=service,
        method=method,
        canonical_uri=path,
        headers=headers,
        payload_sha256=headers["x-amz-content-sha256"],
    )
    response = client.request(method, endpoint + path, content=body or None, headers=headers)
    assert response.status_code == 200, response.text
    return response


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    """moto's S3 server on a free port, with one IAM user allowed s3:* and every request's
    signature checked from the first S3 call on.

    moto checks signatures only once IAM authentication is on (POST /moto-api/reset-auth with
    the number of requests to let through unchecked). The user and its key are made first,
    while nothing is checked yet; the bucket is then created with a signed request of ours.
    """
    werkzeug_log = logging.getLogger("werkzeug")
    werkzeug_level = werkzeug_log.level
    werkzeug_log.setLevel(logging.WARNING)  # not a line per request
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(timeout=10.0) as client:

            def iam(action: str, **params: str) -> str:
                body = urlencode({"Action": action, "Version": "2010-05-08", **params}).encode()
                return _signed(
                    client,
                    endpoint,
                    method="POST",
                    path="/",
                    body=body,
                    access_key="AKIAIOSFODNN7EXAMPLE",
                    secret_key="not-checked-yet",
                    service="iam",
                    content_type="application/x-www-form-urlencoded; charset=utf-8",
                ).text

            iam("CreateUser", UserName="wangban")
            created = iam("CreateAccessKey", UserName="wangban")
            iam(
                "PutUserPolicy",
                UserName="wangban",
                PolicyName="s3",
                PolicyDocument=json.dumps(ALLOW_S3),
            )
            access_key = _xml_text(created, "AccessKeyId")
            secret_key = _xml_text(created, "SecretAccessKey")
            client.post(f"{endpoint}/moto-api/reset-auth", content=b"0").raise_for_status()
            for bucket in ("materials", "other-bucket"):
                _signed(
                    client,
                    endpoint,
                    method="PUT",
                    path=f"/{bucket}",
                    body=b"",
                    access_key=access_key,
                    secret_key=secret_key,
                    service="s3",
                )
        yield S3Server(endpoint, access_key, secret_key)
    finally:
        # moto's settings are process-wide: leave authentication off and no state behind.
        with httpx.Client(timeout=10.0) as client:
            client.post(f"{endpoint}/moto-api/reset-auth", content=b"inf")
            client.post(f"{endpoint}/moto-api/reset")
        server.stop()
        werkzeug_log.setLevel(werkzeug_level)


def _xml_text(document: str, element: str) -> str:
    match = re.search(rf"<{element}>([^<]+)</{element}>", document)
    assert match, document
    return match.group(1)


async def test_s3_round_trip_overwrite_and_prefix(s3: S3Server) -> None:
    store = s3.store("materials", prefix="uploads/2024")
    whole_bucket = s3.store("materials")
    try:
        key = "applications/0193a5c2/id-card.pdf"
        await store.put(key, PDF, content_type="application/pdf")
        assert await store.get(key) == PDF
        # The prefix is a real path in the bucket, not a name mangling.
        assert await whole_bucket.get(f"uploads/2024/{key}") == PDF
        await store.put(key, b"%PDF-1.4 second", content_type="application/pdf")
        assert await store.get(key) == b"%PDF-1.4 second"
        await store.put("empty", b"", content_type="application/octet-stream")
        assert await store.get("empty") == b""
    finally:
        await store.close()
        await whole_bucket.close()


async def test_s3_exists_and_missing(s3: S3Server) -> None:
    store = s3.store("materials")
    try:
        assert not await store.exists("missing/object.pdf")
        with pytest.raises(ObjectNotFound):
            await store.get("missing/object.pdf")
        await store.put("present.png", b"\x89PNG", content_type="image/png")
        assert await store.exists("present.png")
    finally:
        await store.close()


async def test_s3_delete_is_idempotent(s3: S3Server) -> None:
    store = s3.store("materials")
    try:
        await store.put("to-delete", b"x", content_type="text/plain")
        await store.delete("to-delete")
        assert not await store.exists("to-delete")
        await store.delete("to-delete")
        with pytest.raises(ObjectNotFound):
            await store.get("to-delete")
    finally:
        await store.close()


async def test_s3_wrong_secret_key_is_refused_on_every_operation(s3: S3Server) -> None:
    good = s3.store("materials")
    wrong = s3.store("materials", secret_key=s3.secret_key[::-1])
    try:
        await good.put("guarded", b"original", content_type="text/plain")
        with pytest.raises(ObjectStoreError) as caught:
            await wrong.put("guarded", b"overwritten", content_type="text/plain")
        assert (caught.value.status, caught.value.code) == (403, "SignatureDoesNotMatch")
        with pytest.raises(ObjectStoreError) as caught:
            await wrong.get("guarded")
        assert (caught.value.status, caught.value.code) == (403, "SignatureDoesNotMatch")
        with pytest.raises(ObjectStoreError) as caught:
            await wrong.delete("guarded")
        assert (caught.value.status, caught.value.code) == (403, "SignatureDoesNotMatch")
        with pytest.raises(ObjectStoreError) as caught:
            await wrong.exists("guarded")
        assert caught.value.status == 403  # HEAD answers carry no error code
        assert await good.get("guarded") == b"original"
    finally:
        await good.close()
        await wrong.close()


async def test_s3_unknown_access_key_is_refused(s3: S3Server) -> None:
    store = s3.store("materials", access_key="AKIAUNKNOWNKEY000000")
    try:
        with pytest.raises(ObjectStoreError) as caught:
            await store.put("x", b"x", content_type="text/plain")
        assert (caught.value.status, caught.value.code) == (403, "InvalidAccessKeyId")
    finally:
        await store.close()


async def test_s3_missing_bucket_is_an_error_not_a_missing_object(s3: S3Server) -> None:
    store = s3.store("no-such-bucket")
    try:
        with pytest.raises(ObjectStoreError) as caught:
            await store.get("x")
        assert not isinstance(caught.value, ObjectNotFound)
        assert (caught.value.status, caught.value.code) == (404, "NoSuchBucket")
        with pytest.raises(ObjectStoreError):
            await store.delete("x")
    finally:
        await store.close()


async def test_s3_buckets_are_separate(s3: S3Server) -> None:
    one, other = s3.store("materials"), s3.store("other-bucket")
    try:
        await one.put("same-key", b"one", content_type="text/plain")
        await other.put("same-key", b"other", content_type="text/plain")
        assert await one.get("same-key") == b"one"
        assert await other.get("same-key") == b"other"
    finally:
        await one.close()
        await other.close()


async def test_s3_keys_are_validated_before_any_request(s3: S3Server) -> None:
    store = s3.store("materials")
    try:
        for key in ("../materials/x", "/x", "a//b"):
            with pytest.raises(ValueError):
                await store.put(key, b"x", content_type="text/plain")
    finally:
        await store.close()


async def test_s3_unreachable_store() -> None:
    store = S3ObjectStore(
        endpoint_url=f"http://127.0.0.1:{free_port()}",
        bucket="materials",
        region=REGION,
        access_key="a",
        secret_key="b",
        timeout_s=2.0,
        retries=0,
    )
    try:
        with pytest.raises(ObjectStoreError) as caught:
            await store.get("x")
        assert caught.value.status is None
    finally:
        await store.close()


@pytest.mark.parametrize(
    ("endpoint", "bucket", "prefix"),
    [
        ("ftp://example", "materials", ""),
        ("http://127.0.0.1:9000", "Bad_Bucket", ""),
        ("http://127.0.0.1:9000", "ab", ""),
        ("http://127.0.0.1:9000", "materials", "../x"),
        ("http://127.0.0.1:9000", "materials", "a b"),
    ],
)
def test_s3_store_refuses_bad_configuration(endpoint: str, bucket: str, prefix: str) -> None:
    with pytest.raises(ValueError):
        S3ObjectStore(
            endpoint_url=endpoint,
            bucket=bucket,
            prefix=prefix,
            region=REGION,
            access_key="a",
            secret_key="b",
        )


# --- from settings ---------------------------------------------------------------------------


async def test_settings_without_url_give_the_local_folder(tmp_path: Path) -> None:
    store = object_store_from_settings(Settings(env=Environment.TEST, data_dir=tmp_path))
    assert isinstance(store, LocalObjectStore)
    await store.put("k", b"v", content_type="text/plain")
    assert (tmp_path / "objects" / "k").read_bytes() == b"v"


async def test_settings_with_s3_url(s3: S3Server, tmp_path: Path) -> None:
    settings = Settings(
        env=Environment.TEST,
        data_dir=tmp_path,
        object_store_url="s3://materials/from-settings/",
        s3_endpoint_url=s3.endpoint,
        s3_region=REGION,
        s3_access_key=SecretStr(s3.access_key),
        s3_secret_key=SecretStr(s3.secret_key),
    )
    store = object_store_from_settings(settings)
    whole_bucket = s3.store("materials")
    try:
        assert isinstance(store, S3ObjectStore)
        await store.put("k.pdf", PDF, content_type="application/pdf")
        assert await whole_bucket.get("from-settings/k.pdf") == PDF
        assert await asyncio.to_thread(os.listdir, tmp_path) == []  # nothing written locally
    finally:
        await store.close()
        await whole_bucket.close()


@pytest.mark.parametrize(
    ("overrides", "names"),
    [
        ({"object_store_url": "s3://materials"}, "WANGBAN_S3_ACCESS_KEY"),
        ({"object_store_url": "file:///srv/objects"}, "WANGBAN_OBJECT_STORE_URL"),
        ({"object_store_url": "s3:///no-bucket"}, "WANGBAN_OBJECT_STORE_URL"),
        (
            {
                "object_store_url": "s3://Not_A_Bucket",
                "s3_access_key": SecretStr("a"),
                "s3_secret_key": SecretStr("b"),
            },
            "WANGBAN_OBJECT_STORE_URL",
        ),
    ],
)
def test_settings_that_cannot_work_are_refused(overrides: dict[str, object], names: str) -> None:
    settings = Settings(env=Environment.TEST, **overrides)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match=names):
        object_store_from_settings(settings)
