"""Settings for every Wangban process, read from ``WANGBAN_*`` environment variables.

Local defaults are safe and work on a machine with nothing installed: no database or broker
URL means "start the embedded ones". In production (``WANGBAN_ENV=production``) every
dev-only value is refused at start-up with a message that says which variable to set.
"""

from __future__ import annotations

import base64
import enum
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from wangban.key_strength import key_problems

SERVICE_NAMES: tuple[str, ...] = (
    "gateway",
    "catalog",
    "intake",
    "approval",
    "sharing",
    "notify",
)

# Dev-only secrets: good enough for a laptop, refused in production.
DEV_INTERNAL_TOKEN_KEY = "dev-internal-token-key-not-for-production-use!"
DEV_FIELD_KEY_ID = "dev1"
DEV_FIELD_KEY = base64.b64encode(b"wangban-dev-field-key-32-bytes!!").decode()
DEV_BLIND_INDEX_KEY = "dev-blind-index-key-not-for-production"
DEV_WECHAT_APP_SECRET = "dev-wechat-app-secret"
DEV_GATEWAY_TOKEN_KEY = "dev-gateway-token-key-not-for-production-use!!"
DEV_IDENTITY_PROVIDER_TOKEN = "dev-identity-provider-token"
DEV_SMS_ACCESS_KEY_SECRET = "dev-sms-access-key-secret"
DEV_AUDIT_CHAIN_KEY = "dev-audit-chain-key-not-for-production-use!!"
DEV_AUDIT_CHECKPOINT_KEY = base64.b64encode(b"wangban-dev-audit-checkpoint-key").decode()


class Environment(enum.StrEnum):
    LOCAL = "local"
    TEST = "test"
    PRODUCTION = "production"


class ConfigurationError(RuntimeError):
    """The settings cannot be used in this environment; the message names the variable."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="WANGBAN_",
        env_file=None,
        extra="ignore",
        frozen=True,
    )

    env: Environment = Environment.LOCAL
    """local | test | production. Production refuses dev-only values."""

    data_dir: Path = Path(".wangban")
    """Local state: embedded PostgreSQL data, object storage, logs."""

    # --- PostgreSQL -----------------------------------------------------------------
    database_url: str | None = None
    """postgresql+asyncpg://user:pass@host:5432/db. Empty: embedded PostgreSQL (pgserver)."""
    database_pool_size: int = 10
    database_max_overflow: int = 10
    database_pool_timeout_s: float = Field(default=10.0, gt=0)
    """Longest wait for a pooled connection; then the request fails as 503 (retry later)."""
    database_pre_ping: bool = False
    """Test each pooled connection before use (a round trip per checkout). Off: a dead
    connection fails one unit of work with a retryable 503 and is replaced."""
    database_echo: bool = False
    transaction_guard: Literal["raise", "warn"] = "warn"
    """What a call to another service (or to a department's system) does when the calling task
    holds an open database transaction: ``warn`` logs once per call site and counts
    ``wangban_transaction_held_across_call_total``; ``raise`` fails the call (the test suite)."""

    # --- Kafka ----------------------------------------------------------------------
    kafka_bootstrap: str | None = None
    """host:port[,host:port]. Empty: the embedded Kafka-protocol broker (memory only)."""
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: Path | None = None
    kafka_idempotence: bool = False
    """Producer idempotence: on for Apache Kafka. The embedded Tansu rejects InitProducerId;
    the embedded mock cluster accepts it (the CI lane that runs with it, docs/operations.md)."""
    kafka_verify_writes: bool = True
    """After each relayed batch, check the broker did not restart meanwhile (one OffsetFetch
    round trip). Protects against a broker that forgets (the embedded one); redundant with
    Apache Kafka and acks=all."""
    kafka_client_id_prefix: str = "wangban"
    kafka_request_timeout_ms: int = 15000
    kafka_fetch_max_wait_ms: int = Field(default=10, ge=1)
    """Upper bound of a fetch long-poll while records flow. Apache Kafka answers as soon as
    data arrives; the embedded brokers wait the whole interval, so it is short by default."""
    kafka_fetch_idle_wait_ms: int = Field(default=500, ge=1)
    """Upper bound of a fetch long-poll once a consumer has received nothing for
    ``kafka_fetch_idle_after_s``: an idle consumer asks twice a second instead of a hundred
    times (the embedded brokers' idle cost, docs/performance.md); the first record after a
    quiet spell waits up to this long per hop there, the next ones ``kafka_fetch_max_wait_ms``.
    Equal to ``kafka_fetch_max_wait_ms``: one wait always."""
    kafka_fetch_idle_after_s: float = Field(default=5.0, gt=0)
    kafka_session_timeout_ms: int = 6000
    kafka_heartbeat_interval_ms: int = 1000
    kafka_replication_factor: int = 1
    embedded_kafka_port: int = 19092

    # --- Outbox relay and consumers ------------------------------------------------
    outbox_poll_interval_s: float = 5.0
    """Safety-net poll only: the relay is woken after commit (in-process and LISTEN/NOTIFY)."""
    outbox_batch_size: int = 200
    outbox_mark_interval_s: float = Field(default=1.0, gt=0)
    """Rows the relay sent are marked published together, one statement at most this often
    (sooner when a batch's worth waits, and on stop). A crash loses at most this much marking,
    which only means those rows are sent again."""
    outbox_recovery_grace_s: float = Field(default=10.0, gt=0)
    """A row still unpublished this long after its transaction began is taken as one its
    writer will not send (it died, or it runs no relay) and is claimed by any relay's poll."""
    consumer_max_attempts: int = 5
    consumer_retry_backoff_ms: int = 200
    consumer_retry_backoff_max_ms: int = 10000
    broker_check_interval_s: float = Field(default=10.0, gt=0)
    """How often a service with an outbox asks whether the broker answers (``/healthz``
    details and ``wangban_broker_up``; readiness does not depend on it)."""

    # --- HTTP ----------------------------------------------------------------------
    host: str = "127.0.0.1"
    gateway_port: int = 8000
    catalog_port: int = 8001
    intake_port: int = 8002
    approval_port: int = 8003
    sharing_port: int = 8004
    notify_port: int = 8005
    gateway_url: str | None = None
    catalog_url: str | None = None
    intake_url: str | None = None
    approval_url: str | None = None
    sharing_url: str | None = None
    notify_url: str | None = None
    web_workers: int = Field(default=1, ge=1, le=32)
    """uvicorn worker processes per service (``wangban serve``); in Kubernetes prefer 1 and
    more replicas."""
    metrics_port: int | None = Field(default=None, ge=0, le=65535)
    """Serve ``/metrics`` on this port (an internal one, scraped by Prometheus) instead of the
    service's own. Unset: the service port has it locally, and nothing does in production."""
    expose_api_docs: bool | None = None
    """``/docs``, ``/redoc`` and ``/openapi.json``. Unset: on locally and in tests, off in
    production (they map the whole API for anyone who asks)."""
    trusted_proxies: list[str] = Field(default_factory=list)
    """Addresses or CIDR networks of the reverse proxies in front of the gateway (the ingress).
    Only a request from one of them has its ``X-Forwarded-For`` believed, and the client is the
    right-most hop that is not one of them. Empty: the socket's peer is the client."""
    http_timeout_s: float = 5.0
    http_retries: int = 2

    # --- Catalog ------------------------------------------------------------------------
    catalog_import_max_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    """Largest item file an admin may import in one request."""
    catalog_import_max_rows: int = Field(default=10_000, ge=1)
    """Most items in one import (each is a draft written in the request's transaction)."""
    catalog_hotline_name: str = Field(default="12345政务服务便民热线", min_length=1, max_length=40)
    catalog_hotline_phone: str = Field(
        default="12345", min_length=3, max_length=20, pattern=r"^[0-9][0-9 -]*[0-9]$"
    )
    """The hotline a search that found nothing offers (besides the nearest items): by default
    the national 12345 government service hotline, which every region answers."""

    # --- Working days ---------------------------------------------------------------
    calendar_overrides_path: Path | None = None
    """JSON object ``{"YYYY-MM-DD": "holiday" | "workday"}``: the State Council's holiday and
    调休 schedule for years the bundled calendar does not know yet, and local exceptions. It
    wins over the bundled calendar."""

    # --- Files (uploads) -------------------------------------------------------------
    object_store_url: str | None = None
    """Where uploaded files go: empty for a local folder (``<data_dir>/objects``), or
    ``s3://bucket/prefix`` for an S3-compatible store (with the S3 settings below)."""
    s3_endpoint_url: str | None = None
    """The store's URL (MinIO, Ceph RGW, a government cloud's); empty for AWS S3 itself."""
    s3_region: str = "us-east-1"
    s3_access_key: SecretStr | None = None
    s3_secret_key: SecretStr | None = None
    """Both or neither: without them the standard AWS credential chain is used (environment
    ``AWS_*``, shared files, web identity, container credentials, instance profile)."""
    s3_addressing_style: Literal["path", "virtual"] = "path"
    """``path`` (``endpoint/bucket/key``: every S3-compatible store, no wildcard DNS) or
    ``virtual`` (``bucket.endpoint/key``)."""
    s3_multipart_threshold_bytes: int = Field(default=16 * 1024 * 1024, ge=5 * 1024 * 1024)
    """Objects larger than this are uploaded in parts of this size (S3's minimum part: 5 MiB)."""
    s3_presigned_downloads: bool = False
    """Answer a material download with a redirect (307) to a presigned URL of the store, so the
    file does not pass through intake and the gateway; the store must then be reachable by the
    clients. Off: the service streams the file (the local folder store always does)."""
    s3_presigned_expires_s: int = Field(default=300, ge=1, le=7 * 24 * 3600)
    """How long a presigned download URL works."""
    upload_max_bytes: int = Field(default=20 * 1024 * 1024, ge=1024)
    """Largest single uploaded material."""
    upload_allowed_types: list[str] = Field(
        default_factory=lambda: ["application/pdf", "image/jpeg", "image/png", "application/ofd"]
    )
    """Media types accepted for materials, checked against the file's content, not its name."""

    # --- Notify: WeChat subscription messages, SMS, the in-app inbox ---------------------
    notify_test_mode: bool = True
    """Run the whole delivery path with simulated WeChat and SMS answers and receipts, and send
    nothing (like GOV.UK Notify's test keys). On by default so a laptop never messages anyone;
    refused in production."""
    wechat_api_base: str = "https://api.weixin.qq.com"
    """WeChat's server API; tests point it at a local fake."""
    wechat_appid: str = "wx0000000000000000"
    wechat_app_secret: SecretStr = SecretStr(DEV_WECHAT_APP_SECRET)
    wechat_miniprogram_state: Literal["developer", "trial", "formal"] = "formal"
    """Which version of the mini-program a subscription message opens."""
    wechat_lang: Literal["zh_CN", "en_US", "zh_HK", "zh_TW"] = "zh_CN"
    sms_gateway_url: str = "http://127.0.0.1:8090"
    """The SMS gateway (``docs/sms-gateway-protocol.md``)."""
    sms_access_key_id: str = "dev-sms-key"
    sms_access_key_secret: SecretStr = SecretStr(DEV_SMS_ACCESS_KEY_SECRET)
    sms_sign_name: str = "网办"
    """The signature registered with the carriers, shown as 【网办】."""
    sms_max_chars: int = Field(default=210, ge=70)
    """Longest SMS, signature included (three segments of 67 characters, rounded)."""
    sms_daily_limit_per_number: int = Field(default=10, ge=1)
    """SMS to one number per day (Beijing time) at most; further ones stay in the inbox."""
    sms_code_template: str = Field(default="SMS_WB_CODE", min_length=1, max_length=64)
    """The gateway's template for phone-verification codes (one parameter, ``code``)."""
    notify_http_timeout_s: float = Field(default=5.0, gt=0)
    """Longest wait for WeChat or the SMS gateway: a send never hangs longer."""
    notify_max_attempts: int = Field(default=5, ge=1)
    """Sends of one message at most (temporary and technical failures are retried)."""
    notify_retry_backoff_s: float = Field(default=30.0, ge=0)
    """Wait before the second attempt; doubles with each attempt after."""
    notify_retry_window_s: float = Field(default=24 * 3600.0, gt=0)
    """No retry later than this after the message was created: old news is not news."""
    notify_send_stuck_s: float = Field(default=300.0, gt=0)
    """A message ``sending`` this long with no answer recorded was lost with its process."""
    notify_receipt_timeout_s: float = Field(default=72 * 3600.0, gt=0)
    """How long an SMS accepted by the gateway may wait for its delivery receipt."""
    notify_dispatch_interval_s: float = Field(default=5.0, gt=0)
    """How often the dispatcher looks for due messages (retries of other processes, messages
    given back or created where no dispatcher runs). New messages are handed to it in memory
    when their transaction commits and its own retries wake it when due: the poll is a
    safety net, one statement per interval when idle."""
    notify_dispatch_batch: int = Field(default=50, ge=1)

    # --- Gateway: the mini-program's and the staff console's door ------------------------
    gateway_token_key: SecretStr = SecretStr(DEV_GATEWAY_TOKEN_KEY)
    """HMAC key of the access tokens the gateway gives clients (not the internal key: a client
    token must never be accepted by a service directly)."""
    gateway_access_token_ttl_s: int = Field(default=900, ge=60, le=3600)
    gateway_refresh_token_ttl_s: int = Field(default=30 * 86400, ge=3600)
    gateway_revocation_cache_s: float = Field(default=5.0, ge=0, le=60)
    """How long a gateway worker keeps its copy of the ended login sessions (logout, refresh
    token reuse) before reading it again: their access tokens are refused at once by the worker
    that ended them, by the others within this many seconds. 0 reads on every request."""
    gateway_public_cache_s: float = Field(default=5.0, ge=0, le=60)
    """How long the gateway keeps an answer of the public catalogue (a search, the first
    screen's hot items) before asking the catalog again (``gateway/public_answers.py``): a
    catalogue change reaches citizens at most this late. 0: never kept."""
    identity_provider_url: str | None = None
    """The real-name verification service (``docs/identity-provider-protocol.md``). Empty: the
    sandbox population (local and test only)."""
    identity_provider_token: SecretStr = SecretStr(DEV_IDENTITY_PROVIDER_TOKEN)
    gateway_cors_origins: list[str] = Field(default_factory=lambda: ["http://localhost:5173"])
    """Origins of the staff web console allowed to call the API from a browser."""
    gateway_console_dir: Path | None = None
    """The staff console's built files (``console/dist``), served at ``/console/`` by the
    gateway; empty: no console is served."""
    gateway_max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    """Largest request body (JSON); material uploads have their own, larger limit."""
    gateway_login_per_minute_per_ip: int = Field(default=30, ge=1)
    gateway_staff_login_per_minute_per_ip: int = Field(default=10, ge=1)
    gateway_real_name_per_hour_per_user: int = Field(default=5, ge=1)
    gateway_submissions_per_minute_per_user: int = Field(default=10, ge=1)
    gateway_submissions_per_minute_per_ip: int = Field(default=60, ge=1)

    # --- Security ------------------------------------------------------------------
    internal_token_key: SecretStr = SecretStr(DEV_INTERNAL_TOKEN_KEY)
    """HMAC key that signs the short-lived identity token services pass to each other."""
    internal_token_ttl_s: int = 60
    field_encryption_keys: dict[str, SecretStr] = Field(
        default_factory=lambda: {DEV_FIELD_KEY_ID: SecretStr(DEV_FIELD_KEY)}
    )
    """JSON object key id → base64 of a 32-byte AES key. Old ids stay for decryption."""
    field_encryption_active_key: str = DEV_FIELD_KEY_ID
    blind_index_key: SecretStr = SecretStr(DEV_BLIND_INDEX_KEY)
    audit_chain_key: SecretStr = SecretStr(DEV_AUDIT_CHAIN_KEY)
    """HMAC key that chains the sharing service's lookup audit records. Kept out of the
    database, so someone who can rewrite the audit table cannot recompute the chain."""
    audit_checkpoint_key: SecretStr = SecretStr(DEV_AUDIT_CHECKPOINT_KEY)
    """Base64 of the 32-byte Ed25519 private key (seed) that signs audit chain checkpoints."""
    audit_checkpoint_interval_s: float = Field(default=300.0, gt=0)
    """How often the sharing service signs and publishes the audit chain's head (checkpoint)."""
    provider_allowed_hosts: list[str] = Field(default_factory=list)
    """Data-provider hosts (names, addresses or CIDR networks) allowed even though they resolve
    to a private, loopback or link-local address: departments' systems on the government
    network. Everything else such must be refused (production)."""

    # --- Observability -------------------------------------------------------------
    log_level: str = "INFO"
    log_json: bool = True

    @model_validator(mode="after")
    def _production_refuses_dev_values(self) -> Settings:
        if self.env is not Environment.PRODUCTION:
            return self
        problems: list[str] = []
        if not self.database_url:
            problems.append("WANGBAN_DATABASE_URL is required (no embedded PostgreSQL)")
        if not self.kafka_bootstrap:
            problems.append("WANGBAN_KAFKA_BOOTSTRAP is required (no embedded broker)")
        if self.internal_token_key.get_secret_value() == DEV_INTERNAL_TOKEN_KEY:
            problems.append("WANGBAN_INTERNAL_TOKEN_KEY must be set to a secret")
        elif len(self.internal_token_key.get_secret_value()) < 32:
            problems.append("WANGBAN_INTERNAL_TOKEN_KEY must be at least 32 characters")
        if any(v.get_secret_value() == DEV_FIELD_KEY for v in self.field_encryption_keys.values()):
            problems.append("WANGBAN_FIELD_ENCRYPTION_KEYS still holds the development key")
        if self.blind_index_key.get_secret_value() == DEV_BLIND_INDEX_KEY:
            problems.append("WANGBAN_BLIND_INDEX_KEY must be set to a secret")
        if self.audit_chain_key.get_secret_value() == DEV_AUDIT_CHAIN_KEY:
            problems.append("WANGBAN_AUDIT_CHAIN_KEY must be set to a secret")
        elif len(self.audit_chain_key.get_secret_value().encode()) < 32:
            problems.append("WANGBAN_AUDIT_CHAIN_KEY must be at least 32 bytes")
        if self.audit_checkpoint_key.get_secret_value() == DEV_AUDIT_CHECKPOINT_KEY:
            problems.append("WANGBAN_AUDIT_CHECKPOINT_KEY must be set to a secret Ed25519 key")
        if self.kafka_security_protocol in ("SASL_SSL", "SASL_PLAINTEXT") and not (
            self.kafka_sasl_mechanism and self.kafka_sasl_username and self.kafka_sasl_password
        ):
            problems.append("SASL needs WANGBAN_KAFKA_SASL_MECHANISM, _USERNAME and _PASSWORD")
        if (
            self.object_store_url
            and self.object_store_url.startswith("s3://")
            and bool(self.s3_access_key) != bool(self.s3_secret_key)
        ):
            # Keys or the standard credential chain; half a key pair is a mistake.
            problems.append("set both WANGBAN_S3_ACCESS_KEY and _SECRET_KEY, or neither")
        if self.notify_test_mode:
            problems.append("WANGBAN_NOTIFY_TEST_MODE must be false (test mode sends nothing)")
        if self.wechat_app_secret.get_secret_value() == DEV_WECHAT_APP_SECRET:
            problems.append("WANGBAN_WECHAT_APP_SECRET must be set to the mini-program's secret")
        if self.sms_access_key_secret.get_secret_value() == DEV_SMS_ACCESS_KEY_SECRET:
            problems.append("WANGBAN_SMS_ACCESS_KEY_SECRET must be set to the gateway's secret")
        if self.gateway_token_key.get_secret_value() == DEV_GATEWAY_TOKEN_KEY:
            problems.append("WANGBAN_GATEWAY_TOKEN_KEY must be set to a secret")
        if not self.identity_provider_url:
            problems.append("WANGBAN_IDENTITY_PROVIDER_URL is required (no sandbox population)")
        if self.identity_provider_token.get_secret_value() == DEV_IDENTITY_PROVIDER_TOKEN:
            problems.append("WANGBAN_IDENTITY_PROVIDER_TOKEN must be set")
        # Every *_key setting: ≥ 32 random bytes, no placeholder, one key per purpose
        # (wangban.key_strength says which settings and how values are decoded).
        problems += key_problems(self)
        if problems:
            raise ConfigurationError(
                "Refusing to start with WANGBAN_ENV=production: " + "; ".join(problems)
            )
        return self

    @model_validator(mode="after")
    def _active_key_exists(self) -> Settings:
        if self.field_encryption_active_key not in self.field_encryption_keys:
            raise ConfigurationError(
                "WANGBAN_FIELD_ENCRYPTION_ACTIVE_KEY names a key id that is not in "
                "WANGBAN_FIELD_ENCRYPTION_KEYS"
            )
        return self

    @property
    def api_docs_exposed(self) -> bool:
        if self.expose_api_docs is not None:
            return self.expose_api_docs
        return self.env is not Environment.PRODUCTION

    @property
    def metrics_on_service_port(self) -> bool:
        """``/metrics`` on the service's own port: only locally, when no metrics port is set."""
        return self.metrics_port is None and self.env is not Environment.PRODUCTION

    def port_of(self, service: str) -> int:
        port: int = getattr(self, f"{_check_service(service)}_port")
        return port

    def url_of(self, service: str) -> str:
        """Base URL another service is reached at (explicit URL, else local host and port)."""
        explicit: str | None = getattr(self, f"{_check_service(service)}_url")
        if explicit:
            return explicit.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
        return f"http://{host}:{self.port_of(service)}"


def _check_service(service: str) -> str:
    if service not in SERVICE_NAMES:
        raise ValueError(f"unknown service {service!r}; expected one of {SERVICE_NAMES}")
    return service


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read once. Tests build ``Settings(...)`` directly instead."""
    return Settings()
