"""一件事一次办: one submission, one child application per member item, one status.

The bundle's combined form maps onto each member's form (``field_map``: bundle field → member
field); each child gets its part, is routed to its own department and goes through the ordinary
states. The parent shows the applicant one aggregated status ("3 of 4 done") and relays a
child's correction request.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from contracts.sharing.api_v1 import SharedResolution
from intake_service import repository
from intake_service.applications.creation import (
    Applicant,
    Channel,
    Keys,
    MaterialChoice,
    new_application,
)
from intake_service.applications.errors import InvalidForm, ItemVersionNotAvailable
from intake_service.applications.forms import form_errors
from intake_service.applications.idempotency import check_same_request, made_first
from intake_service.applications.lifecycle import submit
from intake_service.models import Application, TimelineEntry
from wangban.calendar import WorkingDayCalendar

Resolver = Callable[[str, str], Awaitable[Sequence[SharedResolution]]]

DONE = frozenset({"completed", "delivered"})
ENDED = frozenset({"not_accepted", "withdrawn", "terminated"})


def member_form(field_map: Mapping[str, str], combined: Mapping[str, Any]) -> dict[str, Any]:
    return {target: combined[source] for source, target in field_map.items() if source in combined}


@dataclass(frozen=True)
class BundleStatus:
    total: int
    done: int
    needs_correction: list[str]
    status: str

    @property
    def summary(self) -> str:
        return f"{self.done}/{self.total} 项已办结"


def aggregate(children: Sequence[Application]) -> BundleStatus:
    done = sum(1 for c in children if c.status in DONE)
    corrections = [c.item_name for c in children if c.status == "correction_requested"]
    if children and all(c.status in DONE for c in children):
        status = "completed"
    elif children and all(c.status in DONE | ENDED for c in children):
        status = "ended"
    elif corrections:
        status = "correction_requested"
    else:
        status = "in_progress"
    return BundleStatus(total=len(children), done=done, needs_correction=corrections, status=status)


async def submit_bundle(
    session: AsyncSession,
    *,
    bundle_version_id: str,
    applicant: Applicant,
    form: Mapping[str, Any],
    channel: Channel,
    resolve: Resolver,
    choices: Mapping[str, Sequence[MaterialChoice]],
    keys: Keys,
    calendar: WorkingDayCalendar,
    idempotency_key: str | None,
    idempotency_fingerprint: str | None = None,
    now: datetime | None = None,
) -> Application:
    """Create the parent and its children and submit every child. ``choices`` are keyed by
    member item version id; ``resolve(item_version_id, application_id)`` asks the sharing
    service about each child's materials, with the child's own id as the lookups' purpose.

    Read → ask sharing → write: every child is resolved before anything is written, so the
    session's write transaction never waits for sharing (``wangban.db``)."""
    now = now or datetime.now(UTC)
    if idempotency_key is not None:
        existing = await repository.by_idempotency_key(
            session, applicant_subject=applicant.subject, key=idempotency_key
        )
        if existing is not None:
            return check_same_request(existing, idempotency_fingerprint)
    bundle = await repository.bundle_version(session, bundle_version_id)
    if bundle is None:
        raise ItemVersionNotAvailable("该一件事主题不存在或已停止受理")
    errors = form_errors(bundle.content.get("form_schema"), form)
    if errors:
        raise InvalidForm(
            f"申请表有 {len(errors)} 处需要修改", extra={"errors": [e.model_dump() for e in errors]}
        )
    members = bundle.content.get("members", [])
    items = [await repository.item_version(session, v) for v in bundle.member_version_ids]
    if any(i is None or i.withdrawn_at is not None for i in items):
        raise ItemVersionNotAvailable("一件事中有事项已停止受理")
    first = items[0]
    assert first is not None
    parent = new_application(
        item=first,
        applicant=applicant,
        form=form,
        channel=channel,
        keys=keys,
        now=now,
        kind="bundle",
        idempotency_key=idempotency_key,
        idempotency_fingerprint=idempotency_fingerprint,
        form_schema=bundle.content.get("form_schema") or {},
    )
    parent.item_version_id, parent.bundle_version_id = None, bundle.version_id
    parent.item_code, parent.item_name = bundle.code, bundle.name
    parent.status = "submitted"
    parent.submitted_at = now
    children: list[tuple[Application, Sequence[SharedResolution]]] = []
    for item, member in zip(items, members, strict=True):
        assert item is not None
        child = new_application(
            item=item,
            applicant=applicant,
            form=member_form(member.get("field_map", {}), form),
            channel=channel,
            keys=keys,
            now=now,
            kind="member",
            parent_id=parent.id,
        )
        child.id = str(uuid.uuid4())
        # A concurrent duplicate of this request (same key) is found by the insert below; its
        # lookups stay in the audit log under children never created, as they were made.
        children.append((child, await resolve(item.version_id, child.id)))
    entry = TimelineEntry(
        application_id=parent.id,
        at=now,
        from_status=None,
        to_status="submitted",
        actor_kind="applicant",
        actor=channel.clerk or applicant.subject,
        note=f"一件事「{bundle.name}」，共 {len(items)} 个事项",
    )
    if not await repository.insert_application(session, parent, materials=[], timeline=[entry]):
        return await made_first(
            session,
            applicant_subject=applicant.subject,
            key=idempotency_key or "",
            fingerprint=idempotency_fingerprint,
        )
    for (child, shared), item in zip(children, items, strict=True):
        assert item is not None
        session.add(child)
        await session.flush()
        await submit(
            session,
            application=child,
            shared=shared,
            choices=choices.get(item.version_id, ()),
            actor_kind="applicant",
            actor=channel.clerk or applicant.subject,
            keys=keys,
            calendar=calendar,
            now=now,
        )
    return parent


async def refresh_parent(session: AsyncSession, *, child: Application, now: datetime) -> None:
    """After a child changed: the parent's aggregated status and, when a child asks for a
    correction, a timeline entry on the parent so the applicant sees it there."""
    if child.parent_id is None:
        return
    parent = await repository.application(session, child.parent_id, lock=True)
    if parent is None:
        return
    state = aggregate(await repository.children(session, parent.id))
    new_status = {
        "completed": "completed",
        "ended": "terminated",
        "correction_requested": "correction_requested",
    }.get(state.status, "under_review")
    note = state.summary
    if child.status == "correction_requested":
        note = f"「{child.item_name}」需要补正：{child.status_reason}"
    if new_status != parent.status or child.status == "correction_requested":
        session.add(
            TimelineEntry(
                application_id=parent.id,
                at=now,
                from_status=parent.status,
                to_status=new_status,
                actor_kind="system",
                actor="intake",
                note=note,
            )
        )
        parent.status = new_status
        if new_status == "completed":
            parent.completed_at = now
    await session.flush()
