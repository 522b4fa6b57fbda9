"""What the suite runs on, for the fixtures in ``tests/conftest.py`` and for tests that build
their own settings: where PostgreSQL and the broker are, and test settings pointing at them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from wangban.settings import Environment, Settings


@dataclass(frozen=True)
class Infrastructure:
    database_url: str
    kafka_bootstrap: str
    data_dir: Path


def make_settings(infra: Infrastructure, **overrides: object) -> Settings:
    """Test settings: real URLs, short timeouts so failure paths run in seconds."""
    values: dict[str, object] = {
        "env": Environment.TEST,
        "data_dir": infra.data_dir,
        "database_url": infra.database_url,
        "kafka_bootstrap": infra.kafka_bootstrap,
        "kafka_session_timeout_ms": 2000,
        "kafka_heartbeat_interval_ms": 300,
        "kafka_request_timeout_ms": 3000,
        "outbox_poll_interval_s": 1.0,
        # Rows a test wrote straight to an outbox (publishing an item before the services
        # start) are sent by a relay's first round when older than two mark intervals (0.5 s
        # here), else by the first poll after the grace, not after production's 10 s: in a
        # test every writer is in this process and has sent its rows within milliseconds.
        # The grace stays well above the mark interval: a row sent and not yet marked must
        # not look abandoned (it would be claimed and sent again).
        "outbox_mark_interval_s": 0.25,
        "outbox_recovery_grace_s": 4.0,
        "consumer_max_attempts": 3,
        "consumer_retry_backoff_ms": 20,
        "consumer_retry_backoff_max_ms": 200,
        "log_json": True,
        # A call to another service while holding a transaction fails the test (wangban.db).
        "transaction_guard": "raise",
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]
