"""Request and response bodies of the gateway's API (the mini-program's contract)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, model_validator

from gateway.contract import service_schema

PRINTABLE = r"^[^\x00-\x1f\x7f]*$"
"""Identifiers, names and codes: no control characters (PostgreSQL text cannot hold NUL, and
none of them belongs in a name, a username or a code)."""


class WeChatLoginIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(
        min_length=1, max_length=128, pattern=PRINTABLE, description="wx.login 返回的 code"
    )


class RefreshIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    refresh_token: str = Field(min_length=20, max_length=200, pattern=PRINTABLE)


class StaffLoginIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=1, max_length=64, pattern=PRINTABLE)
    password: str = Field(min_length=1, max_length=200)

    def __repr__(self) -> str:
        return f"StaffLoginIn(username={self.username!r})"


class DevLoginIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    openid: str = Field(min_length=1, max_length=128, pattern=PRINTABLE)
    assurance: Literal["wechat", "real_name", "real_person"] = "wechat"
    name: str | None = Field(default=None, max_length=100, pattern=PRINTABLE)
    id_number: str | None = Field(default=None, max_length=18, pattern=PRINTABLE)


class TokenOut(BaseModel):
    access_token: str
    refresh_token: str
    token_type: str = "Bearer"
    expires_in: int
    """Seconds the access token is valid; refresh before."""


class CompanyOut(BaseModel):
    uscc: str
    company_name: str
    role: Literal["legal_representative", "agent"]
    verified_at: datetime


class MeOut(BaseModel):
    subject: str
    kind: str
    assurance: Literal["wechat", "real_name", "real_person"]
    name_masked: str | None = None
    id_number_masked: str | None = None
    roles: list[str] = Field(default_factory=list)
    department: str | None = None
    region: str | None = None
    companies: list[CompanyOut] = Field(default_factory=list)
    operations: list[str] = Field(
        default_factory=list,
        description="工作人员：其角色可执行的接口（如 `POST /api/v1/staff/cases/{id}/approve`），"
        "工作台据此显示菜单和按钮",
    )


class RealNameIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=50, pattern=PRINTABLE)
    id_number: str = Field(
        min_length=15, max_length=20, pattern=PRINTABLE, description="18 位居民身份证号码"
    )

    def __repr__(self) -> str:
        return "RealNameIn(***)"


class FaceStartOut(BaseModel):
    verify_id: str
    """Pass to the mini-program's face-verification component; then POST it back."""
    expires_at: datetime


class FaceFinishIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    verify_id: str = Field(min_length=1, max_length=128, pattern=PRINTABLE)


class CompanyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    uscc: str = Field(
        min_length=18, max_length=18, pattern=PRINTABLE, description="统一社会信用代码"
    )


class MaterialChoice(BaseModel):
    model_config = ConfigDict(extra="allow")

    index: int = Field(ge=0, le=200)


class ApplyIn(BaseModel):
    """Apply for an item (by its implementing code) or a bundle (一件事): the applicant is the
    logged-in person, or the company named in ``act_for_company`` they are bound to."""

    model_config = ConfigDict(extra="forbid")

    item_code: str | None = Field(default=None, max_length=64, pattern=PRINTABLE)
    bundle_id: str | None = Field(default=None, max_length=36, pattern=PRINTABLE)
    form: dict[str, Any] = Field(default_factory=dict)
    materials: list[dict[str, Any]] = Field(default_factory=list, max_length=100)
    member_materials: dict[str, list[dict[str, Any]]] = Field(default_factory=dict)
    act_for_company: str | None = Field(
        default=None, min_length=18, max_length=18, pattern=PRINTABLE
    )
    draft: bool = False

    @model_validator(mode="after")
    def _one_target(self) -> ApplyIn:
        if (self.item_code is None) == (self.bundle_id is None):
            raise ValueError("请指定 item_code 或 bundle_id 之一")
        return self


class HomeOut(BaseModel):
    """The first screen in one call."""

    # The catalogue's and intake's summaries as those services give them (gateway/home.py).
    hot_items: Annotated[
        list[dict[str, Any]],
        WithJsonSchema({"type": "array", "items": service_schema("catalog", "ItemSummary")}),
    ]
    my_open_applications: Annotated[
        list[dict[str, Any]],
        WithJsonSchema({"type": "array", "items": service_schema("intake", "ApplicationSummary")}),
    ]
    unread_messages: int
    wallet_count: int
    degraded: list[str] = Field(default_factory=list)
    """Parts that could not be loaded just now (the rest of the screen still works)."""
