"""Routes of the catalog service: parse, authorise, call the service, return."""

from __future__ import annotations

import dataclasses
import logging
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, BackgroundTasks, Depends, FastAPI, Query, Request, Response
from pydantic import BaseModel, Field

from catalog_service import dry_run, importer, jobs, review, service, statistics, unmatched
from catalog_service.models import BundleVersion, ItemVersion
from catalog_service.repository import ItemFilters
from catalog_service.schemas import (
    BundleContent,
    Channel,
    DryRunOut,
    FacetOut,
    ItemContent,
    ItemType,
    ItemVersionOut,
    ItemVersionPage,
    ItemVersionSummary,
    JobOut,
    RejectIn,
    RuleChangeOut,
    Scope,
    SearchFacetsOut,
    Serves,
    Status,
    SubItemOut,
)
from wangban.auth import (
    AUDITOR,
    CATALOG_ADMIN,
    CATALOG_APPROVER,
    PLATFORM_CATALOG_ADMIN,
    Identity,
    require_kinds,
    require_roles,
)
from wangban.db import ReadSession, UnitOfWork
from wangban.errors import BadRequest, Forbidden, NotFound, Unauthorized, problem_responses
from wangban.monthly import csv_attachment, scope_of
from wangban.multipart import read_parts, size_text

logger = logging.getLogger(__name__)

public = APIRouter(tags=["catalogue"])
admin = APIRouter(prefix="/admin", tags=["catalogue administration"])

# Department-scoped authors (and the rare platform role); approvers of a department; who may
# read a version under review; who reads rule-change records. Which items each may touch is
# decided in catalog_service.review (department and region).
CatalogAdmin = Annotated[Identity, Depends(require_roles(CATALOG_ADMIN, PLATFORM_CATALOG_ADMIN))]
CatalogApprover = Annotated[Identity, Depends(require_roles(CATALOG_APPROVER))]
CatalogReader = Annotated[
    Identity,
    Depends(require_roles(CATALOG_ADMIN, PLATFORM_CATALOG_ADMIN, CATALOG_APPROVER)),
]
RuleChangeReader = Annotated[Identity, Depends(require_roles(AUDITOR, CATALOG_APPROVER))]
JobReader = Annotated[
    Identity, Depends(require_roles(CATALOG_ADMIN, PLATFORM_CATALOG_ADMIN, AUDITOR))
]
PlatformAdmin = Annotated[Identity, Depends(require_roles(PLATFORM_CATALOG_ADMIN))]


def _actor(identity: Identity) -> review.Actor:
    return review.Actor(
        subject=identity.subject,
        department=identity.department,
        region=identity.region,
        platform=identity.has_any_role(PLATFORM_CATALOG_ADMIN),
    )


async def _replay_client(request: Request) -> dry_run.ReplayClient:
    """One client of the approval service per running app, made on first use."""
    state = request.app.state
    if not hasattr(state, "replay_client"):
        state.replay_client = dry_run.ReplayClient(state.settings)
    client: dry_run.ReplayClient = state.replay_client
    return client


async def close_clients(app: FastAPI) -> None:
    client = getattr(app.state, "replay_client", None)
    if client is not None:
        await client.close()


async def flush_unmatched(app: FastAPI) -> None:
    """On shutdown: write the zero-result searches counted since the last periodic write."""
    try:
        async with app.state.database.sessionmaker() as session, session.begin():
            await unmatched.RECORDER.flush(session)
    except Exception:
        # The database is gone too: those seconds of counts are lost, the shutdown goes on.
        logger.exception("could not write the unmatched searches on shutdown")


Replayer = Annotated[dry_run.ReplayClient, Depends(_replay_client)]


async def _synonym_cache(request: Request) -> service.SynonymCache:
    """One cache per running app (so per worker process), made on first use. (``async`` so
    FastAPI does not hand it to a thread pool on every request.)"""
    state = request.app.state
    if not hasattr(state, "synonym_cache"):
        state.synonym_cache = service.SynonymCache()
    cache: service.SynonymCache = state.synonym_cache
    return cache


Synonyms = Annotated[service.SynonymCache, Depends(_synonym_cache)]


async def _vocabulary_cache(request: Request) -> service.VocabularyCache:
    """The pinyin terms typos are corrected towards, one cache per running app like the
    synonyms'."""
    state = request.app.state
    if not hasattr(state, "vocabulary_cache"):
        state.vocabulary_cache = service.VocabularyCache()
    cache: service.VocabularyCache = state.vocabulary_cache
    return cache


Vocabulary = Annotated[service.VocabularyCache, Depends(_vocabulary_cache)]
ADMIN_ERRORS = (Unauthorized, Forbidden)
SCOPED_ERRORS = (*ADMIN_ERRORS, review.OtherDepartment)


def _out(version: ItemVersion) -> ItemVersionOut:
    return ItemVersionOut.model_validate(
        {
            "id": version.id,
            "item_id": version.item_id,
            "version": version.version,
            "status": version.status,
            "content": version.content,
            "lists": list(version.lists),
            "created_at": version.created_at,
            "published_at": version.published_at,
            "withdrawn_at": version.withdrawn_at,
            "created_by": version.created_by,
            "edited_by": version.edited_by,
            "submitted_by": version.submitted_by,
            "submitted_at": version.submitted_at,
            "approved_by": version.approved_by,
            "published_by": version.published_by,
        }
    )


class ItemSummary(BaseModel):
    item_id: str
    version_id: str
    implementing_code: str
    name: str
    department: str
    item_type: str
    lists: list[str]
    auto_approval: bool
    committed_days: int | None
    main_item: str | None = Field(
        default=None,
        description="主项: the name of the main item this item is a 子项 of; None: none",
    )


class HotlineOut(BaseModel):
    name: str
    phone: str


class ZeroResultHelpOut(BaseModel):
    """What a search that found nothing offers instead (``catalog_service.unmatched``)."""

    suggestions: list[ItemSummary] = Field(
        description="the nearest items: some of the words, or characters, of the query"
    )
    hotlines: list[HotlineOut] = Field(description="whom to call: 12345 and the like")


class ItemPage(BaseModel):
    items: list[ItemSummary]
    total: int
    page: int
    page_size: int
    help: ZeroResultHelpOut | None = Field(
        default=None, description="only when nothing was found (total 0)"
    )


class UnmatchedQueryOut(BaseModel):
    query: str = Field(description="as recorded: normalised, never personal-data-like")
    count: int = Field(description="searches that found nothing in the window")
    first_seen: datetime
    last_seen: datetime
    handled_at: datetime | None
    handled_by: str | None


class UnmatchedQueryPage(BaseModel):
    items: list[UnmatchedQueryOut]
    total: int
    page: int
    page_size: int


class UnmatchedHandledIn(BaseModel):
    query: str = Field(min_length=1, max_length=unmatched.MAX_RECORDED_LENGTH)


class UnmatchedHandledOut(BaseModel):
    query: str
    handled_at: datetime
    handled_by: str


class UnmatchedQueryNotFound(NotFound):
    type_slug = "unmatched-query-not-found"
    title = "没有这条未找到结果的搜索记录"


class BundleVersionOut(BaseModel):
    id: str
    bundle_id: str
    version: int
    status: str
    content: BundleContent
    member_version_ids: list[str]
    published_at: datetime | None
    """None for a draft (not yet offered to applicants)."""


class SynonymGroups(BaseModel):
    groups: list[list[str]] = Field(
        description="the admins' groups, each: phrases meaning the same thing; they extend the "
        "shipped citizen lexicon (a group sharing a phrase with a shipped group joins it)"
    )
    disabled: list[str] | None = Field(
        default=None,
        description="keys (theme/first phrase) of shipped lexicon groups switched off; "
        "omitted in a PUT: left as they are",
    )


class ShippedLexicon(BaseModel):
    version: int | None = Field(description="version of the loaded citizen lexicon, if any")
    groups: int = Field(description="its groups in the table (disabled ones included)")


class SynonymTableOut(SynonymGroups):
    lexicon: ShippedLexicon


def _bundle_out(version: BundleVersion) -> BundleVersionOut:
    return BundleVersionOut.model_validate(
        {
            "id": version.id,
            "bundle_id": version.bundle_id,
            "version": version.version,
            "status": version.status,
            "content": version.content,
            "member_version_ids": list(version.member_version_ids),
            "published_at": version.published_at,
        }
    )


PRINTABLE = r"^[^\x00-\x1f\x7f]*$"
"""Search words and filters: no control characters (PostgreSQL text cannot hold NUL)."""


# --- public -----------------------------------------------------------------------------------


@public.get("/items", summary="Find service items (Chinese, pinyin initials, filters)")
async def find_items(
    request: Request,
    session: ReadSession,
    synonyms: Synonyms,
    vocabulary: Vocabulary,
    q: Annotated[
        str | None, Query(max_length=50, pattern=PRINTABLE, description="例如 公积金 / gjj")
    ] = None,
    department: Annotated[str | None, Query(max_length=100, pattern=PRINTABLE)] = None,
    item_type: ItemType | None = None,
    theme: Annotated[str | None, Query(max_length=100, pattern=PRINTABLE)] = None,
    channel: Channel | None = None,
    scope: Scope | None = None,
    list_name: Annotated[
        Literal["马上办", "网上办", "就近办", "一次办"] | None, Query(alias="list")
    ] = None,
    auto_approval: bool | None = None,
    serves: Serves | None = None,
    page: Annotated[int, Query(ge=1, le=500)] = 1,
    page_size: Annotated[int, Query(ge=1, le=100)] = 20,
) -> ItemPage:
    filters = ItemFilters(
        department=department,
        item_type=item_type.value if item_type else None,
        theme=theme,
        channel=channel.value if channel else None,
        scope=scope.value if scope else None,
        list_name=list_name,
        auto_approval=auto_approval,
        serves=serves.value if serves else None,
    )
    result = await service.search_items(
        session,
        query=q,
        filters=filters,
        page=page,
        page_size=page_size,
        synonyms=synonyms,
        vocabulary=vocabulary,
    )
    page_out = ItemPage(
        items=[ItemSummary.model_validate(hit, from_attributes=True) for hit in result.items],
        total=result.total,
        page=result.page,
        page_size=result.page_size,
    )
    if result.total == 0:
        # Added after the search, on its read-only session: the query is counted in memory and
        # written later by the catalog's periodic job (catalog_service.unmatched).
        found = await unmatched.zero_result_help(
            session,
            query=q,
            filters=filters,
            synonyms=await synonyms.table(session),
            settings=request.app.state.settings,
        )
        page_out.help = ZeroResultHelpOut(
            suggestions=[
                ItemSummary.model_validate(hit, from_attributes=True) for hit in found.suggestions
            ],
            hotlines=[HotlineOut(name=line.name, phone=line.phone) for line in found.hotlines],
        )
    return page_out


@public.get("/facets", summary="The departments and themes (主题) of published items, with counts")
async def search_facets(session: ReadSession) -> SearchFacetsOut:
    facets = await service.search_facets(session)
    return SearchFacetsOut(
        departments=[FacetOut(name=name, items=n) for name, n in facets.departments],
        themes=[FacetOut(name=name, items=n) for name, n in facets.themes],
    )


@public.get(
    "/items/{item_id}",
    summary="The current published version of an item, by its id or its implementing code",
    responses=problem_responses(service.ItemNotFound),
)
async def get_item(item_id: str, session: ReadSession) -> ItemVersionOut:
    if _CANONICAL_UUID.fullmatch(item_id.lower()):
        version = await service.get_current(session, item_id=item_id.lower())
    else:
        # The mini-program links items by their implementing code (实施编码), stable across
        # catalogues and printed on guides. (Some codes are 32 hex digits with dashes, which
        # uuid.UUID() would also accept: only the canonical 8-4-4-4-12 form counts as an id.)
        version = await service.get_current_by_code(session, implementing_code=item_id)
    out = _out(version)
    out.sub_items = [
        SubItemOut(implementing_code=code, name=name)
        for code, name in await service.sub_items(session, version=version)
    ]
    return out


@public.get(
    "/item-versions/{version_id}",
    summary="A published version by id, current or superseded (applications are bound to one)",
    responses=problem_responses(service.VersionNotFound),
)
async def get_item_version(version_id: str, session: ReadSession) -> ItemVersionOut:
    return _out(
        await service.get_public_version(
            session, version_id=_uuid(version_id, service.VersionNotFound)
        )
    )


@public.get("/bundles", summary="Published bundles (一件事一次办)")
async def list_bundles(session: ReadSession) -> list[BundleVersionOut]:
    return [_bundle_out(v) for v in await service.list_bundles(session)]


@public.get(
    "/bundle-versions/{version_id}",
    summary="A published bundle version by id, current or superseded (drafts answer 404)",
    responses=problem_responses(service.BundleNotFound),
)
async def get_bundle_version(version_id: str, session: ReadSession) -> BundleVersionOut:
    return _bundle_out(
        await service.get_public_bundle_version(
            session, version_id=_uuid(version_id, service.BundleNotFound)
        )
    )


@public.get(
    "/statistics",
    summary="Catalogue statistics for managers (staff only)",
    responses=problem_responses(*ADMIN_ERRORS),
)
async def get_statistics(
    session: ReadSession,
    _: Annotated[Identity, Depends(require_kinds("staff"))],
    department: str | None = None,
) -> dict[str, Any]:
    stats = await service.statistics(session, department=department)
    return dataclasses.asdict(stats)


StatisticsMonth = Annotated[str, Query(pattern=statistics.MONTH.pattern, examples=["2026-01"])]
StaffMember = Annotated[Identity, Depends(require_kinds("staff"))]


async def _monthly_catalogue(
    session: ReadSession,
    member: StaffMember,
    start_month: StatisticsMonth,
    end_month: StatisticsMonth,
    department: str | None = None,
) -> statistics.MonthlyCatalogue:
    """The figures an auditor asks for; any other member's own department and region."""
    department, region = scope_of(member, department)
    return await statistics.monthly_statistics(
        session,
        department=department,
        region=region,
        start_month=start_month,
        end_month=end_month,
        now=datetime.now(UTC),
    )


MonthlyCatalogue = Annotated[statistics.MonthlyCatalogue, Depends(_monthly_catalogue)]


@public.get(
    "/statistics/monthly",
    summary="The catalogue's figures per department at each month's end, each with its "
    "numerator and denominator (staff only)",
    responses=problem_responses(*ADMIN_ERRORS, statistics.InvalidPeriod),
)
async def get_monthly_statistics(figures: MonthlyCatalogue) -> statistics.MonthlyCatalogue:
    return figures


@public.get(
    "/statistics/monthly.csv",
    summary="The catalogue's figures per department and month as a CSV table (UTF-8 with a "
    "BOM, for Excel)",
    response_class=Response,
    responses={
        200: {"content": {"text/csv": {"schema": {"type": "string"}}}},
        **problem_responses(*ADMIN_ERRORS, statistics.InvalidPeriod),
    },
)
async def export_monthly_statistics(figures: MonthlyCatalogue) -> Response:
    return csv_attachment(
        statistics.monthly_csv(figures),
        filename=f"catalogue-{figures.start_month}-{figures.end_month}.csv",
    )


# --- administration ---------------------------------------------------------------------------


@admin.post(
    "/items",
    status_code=201,
    summary="Create an item of my department as a draft",
    responses=problem_responses(*SCOPED_ERRORS, service.ItemCodeTaken, service.InvalidItem),
)
async def create_item(
    content: ItemContent, session: UnitOfWork, admin: CatalogAdmin
) -> ItemVersionOut:
    return _out(await review.create_item(session, actor=_actor(admin), content=content))


@admin.put(
    "/item-versions/{version_id}",
    summary="Edit a draft of my department",
    responses=problem_responses(
        *SCOPED_ERRORS, service.VersionNotFound, service.VersionNotEditable, service.InvalidItem
    ),
)
async def edit_draft(
    version_id: str, content: ItemContent, session: UnitOfWork, admin: CatalogAdmin
) -> ItemVersionOut:
    return _out(
        await review.edit_draft(
            session,
            actor=_actor(admin),
            version_id=_uuid(version_id, service.VersionNotFound),
            content=content,
        )
    )


@admin.post(
    "/items/{item_id}/revisions",
    status_code=201,
    summary="Open a new draft from the newest version",
    responses=problem_responses(*ADMIN_ERRORS, service.ItemNotFound),
)
async def start_revision(item_id: str, session: UnitOfWork, admin: CatalogAdmin) -> ItemVersionOut:
    return _out(
        await review.start_revision(
            session, actor=_actor(admin), item_id=_uuid(item_id, service.ItemNotFound)
        )
    )


@admin.get(
    "/item-versions",
    summary="The items of my department and region: the newest version of each, with its status",
    description="Drafts and submitted versions included (an approver filters `status=submitted` "
    "for what waits for them); `q` finds a name or implementing code. The platform catalogue "
    "role sees every department's.",
    responses=problem_responses(*ADMIN_ERRORS),
)
async def staff_item_versions(
    session: ReadSession,
    staff: CatalogReader,
    status: Status | None = None,
    q: Annotated[str | None, Query(max_length=50, pattern=PRINTABLE)] = None,
    page: Annotated[int, Query(ge=1, le=500)] = 1,
    page_size: Annotated[int, Query(ge=1, le=100)] = 20,
) -> ItemVersionPage:
    rows, total = await review.staff_versions(
        session,
        actor=_actor(staff),
        status=status,
        query=q.strip() if q else None,
        page=page,
        page_size=page_size,
    )
    return ItemVersionPage(
        items=[
            ItemVersionSummary.model_validate({**_columns(version), "implementing_code": code})
            for version, code in rows
        ],
        total=total,
        page=page,
        page_size=page_size,
    )


def _columns(version: ItemVersion) -> dict[str, Any]:
    return {
        name: getattr(version, name)
        for name in ItemVersionSummary.model_fields
        if name != "implementing_code"
    }


@admin.get(
    "/item-versions/{version_id}",
    summary="Any version of an item of my department, drafts and submitted ones included",
    responses=problem_responses(*ADMIN_ERRORS, service.VersionNotFound),
)
async def staff_item_version(
    version_id: str, session: ReadSession, staff: CatalogReader
) -> ItemVersionOut:
    return _out(
        await review.visible_version(
            session, actor=_actor(staff), version_id=_uuid(version_id, service.VersionNotFound)
        )
    )


@admin.get(
    "/item-versions/{version_id}/problems",
    summary="What the version still lacks before it can be published",
    responses=problem_responses(*ADMIN_ERRORS, service.VersionNotFound),
)
async def version_problems(
    version_id: str, session: UnitOfWork, staff: CatalogReader
) -> list[service.Problem]:
    version = await review.visible_version(
        session, actor=_actor(staff), version_id=_uuid(version_id, service.VersionNotFound)
    )
    return service.publication_problems(ItemContent.model_validate(version.content))


@admin.post(
    "/item-versions/{version_id}/dry-run",
    summary="Replay a version's 秒批 rules on the item's recent decided cases, before submitting",
    description="Which of my department's recently decided applications of the item the "
    "version's rules would decide otherwise (ids and outcomes only), and the counts; the same "
    "replay a submission records. Writes nothing. `unavailable` when the approval service "
    "cannot answer.",
    responses=problem_responses(*ADMIN_ERRORS, service.VersionNotFound),
)
async def dry_run_version(
    version_id: str, request: Request, admin: CatalogAdmin, replayer: Replayer
) -> DryRunOut:
    # Read, then replay with no database connection held while approval answers.
    async with request.app.state.database.read_sessionmaker() as reads:
        plan = await review.plan_dry_run(
            reads, actor=_actor(admin), version_id=_uuid(version_id, service.VersionNotFound)
        )
    answer = await replayer.replay(item_code=plan.implementing_code, rules=plan.rules)
    return DryRunOut.model_validate(answer)


@admin.post(
    "/item-versions/{version_id}/publish",
    summary="Publish a draft that changes no rule, condition or time limit",
    description="A draft that changes 秒批 rules (or switches 秒批 on), 受理条件, time limits, "
    "the workflow, the assurance or the owner answers 409 `review-required`: submit it "
    "(`/submit`) for a second person of the department to approve.",
    responses=problem_responses(
        *ADMIN_ERRORS,
        service.VersionNotFound,
        service.VersionNotEditable,
        service.NotPublishable,
        review.ReviewRequired,
    ),
)
async def publish(version_id: str, session: UnitOfWork, admin: CatalogAdmin) -> ItemVersionOut:
    return _out(
        await review.publish_directly(
            session, actor=_actor(admin), version_id=_uuid(version_id, service.VersionNotFound)
        )
    )


@admin.post(
    "/item-versions/{version_id}/submit",
    summary="Submit a draft for review (四眼原则); its rules are replayed on recent cases",
    responses=problem_responses(
        *ADMIN_ERRORS, service.VersionNotFound, service.VersionNotEditable, service.NotPublishable
    ),
)
async def submit(
    version_id: str,
    request: Request,
    session: UnitOfWork,
    admin: CatalogAdmin,
    replayer: Replayer,
) -> ItemVersionOut:
    actor = _actor(admin)
    known = _uuid(version_id, service.VersionNotFound)
    # Read and replay before the write transaction opens (the unit of work's session is not
    # touched until then), so no pooled connection waits on the approval service.
    async with request.app.state.database.read_sessionmaker() as reads:
        planned = await review.plan_submission(reads, actor=actor, version_id=known)
    result = (
        await replayer.replay(
            item_code=planned.implementing_code, rules=planned.content.get("rules") or []
        )
        if planned.change.rules_changed
        else dry_run.skipped()
    )
    return _out(
        await review.submit(
            session, actor=actor, planned=planned, dry_run=result, now=datetime.now(UTC)
        )
    )


@admin.post(
    "/item-versions/{version_id}/approve",
    summary="Approve and publish a submitted version of my department (not my own change)",
    responses=problem_responses(
        *ADMIN_ERRORS,
        service.VersionNotFound,
        review.NotSubmitted,
        review.FourEyesRequired,
        service.NotPublishable,
    ),
)
async def approve(
    version_id: str, session: UnitOfWork, approver: CatalogApprover
) -> ItemVersionOut:
    return _out(
        await review.approve(
            session,
            actor=_actor(approver),
            version_id=_uuid(version_id, service.VersionNotFound),
            now=datetime.now(UTC),
        )
    )


@admin.post(
    "/item-versions/{version_id}/reject",
    summary="Send a submitted version of my department back to draft, with the reason",
    responses=problem_responses(*ADMIN_ERRORS, service.VersionNotFound, review.NotSubmitted),
)
async def reject(
    version_id: str, body: RejectIn, session: UnitOfWork, approver: CatalogApprover
) -> ItemVersionOut:
    return _out(
        await review.reject(
            session,
            actor=_actor(approver),
            version_id=_uuid(version_id, service.VersionNotFound),
            reason=body.reason,
            now=datetime.now(UTC),
        )
    )


@admin.get(
    "/rule-changes",
    summary="Rule-change records (who, when, old → new, dry run, who approved), newest first",
    description="Auditors see every department's; approvers their own department's.",
    responses=problem_responses(*ADMIN_ERRORS),
)
async def list_rule_changes(
    session: ReadSession,
    reader: RuleChangeReader,
    item_id: Annotated[str | None, Query(max_length=36)] = None,
) -> list[RuleChangeOut]:
    if item_id is not None:
        try:
            item_id = str(uuid.UUID(item_id))
        except ValueError:
            return []
    records = await review.rule_changes(
        session, actor=_actor(reader), everything=reader.has_any_role(AUDITOR), item_id=item_id
    )
    return [RuleChangeOut.model_validate(r, from_attributes=True) for r in records]


@admin.post(
    "/items/{item_id}/withdraw",
    summary="Withdraw an item (no new applications)",
    responses=problem_responses(*ADMIN_ERRORS, service.ItemNotFound, service.VersionNotEditable),
)
async def withdraw(item_id: str, session: UnitOfWork, admin: CatalogAdmin) -> ItemVersionOut:
    return _out(
        await review.withdraw_item(
            session, actor=_actor(admin), item_id=_uuid(item_id, service.ItemNotFound)
        )
    )


@admin.post(
    "/bundles",
    status_code=201,
    summary="Create or revise a bundle as a draft (members of my department; any: platform)",
    responses=problem_responses(*SCOPED_ERRORS),
)
async def create_bundle(
    content: BundleContent, session: UnitOfWork, admin: CatalogAdmin
) -> BundleVersionOut:
    return _bundle_out(await review.create_bundle(session, actor=_actor(admin), content=content))


@admin.post(
    "/bundle-versions/{version_id}/publish",
    summary="Publish a bundle draft, bound to its members' current versions",
    responses=problem_responses(
        *ADMIN_ERRORS, service.BundleNotFound, service.VersionNotEditable, service.NotPublishable
    ),
)
async def publish_bundle(
    version_id: str, session: UnitOfWork, admin: CatalogAdmin
) -> BundleVersionOut:
    return _bundle_out(
        await review.publish_bundle(
            session, actor=_actor(admin), version_id=_uuid(version_id, service.BundleNotFound)
        )
    )


@admin.get(
    "/synonyms",
    summary="The synonym table search expands queries with (every department's)",
    responses=problem_responses(*ADMIN_ERRORS),
)
async def get_synonyms(session: ReadSession, _: CatalogReader) -> SynonymTableOut:
    state = await service.lexicon_state(session)
    return SynonymTableOut(
        groups=await service.synonym_groups(session),
        disabled=state.disabled,
        lexicon=ShippedLexicon(version=state.version, groups=state.groups),
    )


@admin.put(
    "/synonyms",
    summary="Replace the synonym table (platform catalogue role: it serves every department)",
    responses=problem_responses(*ADMIN_ERRORS),
)
async def put_synonyms(
    body: SynonymGroups,
    session: UnitOfWork,
    synonyms: Synonyms,
    after_response: BackgroundTasks,
    _: PlatformAdmin,
) -> SynonymGroups:
    await service.replace_synonyms(session, groups=body.groups, disabled=body.disabled)
    # After the commit, not before: a search in between would cache the old table again.
    after_response.add_task(synonyms.invalidate)
    return body


@admin.get(
    "/unmatched-searches",
    summary="What citizens searched for and did not find, most searched first",
    responses=problem_responses(*ADMIN_ERRORS),
)
async def list_unmatched_searches(
    session: ReadSession,
    _: CatalogReader,
    days: Annotated[int, Query(ge=1, le=unmatched.RETENTION_DAYS)] = 30,
    include_handled: bool = False,
    page: Annotated[int, Query(ge=1, le=500)] = 1,
    page_size: Annotated[int, Query(ge=1, le=100)] = 50,
) -> UnmatchedQueryPage:
    """Queries recorded in the last ``days`` days (UTC, today included). A query an admin marked
    handled is left out unless citizens searched for it in vain again afterwards (or
    ``include_handled``). Every catalogue member sees the whole list: a search belongs to no
    department, and no personal data is recorded."""
    since = datetime.now(UTC).date() - timedelta(days=days - 1)
    rows, total = await unmatched.unmatched_page(
        session,
        since=since,
        include_handled=include_handled,
        offset=(page - 1) * page_size,
        limit=page_size,
    )
    return UnmatchedQueryPage(
        items=[UnmatchedQueryOut.model_validate(row, from_attributes=True) for row in rows],
        total=total,
        page=page,
        page_size=page_size,
    )


@admin.post(
    "/unmatched-searches/handled",
    summary="Mark an unmatched search as handled (a synonym or keyword was added, or none needed)",
    responses=problem_responses(*ADMIN_ERRORS, UnmatchedQueryNotFound),
)
async def mark_unmatched_search_handled(
    body: UnmatchedHandledIn, session: UnitOfWork, admin: CatalogAdmin
) -> UnmatchedHandledOut:
    query = unmatched.normalise(body.query)
    handled_at = await unmatched.mark_handled(session, query=query, by=admin.subject)
    if handled_at is None:
        raise UnmatchedQueryNotFound()
    return UnmatchedHandledOut(query=query, handled_at=handled_at, handled_by=admin.subject)


_IMPORT_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "The file itself as the body; or multipart/form-data with a part "
        "`items` (the item list) and optionally a part `materials` (a CSV of materials keyed "
        "by implementing_code)",
        "content": {
            "text/csv": {"schema": {"type": "string"}},
            "application/json": {"schema": {"type": "array", "items": {"type": "object"}}},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "items": {"type": "string", "format": "binary"},
                        "materials": {"type": "string", "format": "binary"},
                    },
                    "required": ["items"],
                }
            },
        },
    }
}


@admin.post(
    "/imports",
    status_code=202,
    summary="Import an item list (CSV or JSON) as a job; all rows or none",
    description="Answers 202 at once with the job (`Location: /admin/jobs/{id}`); the "
    "catalogue's worker runs it and the job shows progress, then the report (`result`) or, "
    "for a bad file, `failed` with every bad row's number, column and reason in `errors` and "
    "nothing imported. Rows with new implementing codes become drafts, changed rows drafts "
    "(revisions of published items), identical rows nothing. `mapping`: `default`, `guangan` "
    "or a JSON ColumnMapping. A department's admin imports only their own department's items "
    "(the job fails with `other-department` otherwise). `publish_complete` publishes only rows "
    "that change no rule, condition or time limit; the others stay drafts to submit for review "
    "(`review_required_codes`). The request itself is refused only for what needs no reading "
    "of the rows: the mapping, the format, the size.",
    openapi_extra=_IMPORT_BODY,
    responses=problem_responses(
        *ADMIN_ERRORS,
        BadRequest,
        importer.InvalidMapping,
        importer.ImportTooLarge,
        importer.UnsupportedImportFormat,
    ),
)
async def import_items(
    request: Request,
    response: Response,
    session: UnitOfWork,
    admin: CatalogAdmin,
    fmt: Annotated[
        Literal["csv", "json"] | None,
        Query(alias="format", description="default: from the Content-Type"),
    ] = None,
    mapping: Annotated[str, Query(max_length=20_000)] = "default",
    publish_complete: bool = False,
) -> JobOut:
    importer.resolve_mapping(mapping)
    limits = request.app.state.settings
    parts = await _upload(request, limit=limits.catalog_import_max_bytes)
    items = parts.get("items")
    if items is None:
        raise BadRequest("multipart 请求中缺少 items 部分（事项文件）")
    job = await jobs.submit_import(
        session,
        data=items[1],
        fmt=fmt or _format_of(items[0]),
        mapping=mapping,
        materials=parts["materials"][1] if "materials" in parts else None,
        publish_complete=publish_complete,
        actor=_actor(admin),
    )
    response.headers["Location"] = f"/admin/jobs/{job.id}"
    return jobs.out(job)


@admin.get(
    "/jobs/{job_id}",
    summary="A long operation (an import): status, progress, per-row errors, result",
    description="Its own jobs for a catalogue admin; every job for the platform catalogue "
    "admin and auditors; anyone else's is 404.",
    responses=problem_responses(*ADMIN_ERRORS, jobs.JobNotFound),
)
async def get_job(job_id: str, session: ReadSession, reader: JobReader) -> JobOut:
    return await jobs.get_job(
        session,
        job_id=_uuid(job_id, jobs.JobNotFound),
        reader=reader.subject,
        reads_all=reader.has_any_role(PLATFORM_CATALOG_ADMIN, AUDITOR),
    )


@admin.get(
    "/exports",
    summary="Export the newest version of every item (re-imports unchanged)",
    response_class=Response,
    responses={
        200: {"content": {"text/csv": {}, "application/json": {}}},
        **problem_responses(*ADMIN_ERRORS),
    },
)
async def export_items(
    session: UnitOfWork,
    staff: CatalogAdmin,
    fmt: Annotated[Literal["csv", "json"], Query(alias="format")] = "json",
) -> Response:
    actor = _actor(staff)
    text = await importer.export_items(
        session,
        fmt=fmt,
        include=lambda v: review.in_scope(
            actor, department=v.department, region_code=v.region_code
        ),
    )
    return Response(
        # A BOM so that Excel opens the CSV as UTF-8; the importer accepts it.
        text.encode("utf-8-sig" if fmt == "csv" else "utf-8"),
        media_type="text/csv; charset=utf-8" if fmt == "csv" else "application/json",
        headers={"Content-Disposition": f'attachment; filename="catalogue.{fmt}"'},
    )


async def _upload(request: Request, *, limit: int) -> dict[str, tuple[str, bytes]]:
    """The uploaded files by part name (a plain body is the part ``items``), each with its
    media type; at most ``limit`` bytes in all."""
    too_large = importer.ImportTooLarge(f"文件不能超过 {size_text(limit)}")
    parts = await read_parts(request, limit=limit, too_large=too_large, plain_part="items")
    return {
        name: (part.media_type or _media_of_filename(part.filename), part.data)
        for name, part in parts.items()
    }


def _media_of_filename(filename: str) -> str:
    lowered = filename.lower()
    if lowered.endswith(".csv"):
        return "text/csv"
    return "application/json" if lowered.endswith(".json") else ""


def _format_of(content_type: str) -> Literal["csv", "json"]:
    media = content_type.split(";")[0].strip().lower()
    if media in ("text/csv", "application/csv", "application/vnd.ms-excel"):
        return "csv"
    if media == "application/json" or media.endswith("+json"):
        return "json"
    raise importer.UnsupportedImportFormat(
        f"无法从 Content-Type “{media or '（空）'}” 判断文件格式，请用 text/csv 或 "
        "application/json，或指定 format=csv|json"
    )


_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _uuid(value: str, not_found: type[NotFound]) -> str:
    """Ids are UUIDs; anything else cannot name a row, so it is a 404, not a database error."""
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise not_found() from None
