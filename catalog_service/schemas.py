"""The catalogue's request and response shapes: one service item version (实施清单 elements),
one bundle version (一件事), and what the API returns."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class ItemType(enum.StrEnum):
    """The eight kinds of administrative power and public service."""

    LICENSING = "行政许可"
    CONFIRMATION = "行政确认"
    ADJUDICATION = "行政裁决"
    BENEFIT = "行政给付"
    REWARD = "行政奖励"
    INSPECTION = "行政检查"
    OTHER_POWER = "其他行政权力"
    PUBLIC_SERVICE = "公共服务"


class Serves(enum.StrEnum):
    PERSON = "自然人"
    LEGAL_ENTITY = "法人"


class DepartmentLevel(enum.StrEnum):
    PROVINCE = "省"
    CITY = "市"
    DISTRICT = "区"
    TOWN = "镇街"
    VILLAGE = "村居"


class Channel(enum.StrEnum):
    ONLINE = "网上"
    MOBILE = "掌上"
    WINDOW = "窗口"
    KIOSK = "自助终端"


class OnlineDepth(enum.IntEnum):
    """网上办理深度: I 信息公开 … IV 全程网办 (no visit needed)."""

    I = 1  # noqa: E741 - the official level names are Roman numerals
    II = 2
    III = 3
    IV = 4


class Scope(enum.StrEnum):
    """通办 scope: where the item may be applied for, beyond the deciding district."""

    DISTRICT = "district"
    CITY = "city"  # 全城通办
    CROSS_CITY = "cross_city"  # 跨城通办
    CROSS_PROVINCE = "cross_province"  # 跨省通办


class Assurance(enum.StrEnum):
    WECHAT = "wechat"
    REAL_NAME = "real_name"  # 实名
    REAL_PERSON = "real_person"  # 实人


class ResultKind(enum.StrEnum):
    CERTIFICATE = "certificate"  # 电子证照
    DECISION = "decision"  # 决定文书
    NONE = "none"


class MarketEntityKind(enum.StrEnum):
    """The kind of market entity (市场主体) a 设立登记 item registers, as its licence's 类型
    reads. Approving such an application creates the entity: the certificate's holder is the
    new entity, under a credit code assigned at issue, not the applicant who founded it."""

    INDIVIDUAL_BUSINESS = "个体工商户"
    LIMITED_COMPANY = "有限责任公司"
    JOINT_STOCK_COMPANY = "股份有限公司"
    SOLE_PROPRIETORSHIP = "个人独资企业"
    PARTNERSHIP = "合伙企业"
    FARMERS_COOPERATIVE = "农民专业合作社"


class GrantLimit(enum.StrEnum):
    """How often one person (or company) may be granted the item: a one-time benefit such as
    高龄津贴 is granted once; intake refuses a second application while one is open or granted."""

    NONE = "none"
    ONCE = "once"  # once per applicant, ever
    ONCE_PER_PERIOD = "once_per_period"  # once per calendar ``grant_period`` (China time)


class GrantPeriod(enum.StrEnum):
    YEAR = "year"  # 每自然年
    MONTH = "month"  # 每自然月


class Status(enum.StrEnum):
    DRAFT = "draft"
    SUBMITTED = "submitted"
    """A change that needs a second person (四眼原则), waiting for a department's approver."""
    PUBLISHED = "published"
    WITHDRAWN = "withdrawn"


MaterialSource = str
"""``upload`` | ``shared:<dataset>`` | ``certificate:<certificate type>`` | ``commitment`` |
``waived`` — where a material comes from; anything but ``upload`` means the applicant is not
asked for it (免证明)."""


class Material(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=2000)
    required: bool = True
    condition: str | None = Field(
        default=None, max_length=500, description="When the material applies (conditional)"
    )
    originals: int = Field(default=0, ge=0, le=10, description="原件份数")
    copies: int = Field(default=0, ge=0, le=10, description="复印件份数")
    sample_url: str | None = Field(default=None, max_length=500)
    source: MaterialSource = Field(
        default="upload",
        pattern=r"^(upload|commitment|waived|shared:[a-z0-9_.]+|certificate:[A-Za-z0-9_.-]+)$",
    )
    may_be_missing: bool = Field(default=False, description="可容缺 at acceptance")
    supplement_method: str | None = Field(default=None, max_length=200, description="补齐方式")
    supplement_days: int | None = Field(default=None, ge=1, le=60, description="容缺时限, 工作日")

    @model_validator(mode="after")
    def _tolerance_is_complete(self) -> Material:
        if self.may_be_missing and (not self.supplement_method or not self.supplement_days):
            raise ValueError("容缺材料必须写明补齐方式和容缺时限")
        return self


class Fee(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    amount_yuan: float = Field(ge=0)
    basis: str = Field(min_length=1, max_length=500, description="收费依据")


class Rule(BaseModel):
    """One named 秒批 check: a CEL expression that must be true."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100, pattern=r"^[a-z][a-z0-9_]*$")
    expression: str = Field(min_length=1, max_length=2000)
    message: str = Field(min_length=1, max_length=200, description="Chinese reason when false")
    needs: list[str] = Field(default_factory=list, description="shared datasets it reads")
    refer: bool = Field(default=False, description="false → manual review, not denial")


class WorkflowStep(BaseModel):
    """One human step of an item's manual workflow, between 受理 (intake) and 办结."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=20, description="例如 审查、复核、决定")
    role: Literal["reviewer", "approver"] = Field(
        default="reviewer", description="who may act: reviewer 审查人员, approver 决定人员"
    )


DEFAULT_WORKFLOW = [
    WorkflowStep(name="审查", role="reviewer"),
    WorkflowStep(name="决定", role="reviewer"),
]


class ItemContent(BaseModel):
    """Every element of one item version an admin edits (the standardised ~32 elements)."""

    model_config = ConfigDict(extra="forbid")

    catalog_code: str = Field(min_length=1, max_length=64, description="基本编码")
    implementing_code: str = Field(min_length=1, max_length=64, description="实施编码")
    name: str = Field(min_length=2, max_length=200)
    short_name: str | None = Field(default=None, max_length=60)
    main_item: str | None = Field(
        default=None,
        min_length=2,
        max_length=200,
        description="主项: the name of the main item this item is a sub-item (子项) of, as the "
        "published list groups them (one 主项, several 子项 of one department); None: none",
    )
    item_type: ItemType
    serves: list[Serves] = Field(default_factory=lambda: [Serves.PERSON], min_length=1)
    themes: list[str] = Field(default_factory=list, description="life events, e.g. 社会保障")
    keywords: list[str] = Field(default_factory=list)
    department: str = Field(min_length=1, max_length=100)
    region_code: str = Field(pattern=r"^[0-9]{6}([0-9]{6})?$")
    department_level: DepartmentLevel = DepartmentLevel.CITY
    legal_basis: str | None = Field(default=None, max_length=4000, description="设定依据")
    legal_days: int | None = Field(default=None, ge=0, le=365, description="法定办结时限")
    committed_days: int | None = Field(default=None, ge=0, le=365, description="承诺办结时限")
    conditions: str | None = Field(default=None, max_length=4000, description="受理条件")
    fees: list[Fee] = Field(default_factory=list, description="empty: free")
    materials: list[Material] = Field(default_factory=list)
    channels: list[Channel] = Field(default_factory=list)
    online_depth: OnlineDepth | None = None
    visits: int | None = Field(default=None, ge=0, le=2, description="到办事现场次数")
    scope: Scope = Scope.DISTRICT
    assurance: Assurance = Assurance.REAL_NAME
    form_schema: dict[str, Any] | None = Field(
        default=None, description="JSON Schema of the application form, Chinese titles"
    )
    auto_approval: bool = Field(default=False, description="秒批")
    rules: list[Rule] = Field(default_factory=list)
    workflow: list[WorkflowStep] = Field(
        default_factory=lambda: list(DEFAULT_WORKFLOW),
        min_length=1,
        max_length=6,
        description="manual steps (default 审查 → 决定); the last one decides",
    )
    result_kind: ResultKind = ResultKind.DECISION
    certificate_type: str | None = Field(default=None, max_length=64)
    establishes: MarketEntityKind | None = Field(
        default=None,
        description="设立登记：approval registers a new market entity of this kind, which holds "
        "the certificate (its credit code is assigned at issue); None: the applicant holds it",
    )
    grant_limit: GrantLimit = Field(
        default=GrantLimit.NONE,
        description="享受次数：none 不限 | once 每人限一次 | once_per_period 每周期限一次",
    )
    grant_period: GrantPeriod | None = Field(
        default=None, description="once_per_period 的周期：year 每自然年 | month 每自然月"
    )

    @model_validator(mode="after")
    def _establishing_results_in_a_certificate(self) -> ItemContent:
        if self.establishes is not None and (
            self.result_kind != ResultKind.CERTIFICATE or not self.certificate_type
        ):
            raise ValueError("设立登记事项的办理结果必须是电子证照（营业执照等）")
        return self

    @model_validator(mode="after")
    def _grant_period_matches_limit(self) -> ItemContent:
        if self.grant_limit == GrantLimit.ONCE_PER_PERIOD and self.grant_period is None:
            raise ValueError("“每周期限一次”必须写明周期（year 或 month）")
        if self.grant_limit != GrantLimit.ONCE_PER_PERIOD and self.grant_period is not None:
            raise ValueError("只有“每周期限一次”的事项才能填写周期")
        return self


class BundleMember(BaseModel):
    model_config = ConfigDict(extra="forbid")

    implementing_code: str = Field(min_length=1, max_length=64)
    field_map: dict[str, str] = Field(
        default_factory=dict,
        description="bundle form field → this member item's form field",
    )


class BundleContent(BaseModel):
    """一件事一次办: several items, one combined form."""

    model_config = ConfigDict(extra="forbid")

    code: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=2, max_length=200)
    description: str = Field(default="", max_length=2000)
    themes: list[str] = Field(default_factory=list)
    members: list[BundleMember] = Field(min_length=2)
    form_schema: dict[str, Any]


class Problem(BaseModel):
    """One reason a version cannot be published yet."""

    field: str
    message: str


class SubItemOut(BaseModel):
    """A 子项 of a main item, enough to link to it."""

    implementing_code: str
    name: str


class ItemVersionOut(BaseModel):
    id: str
    item_id: str
    version: int
    status: Status
    content: ItemContent
    lists: list[Literal["马上办", "网上办", "就近办", "一次办"]]
    created_at: datetime
    published_at: datetime | None
    withdrawn_at: datetime | None
    created_by: str | None = None
    edited_by: str | None = None
    submitted_by: str | None = None
    submitted_at: datetime | None = None
    approved_by: str | None = None
    published_by: str | None = None
    sub_items: list[SubItemOut] = Field(
        default_factory=list,
        description="the published items naming this one as their 主项 (same department and "
        "region), on the item's public page only",
    )


class RejectIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=500, description="退回理由")


class DryRunChange(BaseModel):
    """A recent case whose outcome the proposed rules would change (ids and outcomes only)."""

    application_id: str
    decided_at: str
    actual: Literal["approve", "deny"] = Field(description="how the case ended")
    actual_auto: str | None = Field(default=None, description="what 秒批 answered then, if asked")
    would: Literal["approve", "deny", "refer"] = Field(description="what the proposed rules say")


class DryRunOut(BaseModel):
    """A version's rules replayed on its item's recent decided cases of the author's department
    (the approval service's replay). ``unavailable`` when approval could not answer: the
    counts are then absent."""

    status: Literal["done", "unavailable", "skipped"]
    note: str = ""
    cases: int = 0
    window: int | None = Field(default=None, description="how many recent cases are looked at")
    would: dict[str, int] = Field(default_factory=dict)
    actual: dict[str, int] = Field(default_factory=dict)
    changed: int = 0
    newly_approved: int = 0
    newly_denied: int = 0
    shared_data_unavailable: list[str] = Field(default_factory=list)
    changes: list[DryRunChange] = Field(default_factory=list)
    why: str | None = Field(default=None, description="why approval could not answer")


class RuleChangeOut(BaseModel):
    """A reviewed change: who proposed and decided it, old → new, and the dry run."""

    id: str
    item_id: str
    version_id: str
    implementing_code: str
    department: str
    previous_version_id: str | None
    author: str
    submitted_by: str
    submitted_at: datetime
    changed_fields: list[str]
    old: dict[str, Any]
    new: dict[str, Any]
    dry_run: DryRunOut
    status: Literal["pending", "approved", "rejected"]
    decided_by: str | None
    decided_at: datetime | None
    rejection_reason: str | None


class JobOut(BaseModel):
    """A long admin operation (an import) and how far it got. Poll it until ``status`` is
    ``succeeded`` (``result`` holds the import report) or ``failed`` (``problem`` says why,
    ``errors`` names every bad row; nothing was imported)."""

    id: str
    kind: Literal["import"]
    status: Literal["queued", "running", "succeeded", "failed"]
    total: int | None = Field(description="rows to write, known once the file is parsed")
    done: int = Field(description="rows written so far (they commit together at the end)")
    errors: list[dict[str, Any]] = Field(
        description="per-row errors of a rejected file: file, row, column, reason"
    )
    problem: dict[str, Any] | None = Field(description="why it failed (a problem document)")
    result: dict[str, Any] | None = Field(description="the import report once it succeeded")
    actor: str
    attempts: int
    created_at: datetime
    started_at: datetime | None
    updated_at: datetime | None
    finished_at: datetime | None


class FacetOut(BaseModel):
    name: str
    items: int = Field(description="current published items under it")


class SearchFacetsOut(BaseModel):
    """The search screen's filters: departments and themes (主题) that find something."""

    departments: list[FacetOut]
    themes: list[FacetOut]


class ItemVersionSummary(BaseModel):
    """One row of the staff's item list: the newest version of an item and its status."""

    id: str
    item_id: str
    implementing_code: str
    version: int
    status: Status
    name: str
    item_type: str
    department: str
    region_code: str
    auto_approval: bool
    created_at: datetime
    published_at: datetime | None
    withdrawn_at: datetime | None
    created_by: str | None
    edited_by: str | None
    submitted_by: str | None
    submitted_at: datetime | None


class ItemVersionPage(BaseModel):
    items: list[ItemVersionSummary]
    total: int
    page: int
    page_size: int
