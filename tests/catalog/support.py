"""Building blocks shared by the catalogue tests and the tests of other services that need an
item: a publishable item's content, a rich one for the file formats, the Guang'an list, item
names for search, a rule too costly to evaluate."""

from __future__ import annotations

import csv
import io
import uuid
from pathlib import Path
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncSession

from catalog_service import importer
from catalog_service.importer import GUANGAN_MAPPING
from catalog_service.schemas import ItemContent
from wangban.auth import AssuranceLevel, Identity, InternalTokens
from wangban.settings import Settings

GUANGAN_CSV = Path(__file__).parent / "data" / "sichuan_guangan_items.csv"

ITEM_NAMES = [
    "住房公积金提取（租房）",
    "住房公积金个人住房贷款申请",
    "居民身份证换领",
    "居民身份证首次申领",
    "第2代居民身份证补领",
    "个体工商户设立登记",
    "城乡居民基本养老保险待遇领取",
    "出生医学证明首次签发",
    "机动车驾驶证换证",
    "机动车登记（转移登记）",
    "结婚登记（内地居民）",
    "离婚登记",
    "生育登记服务",
    "流动人口居住证办理",
    "户口迁移（市内）",
    "社会保障卡申领",
    "社会保障卡挂失及补办",
    "失业保险金申领",
    "职工基本医疗保险参保登记",
    "城乡居民医疗保险异地就医备案",
    "不动产登记资料查询",
    "不动产抵押权首次登记",
    "企业名称自主申报",
    "食品经营许可证核发",
    "道路运输从业人员从业资格证补发",
    "护照签发（普通护照）",
    "港澳通行证再次签注",
    "残疾人证办理（新办）",
    "老年人优待证办理",
    "义务教育阶段入学登记",
    "“一件事一次办”新生儿出生",
    "ＡＢＣ类人才认定（Ｔ１）",
    "重庆银行开户证明 & 其他：*说明! (附件) \\ 'x'",
]

THIRTY = "[" + ", ".join(str(n) for n in range(30)) + "]"
# The finding's rule: nested maps over a 30-element list, 27 000 evaluations of the body.
NESTED_MAPS = f"{THIRTY}.map(a, {THIRTY}.map(b, {THIRTY}.map(c, a * b * c))).size() > 0"


def item_content(**overrides: Any) -> ItemContent:
    """A complete, publishable item; tests override what they are about."""
    code = overrides.pop("implementing_code", f"TEST-{uuid.uuid4().hex[:12]}")
    values: dict[str, Any] = {
        "catalog_code": "000107001000",
        "implementing_code": code,
        "name": "高龄津贴申领",
        "item_type": "行政给付",
        "serves": ["自然人"],
        "themes": ["社会保障"],
        "keywords": ["老年人", "津贴"],
        "department": "东莞市民政局",
        "region_code": "441900",
        "legal_basis": "《广东省老年人权益保障条例》",
        "legal_days": 20,
        "committed_days": 0,
        "conditions": "年满80周岁的本市户籍老年人",
        "materials": [{"name": "户口簿", "source": "shared:gongan.huji"}],
        "channels": ["网上", "掌上", "窗口"],
        "online_depth": 4,
        "visits": 0,
        "scope": "city",
        "assurance": "real_person",
        "form_schema": {
            "type": "object",
            "properties": {"bank_account": {"type": "string", "title": "收款银行账号"}},
            "required": ["bank_account"],
        },
        "auto_approval": True,
        "rules": [
            {
                "name": "age_80",
                "expression": "applicant.age >= 80",
                "message": "申请人未满80周岁",
                "needs": [],
            }
        ],
        "result_kind": "certificate",
        "certificate_type": "elderly_allowance_notice",
    }
    values.update(overrides)
    return ItemContent.model_validate(values)


def rich_item(code: str, **overrides: Any) -> dict[str, Any]:
    """A complete item using every kind of field the file formats have to carry."""
    values: dict[str, Any] = {
        "catalog_code": "000107001000",
        "implementing_code": code,
        "name": "高龄津贴申领",
        "short_name": "高龄津贴",
        "item_type": "行政给付",
        "serves": ["自然人"],
        "themes": ["社会保障", "养老服务"],
        # Separators and quotes inside values must survive the CSV.
        "keywords": ["老年人", "津贴;补贴", "“高龄”"],
        "department": "东莞市民政局",
        "region_code": "441900",
        "department_level": "市",
        "legal_basis": "《广东省老年人权益保障条例》第三十条，\n第二款",
        "legal_days": 20,
        "committed_days": 0,
        "conditions": '年满80周岁的本市户籍老年人, "含" 外地迁入满一年',
        "fees": [{"name": "工本费", "amount_yuan": 10.5, "basis": "粤价〔2020〕1号"}],
        "materials": [
            {"name": "户口簿", "source": "shared:gongan.huji"},
            {
                "name": "银行卡复印件",
                "copies": 1,
                "may_be_missing": True,
                "supplement_method": "邮寄",
                "supplement_days": 5,
            },
        ],
        "channels": ["网上", "掌上", "窗口"],
        "online_depth": 4,
        "visits": 0,
        "scope": "city",
        "assurance": "real_person",
        "form_schema": {
            "type": "object",
            "properties": {"bank_account": {"type": "string", "title": "收款银行账号"}},
            "required": ["bank_account"],
        },
        "auto_approval": True,
        "rules": [
            {"name": "age_80", "expression": "applicant.age >= 80", "message": "申请人未满80周岁"}
        ],
        "result_kind": "certificate",
        "certificate_type": "elderly_allowance_notice",
    }
    values.update(overrides)
    return ItemContent.model_validate(values).model_dump(mode="json")


GUANGAN_COMPLETION = {
    "legal_basis": "《中华人民共和国行政许可法》",
    "legal_days": "20",
    "committed_days": "10",
    "conditions": "符合法定条件的申请人",
    "channels": "网上;窗口",
    "online_depth": "2",
    "visits": "1",
}
"""What the real list lacks for publishing (it has names and codes only): the same for every
row, so the search tests compare items by their names alone."""


async def publish_guangan(session: AsyncSession) -> None:
    """The real Sichuan list (1,135 items) completed and published in one import."""
    with GUANGAN_CSV.open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.DictReader(handle))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=[*rows[0], *GUANGAN_COMPLETION])
    writer.writeheader()
    writer.writerows({**row, **GUANGAN_COMPLETION} for row in rows)
    report = await importer.import_items(
        session, data=buffer.getvalue(), fmt="csv", mapping=GUANGAN_MAPPING, publish_complete=True
    )
    assert report.published == 1135


def auth_headers(
    settings: Settings,
    *roles: str,
    kind: Literal["citizen", "staff"] = "staff",
    subject: str = "staff-1",
    department: str | None = None,
) -> dict[str, str]:
    """The gateway's internal token for a caller of the catalog's own API (a staff member of
    ``department`` in 东莞 with ``roles``, or a citizen)."""
    identity = Identity(
        subject=subject,
        kind=kind,
        roles=frozenset(roles),
        department=department,
        region="441900" if department else None,
        assurance=AssuranceLevel.REAL_NAME,
    )
    token = InternalTokens.from_settings(settings).issue(identity, issuer="gateway")
    return {"Authorization": f"Bearer {token}"}
