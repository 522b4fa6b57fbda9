"""How the sharing service reaches a department's data: the provider interface.

A provider answers one question: "the record of this subject in this dataset, these fields".
Two implementations exist: :class:`sharing_service.http_provider.HttpProvider` (a department's
REST endpoint, see ``docs/provider-protocol.md``) and
``sandbox.provider.SandboxProvider`` (a synthetic population for the demo and the tests; a
separate distribution, never in production). Policy, consent, predicates and auditing happen
above this interface, never in it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

SubjectKind = Literal["person", "company"]
"""Person: keyed by the 18-character resident ID number (居民身份证号码).
Company: keyed by the 18-character unified social credit code (统一社会信用代码)."""


@dataclass(frozen=True)
class Subject:
    kind: SubjectKind
    id: str

    def __repr__(self) -> str:
        # Never print an ID number by accident (logs, tracebacks, assertion messages).
        return f"Subject(kind={self.kind!r}, id=<{len(self.id)} chars>)"


@dataclass(frozen=True)
class ProviderRecord:
    """What a provider returned: the requested fields it has, and when the department last
    updated the record (a freshness stamp shown with every attribute)."""

    values: dict[str, Any]
    updated_at: datetime
    source: str = field(default="")
    """The provider's name for its system, e.g. "东莞市公安局人口信息系统"; informational."""


class ProviderUnavailable(Exception):
    """The provider could not answer (down, timed out, circuit open, malformed answer).

    Never to be read as "no record": callers fall back to manual handling instead of
    rejecting an applicant."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class DataProvider(Protocol):
    async def fetch(
        self,
        *,
        dataset: str,
        subject: Subject,
        fields: Sequence[str],
        request_id: str,
    ) -> ProviderRecord | None:
        """The subject's record restricted to ``fields`` (fields the dataset lacks are simply
        absent), or ``None`` when the dataset has no record of the subject.

        ``request_id`` is passed to the department so both sides' logs can be matched.
        Raises :class:`ProviderUnavailable` when no trustworthy answer could be had.
        """
        ...

    async def close(self) -> None:
        """Release connections; the provider is not used afterwards."""
        ...
