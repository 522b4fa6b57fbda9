"""Request and response bodies of the sharing service's API."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from sharing_service.certificates import CertificateStatus, Verdict
from wangban import identifiers


class IdentityCheckOut(BaseModel):
    lookup_id: str
    matches: bool = Field(description="false: 姓名不一致或登记中无此人（二者不作区分）")


class AttributeOut(BaseModel):
    value: Any
    source: Literal["government"] = Field(description="government: 部门核验数据，前端应只读展示")
    provider: str
    dataset: str
    updated_at: datetime


class LookupOut(BaseModel):
    lookup_id: str
    found: bool
    attributes: dict[str, AttributeOut]
    predicates: dict[str, bool | None] = Field(description="null: 部门无该主体记录，无法判断")


class EvidenceOut(BaseModel):
    kind: Literal["lookup", "certificate"]
    id: str


class MaterialOut(BaseModel):
    index: int
    name: str
    source: str
    status: str
    message: str
    needs_upload: bool
    evidence: EvidenceOut | None


class ResolveOut(BaseModel):
    materials: list[MaterialOut]


class ConsentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    item_code: str = Field(min_length=1, max_length=64)
    application_id: str | None = Field(default=None, max_length=64)
    valid_days: int = Field(default=30, ge=1, le=365)


class ConsentOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    item_code: str
    application_id: str | None
    granted_at: datetime
    expires_at: datetime
    revoked_at: datetime | None


class DataUseOut(BaseModel):
    """One use of the citizen's data (数据使用记录)."""

    seq: int
    at: datetime
    used_by: str = Field(
        description="谁使用了数据，如“东莞市人社局 窗口工作人员”“自动审批（秒批）”"
    )
    department: str | None = Field(description="代为查询的工作人员所在部门")
    role: str | None = Field(description="其角色，如“窗口工作人员”“审批人员”")
    dataset: str
    dataset_name: str
    provider: str
    fields: list[str]
    field_titles: list[str] = Field(
        description="fields 中每项的中文名称（数据集目录所载），顺序相同"
    )
    predicates: list[str]
    application_id: str | None
    item_code: str
    item_name: str | None
    outcome: str


class DataUsePage(BaseModel):
    items: list[DataUseOut]
    next_before: int | None = Field(description="传给 before 参数取下一页")


class CertificateSummary(BaseModel):
    id: str
    type_code: str
    type_name: str
    issuer: str
    issued_at: datetime
    valid_from: date
    valid_until: date | None
    status: str
    status_reason: str


class WalletCount(BaseModel):
    count: int
    """How many certificates the wallet lists (its own and those of entities founded)."""


class CertificateOut(CertificateSummary):
    document: dict[str, Any]
    kid: str
    signature: str
    qr_payload: str


class VerifyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    certificate_id: str | None = Field(default=None, max_length=120)
    qr: str | None = Field(default=None, max_length=512)


class VerifyOut(BaseModel):
    verdict: Verdict
    reason: str
    certificate_id: str | None = None
    type_name: str | None = None
    issuer: str | None = None
    holder_name: str | None = Field(default=None, description="脱敏姓名或名称")
    issued_at: datetime | None = None
    valid_until: date | None = None
    status: str | None = None


class StatusChangeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: CertificateStatus
    reason: str = Field(min_length=2, max_length=500)


class KeyOut(BaseModel):
    kid: str
    issuer_code: str
    public_key: str
    created_at: datetime
    retired_at: datetime | None


class ChainReportOut(BaseModel):
    ok: bool
    records: int
    first_bad_seq: int | None
    problems: list[str]
    checkpoint_seq: int | None = None
    """The latest signed checkpoint the chain was checked against; None: none written yet."""


class AuditRecordOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    seq: int
    id: str
    at: datetime
    consumer: str
    requested_by: str
    subject_kind: str
    subject_masked: str
    dataset_code: str
    fields: list[str]
    predicates: list[dict[str, Any]]
    application_id: str | None
    item_code: str
    outcome: str
    reason: str
    actor_subject: str | None
    actor_department: str | None
    actor_role: str | None
    hash: str


class AuditSubjectIn(BaseModel):
    """Whose data an auditor asks about, by number. Only its keyed hash is looked for: the
    records never hold the number, and the number travels in a body, never in a URL (which
    access logs and browser histories keep)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["person", "company"] = "person"
    id_number: str = Field(
        min_length=18, max_length=18, description="居民身份证号码或统一社会信用代码"
    )

    @field_validator("id_number")
    @classmethod
    def _valid(cls, value: str, info: ValidationInfo) -> str:
        kind = info.data.get("kind", "person")
        try:
            if kind == "person":
                return identifiers.validate_resident_id(value)
            return identifiers.validate_uscc(value)
        except identifiers.InvalidIdentifier as exc:
            raise ValueError(str(exc)) from None  # the message never repeats the number

    def __repr__(self) -> str:
        return f"AuditSubjectIn(kind={self.kind!r})"


class AuditFilterIn(BaseModel):
    """The audit records' filters; every one given must match."""

    model_config = ConfigDict(extra="forbid")

    subject: AuditSubjectIn | None = Field(default=None, description="数据主体（被查询人）")
    department: str | None = Field(default=None, max_length=100, description="查询人所在部门")
    dataset: str | None = Field(default=None, max_length=64, description="数据集编码")
    item_code: str | None = Field(default=None, max_length=64, description="查询用途：事项编码")
    application_id: str | None = Field(default=None, max_length=64, description="查询用途：办件")
    since: datetime | None = Field(default=None, description="查询时间不早于")
    until: datetime | None = Field(default=None, description="查询时间早于")
    limit: int = Field(default=50, ge=1, le=500)
    before: int | None = Field(default=None, ge=1, description="翻页：只列序号小于此值的记录")


class AuditPageOut(BaseModel):
    items: list[AuditRecordOut]
    next_before: int | None = Field(description="下一页的 before；没有更多记录时为空")


class CheckpointOut(BaseModel):
    seq: int = Field(description="检查点覆盖到的记录序号")
    mac: str
    at: datetime = Field(description="签署时间")
    kid: str
    published_at: datetime | None = Field(
        description="事件经消息队列确认发布的时间；为空表示尚在发送"
    )
    signature_valid: bool = Field(description="签名在当前检查点公钥下有效")
    in_chain: bool = Field(description="审计链中该序号的记录仍是检查点签署的那一条")


class DatasetFieldOut(BaseModel):
    name: str
    title: str
    type: str
    sensitivity: int


class DatasetOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    code: str
    name: str
    provider_code: str
    subject_kinds: list[str]
    legal_basis: str
    freshness: str
    description: str
    fields: list[DatasetFieldOut]


class ProviderIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    kind: Literal["sandbox", "http"]
    base_url: str | None = Field(default=None, max_length=500)
    token: str | None = Field(default=None, max_length=4096, description="只写，不会返回")
    connect_timeout_s: float = Field(default=2.0, gt=0, le=30)
    read_timeout_s: float = Field(default=5.0, gt=0, le=60)
    enabled: bool = True


class ProviderOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    code: str
    name: str
    kind: str
    base_url: str | None
    connect_timeout_s: float
    read_timeout_s: float
    enabled: bool


class GrantIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    consumer: str = Field(min_length=1, max_length=64)
    dataset: str = Field(min_length=1, max_length=64)
    item_code: str = Field(min_length=1, max_length=64)
    disclose_fields: list[str] = Field(default_factory=list, max_length=50)
    verify_fields: list[str] = Field(default_factory=list, max_length=50)
    consent_required: bool = False
    legal_basis: str = Field(default="", max_length=500)


class GrantOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    consumer: str
    dataset_code: str
    item_code: str
    disclose_fields: list[str]
    verify_fields: list[str]
    consent_required: bool
    legal_basis: str
