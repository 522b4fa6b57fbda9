"""Every query of the catalog service."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    ARRAY,
    ColumnElement,
    DateTime,
    Select,
    String,
    Text,
    and_,
    bindparam,
    case,
    cast,
    delete,
    func,
    insert,
    literal,
    literal_column,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from catalog_service import search
from catalog_service.models import (
    Bundle,
    BundleVersion,
    DisabledShippedGroup,
    Item,
    ItemSearch,
    ItemVersion,
    Job,
    RuleChange,
    SynonymGroup,
    UnmatchedQueryHandled,
    UnmatchedSearch,
)
from catalog_service.schemas import OnlineDepth
from wangban.db import literal_rows

LEXICON_LOCK = 0x636174616C6578
"""Advisory lock key of shipped-lexicon loads (any fixed bigint: "catalex" in ASCII)."""

SIMPLE: ColumnElement[Any] = literal_column("'simple'::regconfig")
"""The built-in text search configuration that keeps our own tokens as they are."""


def search_vector(a: str, b: str, c: str) -> ColumnElement[Any]:
    """The weighted tsvector of a version: A name, B keywords/themes, C materials and the rest.
    Terms come tokenised from Python (jieba, pinyin); the 'simple' configuration keeps them."""

    def weighted(terms: str, weight: str) -> ColumnElement[Any]:
        # The weight is one of our constants A-C, never input: safe as a literal column.
        vector = func.to_tsvector(SIMPLE, cast(literal(terms), Text))
        return func.setweight(vector, literal_column(f"'{weight}'"))

    return weighted(a, "A").op("||")(weighted(b, "B")).op("||")(weighted(c, "C"))


async def item_by_code(session: AsyncSession, code: str) -> Item | None:
    return (
        await session.execute(select(Item).where(Item.implementing_code == code))
    ).scalar_one_or_none()


async def item_by_id(session: AsyncSession, item_id: str, *, lock: bool = False) -> Item | None:
    query = select(Item).where(Item.id == item_id)
    if lock:
        query = query.with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


async def version_by_id(
    session: AsyncSession, version_id: str, *, lock: bool = False
) -> ItemVersion | None:
    query = select(ItemVersion).where(ItemVersion.id == version_id)
    if lock:
        query = query.with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


async def draft_of(session: AsyncSession, item_id: str) -> ItemVersion | None:
    return (
        await session.execute(
            select(ItemVersion).where(
                ItemVersion.item_id == item_id, ItemVersion.status.in_(("draft", "submitted"))
            )
        )
    ).scalar_one_or_none()


async def next_version_number(session: AsyncSession, item_id: str) -> int:
    latest = (
        await session.execute(
            select(func.max(ItemVersion.version)).where(ItemVersion.item_id == item_id)
        )
    ).scalar_one()
    return int(latest or 0) + 1


async def current_versions_by_codes(
    session: AsyncSession, codes: Sequence[str]
) -> dict[str, ItemVersion]:
    rows = await session.execute(
        select(Item.implementing_code, ItemVersion)
        .join(ItemVersion, ItemVersion.id == Item.current_version_id)
        .where(Item.implementing_code.in_(codes))
    )
    return {code: version for code, version in rows.all()}


async def latest_versions_by_codes(
    session: AsyncSession, codes: Sequence[str]
) -> dict[str, ItemVersion]:
    """The newest version (draft or not) of each item, for import comparisons."""
    newest = (
        select(ItemVersion.item_id, func.max(ItemVersion.version).label("version"))
        .group_by(ItemVersion.item_id)
        .subquery()
    )
    rows = await session.execute(
        select(Item.implementing_code, ItemVersion)
        .join(newest, newest.c.item_id == Item.id)
        .join(
            ItemVersion,
            and_(ItemVersion.item_id == newest.c.item_id, ItemVersion.version == newest.c.version),
        )
        .where(Item.implementing_code.in_(codes))
    )
    return {code: version for code, version in rows.all()}


@dataclass(frozen=True)
class StaffScope:
    """Which items a staff list may hold: one department within a division (its code's
    significant digits, see ``review.division_prefix``), or every item (both None)."""

    department: str | None
    region_prefix: str | None


async def newest_versions(
    session: AsyncSession,
    *,
    scope: StaffScope,
    status: str | None,
    query: str | None,
    limit: int,
    offset: int,
) -> tuple[list[tuple[ItemVersion, str]], int]:
    """The newest version of each item in ``scope`` (drafts and submitted ones included) with
    its implementing code, most recently created first, and how many there are in all."""
    newest = (
        select(ItemVersion.item_id, func.max(ItemVersion.version).label("version"))
        .group_by(ItemVersion.item_id)
        .subquery()
    )
    conditions: list[ColumnElement[bool]] = []
    if scope.department is not None:
        conditions.append(ItemVersion.department == scope.department)
    if scope.region_prefix is not None:
        conditions.append(ItemVersion.region_code.startswith(scope.region_prefix, autoescape=True))
    if status is not None:
        conditions.append(ItemVersion.status == status)
    if query:
        conditions.append(
            ItemVersion.name.icontains(query, autoescape=True)
            | Item.implementing_code.icontains(query, autoescape=True)
        )
    base = (
        select(ItemVersion, Item.implementing_code)
        .join(
            newest,
            and_(ItemVersion.item_id == newest.c.item_id, ItemVersion.version == newest.c.version),
        )
        .join(Item, Item.id == ItemVersion.item_id)
        .where(*conditions)
    )
    total = (await session.execute(select(func.count()).select_from(base.subquery()))).scalar_one()
    rows = await session.execute(
        base.order_by(ItemVersion.created_at.desc(), ItemVersion.name, ItemVersion.id)
        .limit(limit)
        .offset(offset)
    )
    return [(version, code) for version, code in rows.all()], int(total)


@dataclass(frozen=True)
class ItemFilters:
    department: str | None = None
    item_type: str | None = None
    theme: str | None = None
    channel: str | None = None
    scope: str | None = None
    list_name: str | None = None
    auto_approval: bool | None = None
    serves: str | None = None


_INDEX = ItemSearch.__table__.c

# Which column each filter tests, and how: equality, or membership of a value in an array column.
_EQUAL_FILTERS = {
    "department": _INDEX.department,
    "item_type": _INDEX.item_type,
    "scope": _INDEX.scope,
    "auto_approval": _INDEX.auto_approval,
}
_CONTAINS_FILTERS = {
    "theme": _INDEX.themes,
    "channel": _INDEX.channels,
    "list_name": _INDEX.lists,
    "serves": _INDEX.serves,
}


def _filter_values(filters: ItemFilters) -> dict[str, Any]:
    """The filters that are set, as bind parameters (array filters as one-element arrays)."""
    values: dict[str, Any] = {}
    for name in _EQUAL_FILTERS:
        value = getattr(filters, name)
        if value is not None and value != "":
            values[name] = value
    for name in _CONTAINS_FILTERS:
        value = getattr(filters, name)
        if value:
            values[name] = [value]
    return values


@dataclass(frozen=True)
class SearchHit:
    """What a result list shows of an item; read straight from the index, no JSON content."""

    item_id: str
    version_id: str
    implementing_code: str
    name: str
    department: str
    item_type: str
    lists: list[str]
    auto_approval: bool
    committed_days: int | None
    main_item: str | None = None
    """The 主项 this item is a 子项 of (its name), so a hit on a sub-item shows where it
    belongs; None for an item that is no sub-item."""


@dataclass(frozen=True)
class SearchQuery:
    """A query as the search statement takes it: the tsqueries of what was typed, built in
    Python (:mod:`catalog_service.search`), and the phrase names are compared with."""

    tsquery: str
    """What must match (the exact query)."""
    phrases: tuple[str, ...]
    """The typed text without whitespace, and the synonyms of the whole of it: a name equal to
    one, starting with one or containing one is an exact match."""
    fuzzy: str | None = None
    """A second, corrected query (typos); its hits come after every hit of ``tsquery``."""


def _to_tsquery(name: str) -> ColumnElement[Any]:
    return func.to_tsquery(SIMPLE, bindparam(name, type_=Text))


def _search_order(*, fuzzy: bool) -> list[ColumnElement[Any]]:
    """The ranking, as ORDER BY keys, best first.

    1. (with a fuzzy query) hits of the exact query before hits of the corrected one only;
    2. how exactly the name matches what was typed: equal, starts with it, contains it, not;
    3. where the whole query matches: in the name (weight A), else in the short name, keywords
       and themes (B), else only with materials, conditions or the department (C);
    4. ts_rank within that (more and closer matching terms first);
    5. the shorter name (the query covers more of it);
    6. the implementing code, unique, so equal scores come back in the same order on every run
       and after every restart or re-import (version ids are random).

    Nothing here looks at 秒批, channels or the 四办 lists: an online or 秒批 item ranks exactly
    where the same item offline would.
    """
    matched = _to_tsquery("rank_tsquery")
    # LIKE patterns built in Python with % and _ escaped (:func:`_like_patterns`).
    equal = bindparam("phrases", type_=ARRAY(Text))
    starts = bindparam("phrase_starts", type_=ARRAY(Text))
    contains = bindparam("phrase_contains", type_=ARRAY(Text))
    exactness = case(
        (_INDEX.name == func.any(equal), 3),
        (_INDEX.name.like(func.any(starts)), 2),
        (_INDEX.name.like(func.any(contains)), 1),
        else_=0,
    )
    where = case(
        (_INDEX.search.op("@@")(_to_tsquery("name_tsquery")), 3),
        (_INDEX.search.op("@@")(_to_tsquery("curated_tsquery")), 2),
        else_=1,
    )
    rank = func.ts_rank(text("'{0.1, 0.3, 0.6, 1.0}'::float4[]"), _INDEX.search, matched)
    keys: list[ColumnElement[Any]] = []
    if fuzzy:
        keys.append(_INDEX.search.op("@@")(_to_tsquery("tsquery")).desc())
    keys += [
        exactness.desc(),
        where.desc(),
        rank.desc(),
        func.length(_INDEX.name),
        _INDEX.implementing_code,
    ]
    return keys


@functools.lru_cache(maxsize=1024)
def _search_statement(*, with_query: bool, fuzzy: bool, filters: frozenset[str]) -> Select[Any]:
    """The search statement for one combination of filters, with every value a bind parameter.

    Built once per shape and reused: constructing a SQLAlchemy statement costs more Python time
    than PostgreSQL needs to run this one, and a reused statement also keeps its cache key.
    There are at most 3 × 2⁸ shapes.
    """
    statement = select(
        _INDEX.version_id,
        _INDEX.item_id,
        _INDEX.implementing_code,
        _INDEX.name,
        _INDEX.department,
        _INDEX.item_type,
        _INDEX.lists,
        _INDEX.auto_approval,
        _INDEX.committed_days,
        _INDEX.main_item,
        func.count().over().label("total"),
    )
    for name, column in _EQUAL_FILTERS.items():
        if name in filters:
            statement = statement.where(column == bindparam(name, type_=column.type))
    for name, column in _CONTAINS_FILTERS.items():
        if name in filters:
            statement = statement.where(column.contains(bindparam(name, type_=column.type)))
    if not with_query:
        return statement.order_by(_INDEX.name, _INDEX.implementing_code)
    matches: ColumnElement[Any] = _INDEX.search.op("@@")(_to_tsquery("tsquery"))
    if fuzzy:
        matches = or_(matches, _INDEX.search.op("@@")(_to_tsquery("fuzzy_tsquery")))
    return statement.where(matches).order_by(*_search_order(fuzzy=fuzzy))


@functools.lru_cache(maxsize=1024)
def _paged(statement: Select[Any]) -> Select[Any]:
    return statement.offset(bindparam("offset")).limit(bindparam("limit"))


def _escape_like(text: str) -> str:
    """``text`` matched literally by LIKE (PostgreSQL's default escape character, ``\\``)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _query_params(query: SearchQuery) -> dict[str, Any]:
    # Ranking looks at everything that matched: for fuzzy hits, at the corrected query.
    ranked = query.tsquery if query.fuzzy is None else f"({query.tsquery}) | ({query.fuzzy})"
    params = {
        "tsquery": query.tsquery,
        "rank_tsquery": ranked,
        "name_tsquery": search.restricted_to(ranked, "A"),
        "curated_tsquery": search.restricted_to(ranked, "AB"),
        "phrases": list(query.phrases),
        "phrase_starts": [f"{_escape_like(p)}%" for p in query.phrases],
        "phrase_contains": [f"%{_escape_like(p)}%" for p in query.phrases],
    }
    if query.fuzzy is not None:
        params["fuzzy_tsquery"] = query.fuzzy
    return params


async def search_current(
    session: AsyncSession,
    *,
    query: SearchQuery | None,
    filters: ItemFilters,
    offset: int,
    limit: int,
) -> tuple[list[SearchHit], int]:
    """Current published versions matching the query and filters, best first, in one query
    (the ranking: :func:`_search_order`); without a query, by name.

    Everything is read from the narrow ``item_search`` rows, never from ``item_version`` with
    its (compressed) JSON content. The total comes from a window function.
    """
    params: dict[str, Any] = _filter_values(filters)
    statement = _search_statement(
        with_query=query is not None,
        fuzzy=query is not None and query.fuzzy is not None,
        filters=frozenset(params),
    )
    if query is not None:
        params.update(_query_params(query))
    paged = _paged(statement)
    rows = (await session.execute(paged, {**params, "offset": offset, "limit": limit})).all()
    if not rows:
        total = 0
        if offset:  # past the end: the window saw no rows, so count separately
            counted = select(func.count()).select_from(statement.subquery())
            total = int((await session.execute(counted, params)).scalar_one())
        return [], total
    return _hits(rows), int(rows[0].total)


def _hits(rows: Sequence[Any]) -> list[SearchHit]:
    """Result rows (the index's display columns) as hits."""
    return [
        SearchHit(
            item_id=row.item_id,
            version_id=row.version_id,
            implementing_code=row.implementing_code,
            name=row.name,
            department=row.department,
            item_type=row.item_type,
            lists=list(row.lists),
            auto_approval=row.auto_approval,
            committed_days=row.committed_days,
            main_item=row.main_item,
        )
        for row in rows
    ]


async def search_vocabulary(session: AsyncSession) -> list[str]:
    """The distinct pinyin and initials terms (ASCII letters) of the published catalogue: what
    typed pinyin is corrected towards (:class:`catalog_service.search.PinyinVocabulary`)."""
    term = func.unnest(func.tsvector_to_array(_INDEX.search)).label("term")
    terms = select(term).subquery()
    rows = await session.execute(
        select(terms.c.term).distinct().where(terms.c.term.op("~")("^[a-z]+$"))
    )
    return [str(value) for (value,) in rows]


async def index_current_version(session: AsyncSession, *, item_id: str, version_id: str) -> None:
    """Make ``version_id`` the item's entry in the citizens' search index."""
    await session.execute(delete(ItemSearch).where(ItemSearch.item_id == item_id))
    copied = [
        "item_id",
        "name",
        "department",
        "item_type",
        "serves",
        "themes",
        "channels",
        "lists",
        "scope",
        "auto_approval",
        "committed_days",
        "search",
    ]
    await session.execute(
        insert(ItemSearch).from_select(
            ["version_id", "implementing_code", "main_item", *copied],
            select(
                ItemVersion.id,
                Item.implementing_code,
                ItemVersion.content["main_item"].astext,
                *(getattr(ItemVersion, column) for column in copied),
            )
            .join(Item, Item.id == ItemVersion.item_id)
            .where(ItemVersion.id == version_id),
        )
    )


async def unindex_item(session: AsyncSession, *, item_id: str) -> None:
    await session.execute(delete(ItemSearch).where(ItemSearch.item_id == item_id))


async def synonym_groups(session: AsyncSession) -> list[list[str]]:
    """The groups search expands queries with: the admins' groups and the shipped lexicon's,
    less the shipped groups an admin disabled."""
    disabled = select(DisabledShippedGroup.group_key)
    rows = await session.execute(
        select(SynonymGroup.phrases)
        .where(
            (SynonymGroup.origin == "admin")
            | SynonymGroup.group_key.is_(None)
            | SynonymGroup.group_key.not_in(disabled)
        )
        .order_by(SynonymGroup.id)
    )
    return [list(phrases) for (phrases,) in rows]


async def admin_synonym_groups(session: AsyncSession) -> list[list[str]]:
    rows = await session.execute(
        select(SynonymGroup.phrases).where(SynonymGroup.origin == "admin").order_by(SynonymGroup.id)
    )
    return [list(phrases) for (phrases,) in rows]


async def replace_synonym_groups(session: AsyncSession, groups: Sequence[Sequence[str]]) -> None:
    """Replace the admins' layer; the shipped lexicon stays."""
    await session.execute(delete(SynonymGroup).where(SynonymGroup.origin == "admin"))
    for phrases in groups:
        session.add(SynonymGroup(phrases=list(phrases), origin="admin"))
    await session.flush()


async def shipped_lexicon_state(session: AsyncSession) -> tuple[int | None, int]:
    """The version of the loaded shipped layer (``None`` when none is) and its group count."""
    version, count = (
        await session.execute(
            select(func.max(SynonymGroup.lexicon_version), func.count()).where(
                SynonymGroup.origin == "shipped"
            )
        )
    ).one()
    return version, int(count)


async def lock_shipped_lexicon(session: AsyncSession) -> None:
    """Serialise lexicon loads (two replicas migrating at once) for this transaction."""
    await session.execute(select(func.pg_advisory_xact_lock(LEXICON_LOCK)))


async def replace_shipped_groups(
    session: AsyncSession, *, version: int, groups: Sequence[tuple[str, Sequence[str]]]
) -> None:
    await session.execute(delete(SynonymGroup).where(SynonymGroup.origin == "shipped"))
    if groups:
        await session.execute(
            insert(SynonymGroup),
            [
                {
                    "phrases": list(phrases),
                    "origin": "shipped",
                    "lexicon_version": version,
                    "group_key": key,
                }
                for key, phrases in groups
            ],
        )


async def disabled_shipped_groups(session: AsyncSession) -> list[str]:
    rows = await session.execute(
        select(DisabledShippedGroup.group_key).order_by(DisabledShippedGroup.group_key)
    )
    return list(rows.scalars())


async def replace_disabled_shipped_groups(session: AsyncSession, keys: Sequence[str]) -> None:
    await session.execute(delete(DisabledShippedGroup))
    for key in dict.fromkeys(keys):
        session.add(DisabledShippedGroup(group_key=key))
    await session.flush()


async def supersede_published(session: AsyncSession, *, item_id: str, except_id: str) -> None:
    await session.execute(
        update(ItemVersion)
        .where(
            ItemVersion.item_id == item_id,
            ItemVersion.status == "published",
            ItemVersion.id != except_id,
            ItemVersion.superseded_at.is_(None),
        )
        .values(superseded_at=func.now())
    )


async def current_published(
    session: AsyncSession, *, department: str | None = None
) -> list[ItemVersion]:
    query = select(ItemVersion).join(Item, Item.current_version_id == ItemVersion.id)
    if department:
        query = query.where(ItemVersion.department == department)
    return list((await session.execute(query)).scalars())


async def department_counts(session: AsyncSession) -> list[tuple[str, int]]:
    """Departments of the current published items (the search index), most items first."""
    count = func.count().label("count")
    rows = await session.execute(
        select(ItemSearch.department, count)
        .group_by(ItemSearch.department)
        .order_by(count.desc(), ItemSearch.department)
    )
    return [(str(name), int(n)) for name, n in rows]


async def theme_counts(session: AsyncSession) -> list[tuple[str, int]]:
    """Themes (life events) of the current published items, most items first."""
    theme = func.unnest(ItemSearch.themes).label("theme")
    themes = select(theme).subquery()
    count = func.count().label("count")
    rows = await session.execute(
        select(themes.c.theme, count)
        .group_by(themes.c.theme)
        .order_by(count.desc(), themes.c.theme)
    )
    return [(str(name), int(n)) for name, n in rows]


async def all_items_latest(session: AsyncSession) -> list[ItemVersion]:
    """Newest version of every item, for export."""
    newest = (
        select(ItemVersion.item_id, func.max(ItemVersion.version).label("version"))
        .group_by(ItemVersion.item_id)
        .subquery()
    )
    rows = await session.execute(
        select(ItemVersion)
        .join(
            newest,
            and_(ItemVersion.item_id == newest.c.item_id, ItemVersion.version == newest.c.version),
        )
        .order_by(ItemVersion.department, ItemVersion.name)
    )
    return list(rows.scalars())


async def bundle_by_code(session: AsyncSession, code: str) -> Bundle | None:
    return (await session.execute(select(Bundle).where(Bundle.code == code))).scalar_one_or_none()


async def bundle_by_id(
    session: AsyncSession, bundle_id: str, *, lock: bool = False
) -> Bundle | None:
    query = select(Bundle).where(Bundle.id == bundle_id)
    if lock:
        query = query.with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


async def bundle_version_by_id(session: AsyncSession, version_id: str) -> BundleVersion | None:
    return (
        await session.execute(select(BundleVersion).where(BundleVersion.id == version_id))
    ).scalar_one_or_none()


async def bundle_draft_of(session: AsyncSession, bundle_id: str) -> BundleVersion | None:
    return (
        await session.execute(
            select(BundleVersion).where(
                BundleVersion.bundle_id == bundle_id, BundleVersion.status == "draft"
            )
        )
    ).scalar_one_or_none()


async def next_bundle_version_number(session: AsyncSession, bundle_id: str) -> int:
    latest = (
        await session.execute(
            select(func.max(BundleVersion.version)).where(BundleVersion.bundle_id == bundle_id)
        )
    ).scalar_one()
    return int(latest or 0) + 1


async def current_bundles(session: AsyncSession) -> list[BundleVersion]:
    rows = await session.execute(
        select(BundleVersion)
        .join(Bundle, Bundle.current_version_id == BundleVersion.id)
        .order_by(BundleVersion.name)
    )
    return list(rows.scalars())


async def last_published_version(
    session: AsyncSession, item_id: str, *, except_id: str
) -> ItemVersion | None:
    """The newest version of the item that citizens have seen (current, superseded or
    withdrawn): what a new version's reviewed fields are compared with."""
    return (
        await session.execute(
            select(ItemVersion)
            .where(
                ItemVersion.item_id == item_id,
                ItemVersion.id != except_id,
                ItemVersion.published_at.is_not(None),
            )
            .order_by(ItemVersion.version.desc())
            .limit(1)
        )
    ).scalar_one_or_none()


async def pending_rule_change(
    session: AsyncSession, version_id: str, *, lock: bool = False
) -> RuleChange | None:
    query = select(RuleChange).where(
        RuleChange.version_id == version_id, RuleChange.status == "pending"
    )
    if lock:
        query = query.with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


async def rule_changes(
    session: AsyncSession, *, item_id: str | None, department: str | None, limit: int
) -> Sequence[RuleChange]:
    """Rule changes, newest first; of one item and/or one department when given."""
    query = select(RuleChange)
    if item_id is not None:
        query = query.where(RuleChange.item_id == item_id)
    if department is not None:
        query = query.where(RuleChange.department == department)
    return (
        (await session.execute(query.order_by(RuleChange.submitted_at.desc()).limit(limit)))
        .scalars()
        .all()
    )


async def sub_items(
    session: AsyncSession, *, main_item: str, department: str, region_code: str
) -> list[tuple[str, str]]:
    """(code, name) of the published items whose current version names ``main_item`` as its
    主项 in the same department and region (two departments may use one 主项 name)."""
    rows = await session.execute(
        select(Item.implementing_code, ItemVersion.name)
        .join(ItemVersion, ItemVersion.id == Item.current_version_id)
        .where(
            ItemVersion.content["main_item"].astext == main_item,
            ItemVersion.department == department,
            ItemVersion.region_code == region_code,
        )
        .order_by(Item.implementing_code)
    )
    return [(code, name) for code, name in rows.all()]


# --- jobs -------------------------------------------------------------------------------------


async def claim_job(session: AsyncSession, *, now: datetime) -> Job | None:
    """The oldest job to run: queued, or running with its lease run out (its process died).
    Locked with SKIP LOCKED, so several catalogue processes never claim the same one."""
    return (
        await session.execute(
            select(Job)
            .where((Job.status == "queued") | ((Job.status == "running") & (Job.lease_until < now)))
            .order_by(Job.created_at)
            .limit(1)
            .with_for_update(skip_locked=True)
        )
    ).scalar_one_or_none()


async def update_job(
    session: AsyncSession, *, job_id: str, attempt: int, values: dict[str, Any]
) -> bool:
    """Write ``values`` on the job if this attempt still holds it (no later claim took it)."""
    result = await session.execute(
        update(Job)
        .where(Job.id == job_id, Job.attempts == attempt, Job.status == "running")
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def get_job(session: AsyncSession, job_id: str) -> Job | None:
    return await session.get(Job, job_id)


# --- statistics by department and month -----------------------------------------------------------

ONLINE_CHANNELS = ("网上", "掌上")
"""The channels that put an item in the online hall (网上办事大厅 or its mobile front)."""


@dataclass(frozen=True)
class CatalogueCounts:
    """The counts of one department's published items at one moment (a month's snapshot)."""

    department: str
    month: str
    items: int
    immediate: int
    """即办件: committed 0 working days."""
    online: int
    """Offered online (channel 网上 or 掌上)."""
    fully_online: int
    """Offered online at depth IV (全程网办)."""
    auto_approval: int
    """秒批 items."""
    timed: int
    """Items with a legal time limit above 0 and a committed one: those compression counts."""
    legal_days: int
    """Σ 法定办结时限 of the timed items."""
    saved_days: int
    """Σ (法定 − 承诺) of the timed items."""


async def monthly_catalogue_counts(
    session: AsyncSession,
    *,
    snapshots: Sequence[tuple[str, datetime]],
    department: str | None,
    region: str | None,
) -> list[CatalogueCounts]:
    """Per department, the counts of the item versions that were current and published at
    each snapshot's moment (published by then, neither superseded nor withdrawn yet), in one
    statement. By department, then month; a department without items then has no row."""
    if not snapshots:
        return []
    at = literal_rows(
        [("month", String(7)), ("at", DateTime(timezone=True))], snapshots, name="snapshot"
    )
    online = ItemVersion.channels.overlap(cast(list(ONLINE_CHANNELS), ARRAY(String(8))))
    timed = and_(ItemVersion.legal_days > 0, ItemVersion.committed_days.is_not(None))

    def count(condition: ColumnElement[bool]) -> ColumnElement[int]:
        return func.count().filter(condition)

    def total(value: Any) -> ColumnElement[int]:  # a column or an expression of columns
        return func.coalesce(func.sum(value).filter(timed), 0)

    query = (
        select(
            ItemVersion.department,
            at.c.month,
            func.count().label("items"),
            count(ItemVersion.committed_days == 0).label("immediate"),
            count(online).label("online"),
            count(and_(online, ItemVersion.online_depth == OnlineDepth.IV)).label("fully_online"),
            count(ItemVersion.auto_approval.is_(True)).label("auto_approval"),
            count(timed).label("timed"),
            total(ItemVersion.legal_days).label("legal_days"),
            total(ItemVersion.legal_days - ItemVersion.committed_days).label("saved_days"),
        )
        .select_from(ItemVersion)
        .join(
            at,
            and_(
                ItemVersion.published_at <= at.c.at,
                or_(ItemVersion.superseded_at.is_(None), ItemVersion.superseded_at > at.c.at),
                or_(ItemVersion.withdrawn_at.is_(None), ItemVersion.withdrawn_at > at.c.at),
            ),
        )
        .group_by(ItemVersion.department, at.c.month)
        .order_by(ItemVersion.department, at.c.month)
    )
    if department is not None:
        query = query.where(ItemVersion.department == department)
    if region is not None:
        query = query.where(ItemVersion.region_code == region)
    return [CatalogueCounts(**row._asdict()) for row in await session.execute(query)]


# --- searches that found nothing (catalog_service.unmatched) ----------------------------------


_HIT_COLUMNS = (
    _INDEX.version_id,
    _INDEX.item_id,
    _INDEX.implementing_code,
    _INDEX.name,
    _INDEX.department,
    _INDEX.item_type,
    _INDEX.lists,
    _INDEX.auto_approval,
    _INDEX.committed_days,
    _INDEX.main_item,
)


async def nearest_by_terms(session: AsyncSession, *, tsquery: str, limit: int) -> list[SearchHit]:
    """Current items matching ``tsquery`` (an OR of a query's parts), the most matched first."""
    q = func.to_tsquery(SIMPLE, bindparam("tsquery", type_=Text))
    rank = func.ts_rank(text("'{0.1, 0.3, 0.6, 1.0}'::float4[]"), _INDEX.search, q)
    statement = (
        select(*_HIT_COLUMNS)
        .where(_INDEX.search.op("@@")(q))
        .order_by(rank.desc(), func.length(_INDEX.name), _INDEX.implementing_code)
        .limit(limit)
    )
    return _hits((await session.execute(statement, {"tsquery": tsquery})).all())


async def nearest_by_characters(
    session: AsyncSession, *, characters: Sequence[str], at_least: int, limit: int
) -> list[SearchHit]:
    """Current items whose names share at least ``at_least`` of ``characters``, most first.

    A scan of the narrow index rows (a few thousand short names): only a search that found
    nothing by its terms comes here."""
    found: list[ColumnElement[Any]] = [
        case((func.strpos(_INDEX.name, bindparam(f"c{n}", value=c, type_=Text)) > 0, 1), else_=0)
        for n, c in enumerate(characters)
    ]
    shared = functools.reduce(lambda a, b: a + b, found).label("shared")
    inner = select(*_HIT_COLUMNS, shared).subquery()
    statement = (
        select(inner)
        .where(inner.c.shared >= at_least)
        .order_by(inner.c.shared.desc(), func.length(inner.c.name), inner.c.implementing_code)
        .limit(limit)
    )
    return _hits((await session.execute(statement)).all())


@dataclass(frozen=True)
class UnmatchedCount:
    query: str
    day: date
    count: int
    first_seen: datetime
    last_seen: datetime


async def add_unmatched_counts(session: AsyncSession, counts: Sequence[UnmatchedCount]) -> None:
    """Add counts to the daily rows in one statement. Callers pass them sorted by key, so two
    processes writing at once lock rows in the same order and cannot deadlock."""
    if not counts:
        return
    statement = pg_insert(UnmatchedSearch).values(
        [
            {
                "query": c.query,
                "day": c.day,
                "count": c.count,
                "first_seen": c.first_seen,
                "last_seen": c.last_seen,
            }
            for c in counts
        ]
    )
    excluded = statement.excluded
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[UnmatchedSearch.query, UnmatchedSearch.day],
            set_={
                "count": UnmatchedSearch.count + excluded["count"],
                "first_seen": func.least(UnmatchedSearch.first_seen, excluded.first_seen),
                "last_seen": func.greatest(UnmatchedSearch.last_seen, excluded.last_seen),
            },
        )
    )


async def delete_unmatched_before(session: AsyncSession, *, day: date) -> None:
    await session.execute(delete(UnmatchedSearch).where(UnmatchedSearch.day < day))


@dataclass(frozen=True)
class UnmatchedRow:
    query: str
    count: int
    first_seen: datetime
    last_seen: datetime
    handled_at: datetime | None
    handled_by: str | None


async def unmatched_page(
    session: AsyncSession, *, since: date, include_handled: bool, offset: int, limit: int
) -> tuple[list[UnmatchedRow], int]:
    """Queries that found nothing since ``since`` (a UTC day), most searched first. A handled
    query is left out unless it was searched (in vain) again after it was handled."""
    counts = (
        select(
            UnmatchedSearch.query,
            func.sum(UnmatchedSearch.count).label("searches"),
            func.min(UnmatchedSearch.first_seen).label("first_seen"),
            func.max(UnmatchedSearch.last_seen).label("last_seen"),
        )
        .where(UnmatchedSearch.day >= since)
        .group_by(UnmatchedSearch.query)
        .subquery()
    )
    handled = UnmatchedQueryHandled
    statement = select(
        counts,
        handled.handled_at,
        handled.handled_by,
        func.count().over().label("total"),
    ).outerjoin(handled, handled.query == counts.c.query)
    if not include_handled:
        statement = statement.where(
            or_(handled.handled_at.is_(None), counts.c.last_seen > handled.handled_at)
        )
    statement = (
        statement.order_by(counts.c.searches.desc(), counts.c.last_seen.desc(), counts.c.query)
        .offset(offset)
        .limit(limit)
    )
    rows = (await session.execute(statement)).all()
    found = [
        UnmatchedRow(
            query=row.query,
            count=int(row.searches),
            first_seen=row.first_seen,
            last_seen=row.last_seen,
            handled_at=row.handled_at,
            handled_by=row.handled_by,
        )
        for row in rows
    ]
    return found, int(rows[0].total) if rows else 0


async def unmatched_recorded(session: AsyncSession, *, query: str) -> bool:
    found = await session.execute(
        select(UnmatchedSearch.query).where(UnmatchedSearch.query == query).limit(1)
    )
    return found.first() is not None


async def mark_unmatched_handled(session: AsyncSession, *, query: str, by: str) -> datetime:
    statement = pg_insert(UnmatchedQueryHandled).values(
        query=query, handled_at=func.now(), handled_by=by
    )
    written = await session.execute(
        statement.on_conflict_do_update(
            index_elements=[UnmatchedQueryHandled.query],
            set_={"handled_at": func.now(), "handled_by": by},
        ).returning(UnmatchedQueryHandled.handled_at)
    )
    handled_at: datetime = written.scalar_one()
    return handled_at
