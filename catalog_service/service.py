"""The catalogue's rules: drafting, validating, publishing and withdrawing item and bundle
versions; the 四办 lists; search; statistics. No HTTP here; functions flush, never commit."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import lru_cache

import celpy
import jsonschema
from sqlalchemy.ext.asyncio import AsyncSession

from catalog_service import repository, search
from catalog_service.events import BundlePublished, ItemPublished, ItemWithdrawn, outbox
from catalog_service.lexicon import Lexicon, shipped_lexicon
from catalog_service.models import Bundle, BundleVersion, Item, ItemVersion
from catalog_service.repository import ItemFilters
from catalog_service.schemas import (
    BundleContent,
    DepartmentLevel,
    ItemContent,
    OnlineDepth,
    Problem,
    ResultKind,
    Scope,
    Status,
)
from wangban import personal_fields
from wangban.cel_limits import MAX_RULES, static_limit_problem
from wangban.errors import Conflict, NotFound, ValidationFailed

# --- errors -----------------------------------------------------------------------------------


class ItemNotFound(NotFound):
    type_slug = "item-not-found"
    title = "找不到该事项"


class VersionNotFound(NotFound):
    type_slug = "item-version-not-found"
    title = "找不到该事项版本"


class BundleNotFound(NotFound):
    type_slug = "bundle-not-found"
    title = "找不到该一件事"


class ItemCodeTaken(Conflict):
    type_slug = "item-code-taken"
    title = "实施编码已存在"


class VersionNotEditable(Conflict):
    type_slug = "version-not-editable"
    title = "该版本不可修改"


class NotPublishable(ValidationFailed):
    type_slug = "not-publishable"
    title = "事项要素不完整，不能发布"


class InvalidItem(ValidationFailed):
    type_slug = "invalid-item"
    title = "事项内容有误"


# --- derived attributes -----------------------------------------------------------------------

FOUR_LISTS = ("马上办", "网上办", "就近办", "一次办")


def four_lists(content: ItemContent) -> list[str]:
    """The 四办 lists an item belongs to, derived from its attributes (never typed by hand).

    马上办: handled on the spot (即办件, committed 0 days); 网上办: online depth III or IV with no
    visit; 就近办: accepted beyond its district (全城/跨城/跨省通办) or at town/village level;
    一次办: at most one visit (最多跑一次).
    """
    lists: list[str] = []
    if content.committed_days == 0:
        lists.append("马上办")
    if (content.online_depth or 0) >= OnlineDepth.III and content.visits == 0:
        lists.append("网上办")
    if content.scope is not Scope.DISTRICT or content.department_level in (
        DepartmentLevel.TOWN,
        DepartmentLevel.VILLAGE,
    ):
        lists.append("就近办")
    if content.visits is not None and content.visits <= 1:
        lists.append("一次办")
    return lists


@lru_cache(maxsize=1)
def _cel() -> celpy.Environment:
    return celpy.Environment()


def content_errors(content: ItemContent) -> list[Problem]:
    """What makes content wrong (not merely incomplete): refused even for a draft."""
    problems: list[Problem] = []
    if (
        content.legal_days is not None
        and content.committed_days is not None
        and content.committed_days > content.legal_days
    ):
        problems.append(Problem(field="committed_days", message="承诺办结时限不能超过法定办结时限"))
    if content.online_depth == OnlineDepth.IV and content.visits not in (None, 0):
        problems.append(
            Problem(field="visits", message="网上办理深度为四级（全程网办）时，到现场次数应为0")
        )
    names = [rule.name for rule in content.rules]
    if len(names) != len(set(names)):
        problems.append(Problem(field="rules", message="秒批规则名称不能重复"))
    if len(content.rules) > MAX_RULES:
        problems.append(Problem(field="rules", message=f"秒批规则不能超过 {MAX_RULES} 条"))
    for index, rule in enumerate(content.rules):
        try:
            ast = _cel().compile(rule.expression)
        except Exception as exc:  # celpy raises its own parse errors; any is a bad rule
            problems.append(
                Problem(
                    field=f"rules/{index}/expression",
                    message=f"规则“{rule.name}”的表达式语法错误：{str(exc).splitlines()[0]}",
                )
            )
            continue
        # Size and nesting bounded here, as the approval service bounds them when it compiles
        # (wangban.cel_limits): a rule too costly to evaluate is refused now, by name.
        limit = static_limit_problem(rule.expression, ast)
        if limit is not None:
            problems.append(
                Problem(field=f"rules/{index}/expression", message=f"规则“{rule.name}”{limit}")
            )
    if content.form_schema is not None:
        try:
            jsonschema.Draft202012Validator.check_schema(content.form_schema)
        except jsonschema.SchemaError as exc:
            problems.append(Problem(field="form_schema", message=f"申请表结构无效：{exc.message}"))
        # x-personal decides what intake and approval encrypt at rest: a non-boolean (say the
        # string "true") would be ignored and leave the field in clear, so it is refused.
        problems += [
            Problem(
                field="form_schema",
                message=f"申请表结构中 {pointer} 的 x-personal 只能为 true 或 false",
            )
            for pointer in personal_fields.keyword_problems(content.form_schema)
        ]
    return problems


def publication_problems(content: ItemContent) -> list[Problem]:
    """What a version still lacks before it may be published (drafts may lack it)."""
    problems = content_errors(content)
    required: list[tuple[str, object, str]] = [
        ("legal_basis", content.legal_basis, "缺少设定依据"),
        ("legal_days", content.legal_days, "缺少法定办结时限"),
        ("committed_days", content.committed_days, "缺少承诺办结时限"),
        ("conditions", content.conditions, "缺少受理条件"),
        ("channels", content.channels or None, "缺少办理渠道"),
        ("online_depth", content.online_depth, "缺少网上办理深度"),
        ("visits", content.visits, "缺少到办事现场次数"),
    ]
    problems += [Problem(field=f, message=m) for f, value, m in required if value is None]
    if (content.online_depth or 0) >= OnlineDepth.III and content.form_schema is None:
        problems.append(Problem(field="form_schema", message="可网上办理的事项需要申请表结构"))
    if content.auto_approval and not content.rules:
        problems.append(Problem(field="rules", message="秒批事项需要至少一条规则"))
    if content.result_kind is ResultKind.CERTIFICATE and not content.certificate_type:
        problems.append(Problem(field="certificate_type", message="结果为电子证照时需要证照类型"))
    return problems


def _raise_if_wrong(content: ItemContent) -> None:
    errors = content_errors(content)
    if errors:
        raise InvalidItem(
            "；".join(p.message for p in errors),
            extra={"problems": [p.model_dump() for p in errors]},
        )


# --- items ------------------------------------------------------------------------------------


async def _fill_version(
    session: AsyncSession, version: ItemVersion, content: ItemContent
) -> ItemVersion:
    document = search.document_for(
        name=content.name,
        short_name=content.short_name,
        keywords=content.keywords,
        themes=content.themes,
        department=content.department,
        materials=[m.name for m in content.materials],
        conditions=content.conditions,
    )
    version.content = content.model_dump(mode="json")
    version.name = content.name
    version.item_type = content.item_type.value
    version.department = content.department
    version.region_code = content.region_code
    version.serves = [s.value for s in content.serves]
    version.themes = list(content.themes)
    version.channels = [c.value for c in content.channels]
    version.lists = four_lists(content)
    version.scope = content.scope.value
    version.online_depth = int(content.online_depth) if content.online_depth else None
    version.visits = content.visits
    version.legal_days = content.legal_days
    version.committed_days = content.committed_days
    version.auto_approval = content.auto_approval
    version.search = repository.search_vector(*search.tsvector_sql_parts(document))
    session.add(version)
    await session.flush()
    await session.refresh(version, ["search"])
    return version


async def create_item_draft(
    session: AsyncSession, *, content: ItemContent, by: str | None = None
) -> ItemVersion:
    """A new item, as a draft version 1, by staff member ``by`` (None: the system's seeds and
    imports' own bookkeeping). 实施编码 is unique."""
    _raise_if_wrong(content)
    if await repository.item_by_code(session, content.implementing_code) is not None:
        raise ItemCodeTaken(f"实施编码 {content.implementing_code} 已存在，请修改该事项而不是新建")
    item = Item(id=str(uuid.uuid4()), implementing_code=content.implementing_code)
    session.add(item)
    await session.flush()
    version = ItemVersion(
        id=str(uuid.uuid4()),
        item_id=item.id,
        version=1,
        status=Status.DRAFT,
        created_by=by,
        edited_by=by,
    )
    return await _fill_version(session, version, content)


async def update_draft(
    session: AsyncSession, *, version_id: str, content: ItemContent, by: str | None = None
) -> ItemVersion:
    """Edit a draft in place. Published versions are immutable: start a revision instead."""
    _raise_if_wrong(content)
    version = await repository.version_by_id(session, version_id, lock=True)
    if version is None:
        raise VersionNotFound()
    if version.status == Status.SUBMITTED:
        raise VersionNotEditable("已提交审核的版本不可修改，请等待审核或由审核人退回")
    if version.status != Status.DRAFT:
        raise VersionNotEditable("已发布或已撤销的版本不可修改，请基于它新建修订版本")
    item = await repository.item_by_id(session, version.item_id)
    assert item is not None
    if content.implementing_code != item.implementing_code:
        raise VersionNotEditable("实施编码不能在修订中修改")
    version.edited_by = by
    return await _fill_version(session, version, content)


async def start_revision(
    session: AsyncSession, *, item_id: str, by: str | None = None
) -> ItemVersion:
    """The item's open version (a draft, or one submitted for review), or a new draft copied
    from its newest version."""
    item = await repository.item_by_id(session, item_id, lock=True)
    if item is None:
        raise ItemNotFound()
    draft = await repository.draft_of(session, item_id)
    if draft is not None:
        return draft
    number = await repository.next_version_number(session, item_id)
    newest = await repository.latest_versions_by_codes(session, [item.implementing_code])
    content = ItemContent.model_validate(newest[item.implementing_code].content)
    version = ItemVersion(
        id=str(uuid.uuid4()),
        item_id=item.id,
        version=number,
        status=Status.DRAFT,
        created_by=by,
        edited_by=by,
    )
    return await _fill_version(session, version, content)


async def publish_version(
    session: AsyncSession,
    *,
    version_id: str,
    published_by: str | None = None,
    approved_by: str | None = None,
) -> ItemVersion:
    """Publish a complete draft (or a submitted version, once approved): it becomes the item's
    current version, immutable from now on; the previous one stays readable for applications
    bound to it.

    No authorisation here: the system's seeds call it as they are, and staff reach it only
    through :mod:`catalog_service.review`, which scopes them to their department and requires
    a second person for a change of rules, conditions or time limits."""
    version = await repository.version_by_id(session, version_id, lock=True)
    if version is None:
        raise VersionNotFound()
    if version.status != Status.DRAFT and not (
        version.status == Status.SUBMITTED and approved_by is not None
    ):
        raise VersionNotEditable("只有草稿可以发布")
    content = ItemContent.model_validate(version.content)
    problems = publication_problems(content)
    if problems:
        raise NotPublishable(
            "；".join(p.message for p in problems),
            extra={"problems": [p.model_dump() for p in problems]},
        )
    item = await repository.item_by_id(session, version.item_id, lock=True)
    assert item is not None
    now = datetime.now(UTC)
    version.status = Status.PUBLISHED
    version.published_at = now
    version.published_by = published_by
    version.approved_by = approved_by
    item.current_version_id = version.id
    await repository.supersede_published(session, item_id=item.id, except_id=version.id)
    await session.flush()
    await repository.index_current_version(session, item_id=item.id, version_id=version.id)
    await outbox.publish(
        session,
        ItemPublished(
            item_id=item.id,
            version_id=version.id,
            version=version.version,
            implementing_code=item.implementing_code,
            lists=list(version.lists),
            published_at=now.isoformat(),
            content=version.content,
            submitted_by=version.submitted_by or published_by,
            approved_by=approved_by,
        ),
    )
    return version


async def withdraw_item(session: AsyncSession, *, item_id: str) -> ItemVersion:
    """Stop new applications for an item (撤销); versions stay readable."""
    item = await repository.item_by_id(session, item_id, lock=True)
    if item is None:
        raise ItemNotFound()
    if item.current_version_id is None:
        raise VersionNotEditable("该事项没有已发布的版本")
    version = await repository.version_by_id(session, item.current_version_id, lock=True)
    assert version is not None
    now = datetime.now(UTC)
    version.status = Status.WITHDRAWN
    version.withdrawn_at = now
    item.current_version_id = None
    await session.flush()
    await repository.unindex_item(session, item_id=item.id)
    await outbox.publish(
        session,
        ItemWithdrawn(
            item_id=item.id,
            version_id=version.id,
            implementing_code=item.implementing_code,
            withdrawn_at=now.isoformat(),
        ),
    )
    return version


async def get_version(session: AsyncSession, *, version_id: str) -> ItemVersion:
    version = await repository.version_by_id(session, version_id)
    if version is None:
        raise VersionNotFound()
    return version


async def get_public_version(session: AsyncSession, *, version_id: str) -> ItemVersion:
    """A version citizens may read: one that has been published (the current one, or an older
    one applications stay bound to). Drafts and versions under review are the department's
    work in progress — an unpublished 秒批 rule is not for the public — so they answer as if
    they did not exist."""
    version = await repository.version_by_id(session, version_id)
    if version is None or version.published_at is None:
        raise VersionNotFound()
    return version


async def get_current(session: AsyncSession, *, item_id: str) -> ItemVersion:
    item = await repository.item_by_id(session, item_id)
    if item is None or item.current_version_id is None:
        raise ItemNotFound()
    return await get_version(session, version_id=item.current_version_id)


async def sub_items(session: AsyncSession, *, version: ItemVersion) -> list[tuple[str, str]]:
    """The 子项 of an item: published items naming it (by name) as their 主项."""
    return await repository.sub_items(
        session,
        main_item=version.name,
        department=version.department,
        region_code=version.region_code,
    )


async def get_current_by_code(session: AsyncSession, *, implementing_code: str) -> ItemVersion:
    item = await repository.item_by_code(session, implementing_code)
    if item is None or item.current_version_id is None:
        raise ItemNotFound()
    return await get_version(session, version_id=item.current_version_id)


# --- search -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SearchPage:
    items: list[repository.SearchHit]
    total: int
    page: int
    page_size: int


class SynonymCache:
    """The synonym table as searches see it, read from the database at most once per ``ttl_s``.

    Without it every search pays one more round trip for a table an admin edits a few times a
    year. The instance that takes the admin's edit drops its copy as soon as the edit commits
    (:meth:`invalidate`); other instances and worker processes see it within ``ttl_s``.
    """

    def __init__(self, *, ttl_s: float = 5.0, clock: Callable[[], float] = time.monotonic):
        self._ttl_s = ttl_s
        self._clock = clock
        self._table: search.SynonymTable | None = None
        self._expires_at = 0.0

    async def table(self, session: AsyncSession) -> search.SynonymTable:
        now = self._clock()
        if self._table is None or now >= self._expires_at:
            self._table = search.SynonymTable(await repository.synonym_groups(session))
            self._expires_at = now + self._ttl_s
        return self._table

    def invalidate(self) -> None:
        self._table = None


class VocabularyCache:
    """The catalogue's pinyin terms (:class:`search.PinyinVocabulary`), read at most once per
    ``ttl_s``: only searches that found little need it, and a publication changes it rarely
    and by a few terms, so a minute-old copy corrects as well as a fresh one."""

    def __init__(self, *, ttl_s: float = 60.0, clock: Callable[[], float] = time.monotonic):
        self._ttl_s = ttl_s
        self._clock = clock
        self._vocabulary: search.PinyinVocabulary | None = None
        self._expires_at = 0.0

    async def vocabulary(self, session: AsyncSession) -> search.PinyinVocabulary:
        now = self._clock()
        if self._vocabulary is None or now >= self._expires_at:
            self._vocabulary = search.PinyinVocabulary(await repository.search_vocabulary(session))
            self._expires_at = now + self._ttl_s
        return self._vocabulary


FUZZY_BELOW = 5
"""A query whose exact form finds fewer items than this is tried again with typos corrected
(:func:`search.fuzzy_tsquery_for`): a query that already finds enough is left alone, so
corrections never flood a good result list, and their hits rank after every exact one."""


class _ParsedQueries:
    """:func:`search.tsquery_for` and :func:`search.fuzzy_tsquery_for` remembered for the
    synonym table (and pinyin vocabulary) in use: segmentation costs more than the database's
    match, and citizens type the same few hundred queries again and again. A new table or
    vocabulary (an admin's edit, a cache refresh) empties it, so no stale expansion survives,
    and it holds at most :data:`MAX_PARSED` queries."""

    MAX_PARSED = 4096

    def __init__(self) -> None:
        self._table: search.SynonymTable | None = None
        self._vocabulary: search.PinyinVocabulary | None = None
        self._exact: dict[str, str | None] = {}
        self._fuzzy: dict[str, str | None] = {}

    def _keep(self, table: search.SynonymTable) -> None:
        if table is not self._table or len(self._exact) + len(self._fuzzy) >= self.MAX_PARSED:
            self._table = table
            self._exact = {}
            self._fuzzy = {}

    def tsquery(self, raw: str, table: search.SynonymTable) -> str | None:
        self._keep(table)
        if raw not in self._exact:
            self._exact[raw] = search.tsquery_for(raw, synonyms=table)
        return self._exact[raw]

    def fuzzy(
        self, raw: str, table: search.SynonymTable, vocabulary: search.PinyinVocabulary
    ) -> str | None:
        self._keep(table)
        if vocabulary is not self._vocabulary:
            self._vocabulary = vocabulary
            self._fuzzy = {}
        if raw not in self._fuzzy:
            self._fuzzy[raw] = search.fuzzy_tsquery_for(raw, synonyms=table, vocabulary=vocabulary)
        return self._fuzzy[raw]


_PARSED = _ParsedQueries()


async def search_items(
    session: AsyncSession,
    *,
    query: str | None,
    filters: ItemFilters,
    page: int = 1,
    page_size: int = 20,
    synonyms: SynonymCache | None = None,
    vocabulary: VocabularyCache | None = None,
) -> SearchPage:
    """Current published items matching what a citizen typed and the filters, best first.

    When the exact query finds fewer than :data:`FUZZY_BELOW` items, it is searched again with
    likely typos corrected (wrong characters, one letter off in pinyin); the exact hits still
    come first. Without a ``synonyms`` (``vocabulary``) cache the synonym table (pinyin terms)
    is read from ``session``: what tests and one-off callers want, they see their own
    uncommitted edits."""
    raw = (query or "").strip()
    offset = (page - 1) * page_size
    if not raw:
        items, total = await repository.search_current(
            session, query=None, filters=filters, offset=offset, limit=page_size
        )
        return SearchPage(items=items, total=total, page=page, page_size=page_size)
    table = (
        await synonyms.table(session)
        if synonyms is not None
        else search.SynonymTable(await repository.synonym_groups(session))
    )
    tsquery = _PARSED.tsquery(raw, table)
    if tsquery is None:
        return SearchPage(items=[], total=0, page=page, page_size=page_size)
    exact = repository.SearchQuery(tsquery=tsquery, phrases=search.exact_phrases(raw, table))
    items, total = await repository.search_current(
        session, query=exact, filters=filters, offset=offset, limit=page_size
    )
    if total < FUZZY_BELOW:
        terms = (
            await vocabulary.vocabulary(session)
            if vocabulary is not None
            else search.PinyinVocabulary(await repository.search_vocabulary(session))
        )
        fuzzy = _PARSED.fuzzy(raw, table, terms)
        if fuzzy is not None:
            items, total = await repository.search_current(
                session,
                query=replace(exact, fuzzy=fuzzy),
                filters=filters,
                offset=offset,
                limit=page_size,
            )
    return SearchPage(items=items, total=total, page=page, page_size=page_size)


async def synonym_groups(session: AsyncSession) -> list[list[str]]:
    """The admins' layer of the synonym table (what ``PUT /admin/synonyms`` replaces)."""
    return await repository.admin_synonym_groups(session)


async def replace_synonyms(
    session: AsyncSession, *, groups: list[list[str]], disabled: list[str] | None = None
) -> None:
    """Replace the admins' groups and, when given, the set of shipped groups switched off
    (by key, ``theme/first phrase``). The shipped lexicon itself is never edited here."""
    cleaned = [sorted({p.strip() for p in group if p.strip()}) for group in groups]
    await repository.replace_synonym_groups(session, [g for g in cleaned if len(g) >= 2])
    if disabled is not None:
        await repository.replace_disabled_shipped_groups(
            session, [key.strip() for key in disabled if key.strip()]
        )


@dataclass(frozen=True)
class LexiconState:
    version: int | None
    groups: int
    disabled: list[str]


async def lexicon_state(session: AsyncSession) -> LexiconState:
    version, count = await repository.shipped_lexicon_state(session)
    return LexiconState(
        version=version,
        groups=count,
        disabled=await repository.disabled_shipped_groups(session),
    )


async def load_shipped_lexicon(session: AsyncSession, *, lexicon: Lexicon | None = None) -> bool:
    """Make the shipped layer of the synonym table this release's citizen lexicon.

    Run by ``wangban migrate`` (the service's reference data), idempotent: a database already
    holding this version, or a newer one (a rollback to an older release must not undo the
    newer lexicon), is left alone. An older layer is replaced whole; admin groups and the
    admins' disabled keys stay. Returns whether anything was written.
    """
    lexicon = lexicon or shipped_lexicon()
    await repository.lock_shipped_lexicon(session)
    loaded, _ = await repository.shipped_lexicon_state(session)
    if loaded is not None and loaded >= lexicon.version:
        return False
    await repository.replace_shipped_groups(
        session,
        version=lexicon.version,
        groups=[(group.key, group.phrases) for group in lexicon.groups],
    )
    return True


# --- bundles ----------------------------------------------------------------------------------


async def create_bundle_draft(session: AsyncSession, *, content: BundleContent) -> BundleVersion:
    existing = await repository.bundle_by_code(session, content.code)
    if existing is not None:
        draft = await repository.bundle_draft_of(session, existing.id)
        number = await repository.next_bundle_version_number(session, existing.id)
        bundle = existing
    else:
        bundle = Bundle(id=str(uuid.uuid4()), code=content.code)
        session.add(bundle)
        await session.flush()
        draft, number = None, 1
    version = draft or BundleVersion(
        id=str(uuid.uuid4()), bundle_id=bundle.id, version=number, status=Status.DRAFT
    )
    version.name = content.name
    version.content = content.model_dump(mode="json")
    version.member_version_ids = []
    session.add(version)
    await session.flush()
    return version


async def publish_bundle(session: AsyncSession, *, version_id: str) -> BundleVersion:
    """Publish a bundle draft, bound to the current versions of its members; every member must
    be published and every field mapping must name a field of that member's form."""
    version = await repository.bundle_version_by_id(session, version_id)
    if version is None:
        raise BundleNotFound()
    if version.status != Status.DRAFT:
        raise VersionNotEditable("只有草稿可以发布")
    content = BundleContent.model_validate(version.content)
    codes = [m.implementing_code for m in content.members]
    current = await repository.current_versions_by_codes(session, codes)
    problems: list[Problem] = []
    bundle_fields = set((content.form_schema.get("properties") or {}).keys())
    for index, member in enumerate(content.members):
        member_version = current.get(member.implementing_code)
        if member_version is None:
            problems.append(
                Problem(
                    field=f"members/{index}",
                    message=f"成员事项 {member.implementing_code} 未发布",
                )
            )
            continue
        member_content = ItemContent.model_validate(member_version.content)
        member_fields = set(((member_content.form_schema or {}).get("properties") or {}).keys())
        for source, target in member.field_map.items():
            if source not in bundle_fields or target not in member_fields:
                problems.append(
                    Problem(
                        field=f"members/{index}/field_map/{source}",
                        message=f"字段映射 {source} → {target} 不存在于表单中",
                    )
                )
    if problems:
        raise NotPublishable(
            "；".join(p.message for p in problems),
            extra={"problems": [p.model_dump() for p in problems]},
        )
    bundle = await repository.bundle_by_id(session, version.bundle_id, lock=True)
    assert bundle is not None
    now = datetime.now(UTC)
    version.status = Status.PUBLISHED
    version.published_at = now
    version.member_version_ids = [current[c].id for c in codes]
    bundle.current_version_id = version.id
    await session.flush()
    await outbox.publish(
        session,
        BundlePublished(
            bundle_id=bundle.id,
            version_id=version.id,
            version=version.version,
            code=bundle.code,
            member_version_ids=list(version.member_version_ids),
            published_at=now.isoformat(),
            content=version.content,
        ),
    )
    return version


async def get_bundle_version(session: AsyncSession, *, version_id: str) -> BundleVersion:
    version = await repository.bundle_version_by_id(session, version_id)
    if version is None:
        raise BundleNotFound()
    return version


async def get_public_bundle_version(session: AsyncSession, *, version_id: str) -> BundleVersion:
    """A bundle version citizens may read: a published one (current or superseded). A draft is
    work in progress and answers as if it did not exist, as an item's draft does."""
    version = await get_bundle_version(session, version_id=version_id)
    if version.published_at is None:
        raise BundleNotFound()
    return version


async def list_bundles(session: AsyncSession) -> list[BundleVersion]:
    return await repository.current_bundles(session)


# --- search facets ----------------------------------------------------------------------------


@dataclass(frozen=True)
class SearchFacets:
    """What a citizen can narrow a search by, with how many published items each holds."""

    departments: list[tuple[str, int]]
    themes: list[tuple[str, int]]


async def search_facets(session: AsyncSession) -> SearchFacets:
    """The departments and themes (主题) of the current published items: the search screen's
    filters offer these, never one that would find nothing."""
    return SearchFacets(
        departments=await repository.department_counts(session),
        themes=await repository.theme_counts(session),
    )


# --- statistics -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Statistics:
    items: int
    by_type: dict[str, int]
    by_department: dict[str, int]
    on_the_spot_share: float
    """即办件 ÷ items."""
    within_one_day_share: float
    """Items with committed ≤ 1 working day ÷ items."""
    average_compression: float | None
    """Mean over items with a legal limit > 0 of (legal − committed) ÷ legal."""
    lists: dict[str, int]
    full_online_rate: float | None
    """网上全流程办理率: items at depth IV ÷ items offered online."""
    auto_approval: int


async def statistics(session: AsyncSession, *, department: str | None = None) -> Statistics:
    """Catalogue figures of the current published items, as a manager reads them (Anyang
    reports 即办 76.5 %, ≤ 1 day 93.9 %, compression 95.05 %)."""
    versions = await repository.current_published(session, department=department)
    total = len(versions)
    with_committed = [v for v in versions if v.committed_days is not None]
    compressions = [
        (v.legal_days - v.committed_days) / v.legal_days
        for v in versions
        if v.legal_days and v.committed_days is not None
    ]
    online = [v for v in versions if "网上" in v.channels or "掌上" in v.channels]
    lists = Counter(name for v in versions for name in v.lists)
    return Statistics(
        items=total,
        by_type=dict(Counter(v.item_type for v in versions)),
        by_department=dict(Counter(v.department for v in versions)),
        on_the_spot_share=_share(sum(v.committed_days == 0 for v in with_committed), total),
        within_one_day_share=_share(
            sum((v.committed_days or 0) <= 1 for v in with_committed), total
        ),
        average_compression=(
            round(sum(compressions) / len(compressions), 4) if compressions else None
        ),
        lists={name: lists.get(name, 0) for name in FOUR_LISTS},
        full_online_rate=(
            _share(sum(v.online_depth == OnlineDepth.IV for v in online), len(online))
            if online
            else None
        ),
        auto_approval=sum(v.auto_approval for v in versions),
    )


def _share(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else 0.0
