"""The sharing service's internal HTTP API as other services read it (version 1): material
resolution (``POST /materials/resolve``, intake) and lookups (``POST /lookups``, intake's
prefill and approval's 秒批 rules). The caller is ``wangban.sharing_client``; the answers' wire
shape is read here, in one place, tolerantly (fields this code does not know are ignored)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass
class SharedResolution:
    """The sharing service's answer for one material (see sharing's ``/materials/resolve``)."""

    index: int
    status: str
    evidence_kind: str | None = None
    evidence_id: str | None = None
    message: str = ""

    @classmethod
    def from_answer(cls, material: Mapping[str, Any]) -> SharedResolution:
        """One entry of the answer's ``materials``."""
        evidence = material.get("evidence") or {}
        return cls(
            index=int(material["index"]),
            status=str(material["status"]),
            evidence_kind=evidence.get("kind"),
            evidence_id=evidence.get("id"),
            message=str(material.get("message", "")),
        )


@dataclass(frozen=True)
class LookupAnswer:
    """One lookup's outcome. ``unavailable``: the provider or the sharing service could not
    answer; ``refused``: the access policy or a missing consent said no. Neither means "no
    record" (that is ``not_found``)."""

    status: Literal["found", "not_found", "unavailable", "refused"]
    lookup_id: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    """Field → ``{"value", "source", "provider", "dataset", "updated_at"}``."""

    def value(self, name: str) -> Any:
        attribute = self.attributes.get(name)
        return None if attribute is None else attribute.get("value")

    @classmethod
    def from_answer(cls, body: Mapping[str, Any]) -> LookupAnswer:
        """A ``200`` answer of ``POST /lookups``: found or not."""
        return cls(
            status="found" if body.get("found") else "not_found",
            lookup_id=body.get("lookup_id"),
            attributes=dict(body.get("attributes") or {}),
        )
