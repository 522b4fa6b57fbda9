"""An S3-protocol server for tests: moto's, with IAM authentication on so that it checks every
request's signature, behind a small front that checks presigned URLs as S3 does (moto serves
them without looking at their signature or expiry).

The front passes every other request to moto as it came (same headers, Host included, so the
signature moto checks is the client's own). A presigned GET is checked there: the SigV4 query
signature is computed again by botocore, with the one key the front knows, over the request as
it arrived; the URL is refused once ``X-Amz-Date`` + ``X-Amz-Expires`` has passed; only then is
the object fetched from moto (with the signed ``response-*`` overrides) and answered.
"""

from __future__ import annotations

import hmac
import json
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import botocore.session
import httpx
from botocore.auth import S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError
from moto.server import ThreadedMotoServer

from wangban.embedded import free_port
from wangban.s3 import S3ObjectStore

REGION = "us-east-1"
BUCKETS = ("materials", "other-bucket")
ALLOW_S3 = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
}


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    """The front: what stores under test point at."""
    moto_endpoint: str
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

    def client(self, service: str = "s3") -> Any:
        """A plain botocore client on moto, to look at the bucket without our code between."""
        return _client(self.moto_endpoint, service, self.access_key, self.secret_key)


def _client(endpoint: str, service: str, access_key: str, secret_key: str) -> Any:
    return botocore.session.get_session().create_client(
        service,
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        config=Config(s3={"addressing_style": "path"}),
    )


@contextmanager
def s3_server() -> Iterator[S3Server]:
    """moto on a free port with one IAM user allowed s3:*, the buckets of :data:`BUCKETS`, and
    the front; signatures are checked from the first S3 request on.

    moto checks signatures only once IAM authentication is on (POST /moto-api/reset-auth with
    the number of requests to let through unchecked). The user and its key are made first,
    while nothing is checked yet; the buckets are then created with the user's key.
    """
    werkzeug_log = logging.getLogger("werkzeug")
    werkzeug_level = werkzeug_log.level
    werkzeug_log.setLevel(logging.WARNING)  # not a line per request
    port = free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    moto.start()
    moto_endpoint = f"http://127.0.0.1:{port}"
    front: _Front | None = None
    try:
        iam = _client(moto_endpoint, "iam", "AKIAIOSFODNN7EXAMPLE", "not-checked-yet")
        iam.create_user(UserName="wangban")
        created = iam.create_access_key(UserName="wangban")["AccessKey"]
        iam.put_user_policy(
            UserName="wangban", PolicyName="s3", PolicyDocument=json.dumps(ALLOW_S3)
        )
        httpx.post(f"{moto_endpoint}/moto-api/reset-auth", content=b"0").raise_for_status()
        access_key, secret_key = created["AccessKeyId"], created["SecretAccessKey"]
        s3 = _client(moto_endpoint, "s3", access_key, secret_key)
        for bucket in BUCKETS:
            s3.create_bucket(Bucket=bucket)
        front = _Front(moto_endpoint=moto_endpoint, secret_key=secret_key, s3=s3)
        threading.Thread(target=front.serve_forever, daemon=True).start()
        yield S3Server(
            f"http://127.0.0.1:{front.server_address[1]}", moto_endpoint, access_key, secret_key
        )
    finally:
        if front is not None:
            front.shutdown()
            front.server_close()
        # moto's settings are process-wide: leave authentication off and no state behind.
        with httpx.Client(timeout=10.0) as client:
            client.post(f"{moto_endpoint}/moto-api/reset-auth", content=b"inf")
            client.post(f"{moto_endpoint}/moto-api/reset")
        moto.stop()
        werkzeug_log.setLevel(werkzeug_level)


class _Front(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, *, moto_endpoint: str, secret_key: str, s3: Any) -> None:
        super().__init__(("127.0.0.1", 0), _FrontHandler)
        self.moto_endpoint = moto_endpoint
        self.secret_key = secret_key
        self.s3 = s3
        self.http = httpx.Client(timeout=30.0)

    def server_close(self) -> None:
        super().server_close()
        self.http.close()


# Not passed on: what belongs to one connection, and Expect (botocore asks for 100 Continue
# before a body; the handler answers it, and does not sign it).
_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "content-length", "expect"}
)


class _FrontHandler(BaseHTTPRequestHandler):
    server: _Front
    protocol_version = "HTTP/1.1"  # so that "Expect: 100-continue" is answered

    def log_message(self, format: str, *args: Any) -> None:
        return None

    def _answer(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _refuse(self, status: int, code: str) -> None:
        body = f"<Error><Code>{code}</Code></Error>".encode()
        self._answer(status, [("Content-Type", "application/xml")], body)

    def _pass_to_moto(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        answer = self.server.http.request(
            self.command,
            self.server.moto_endpoint + self.path,
            headers=[(k, v) for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP],
            content=body,
        )
        headers = [(k, v) for k, v in answer.headers.items() if k.lower() not in _HOP_BY_HOP]
        self._answer(answer.status_code, headers, answer.content)

    def do_PUT(self) -> None:
        self._pass_to_moto()

    def do_POST(self) -> None:
        self._pass_to_moto()

    def do_DELETE(self) -> None:
        self._pass_to_moto()

    def do_HEAD(self) -> None:
        self._pass_to_moto()

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        pairs = parse_qsl(parts.query, keep_blank_values=True)
        query = dict(pairs)
        if "X-Amz-Algorithm" not in query:
            self._pass_to_moto()
            return
        needed = ("X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires", "X-Amz-Signature")
        if query["X-Amz-Algorithm"] != "AWS4-HMAC-SHA256" or not all(n in query for n in needed):
            self._refuse(403, "AccessDenied")
            return
        access_key, _date, region, service, _ = query["X-Amz-Credential"].split("/")
        issued = datetime.strptime(query["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        if datetime.now(UTC) > issued + timedelta(seconds=int(query["X-Amz-Expires"])):
            self._refuse(403, "AccessDenied")  # "Request has expired"
            return
        # The query as sent, less the signature: its encoding is part of what was signed.
        unsigned = "&".join(
            p for p in parts.query.split("&") if not p.startswith("X-Amz-Signature=")
        )
        request = AWSRequest(
            method="GET", url=f"http://{self.headers['Host']}{parts.path}?{unsigned}"
        )
        request.context["timestamp"] = query["X-Amz-Date"]
        signer = S3SigV4QueryAuth(
            Credentials(access_key, self.server.secret_key),
            service,
            region,
            expires=int(query["X-Amz-Expires"]),
        )
        string_to_sign = signer.string_to_sign(request, signer.canonical_request(request))
        expected = signer.signature(string_to_sign, request)
        if not hmac.compare_digest(expected, query["X-Amz-Signature"]):
            self._refuse(403, "SignatureDoesNotMatch")
            return
        bucket, _, key = unquote(parts.path).lstrip("/").partition("/")
        overrides = {
            name: query[param]
            for name, param in (
                ("ResponseContentDisposition", "response-content-disposition"),
                ("ResponseContentType", "response-content-type"),
            )
            if param in query
        }
        try:
            answer = self.server.s3.get_object(Bucket=bucket, Key=key, **overrides)
        except ClientError as exc:
            status = exc.response["ResponseMetadata"]["HTTPStatusCode"]
            self._refuse(status, exc.response["Error"]["Code"])
            return
        headers = [("Content-Type", answer["ContentType"])]
        if "ContentDisposition" in answer:
            headers.append(("Content-Disposition", answer["ContentDisposition"]))
        self._answer(200, headers, answer["Body"].read())
