"""Request and response bodies of the intake service's API."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, computed_field, model_validator

from intake_service.ratings import COMMENT_MAX_LENGTH, RATING_TAGS
from wangban import labels


class ApplicantIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["person", "company"] = "person"
    id_number: str = Field(min_length=18, max_length=18, description="身份证号码或统一社会信用代码")
    name: str = Field(min_length=1, max_length=100)

    def __repr__(self) -> str:
        return f"ApplicantIn(kind={self.kind!r})"


class MaterialChoiceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    index: int = Field(ge=0, le=200)
    file_id: str | None = Field(default=None, max_length=36, description="已上传或材料库中的文件")
    commitment: bool = Field(default=False, description="以告知承诺代替该材料")

    @model_validator(mode="after")
    def _one_way(self) -> MaterialChoiceIn:
        if bool(self.file_id) == self.commitment:
            raise ValueError("每项材料请选择一个文件或告知承诺，二者选一")
        return self


class ApplicationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    item_version_id: str | None = Field(default=None, max_length=36)
    item_code: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        description="事项实施编码：申请该事项当前发布的版本（代替 item_version_id）",
    )
    bundle_version_id: str | None = Field(default=None, max_length=36)
    applicant: ApplicantIn
    form: dict[str, Any] = Field(default_factory=dict)
    materials: list[MaterialChoiceIn] = Field(default_factory=list, max_length=100)
    member_materials: dict[str, list[MaterialChoiceIn]] = Field(
        default_factory=dict, description="一件事：按成员事项版本编号提交的材料"
    )
    channel: Literal["mini_program", "web", "kiosk"] = "mini_program"
    draft: bool = Field(default=False, description="只保存草稿，不提交")

    @model_validator(mode="after")
    def _one_target(self) -> ApplicationIn:
        if sum(map(bool, (self.item_version_id, self.item_code, self.bundle_version_id))) != 1:
            raise ValueError("请指定一个事项（实施编码或版本）或一个一件事主题")
        if self.draft and self.bundle_version_id:
            raise ValueError("一件事申请不支持草稿，请直接提交")
        return self


class VerificationIn(BaseModel):
    """How the clerk made sure the applicant is the person the ID number names, before any of
    their data is looked up. ``register_name_match``: intake checks the name against the
    population register; ``id_card_reader`` / ``face_check``: the clerk states the check done at
    the counter (recorded with their name), with the device's reading or transaction number."""

    model_config = ConfigDict(extra="forbid")

    method: Literal["register_name_match", "id_card_reader", "face_check"]
    reference: str | None = Field(
        default=None, max_length=128, description="读卡或人脸核验的流水号（设备核验时必填）"
    )

    @model_validator(mode="after")
    def _reference_for_devices(self) -> VerificationIn:
        if self.method != "register_name_match" and not (self.reference or "").strip():
            raise ValueError("使用读卡器或人脸核验时请填写核验流水号")
        return self


class WindowApplicationIn(ApplicationIn):
    """A window clerk files on behalf of an applicant (全城通办)."""

    channel: Literal["window"] = "window"  # type: ignore[assignment]
    agent: str | None = Field(default=None, max_length=128, description="代办人")
    verification: VerificationIn = Field(description="受理前对申请人身份的核验")


class SubmitIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    materials: list[MaterialChoiceIn] = Field(default_factory=list, max_length=100)


class ReasonIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=2, max_length=500)


class OptionalReasonIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(default="申请人主动撤回", max_length=500)


class SupplementIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    materials: list[MaterialChoiceIn] = Field(min_length=1, max_length=100)


class TimelineOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    at: datetime
    from_status: str | None
    to_status: str
    actor_kind: str
    actor: str
    note: str

    @computed_field(description="状态的中文名称（与 status_name 同一张表）")  # type: ignore[prop-decorator]
    @property
    def to_status_name(self) -> str:
        return labels.status_label(self.to_status)


class MaterialOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    index: int
    name: str
    source: str
    required: bool
    may_be_missing: bool
    status: str
    evidence_kind: str | None
    evidence_id: str | None
    note: str

    @computed_field(description="材料状态的中文名称")  # type: ignore[prop-decorator]
    @property
    def status_name(self) -> str:
        return labels.material_status_label(self.status)


class BundleStatusOut(BaseModel):
    total: int
    done: int
    summary: str
    needs_correction: list[str]


class ApplicationSummary(BaseModel):
    id: str
    kind: str
    item_code: str
    item_name: str
    department: str
    status: str
    status_name: str
    status_reason: str
    channel: str
    created_at: datetime
    submitted_at: datetime | None
    due_date: date | None
    tolerated_until: date | None


class ApplicantOnScreen(BaseModel):
    """The applicant as a screen shows them: masked (张*, 441900********1234), enough for a
    clerk to confirm with the person at the counter, never the whole number."""

    kind: str
    name: str
    id_number: str


class StaffApplicationSummary(ApplicationSummary):
    applicant: ApplicantOnScreen


class ApplicantActions(BaseModel):
    """What the applicant may do with the application now, by the rules the routes enforce: a
    client offers exactly these instead of restating the rules."""

    withdraw: bool = Field(description="可撤回（作出决定或办结前）")
    supplement: bool = Field(description="可补正/补齐材料")
    rate: bool = Field(description="可评价（办结后且尚未评价）")


class ApplicationOut(ApplicationSummary):
    applicant: ApplicantOnScreen
    actions: ApplicantActions
    rated: bool = Field(description="申请人已评价")
    parent_id: str | None
    item_version_id: str | None
    bundle_version_id: str | None
    region_code: str
    accepting_window: str | None
    accepting_region: str | None
    accepted_by: str | None
    agent: str | None
    form: dict[str, Any]
    form_sources: dict[str, Any] = Field(
        default_factory=dict, description="由政府数据预填、不可修改的字段及其来源"
    )
    timeline: list[TimelineOut]
    materials: list[MaterialOut]
    bundle: BundleStatusOut | None = None
    members: list[ApplicationSummary] = Field(default_factory=list)


class FileOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    material_name: str
    filename: str
    media_type: str
    size: int
    sha256: str
    created_at: datetime


RatingTag = Annotated[
    str,
    Field(
        description="评价标签，只能取公布的列表中的值",
        json_schema_extra={"enum": list(RATING_TAGS)},
    ),
]
"""A tag of a rating, one of :data:`intake_service.ratings.RATING_TAGS`: published as an enum
so the contract (and the gateway's, which copies this body) lists them. Checked by the rating
rules, which say in Chinese which tag is not on the list."""


class RatingIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    score: int = Field(description="1 非常不满意 … 5 非常满意")
    tags: list[RatingTag] = Field(default_factory=list, max_length=len(RATING_TAGS))
    comment: str = Field(
        default="",
        max_length=COMMENT_MAX_LENGTH,
        description=f"评价内容，最多 {COMMENT_MAX_LENGTH} 字",
    )
    prompted: bool = Field(default=False, description="由评价提醒进入（非主动评价）")


class RatingOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    application_id: str
    score: int
    tags: list[RatingTag]
    comment: str
    rated_at: datetime


class TextIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=2000)


class RectificationOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    application_id: str
    department: str
    opened_at: datetime
    due_date: date
    status: str
    reply: str
    replied_at: datetime | None
    return_visit: str
    return_visited_at: datetime | None
    closed_at: datetime | None


class PrefillOut(BaseModel):
    """A form value from government data: shown read-only, replaced by the same lookup at
    submission whatever the form carries."""

    value: Any
    source: Literal["government"] = "government"
    read_only: bool = True
    provider: str
    dataset: str
    updated_at: str


class PrefillIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    item_version_id: str = Field(max_length=36)
    id_number: str = Field(min_length=18, max_length=18, description="申请人本人身份证号码")

    def __repr__(self) -> str:
        return f"PrefillIn(item_version_id={self.item_version_id!r})"


class RectificationListItem(RectificationOut):
    """A case in its department's list: the rating that opened it (score, tags, comment), the
    application's item and the deadline in working days."""

    score: int
    score_label: str
    tags: list[RatingTag]
    comment: str
    rated_at: datetime
    item_code: str
    item_name: str
    working_days_left: int | None = Field(
        description="距整改期限的工作日数（0 为当日到期，负数为已超期的工作日数）；已办结为空"
    )
    overdue: bool = Field(description="未办结且已过整改期限")
