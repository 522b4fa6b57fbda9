"""Object stores: the local folder on a real disk, and the S3 client against a real S3-protocol
server (moto's, in this process, with IAM authentication switched on so that it checks every
signature, behind a front that checks presigned URLs: tests.fakes.s3)."""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
import pytest
from botocore.exceptions import ClientError
from pydantic import SecretStr

from tests.fakes.s3 import REGION, S3Server, s3_server
from wangban.embedded import free_port
from wangban.s3 import S3ObjectStore
from wangban.settings import ConfigurationError, Environment, Settings
from wangban.storage import (
    LocalObjectStore,
    ObjectNotFound,
    ObjectStoreError,
    content_disposition,
    object_store_from_settings,
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


async def test_local_store_has_no_download_urls(local: LocalObjectStore) -> None:
    await local.put("a.pdf", PDF, content_type="application/pdf")
    assert await local.download_url("a.pdf", expires_in=timedelta(minutes=5)) is None
    with pytest.raises(ValueError):
        await local.download_url("../a.pdf", expires_in=timedelta(minutes=5))


# --- S3 against moto's server ----------------------------------------------------------------

MIB = 1024 * 1024


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    with s3_server() as server:
        yield server


async def test_s3_round_trip_overwrite_and_prefix(s3: S3Server) -> None:
    store = s3.store("materials", prefix="uploads/2024")
    whole_bucket = s3.store("materials")
    try:
        key = "applications/0193a5c2/id-card.pdf"
        await store.put(key, PDF, content_type="application/pdf")
        assert await store.get(key) == PDF
        # The prefix is a real path in the bucket, not a name mangling.
        assert await whole_bucket.get(f"uploads/2024/{key}") == PDF
        head = s3.client().head_object(Bucket="materials", Key=f"uploads/2024/{key}")
        assert head["ContentType"] == "application/pdf"
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


async def test_s3_large_object_is_uploaded_in_parts_and_reads_back_identical(
    s3: S3Server,
) -> None:
    store = s3.store("materials", multipart_threshold=5 * MIB)
    large = os.urandom(12 * MIB + 123)
    try:
        await store.put("large/scan.pdf", large, content_type="application/pdf")
        assert await store.get("large/scan.pdf") == large
        head = s3.client().head_object(Bucket="materials", Key="large/scan.pdf")
        # S3's ETag of a multipart object is "<md5 of the parts' md5s>-<number of parts>".
        assert head["ETag"].strip('"').endswith("-3")
        assert head["ContentLength"] == len(large)
        assert head["ContentType"] == "application/pdf"
        # At the threshold exactly: one PUT (a plain MD5 ETag).
        exact = os.urandom(5 * MIB)
        await store.put("large/exact.pdf", exact, content_type="application/pdf")
        head = s3.client().head_object(Bucket="materials", Key="large/exact.pdf")
        assert "-" not in head["ETag"]
        assert await store.get("large/exact.pdf") == exact
        # No upload left open in the bucket.
        uploads = s3.client().list_multipart_uploads(Bucket="materials")
        assert uploads.get("Uploads", []) == []
    finally:
        await store.close()


async def test_s3_failed_multipart_upload_is_refused_and_leaves_no_object(
    s3: S3Server,
) -> None:
    wrong = s3.store("materials", secret_key=s3.secret_key[::-1], multipart_threshold=5 * MIB)
    try:
        with pytest.raises(ObjectStoreError) as caught:
            await wrong.put("large/refused.pdf", os.urandom(6 * MIB), content_type="x/y")
        assert (caught.value.status, caught.value.code) == (403, "SignatureDoesNotMatch")
        with pytest.raises(ClientError):
            s3.client().head_object(Bucket="materials", Key="large/refused.pdf")
    finally:
        await wrong.close()


async def test_s3_presigned_url_fetches_the_object_with_plain_http(s3: S3Server) -> None:
    # The store's endpoint is the front that checks presigned URLs: the URL points there.
    store = s3.store("materials", prefix="signed")
    direct = s3.store("materials", prefix="signed")
    try:
        await direct.put("materials/card.pdf", PDF, content_type="application/pdf")
        url = await store.download_url(
            "materials/card.pdf",
            expires_in=timedelta(minutes=5),
            filename="银行卡 复印件.pdf",
            content_type="application/pdf",
        )
        assert url is not None
        assert url.startswith(f"{s3.endpoint}/materials/signed/materials/card.pdf?")
        async with httpx.AsyncClient(timeout=10.0) as client:
            answer = await client.get(url)
            assert answer.status_code == 200, answer.text
            assert answer.content == PDF
            assert answer.headers["content-type"] == "application/pdf"
            assert answer.headers["content-disposition"] == content_disposition("银行卡 复印件.pdf")
            # Without its signature, with another key, disposition or lifetime: refused.
            parts = urlsplit(url)
            query = parse_qsl(parts.query)
            tampered = [
                parts._replace(
                    query=urlencode([(k, v) for k, v in query if k != "X-Amz-Signature"])
                ),
                parts._replace(path=parts.path.replace("card.pdf", "other.pdf")),
                parts._replace(
                    query=urlencode(
                        [
                            (k, "inline" if k == "response-content-disposition" else v)
                            for k, v in query
                        ]
                    )
                ),
                parts._replace(
                    query=urlencode(
                        [(k, "604800" if k == "X-Amz-Expires" else v) for k, v in query]
                    )
                ),
            ]
            for changed in tampered:
                refused = await client.get(changed.geturl())
                assert refused.status_code == 403, changed.geturl()
    finally:
        await store.close()
        await direct.close()


async def test_s3_presigned_url_is_refused_after_it_expires(s3: S3Server) -> None:
    store = s3.store("materials")
    direct = s3.store("materials")
    try:
        await direct.put("short-lived.pdf", PDF, content_type="application/pdf")
        url = await store.download_url("short-lived.pdf", expires_in=timedelta(seconds=1))
        assert url is not None
        issued = datetime.strptime(
            dict(parse_qsl(urlsplit(url).query))["X-Amz-Date"], "%Y%m%dT%H%M%SZ"
        ).replace(tzinfo=UTC)
        # Wait until the URL's second has certainly passed (X-Amz-Date is whole seconds).
        left = issued + timedelta(seconds=1.1) - datetime.now(UTC)
        await asyncio.sleep(max(left.total_seconds(), 0))
        async with httpx.AsyncClient(timeout=10.0) as client:
            answer = await client.get(url)
        assert answer.status_code == 403
        assert "<Code>AccessDenied</Code>" in answer.text
    finally:
        await store.close()
        await direct.close()


async def test_s3_presigned_url_lifetime_is_bounded(s3: S3Server) -> None:
    store = s3.store("materials")
    try:
        for expires_in in (timedelta(0), timedelta(days=8)):
            with pytest.raises(ValueError):
                await store.download_url("x", expires_in=expires_in)
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
        assert caught.value.code is None
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


async def test_s3_credentials_from_the_environment_when_none_are_configured(
    s3: S3Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # The standard chain's first source; its later ones (shared files, instance metadata) are
    # switched off so that a machine's own AWS configuration cannot answer instead.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3.secret_key)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    store = s3.store("materials", access_key=None, secret_key=None)
    try:
        await store.put("from-env", b"chain", content_type="text/plain")
        assert await store.get("from-env") == b"chain"
    finally:
        await store.close()
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3.secret_key[::-1])
    store = s3.store("materials", access_key=None, secret_key=None)
    try:
        with pytest.raises(ObjectStoreError) as caught:
            await store.get("from-env")
        assert (caught.value.status, caught.value.code) == (403, "SignatureDoesNotMatch")
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


async def test_s3_keys_are_validated_before_any_request() -> None:
    # Nothing listens at the endpoint: a request sent would fail as ObjectStoreError.
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
        for key in ("../materials/x", "/x", "a//b", "材料.pdf"):
            with pytest.raises(ValueError):
                await store.put(key, b"x", content_type="text/plain")
            with pytest.raises(ValueError):
                await store.get(key)
            with pytest.raises(ValueError):
                await store.delete(key)
            with pytest.raises(ValueError):
                await store.exists(key)
            with pytest.raises(ValueError):
                await store.download_url(key, expires_in=timedelta(minutes=1))
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
        with pytest.raises(ObjectStoreError):
            await store.put("x", b"x", content_type="text/plain")
    finally:
        await store.close()


@pytest.mark.parametrize(
    ("endpoint", "bucket", "prefix", "extra"),
    [
        ("ftp://example", "materials", "", {}),
        ("http://127.0.0.1:9000", "Bad_Bucket", "", {}),
        ("http://127.0.0.1:9000", "ab", "", {}),
        ("http://127.0.0.1:9000", "materials", "../x", {}),
        ("http://127.0.0.1:9000", "materials", "a b", {}),
        ("http://127.0.0.1:9000", "materials", "", {"secret_key": None}),
        ("http://127.0.0.1:9000", "materials", "", {"multipart_threshold": 5 * MIB - 1}),
    ],
)
def test_s3_store_refuses_bad_configuration(
    endpoint: str, bucket: str, prefix: str, extra: dict[str, object]
) -> None:
    values: dict[str, object] = {
        "endpoint_url": endpoint,
        "bucket": bucket,
        "prefix": prefix,
        "region": REGION,
        "access_key": "a",
        "secret_key": "b",
        **extra,
    }
    with pytest.raises(ValueError):
        S3ObjectStore(**values)  # type: ignore[arg-type]


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
        (
            {"object_store_url": "s3://materials", "s3_access_key": SecretStr("a")},
            "WANGBAN_S3_ACCESS_KEY",
        ),
        (
            {"object_store_url": "s3://materials", "s3_secret_key": SecretStr("b")},
            "WANGBAN_S3_ACCESS_KEY",
        ),
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


async def test_settings_without_keys_use_the_standard_credential_chain(
    s3: S3Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3.secret_key)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    settings = Settings(
        env=Environment.TEST,
        data_dir=tmp_path,
        object_store_url="s3://materials/chain",
        s3_endpoint_url=s3.endpoint,
        s3_region=REGION,
        s3_multipart_threshold_bytes=5 * MIB,
    )
    store = object_store_from_settings(settings)
    try:
        assert isinstance(store, S3ObjectStore)
        assert store.multipart_threshold == 5 * MIB
        await store.put("k", b"v", content_type="text/plain")
        head = s3.client().head_object(Bucket="materials", Key="chain/k")
        assert head["ContentLength"] == 1
    finally:
        await store.close()


def test_production_refuses_half_an_s3_key_pair_and_allows_none() -> None:
    base = {"object_store_url": "s3://materials", "s3_access_key": SecretStr("a")}
    with pytest.raises(ConfigurationError, match="WANGBAN_S3_ACCESS_KEY and _SECRET_KEY"):
        Settings(env=Environment.PRODUCTION, **base)  # type: ignore[arg-type]
    # Without keys the refusals listed do not name S3 (the credential chain is allowed).
    with pytest.raises(ConfigurationError) as caught:
        Settings(env=Environment.PRODUCTION, object_store_url="s3://materials")
    assert "S3" not in str(caught.value)
