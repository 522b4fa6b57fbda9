"""Factories for the sharing tests: valid identifiers, a small provider, registry rows."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from sharing_service import registry
from sharing_service.models import ItemVersionCopy
from sharing_service.providers import ProviderRecord, ProviderUnavailable, Subject
from wangban.crypto import BlindIndex, FieldCipher
from wangban.identifiers import resident_id_check_char, uscc_check_char
from wangban.settings import Settings

UPDATED = datetime(2026, 11, 20, 8, 30, tzinfo=UTC)


def person_id(born: date, seq: int = 123, region: str = "441900") -> str:
    """A valid resident ID number (checksum included) for someone born on ``born``."""
    body = f"{region}{born:%Y%m%d}{seq:03d}"
    return body + resident_id_check_char(body)


def company_id(serial: str = "MA4W1234") -> str:
    """A valid unified social credit code of a Dongguan company."""
    body = f"91441900{serial}".ljust(17, "0")[:17]
    return body + uscc_check_char(body)


class StaticProvider:
    """A department with a handful of records, as a provider; remembers what it was asked.

    Stands in for a department's system (an external system), never for our own code."""

    def __init__(self, records: Mapping[tuple[str, str], Mapping[str, Any]]) -> None:
        self.records = {key: dict(value) for key, value in records.items()}
        self.asked: list[tuple[str, list[str]]] = []
        self.down: set[str] = set()

    async def fetch(
        self, *, dataset: str, subject: Subject, fields: Sequence[str], request_id: str
    ) -> ProviderRecord | None:
        self.asked.append((dataset, list(fields)))
        if dataset in self.down:
            raise ProviderUnavailable("connection refused")
        record = self.records.get((dataset, subject.id))
        if record is None:
            return None
        return ProviderRecord(
            values={name: record[name] for name in fields if name in record},
            updated_at=UPDATED,
            source="测试部门系统",
        )

    async def close(self) -> None:
        return None


def keys(settings: Settings) -> tuple[FieldCipher, BlindIndex]:
    return FieldCipher.from_settings(settings), BlindIndex.from_settings(settings)


async def add_grant(
    session: AsyncSession,
    *,
    consumer: str = "approval",
    dataset: str,
    item_code: str,
    disclose: Sequence[str] = (),
    verify: Sequence[str] = (),
    consent: bool = False,
) -> None:
    await registry.put_grant(
        session,
        consumer=consumer,
        dataset_code=dataset,
        item_code=item_code,
        disclose_fields=disclose,
        verify_fields=verify,
        consent_required=consent,
    )


async def add_item_version(
    session: AsyncSession,
    *,
    item_code: str,
    materials: list[dict[str, Any]],
    name: str = "测试事项",
) -> str:
    version_id = str(uuid.uuid4())
    session.add(
        ItemVersionCopy(
            version_id=version_id,
            item_id=str(uuid.uuid4()),
            implementing_code=item_code,
            name=name,
            materials=materials,
            published_at=UPDATED,
        )
    )
    await session.flush()
    return version_id


def item_code() -> str:
    """A fresh implementing code, so grants of one test never serve another."""
    return f"TEST-{uuid.uuid4().hex[:16]}"
