"""Who may change which item, and the four-eyes rule (四眼原则) for changes that decide
applications. No HTTP here; functions flush, never commit.

**Scope.** A department's catalogue staff act only on items of their own department and region:
the item content's ``department`` must equal the staff member's ``department`` claim and the
item's ``region_code`` must lie within their ``region`` claim (equal, or a parent division:
440000 covers 44xxxx, 441900 covers 4419xx and 441900xxxxxx). A staff identity without either
claim acts on no item. An item of another department answers as if it did not exist (404, so
existence is not revealed through ids); *creating* content for another department is refused
plainly (403 ``other-department``), since the department is in the request. The rare platform
role (``platform_catalog_admin``) is not scoped: synonyms, imports and bundles across
departments.

**Four eyes.** A version that changes what decides applications — 秒批 rules or switching
秒批 on, 受理条件, legal or committed time limits, the manual workflow, the required assurance,
the owning department or region — compared with the version citizens last saw (or a new item
with 秒批 rules) cannot be published by its author: it is *submitted*, its rules are replayed on
the item's recent decided cases (the approval service), and a ``catalog_approver`` of the owning
department who neither created, edited nor submitted it approves (publishes) or rejects it.
Every submission leaves a :class:`~catalog_service.models.RuleChange` record for auditors.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy.ext.asyncio import AsyncSession

from catalog_service import repository, service
from catalog_service.models import BundleVersion, ItemVersion, RuleChange
from catalog_service.schemas import BundleContent, ItemContent, Status
from wangban.errors import Conflict, Forbidden

# --- errors -----------------------------------------------------------------------------------


class OtherDepartment(Forbidden):
    type_slug = "other-department"
    title = "不能维护其他部门的事项"


class FourEyesRequired(Forbidden):
    type_slug = "four-eyes-required"
    title = "需要另一人审核"


class ReviewRequired(Conflict):
    type_slug = "review-required"
    title = "该修改需要审核后发布"


class NotSubmitted(Conflict):
    type_slug = "not-submitted"
    title = "该版本未提交审核"


# --- who ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Actor:
    """The staff member acting, as the catalogue needs to know them."""

    subject: str
    department: str | None
    region: str | None
    platform: bool = False
    """Holds the platform-wide catalogue role: not scoped to a department."""


def division_prefix(code: str) -> str:
    """The significant digits of a division code: 440000 → 44, 441900 → 4419, 441902 →
    441902, 441900003000 → 441900003."""
    if len(code) == 12:
        if code[9:] == "000":
            code = code[:9]
            if code[6:] == "000":
                code = code[:6]
        else:
            return code
    if len(code) == 6:
        if code[4:] == "00":
            code = code[:4]
            if code[2:] == "00":
                code = code[:2]
    return code


def covers(region: str, region_code: str) -> bool:
    """Whether division ``region`` is ``region_code`` or one of its parents."""
    return region_code.startswith(division_prefix(region))


def in_scope(actor: Actor, *, department: str, region_code: str) -> bool:
    if actor.platform:
        return True
    if not actor.department or not actor.region:
        return False
    return actor.department == department and covers(actor.region, region_code)


def _check_content(actor: Actor, content: ItemContent) -> None:
    if not in_scope(actor, department=content.department, region_code=content.region_code):
        raise OtherDepartment(
            f"只能维护本部门（{actor.department or '未设置部门'}）、本地区"
            f"（{actor.region or '未设置地区'}）的事项，不能为“{content.department}”"
            f"（{content.region_code}）创建或修改事项"
        )


async def _version(
    session: AsyncSession, actor: Actor, version_id: str, *, lock: bool = False
) -> ItemVersion:
    version = await repository.version_by_id(session, version_id, lock=lock)
    if version is None or not in_scope(
        actor, department=version.department, region_code=version.region_code
    ):
        raise service.VersionNotFound()
    return version


async def _item_scope(session: AsyncSession, actor: Actor, item_id: str) -> None:
    """404 unless the item's newest version is of the actor's department and region."""
    item = await repository.item_by_id(session, item_id)
    if item is None:
        raise service.ItemNotFound()
    newest = (await repository.latest_versions_by_codes(session, [item.implementing_code])).get(
        item.implementing_code
    )
    if newest is None or not in_scope(
        actor, department=newest.department, region_code=newest.region_code
    ):
        raise service.ItemNotFound()


# --- what needs a second person -----------------------------------------------------------------

REVIEWED_FIELDS: Final = (
    "auto_approval",
    "rules",
    "conditions",
    "legal_days",
    "committed_days",
    "workflow",
    "assurance",
    "department",
    "region_code",
    "grant_limit",
    "grant_period",
    "establishes",
)
"""The elements that decide who is approved, by whom and how fast: changing any takes two.
(The grant limit decides who may have the benefit at all: a second grant is refused; what an
item establishes decides who holds its licence.)"""

FIELD_NAMES: Final = {
    "auto_approval": "秒批开关",
    "rules": "秒批规则",
    "conditions": "受理条件",
    "legal_days": "法定办结时限",
    "committed_days": "承诺办结时限",
    "workflow": "审批流程",
    "assurance": "身份认证等级",
    "department": "实施部门",
    "region_code": "行政区划",
    "grant_limit": "享受次数限制",
    "grant_period": "享受次数周期",
    "establishes": "设立的市场主体类型",
}


def reviewed_part(content: Mapping[str, Any]) -> dict[str, Any]:
    # Through the model, so defaults and number forms compare equal.
    normalised = ItemContent.model_validate(content).model_dump(mode="json")
    return {name: normalised[name] for name in REVIEWED_FIELDS}


@dataclass(frozen=True)
class Change:
    previous_version_id: str | None
    changed_fields: list[str]
    old: dict[str, Any]
    new: dict[str, Any]

    @property
    def needs_review(self) -> bool:
        return bool(self.changed_fields)

    @property
    def rules_changed(self) -> bool:
        return "rules" in self.changed_fields or "auto_approval" in self.changed_fields


async def change_of(session: AsyncSession, version: ItemVersion) -> Change:
    """How ``version`` differs, in the reviewed elements, from the version citizens last saw.
    A new item needs review when it has 秒批 rules or 秒批 switched on."""
    new = reviewed_part(version.content)
    previous = await repository.last_published_version(
        session, version.item_id, except_id=version.id
    )
    if previous is None:
        changed = [f for f in ("auto_approval", "rules") if new[f]]
        return Change(previous_version_id=None, changed_fields=changed, old={}, new=new)
    old = reviewed_part(previous.content)
    changed = [name for name in REVIEWED_FIELDS if old[name] != new[name]]
    return Change(previous_version_id=previous.id, changed_fields=changed, old=old, new=new)


def _review_required(change: Change) -> ReviewRequired:
    names = "、".join(FIELD_NAMES[f] for f in change.changed_fields)
    return ReviewRequired(
        f"该修改涉及{names}，需提交审核（/submit），由本部门另一名事项审核人员批准后发布",
        extra={"changed_fields": change.changed_fields},
    )


# --- items --------------------------------------------------------------------------------------


async def create_item(session: AsyncSession, *, actor: Actor, content: ItemContent) -> ItemVersion:
    _check_content(actor, content)
    return await service.create_item_draft(session, content=content, by=actor.subject)


async def edit_draft(
    session: AsyncSession, *, actor: Actor, version_id: str, content: ItemContent
) -> ItemVersion:
    await _version(session, actor, version_id, lock=True)
    _check_content(actor, content)  # nor move it to another department
    return await service.update_draft(
        session, version_id=version_id, content=content, by=actor.subject
    )


async def start_revision(session: AsyncSession, *, actor: Actor, item_id: str) -> ItemVersion:
    await _item_scope(session, actor, item_id)
    return await service.start_revision(session, item_id=item_id, by=actor.subject)


async def visible_version(session: AsyncSession, *, actor: Actor, version_id: str) -> ItemVersion:
    return await _version(session, actor, version_id)


async def staff_versions(
    session: AsyncSession,
    *,
    actor: Actor,
    status: Status | None,
    query: str | None,
    page: int,
    page_size: int,
) -> tuple[list[tuple[ItemVersion, str]], int]:
    """The newest version of each item the actor may see (as :func:`visible_version` decides:
    their department within their region; every item for the platform role), with its
    implementing code, and how many in all. A staff identity without department or region
    sees none."""
    if actor.platform:
        scope = repository.StaffScope(department=None, region_prefix=None)
    elif actor.department and actor.region:
        scope = repository.StaffScope(
            department=actor.department, region_prefix=division_prefix(actor.region)
        )
    else:
        return [], 0
    return await repository.newest_versions(
        session,
        scope=scope,
        status=status.value if status else None,
        query=query,
        limit=page_size,
        offset=(page - 1) * page_size,
    )


@dataclass(frozen=True)
class DryRunPlan:
    """What a dry run replays: the version's rules, on its item's recent cases."""

    implementing_code: str
    rules: list[dict[str, Any]]


async def plan_dry_run(session: AsyncSession, *, actor: Actor, version_id: str) -> DryRunPlan:
    """The rules of a version the actor may see, to replay before submitting; writes nothing.
    (Recent cases are read by the approval service, of the actor's department only.)"""
    version = await _version(session, actor, version_id)
    content = ItemContent.model_validate(version.content)
    return DryRunPlan(
        implementing_code=content.implementing_code,
        rules=[rule.model_dump(mode="json") for rule in content.rules],
    )


async def publish_directly(session: AsyncSession, *, actor: Actor, version_id: str) -> ItemVersion:
    """Publish a draft that changes none of the reviewed elements; anything else must be
    submitted for a second person's approval."""
    version = await _version(session, actor, version_id, lock=True)
    if version.status == Status.DRAFT:
        change = await change_of(session, version)
        if change.needs_review:
            raise _review_required(change)
    return await service.publish_version(session, version_id=version.id, published_by=actor.subject)


async def withdraw_item(session: AsyncSession, *, actor: Actor, item_id: str) -> ItemVersion:
    await _item_scope(session, actor, item_id)
    return await service.withdraw_item(session, item_id=item_id)


# --- submission, approval, rejection --------------------------------------------------------------


@dataclass(frozen=True)
class Submission:
    """What a submission was planned on (read before the rules are replayed, outside the
    write transaction)."""

    version_id: str
    implementing_code: str
    content: dict[str, Any]
    change: Change


async def plan_submission(session: AsyncSession, *, actor: Actor, version_id: str) -> Submission:
    """Check that the draft may be submitted and what it changes; writes nothing."""
    version = await _version(session, actor, version_id)
    if version.status != Status.DRAFT:
        raise service.VersionNotEditable("只有草稿可以提交审核")
    problems = service.publication_problems(ItemContent.model_validate(version.content))
    if problems:
        raise service.NotPublishable(
            "；".join(p.message for p in problems),
            extra={"problems": [p.model_dump() for p in problems]},
        )
    item = await repository.item_by_id(session, version.item_id)
    assert item is not None
    return Submission(
        version_id=version.id,
        implementing_code=item.implementing_code,
        content=dict(version.content),
        change=await change_of(session, version),
    )


async def submit(
    session: AsyncSession,
    *,
    actor: Actor,
    planned: Submission,
    dry_run: Mapping[str, Any],
    now: datetime,
) -> ItemVersion:
    """Submit the draft for review with the replay of its rules; leaves the rule-change
    record. The draft is locked from now on until approved or rejected."""
    version = await _version(session, actor, planned.version_id, lock=True)
    if version.status != Status.DRAFT:
        raise service.VersionNotEditable("只有草稿可以提交审核")
    if version.content != planned.content:
        raise service.VersionNotEditable("提交期间草稿被修改，请重新提交")
    change = planned.change
    version.status = Status.SUBMITTED
    version.submitted_by = actor.subject
    version.submitted_at = now
    session.add(
        RuleChange(
            id=str(uuid.uuid4()),
            item_id=version.item_id,
            version_id=version.id,
            implementing_code=planned.implementing_code,
            department=version.department,
            previous_version_id=change.previous_version_id,
            author=version.edited_by or actor.subject,
            submitted_by=actor.subject,
            submitted_at=now,
            changed_fields=change.changed_fields,
            old=change.old,
            new=change.new,
            dry_run=dict(dry_run),
            status="pending",
        )
    )
    await session.flush()
    return version


async def _submitted(
    session: AsyncSession, actor: Actor, version_id: str
) -> tuple[ItemVersion, RuleChange | None]:
    # Approvers are always of a department: the platform role does not approve.
    department_only = Actor(actor.subject, actor.department, actor.region)
    version = await _version(session, department_only, version_id, lock=True)
    if version.status != Status.SUBMITTED:
        raise NotSubmitted("该版本不是待审核状态")
    return version, await repository.pending_rule_change(session, version.id, lock=True)


async def approve(
    session: AsyncSession, *, actor: Actor, version_id: str, now: datetime
) -> ItemVersion:
    """Publish a submitted version: a second person of the owning department, never one who
    created, edited or submitted it."""
    version, record = await _submitted(session, actor, version_id)
    authors = {version.created_by, version.edited_by, version.submitted_by} - {None}
    if actor.subject in authors:
        raise FourEyesRequired(
            "不能审核发布本人提交的修改：需由本部门另一名事项审核人员审核",
            extra={"version_id": version.id},
        )
    published = await service.publish_version(
        session, version_id=version.id, published_by=actor.subject, approved_by=actor.subject
    )
    if record is not None:
        record.status, record.decided_by, record.decided_at = "approved", actor.subject, now
        await session.flush()
    return published


async def reject(
    session: AsyncSession, *, actor: Actor, version_id: str, reason: str, now: datetime
) -> ItemVersion:
    """Send a submitted version back to draft, with the reason."""
    version, record = await _submitted(session, actor, version_id)
    version.status = Status.DRAFT
    version.submitted_by, version.submitted_at = None, None
    if record is not None:
        record.status, record.decided_by, record.decided_at = "rejected", actor.subject, now
        record.rejection_reason = reason
    await session.flush()
    return version


async def rule_changes(
    session: AsyncSession, *, actor: Actor, everything: bool, item_id: str | None
) -> Sequence[RuleChange]:
    """Rule-change records, newest first: an auditor's (``everything``) of any department, an
    approver's of their own department only."""
    if not everything and not actor.department:
        return []
    return await repository.rule_changes(
        session,
        item_id=item_id,
        department=None if everything else actor.department,
        limit=500,
    )


# --- bundles ------------------------------------------------------------------------------------


async def _out_of_scope(session: AsyncSession, actor: Actor, codes: Sequence[str]) -> list[str]:
    if actor.platform:
        return []
    newest = await repository.latest_versions_by_codes(session, list(codes))
    return [
        code
        for code, version in newest.items()
        if not in_scope(actor, department=version.department, region_code=version.region_code)
    ]


async def create_bundle(
    session: AsyncSession, *, actor: Actor, content: BundleContent
) -> BundleVersion:
    """A department's admin makes bundles of their own department's items; a bundle spanning
    departments is the platform role's (members not yet in the catalogue are checked when the
    bundle is published)."""
    codes = [m.implementing_code for m in content.members]
    existing = await repository.bundle_by_code(session, content.code)
    if existing is not None and existing.current_version_id is not None:
        current = await repository.bundle_version_by_id(session, existing.current_version_id)
        if current is not None:
            members = BundleContent.model_validate(current.content).members
            codes += [m.implementing_code for m in members]
    others = await _out_of_scope(session, actor, codes)
    if others:
        raise OtherDepartment(
            f"一件事的成员事项 {'、'.join(sorted(set(others)))} 属于其他部门或地区；"
            "跨部门的一件事由平台事项管理员维护"
        )
    return await service.create_bundle_draft(session, content=content)


async def publish_bundle(session: AsyncSession, *, actor: Actor, version_id: str) -> BundleVersion:
    version = await repository.bundle_version_by_id(session, version_id)
    if version is None:
        raise service.BundleNotFound()
    content = BundleContent.model_validate(version.content)
    if await _out_of_scope(session, actor, [m.implementing_code for m in content.members]):
        raise service.BundleNotFound()
    return await service.publish_bundle(session, version_id=version_id)
