"""The built-in sandbox provider: a synthetic, internally consistent population of 东莞市.

Every dataset of ``sharing_service/demo/datasets.json`` is answered from memory, with exactly
its field names and types. The population has two parts:

* **Named demo personas** (:data:`PERSONAS`) and **demo companies** (:data:`COMPANIES`), each
  documented with the 秒批 items (``catalog_service/demo/items.json``) they pass or fail and
  why. Their ID numbers and credit codes are fixed, so ``docs/demo.md`` stays right; their
  birth dates are fixed too, chosen so that every documented outcome holds until at least
  2031 (the tests evaluate the real rules on the real date and say when one stops holding).
  Events that must be recent — a baby born about two months ago, a disability card about to
  expire — are placed relative to the population's reference date.
* **Background residents**: a few hundred generated people in households (seeded, so the same
  reference date always gives the same people), so lists and searches look lived in.

Everything is invented: the numbers have valid check characters and consistent birth dates
but belong to nobody. Street names are real roads of 东莞; house numbers, estates, companies
and people are not.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from functools import lru_cache
from typing import Any, Final, Literal

from sharing_service.providers import ProviderRecord, ProviderUnavailable, Subject, SubjectKind
from wangban.identifiers import organization_code, resident_id_check_char, uscc_check_char

__all__ = [
    "COMPANIES",
    "PERSONAS",
    "SOURCES",
    "Company",
    "DaysFromToday",
    "ItemClaim",
    "Persona",
    "SandboxPopulation",
    "SandboxProvider",
    "StoredRecord",
]

CST: Final = timezone(timedelta(hours=8), "CST")
"""China Standard Time (UTC+8, no daylight saving): departments stamp records in it."""

SOURCES: Final[Mapping[str, str]] = {
    "gongan.huji": "东莞市公安局人口信息管理系统（沙箱）",
    "minzheng.hunyin": "全国婚姻登记信息系统·东莞市民政局（沙箱）",
    "weijian.chusheng": "广东省出生医学证明管理系统·东莞市卫生健康局（沙箱）",
    "renshe.shebao": "东莞市社会保险信息系统（沙箱）",
    "gjj.jiaocun": "东莞住房公积金管理中心业务系统（沙箱）",
    "budongchan.dengji": "东莞市不动产登记信息管理平台（沙箱）",
    "shichang.zhizhao": "东莞市市场主体登记管理系统（沙箱）",
    "shuiwu.nashui": "国家税务总局东莞市税务局税收征管系统（沙箱）",
    "yibao.canbao": "东莞市医疗保障信息平台（沙箱）",
    "minzheng.canji": "全国残疾人人口基础数据库·东莞市残联（沙箱）",
}
"""The system each dataset comes from, as shown next to every shared attribute."""

_SUBJECT_KINDS: Final[Mapping[str, frozenset[SubjectKind]]] = {
    "gongan.huji": frozenset({"person"}),
    "minzheng.hunyin": frozenset({"person"}),
    "weijian.chusheng": frozenset({"person"}),
    "renshe.shebao": frozenset({"person"}),
    "gjj.jiaocun": frozenset({"person"}),
    "budongchan.dengji": frozenset({"person", "company"}),
    "shichang.zhizhao": frozenset({"company"}),
    "shuiwu.nashui": frozenset({"person", "company"}),
    "yibao.canbao": frozenset({"person"}),
    "minzheng.canji": frozenset({"person"}),
}
# Datasets synchronised nightly (T+1 in datasets.json); the others are queried live, and a
# record's stamp is when it last changed.
_NIGHTLY: Final = frozenset(
    {
        "minzheng.hunyin",
        "renshe.shebao",
        "gjj.jiaocun",
        "shuiwu.nashui",
        "yibao.canbao",
        "minzheng.canji",
    }
)

# --- the demo 秒批 items (实施编码, see catalog_service/demo/items.json) -----------------------

NEWBORN_HUKOU: Final = "11441900007330117Q-000107002000-01"  # 新生儿入户登记
HUKOU_BOOKLET: Final = "11441900007330117Q-000107003000-01"  # 居民户口簿补领、换领
RESIDENCE_PERMIT: Final = "11441900007330117Q-000120001000-01"  # 居住证签注
UNEMPLOYMENT_BENEFIT: Final = "11441900007330475R-000305001000-01"  # 失业保险金申领
RESIDENT_PENSION: Final = "11441900007330475R-000305002000-01"  # 城乡居民基本养老保险待遇领取
INSURANCE_PROOF: Final = "11441900007330475R-000320001000-01"  # 社会保险个人参保证明查询打印
GJJ_RENT: Final = "12441900456002389F-000520001000-01"  # 住房公积金提取（租房）
GJJ_PROOF: Final = "12441900456002389F-000520002000-01"  # 住房公积金个人缴存使用证明出具
GJJ_RETIREMENT: Final = "12441900456002389F-000520003000-01"  # 住房公积金提取（退休）
SOLE_TRADER_SETUP: Final = "114419000073310646-000801001000-01"  # 个体工商户设立登记
SOLE_TRADER_CHANGE: Final = "114419000073310646-000801001001-01"  # 营业执照变更登记（个体工商户）
LLC_SETUP: Final = "114419000073310646-000801002000-01"  # 有限责任公司设立登记
FOOD_LICENCE_NEW: Final = "114419000073310646-000801004000-01"  # 食品经营许可（新办）
FOOD_LICENCE_RENEWAL: Final = "114419000073310646-000801004001-01"  # 食品经营许可延续
INVOICE_LIMIT: Final = "11441900007331216J-000901001000-01"  # 增值税防伪税控系统最高开票限额审批
TAX_CLEARANCE: Final = "11441900007331216J-000910002000-01"  # 清税证明开具
BIRTH_CERTIFICATE: Final = "114419000073309264-000707001000-01"  # 出生医学证明首次签发
ELDERLY_ALLOWANCE: Final = "11441900007330256F-000205001000-01"  # 高龄老人津贴申领
DISABILITY_SUBSIDIES: Final = "11441900007330256F-000205002000-01"  # 残疾人两项补贴申领
DISABILITY_CARD: Final = "13441900456004552D-001320001000-01"  # 残疾人证到期换领
RESIDENT_MEDICAL: Final = "11441900007331435W-001007001000-01"  # 城乡居民基本医疗保险参保登记
NEWBORN_MEDICAL: Final = "11441900007331435W-001007001001-01"  # 新生儿城乡居民医保参保登记
MATERNITY_ALLOWANCE: Final = "11441900007331435W-001005001000-01"  # 生育津贴申领
CROSS_PROVINCE_MEDICAL: Final = "11441900007331435W-001020001000-01"  # 跨省异地就医直接结算备案
PROPERTY_QUERY: Final = "1244190045600312X3-000420001000-01"  # 不动产登记信息查询（个人）


# --- public data types ---------------------------------------------------------------------

Outcome = Literal["pass", "reject", "refer"]
"""How a 秒批 evaluation ends: approved; refused by a rule; handed to a person (转人工)."""


@dataclass(frozen=True)
class ItemClaim:
    """What happens when a persona applies for an item with their sample form.

    ``rule`` is the deciding rule of a failure: the first failing rule that refuses, or, if
    none refuses, the first failing rule that refers to a person (``"refer": true``)."""

    item_code: str
    outcome: Outcome
    why: str
    """Chinese, for the demo guide: which of the persona's data makes it so."""
    rule: str | None = None
    as_company: str | None = None
    """The credit code when the persona applies on behalf of a company (the applicant is
    then the company: ``applicant.kind == "company"`` and shared data is looked up by code)."""


@dataclass(frozen=True)
class DaysFromToday:
    """A date in a sample form, relative to the day the form is filled in (contracts in force,
    licences not yet expired), so the samples stay valid whatever the date."""

    days: int = 0
    style: Literal["date", "month", "year"] = "date"

    def resolve(self, today: date) -> str | int:
        day = today + timedelta(days=self.days)
        if self.style == "year":
            return day.year
        return day.strftime("%Y-%m") if self.style == "month" else day.isoformat()


@dataclass(frozen=True)
class Persona:
    key: str
    name: str
    id_number: str = field(repr=False)  # never in a repr, an assertion message or a log
    role: str
    passes: tuple[ItemClaim, ...]
    fails: tuple[ItemClaim, ...]
    forms: Mapping[str, Mapping[str, Any]] = field(repr=False)
    """Sample application forms by item code; dates may be :class:`DaysFromToday`."""
    companies: tuple[str, ...] = ()
    """Credit codes of the companies the persona represents."""

    @property
    def claims(self) -> tuple[ItemClaim, ...]:
        return self.passes + self.fails

    def form(self, item_code: str, *, today: date) -> dict[str, Any]:
        """The sample form for an item, with relative dates resolved for ``today``."""
        return {
            name: value.resolve(today) if isinstance(value, DaysFromToday) else value
            for name, value in copy.deepcopy(dict(self.forms[item_code])).items()
        }


@dataclass(frozen=True)
class Company:
    key: str
    name: str
    uscc: str
    entity_type: str
    status: Literal["存续", "吊销", "注销"] | None
    """Business-licence status; ``None`` when the organisation holds no business licence
    (it is registered by another authority, e.g. 农业农村部门)."""
    representative: str
    representative_id: str = field(repr=False)
    role: str


# --- fixed identities ----------------------------------------------------------------------


def _rid(region: str, born: str, sequence: str) -> str:
    """A resident ID number; the sequence's last digit is odd for men, even for women."""
    body = region + born + sequence
    return body + resident_id_check_char(body)


def _uscc(prefix: str, region: str, org: str) -> str:
    body = prefix + region + organization_code(org)
    return body + uscc_check_char(body)


# People (personas and the relatives and business owners their records point at).
ID_CHEN_BINGKUN: Final = _rid("441900", "19440315", "031")
ID_HE_XIUYING: Final = _rid("441900", "19520618", "042")
ID_CHEN_JIAMING: Final = _rid("441900", "19741002", "015")
ID_LIN_SHUZHEN: Final = _rid("441900", "19760124", "026")
ID_CHEN_SIQI: Final = _rid("441900", "20140520", "068")
ID_HUANG_WEIMING: Final = _rid("441900", "19630808", "057")
ID_MAI_SHAOFEN: Final = _rid("441900", "19650412", "064")
ID_LUO_WENHUA: Final = _rid("430102", "19930412", "157")
ID_TANG_XIAOYAN: Final = _rid("430102", "19940826", "162")
ID_LUO_ZIHANG: Final = _rid("430102", "20230618", "013")
ID_YI_QIUJU: Final = _rid("430102", "19410907", "024")
ID_LIU_JIANGUO: Final = _rid("430102", "19920121", "175")
ID_ZHANG_LIJUAN: Final = _rid("441900", "19951003", "084")
ID_WANG_FANG: Final = _rid("510104", "19970214", "028")
ID_ZHOU_QIANG: Final = _rid("510104", "19951105", "039")
ID_ZHAO_ZHIGANG: Final = _rid("441900", "19811130", "113")
ID_WANG_GUILAN: Final = _rid("441900", "19550723", "082")
ID_LIANG_YONGKANG: Final = _rid("441900", "19720707", "095")
ID_MO_LIHUA: Final = _rid("441900", "19740316", "106")
ID_LIANG_JIAHAO: Final = _rid("441900", "20010911", "117")
ID_DENG_MEILING: Final = _rid("450103", "19881201", "046")
ID_DENG_GUOQIANG: Final = _rid("450103", "19620505", "051")
ID_ZHOU_GUOHUA: Final = _rid("441900", "19760509", "071")
ID_YUAN_SHUYI: Final = _rid("441900", "19781228", "088")
ID_ZHOU_HAORAN: Final = _rid("441900", "20050302", "019")
ID_ZHONG_WEIQIANG: Final = _rid("441900", "19800227", "139")
ID_CAI_MEIYU: Final = _rid("441900", "19820814", "142")
ID_ZHONG_XINYI: Final = _rid("441900", "20090117", "126")
ID_WU_HAIYAN: Final = _rid("441900", "19850919", "126")
ID_LI_GUIFEN: Final = _rid("441900", "19680303", "048")
ID_GUO_ZHENNAN: Final = _rid("441900", "19661120", "053")
ID_HE_ZHIYUAN: Final = _rid("441900", "19830611", "077")
ID_YUAN_MEIHUA: Final = _rid("441900", "19700926", "062")
ID_CAI_RONGHUI: Final = _rid("441900", "19681015", "093")
ID_YE_JIANXIN: Final = _rid("441900", "19790408", "035")

# Companies. Codes issued since 2015 carry an "MA…" organisation part; older companies kept
# their former organisation code.
USCC_HUAYUE: Final = _uscc("91", "441900", "57012649")
USCC_HENGFA: Final = _uscc("91", "441900", "MA4W3R6L")
USCC_XINDA: Final = _uscc("91", "441900", "31478562")
USCC_WUJI: Final = _uscc("92", "441900", "MA52K8P3")
USCC_HAIYAN: Final = _uscc("91", "441900", "MA4X7N2D")
USCC_WEIMING: Final = _uscc("92", "441900", "L6591320")
USCC_XINJI: Final = _uscc("N2", "441900", "MA51QH6T")
USCC_LVYE: Final = _uscc("93", "441900", "MA4WK3C8")
USCC_SONGHU: Final = _uscc("91", "441900", "MA4UP7W9")
USCC_HONGFU: Final = _uscc("91", "441900", "69247815")
USCC_JINXIU: Final = _uscc("91", "441900", "77097324")
USCC_YUFENG: Final = _uscc("91", "441900", "MA4UY2LD")

COMPANIES: Final[tuple[Company, ...]] = (
    Company(
        key="huayue",
        name="东莞市华粤精密五金制品有限公司",
        uscc=USCC_HUAYUE,
        entity_type="有限责任公司（自然人投资或控股）",
        status="存续",
        representative="周国华",
        representative_id=ID_ZHOU_GUOHUA,
        role="长安镇五金厂，纳税信用A级，无欠税；罗文华的用人单位",
    ),
    Company(
        key="hengfa",
        name="东莞市恒发电子科技有限公司",
        uscc=USCC_HENGFA,
        entity_type="有限责任公司（自然人投资或控股）",
        status="吊销",
        representative="周国华",
        representative_id=ID_ZHOU_GUOHUA,
        role="营业执照已被吊销、无欠税，可开具清税证明；赵志刚的原用人单位",
    ),
    Company(
        key="xinda",
        name="东莞市鑫达物流有限公司",
        uscc=USCC_XINDA,
        entity_type="有限责任公司（自然人独资）",
        status="存续",
        representative="钟伟强",
        representative_id=ID_ZHONG_WEIQIANG,
        role="存续但欠缴税款，纳税信用C级",
    ),
    Company(
        key="wuji",
        name="东莞市南城吴记便利店",
        uscc=USCC_WUJI,
        entity_type="个体工商户",
        status="存续",
        representative="吴海燕",
        representative_id=ID_WU_HAIYAN,
        role="个体工商户（92开头），持食品经营许可证",
    ),
    Company(
        key="haiyan",
        name="东莞市海燕食品贸易有限公司",
        uscc=USCC_HAIYAN,
        entity_type="有限责任公司（自然人独资）",
        status="注销",
        representative="吴海燕",
        representative_id=ID_WU_HAIYAN,
        role="已注销",
    ),
    Company(
        key="weiming",
        name="东莞市麻涌伟明士多店",
        uscc=USCC_WEIMING,
        entity_type="个体工商户",
        status="吊销",
        representative="黄伟明",
        representative_id=ID_HUANG_WEIMING,
        role="个体工商户，营业执照已被吊销",
    ),
    Company(
        key="xinji",
        name="东莞市麻涌镇新基村股份经济合作社",
        uscc=USCC_XINJI,
        entity_type="村级集体经济组织",
        status=None,
        representative="李桂芬",
        representative_id=ID_LI_GUIFEN,
        role="农业农村部门登记（N2开头，字母打头的信用代码），无营业执照，有纳税和不动产记录",
    ),
    Company(
        key="lvye",
        name="东莞市麻涌镇绿野香蕉专业合作社",
        uscc=USCC_LVYE,
        entity_type="农民专业合作社",
        status="存续",
        representative="李桂芬",
        representative_id=ID_LI_GUIFEN,
        role="农民专业合作社（93开头）",
    ),
    Company(
        key="songhu",
        name="东莞松湖智造科技有限公司",
        uscc=USCC_SONGHU,
        entity_type="有限责任公司（自然人投资或控股）",
        status="存续",
        representative="何志远",
        representative_id=ID_HE_ZHIYUAN,
        role="松山湖科技企业；刘建国的用人单位",
    ),
    Company(
        key="hongfu",
        name="东莞市鸿福贸易有限公司",
        uscc=USCC_HONGFU,
        entity_type="有限责任公司（自然人投资或控股）",
        status="存续",
        representative="袁美华",
        representative_id=ID_YUAN_MEIHUA,
        role="南城贸易公司；张丽娟的用人单位",
    ),
    Company(
        key="jinxiu",
        name="东莞市虎门锦绣服饰有限公司",
        uscc=USCC_JINXIU,
        entity_type="有限责任公司（自然人投资或控股）",
        status="存续",
        representative="蔡荣辉",
        representative_id=ID_CAI_RONGHUI,
        role="虎门服装企业；周强的用人单位",
    ),
    Company(
        key="yufeng",
        name="东莞市誉丰电子有限公司",
        uscc=USCC_YUFENG,
        entity_type="有限责任公司（自然人投资或控股）",
        status="存续",
        representative="叶建新",
        representative_id=ID_YE_JIANXIN,
        role="长安镇电子厂；唐小燕的用人单位",
    ),
)
_COMPANY: Final = {company.key: company for company in COMPANIES}

# --- personas ------------------------------------------------------------------------------

_BANK_ICBC: Final = {"bank_name": "中国工商银行东莞分行", "bank_account": "6212262010004417001"}
_BANK_RCB: Final = {"bank_name": "东莞农村商业银行", "bank_account": "6223690000044190002"}
_BANK_CCB: Final = {"bank_name": "中国建设银行东莞分行", "bank_account": "6217003200000441903"}


def _ok(item: str, why: str, *, company: str | None = None) -> ItemClaim:
    return ItemClaim(item_code=item, outcome="pass", why=why, as_company=company)


def _no(item: str, rule: str, why: str, *, company: str | None = None) -> ItemClaim:
    return ItemClaim(item_code=item, outcome="reject", why=why, rule=rule, as_company=company)


def _refer(item: str, rule: str, why: str) -> ItemClaim:
    return ItemClaim(item_code=item, outcome="refer", why=why, rule=rule)


PERSONAS: Final[tuple[Persona, ...]] = (
    Persona(
        key="chen_bingkun",
        name="陈炳坤",
        id_number=ID_CHEN_BINGKUN,
        role="莞城街道退休职工，1944年生，东莞户籍；按月领取企业职工基本养老金，"
        "住房公积金账户已封存；与妻子何秀英、儿子一家同户，自有住房",
        passes=(
            _ok(ELDERLY_ALLOWANCE, "年满80周岁，东莞户籍，未在外地领取"),
            _ok(GJJ_RETIREMENT, "已领取养老金，公积金账户封存且有余额"),
            _ok(HUKOU_BOOKLET, "东莞户籍的户主"),
        ),
        fails=(_no(RESIDENCE_PERMIT, "non_local_hukou", "本人就是东莞户籍"),),
        forms={
            ELDERLY_ALLOWANCE: {**_BANK_RCB, "receiving_elsewhere": False},
            GJJ_RETIREMENT: {**_BANK_RCB, "close_account": True},
            HUKOU_BOOKLET: {"reason": "损坏", "delivery_method": "电子证照"},
            RESIDENCE_PERMIT: {
                "residence_address": "广东省东莞市莞城街道西正路112号",
                "residence_proof_type": "自有住房",
            },
        },
    ),
    Persona(
        key="he_xiuying",
        name="何秀英",
        id_number=ID_HE_XIUYING,
        role="陈炳坤之妻，1952年生，东莞户籍；已在领取城乡居民养老金，参加城乡居民医保",
        passes=(
            _ok(HUKOU_BOOKLET, "东莞户籍的成年家庭成员"),
            _ok(CROSS_PROVINCE_MEDICAL, "已参加城乡居民医保，去南宁女儿家长住"),
        ),
        fails=(
            _no(ELDERLY_ALLOWANCE, "age_80", "未满80周岁"),
            _no(RESIDENT_PENSION, "not_yet_receiving", "已在领取城乡居民养老金"),
        ),
        forms={
            HUKOU_BOOKLET: {
                "reason": "遗失",
                "delivery_method": "邮寄送达",
                "mailing_address": "广东省东莞市莞城街道西正路112号",
            },
            CROSS_PROVINCE_MEDICAL: {
                "settle_province": "广西壮族自治区",
                "settle_city": "南宁市",
                "reason": "异地长期居住",
                "start_date": DaysFromToday(7),
            },
            ELDERLY_ALLOWANCE: {**_BANK_RCB, "receiving_elsewhere": False},
            RESIDENT_PENSION: {**_BANK_RCB, "start_month": DaysFromToday(31, "month")},
        },
    ),
    Persona(
        key="chen_siqi",
        name="陈思琪",
        id_number=ID_CHEN_SIQI,
        role="陈炳坤的孙女，2014年生，未成年学生；参加城乡居民医保，没有社保缴费记录",
        passes=(_ok(CROSS_PROVINCE_MEDICAL, "已参加城乡居民医保，暑假外出临时就医"),),
        fails=(
            _no(HUKOU_BOOKLET, "adult_applicant", "未满18周岁"),
            _no(RESIDENT_MEDICAL, "not_already_insured", "已参加城乡居民医保"),
            # No record: the machine never refuses for missing data, a person decides.
            _refer(INSURANCE_PROOF, "has_record", "社保系统没有她的记录，无法自动核验，转人工"),
        ),
        forms={
            CROSS_PROVINCE_MEDICAL: {
                "settle_province": "湖南省",
                "settle_city": "长沙市",
                "reason": "临时外出就医",
                "start_date": DaysFromToday(3),
            },
            HUKOU_BOOKLET: {"reason": "遗失", "delivery_method": "电子证照"},
            RESIDENT_MEDICAL: {
                "payment_year": DaysFromToday(60, "year"),
                "payment_method": "线上缴费",
            },
            INSURANCE_PROOF: {
                "purpose": "子女入学",
                "period_start": DaysFromToday(-365, "month"),
                "period_end": DaysFromToday(-30, "month"),
                "insurance_kinds": ["养老保险"],
            },
        },
    ),
    Persona(
        key="huang_weiming",
        name="黄伟明",
        id_number=ID_HUANG_WEIMING,
        role="麻涌镇新基村村民，1963年生，东莞户籍；参加城乡居民养老保险186个月、尚未领取待遇；"
        "曾经营的个体工商户“麻涌伟明士多店”营业执照已被吊销",
        passes=(_ok(RESIDENT_PENSION, "年满60周岁、东莞户籍、参加城乡居民养老保险满15年、未领取"),),
        fails=(
            _no(UNEMPLOYMENT_BENEFIT, "has_unemployment_insurance", "只参加了城乡居民养老保险"),
            _no(
                SOLE_TRADER_CHANGE,
                "license_active",
                "士多店营业执照已被吊销",
                company=USCC_WEIMING,
            ),
            _no(
                FOOD_LICENCE_RENEWAL,
                "license_active",
                "士多店营业执照已被吊销",
                company=USCC_WEIMING,
            ),
        ),
        forms={
            RESIDENT_PENSION: {**_BANK_RCB, "start_month": DaysFromToday(31, "month")},
            UNEMPLOYMENT_BENEFIT: {
                "unemployment_date": DaysFromToday(-30),
                "separation_reason": "劳动合同期满终止",
                "job_seeking_registered": True,
                **_BANK_RCB,
            },
            SOLE_TRADER_CHANGE: {"change_items": ["经营范围"], "new_scope": "日用百货零售"},
            FOOD_LICENCE_RENEWAL: {
                "license_number": "JY14419000031562",
                "expiry_date": DaysFromToday(20),
                "business_items": [
                    "预包装食品销售（含冷藏冷冻食品）",
                    "散装食品销售（不含冷藏冷冻食品）",
                ],
                "premises": "广东省东莞市麻涌镇新基村新基大街28号",
                "conditions_unchanged": True,
                "delivery_method": "窗口领取",
            },
        },
        companies=(USCC_WEIMING,),
    ),
    Persona(
        key="luo_wenhua",
        name="罗文华",
        id_number=ID_LUO_WENHUA,
        role="湖南长沙户籍的来莞务工人员，1993年生，在长安镇华粤精密五金上班；在职参保、"
        "公积金正常缴存；在东莞租房，在长沙有一套房；儿子2023年在东莞出生",
        passes=(
            _ok(RESIDENCE_PERMIT, "非东莞户籍，在本市参保缴费"),
            _ok(GJJ_RENT, "公积金正常缴存，在东莞无房（长沙的房子不计）"),
            _ok(INSURANCE_PROOF, "有本市社保缴费记录"),
            _ok(PROPERTY_QUERY, "自然人查询本人不动产"),
        ),
        fails=(
            _no(HUKOU_BOOKLET, "local_hukou", "户籍在湖南长沙"),
            _no(UNEMPLOYMENT_BENEFIT, "contribution_stopped", "仍在职参保缴费"),
            _refer(BIRTH_CERTIFICATE, "born_within_one_year", "最近登记的孩子出生已超过一年"),
            _no(NEWBORN_MEDICAL, "born_within_one_year", "最近登记的孩子出生已超过一年"),
        ),
        forms={
            RESIDENCE_PERMIT: {
                "residence_address": "广东省东莞市长安镇振安路168号锦厦新村7栋302房",
                "residence_proof_type": "房屋租赁合同",
                "employer_name": "东莞市华粤精密五金制品有限公司",
            },
            GJJ_RENT: {
                "rental_address": "广东省东莞市长安镇振安路168号锦厦新村7栋302房",
                "monthly_rent": 1600,
                "contract_start": DaysFromToday(-120),
                "contract_end": DaysFromToday(245),
                **_BANK_ICBC,
            },
            INSURANCE_PROOF: {
                "purpose": "积分入户",
                "period_start": DaysFromToday(-730, "month"),
                "period_end": DaysFromToday(-30, "month"),
                "insurance_kinds": ["养老保险", "失业保险", "工伤保险"],
            },
            PROPERTY_QUERY: {"query_scope": "有无不动产登记记录", "purpose": "公积金提取"},
            HUKOU_BOOKLET: {"reason": "遗失", "delivery_method": "电子证照"},
            UNEMPLOYMENT_BENEFIT: {
                "unemployment_date": DaysFromToday(-10),
                "separation_reason": "用人单位解除劳动合同",
                "job_seeking_registered": True,
                **_BANK_ICBC,
            },
            BIRTH_CERTIFICATE: {"child_name": "罗子航", "need_paper_copy": False},
            NEWBORN_MEDICAL: {"child_name": "罗子航", "payment_method": "线上缴费"},
        },
    ),
    Persona(
        key="yi_qiuju",
        name="易秋菊",
        id_number=ID_YI_QIUJU,
        role="罗文华的祖母，1941年生，湖南长沙户籍；随孙子在长安镇居住，没有东莞的社保和医保",
        passes=(_ok(PROPERTY_QUERY, "自然人查询本人不动产（长沙有一处房屋）"),),
        fails=(
            _no(ELDERLY_ALLOWANCE, "local_hukou", "年满80周岁，但户籍在湖南长沙"),
            _refer(
                RESIDENCE_PERMIT,
                "stable_condition",
                "住在亲属家，无法自动核验稳定就业、住所",
            ),
        ),
        forms={
            PROPERTY_QUERY: {"query_scope": "本人名下不动产信息", "purpose": "其他"},
            ELDERLY_ALLOWANCE: {**_BANK_ICBC, "receiving_elsewhere": False},
            RESIDENCE_PERMIT: {
                "residence_address": "广东省东莞市长安镇振安路168号锦厦新村7栋302房",
                "residence_proof_type": "亲友住所",
            },
        },
    ),
    Persona(
        key="liu_jianguo",
        name="刘建国",
        id_number=ID_LIU_JIANGUO,
        role="松山湖科技企业工程师，1992年生于长沙（身份号码以430102开头），2019年人才入户东莞；"
        "与妻子张丽娟共有南城一套住房；女儿约两个月前出生",
        passes=(
            _ok(NEWBORN_HUKOU, "凭父亲的身份号码查到出生医学证明信息，本人户籍已在东莞"),
            _ok(BIRTH_CERTIFICATE, "查到女儿的出生信息"),
            _ok(LLC_SETUP, "成年，无欠税，本人任法定代表人，一般经营项目"),
        ),
        fails=(
            _no(
                RESIDENCE_PERMIT,
                "non_local_hukou",
                "号码前6位是湖南的，但户籍已迁入东莞：规则看的是户籍地，不是号码",
            ),
        ),
        forms={
            NEWBORN_HUKOU: {
                "child_name": "刘可欣",
                "child_gender": "女",
                "follow_parent": "随父",
                "relation_to_householder": "女",
            },
            BIRTH_CERTIFICATE: {"child_name": "刘可欣", "need_paper_copy": False},
            LLC_SETUP: {
                "company_name": "东莞市可欣智能科技有限公司",
                "name_declaration_no": "4419002026000317",
                "registered_address": "广东省东莞市松山湖高新技术产业开发区工业北路6号1栋",
                "registered_capital": 100,
                "business_scope": "智能控制系统集成；软件开发；技术服务",
                "scope_category": "一般经营项目",
                "shareholders_count": 2,
                "legal_representative_is_applicant": True,
                "contact_phone": "13800138000",
            },
            RESIDENCE_PERMIT: {
                "residence_address": "广东省东莞市南城街道鸿福路88号鸿景花园3栋1502房",
                "residence_proof_type": "自有住房",
            },
        },
    ),
    Persona(
        key="zhang_lijuan",
        name="张丽娟",
        id_number=ID_ZHANG_LIJUAN,
        role="东莞户籍，1995年生，在南城鸿福贸易公司上班（职工医保、社保在职）；约两个月前"
        "在东莞市妇幼保健院生下女儿刘可欣；与丈夫刘建国共有一套住房",
        passes=(
            _ok(BIRTH_CERTIFICATE, "助产机构已登记女儿的出生信息"),
            _ok(NEWBORN_HUKOU, "查到出生信息，本人东莞户籍，申报姓名与出生医学证明一致"),
            _ok(NEWBORN_MEDICAL, "查到出生信息，本人东莞户籍，出生未满一年"),
            _ok(MATERNITY_ALLOWANCE, "参加职工医保，连续参保满12个月，查到出生信息"),
        ),
        fails=(_no(GJJ_RENT, "no_property_in_city", "在东莞有住房"),),
        forms={
            BIRTH_CERTIFICATE: {
                "child_name": "刘可欣",
                "need_paper_copy": True,
                "mailing_address": "广东省东莞市南城街道鸿福路88号鸿景花园3栋1502房",
            },
            NEWBORN_HUKOU: {
                "child_name": "刘可欣",
                "child_gender": "女",
                "follow_parent": "随父",
                "relation_to_householder": "女",
            },
            NEWBORN_MEDICAL: {"child_name": "刘可欣", "payment_method": "银行代扣"},
            MATERNITY_ALLOWANCE: {
                "delivery_type": "顺产",
                "leave_start": DaysFromToday(-68),
                **_BANK_CCB,
            },
            GJJ_RENT: {
                "rental_address": "广东省东莞市南城街道元美路9号",
                "monthly_rent": 2200,
                "contract_start": DaysFromToday(-30),
                "contract_end": DaysFromToday(335),
                **_BANK_CCB,
            },
        },
    ),
    Persona(
        key="wang_fang",
        name="王芳",
        id_number=ID_WANG_FANG,
        role="四川成都户籍，1997年生，随丈夫周强在虎门镇租房居住的全职妈妈，参加东莞城乡居民医保；"
        "约七周前在东莞市虎门医院生下儿子周梓涵",
        passes=(
            _ok(BIRTH_CERTIFICATE, "助产机构已登记儿子的出生信息"),
            _ok(NEWBORN_MEDICAL, "非东莞户籍，但在东莞参加了医保"),
            _ok(RESIDENCE_PERMIT, "非东莞户籍，有房屋租赁合同"),
        ),
        fails=(
            _no(NEWBORN_HUKOU, "parent_local_hukou", "夫妻双方户籍都在四川成都"),
            _no(MATERNITY_ALLOWANCE, "employee_insured", "参加的是城乡居民医保，不是职工医保"),
        ),
        forms={
            BIRTH_CERTIFICATE: {"child_name": "周梓涵", "need_paper_copy": False},
            NEWBORN_MEDICAL: {"child_name": "周梓涵", "payment_method": "线上缴费"},
            RESIDENCE_PERMIT: {
                "residence_address": "广东省东莞市虎门镇连升路33号富盈雅苑5栋601房",
                "residence_proof_type": "房屋租赁合同",
            },
            NEWBORN_HUKOU: {
                "child_name": "周梓涵",
                "child_gender": "男",
                "follow_parent": "随母",
                "relation_to_householder": "子",
            },
            MATERNITY_ALLOWANCE: {
                "delivery_type": "难产或剖宫产",
                "leave_start": DaysFromToday(-50),
                **_BANK_ICBC,
            },
        },
    ),
    Persona(
        key="zhao_zhigang",
        name="赵志刚",
        id_number=ID_ZHAO_ZHIGANG,
        role="常平镇居民，1981年生，东莞户籍；原单位恒发电子被吊销执照后失业，社保已停缴"
        "（累计132个月，含失业保险），公积金账户封存，职工医保已中断；租房居住",
        passes=(
            _ok(UNEMPLOYMENT_BENEFIT, "缴费满一年、已停缴、未领养老金、已做失业登记"),
            _ok(GJJ_PROOF, "公积金账户封存但仍有效，有缴存记录"),
            _ok(RESIDENT_MEDICAL, "职工医保中断，东莞户籍"),
        ),
        fails=(
            _no(GJJ_RENT, "account_normal", "公积金账户已封存"),
            _no(CROSS_PROVINCE_MEDICAL, "insured", "医保已中断"),
            _refer(BIRTH_CERTIFICATE, "birth_record_exists", "没有新生儿出生登记，转人工"),
            _refer(GJJ_RETIREMENT, "retired", "未领取养老金，退休条件需人工核实"),
        ),
        forms={
            UNEMPLOYMENT_BENEFIT: {
                "unemployment_date": DaysFromToday(-40),
                "separation_reason": "用人单位破产或关闭",
                "job_seeking_registered": True,
                **_BANK_RCB,
            },
            GJJ_PROOF: {"purpose": "个人留存"},
            RESIDENT_MEDICAL: {
                "payment_year": DaysFromToday(0, "year"),
                "payment_method": "银行代扣",
            },
            GJJ_RENT: {
                "rental_address": "广东省东莞市常平镇常平大道215号",
                "monthly_rent": 1300,
                "contract_start": DaysFromToday(-200),
                "contract_end": DaysFromToday(165),
                **_BANK_RCB,
            },
            CROSS_PROVINCE_MEDICAL: {
                "settle_province": "湖北省",
                "settle_city": "武汉市",
                "reason": "临时外出就医",
                "start_date": DaysFromToday(5),
            },
            BIRTH_CERTIFICATE: {"child_name": "赵小宝", "need_paper_copy": False},
            GJJ_RETIREMENT: {**_BANK_RCB, "close_account": True},
        },
    ),
    Persona(
        key="liang_yongkang",
        name="梁永康",
        id_number=ID_LIANG_YONGKANG,
        role="东城街道居民，1972年生，东莞户籍；一级肢体残疾，持第三代残疾人证（约40天后到期）；"
        "参加城乡居民养老保险，仍在缴费",
        passes=(
            _ok(DISABILITY_SUBSIDIES, "持证、东莞户籍、一级残疾，申请重度残疾人护理补贴"),
            _ok(DISABILITY_CARD, "持证、东莞户籍，证件有效期满换领"),
        ),
        fails=(_no(RESIDENT_PENSION, "age_60", "未满60周岁"),),
        forms={
            DISABILITY_SUBSIDIES: {"subsidy_kind": "重度残疾人护理补贴", **_BANK_RCB},
            DISABILITY_CARD: {
                "reason": "有效期满",
                "photo_source": "使用证照库相片",
                "delivery_method": "邮寄送达",
                "mailing_address": "广东省东莞市东城街道东纵大道236号翠林苑2栋801房",
            },
            RESIDENT_PENSION: {**_BANK_RCB, "start_month": DaysFromToday(31, "month")},
        },
    ),
    Persona(
        key="deng_meiling",
        name="邓美玲",
        id_number=ID_DENG_MEILING,
        role="广西南宁户籍，1988年生，持东莞居住证在寮步镇租房、经营网店，以灵活就业人员身份"
        "在东莞参加养老保险；三级视力残疾（残疾人证由南宁发放）；原在南宁参加的医保已中断",
        passes=(
            _ok(RESIDENCE_PERMIT, "非东莞户籍，有房屋租赁合同"),
            _ok(RESIDENT_MEDICAL, "医保已中断，持有东莞居住证"),
        ),
        fails=(
            _no(DISABILITY_SUBSIDIES, "local_hukou", "户籍在广西南宁"),
            _no(DISABILITY_CARD, "local_hukou", "残疾人证须回户籍地南宁换领"),
        ),
        forms={
            RESIDENCE_PERMIT: {
                "residence_address": "广东省东莞市寮步镇寮步大道58号盈丰雅苑3栋1206房",
                "residence_proof_type": "房屋租赁合同",
            },
            RESIDENT_MEDICAL: {
                "payment_year": DaysFromToday(60, "year"),
                "payment_method": "线上缴费",
                "has_residence_permit": True,
            },
            DISABILITY_SUBSIDIES: {"subsidy_kind": "困难残疾人生活补贴", **_BANK_CCB},
            DISABILITY_CARD: {
                "reason": "有效期满",
                "photo_source": "上传新相片",
                "delivery_method": "电子证照",
            },
        },
    ),
    Persona(
        key="zhou_guohua",
        name="周国华",
        id_number=ID_ZHOU_GUOHUA,
        role="长安镇企业主，1976年生，东莞户籍；华粤精密五金（纳税信用A级）和已被吊销执照的"
        "恒发电子的法定代表人；名下两套东莞房产",
        passes=(
            _ok(LLC_SETUP, "成年，无欠税，本人任法定代表人，一般经营项目"),
            _ok(PROPERTY_QUERY, "自然人查询本人不动产"),
            _ok(INVOICE_LIMIT, "企业无欠税，纳税信用A级，申请十万元限额", company=USCC_HUAYUE),
            _ok(TAX_CLEARANCE, "执照被吊销但无欠税、发票已缴销", company=USCC_HENGFA),
        ),
        fails=(_no(GJJ_RENT, "no_property_in_city", "在东莞有两套住房"),),
        forms={
            LLC_SETUP: {
                "company_name": "东莞市华粤智能装备有限公司",
                "name_declaration_no": "4419002026000588",
                "registered_address": "广东省东莞市长安镇锦厦路19号",
                "registered_capital": 500,
                "business_scope": "通用设备制造（不含特种设备制造）；五金产品批发",
                "scope_category": "一般经营项目",
                "shareholders_count": 1,
                "legal_representative_is_applicant": True,
                "contact_phone": "13800138000",
            },
            PROPERTY_QUERY: {"query_scope": "本人名下不动产信息", "purpose": "贷款"},
            INVOICE_LIMIT: {
                "limit_amount": 100000,
                "reason": "出口订单增加，现有一万元限额不能满足开票需要",
            },
            TAX_CLEARANCE: {"cancel_reason": "被吊销营业执照", "invoices_cancelled": True},
            GJJ_RENT: {
                "rental_address": "广东省东莞市长安镇长安中路3号",
                "monthly_rent": 2800,
                "contract_start": DaysFromToday(-60),
                "contract_end": DaysFromToday(305),
                **_BANK_ICBC,
            },
        },
        companies=(USCC_HUAYUE, USCC_HENGFA),
    ),
    Persona(
        key="zhong_weiqiang",
        name="钟伟强",
        id_number=ID_ZHONG_WEIQIANG,
        role="虎门镇鑫达物流的法定代表人，1980年生，东莞户籍；公司欠缴税款、纳税信用C级，"
        "本人也有欠税记录；公积金账户被司法冻结",
        passes=(
            _ok(INSURANCE_PROOF, "有本市社保缴费记录"),
            _ok(CROSS_PROVINCE_MEDICAL, "参加职工医保"),
        ),
        fails=(
            _no(INVOICE_LIMIT, "no_tax_arrears", "公司欠缴税款", company=USCC_XINDA),
            _no(TAX_CLEARANCE, "no_tax_arrears", "公司欠缴税款", company=USCC_XINDA),
            _no(SOLE_TRADER_SETUP, "no_tax_arrears", "本人有欠税记录"),
            _no(LLC_SETUP, "no_tax_arrears", "本人有欠税记录"),
            _no(GJJ_PROOF, "account_exists", "公积金账户被冻结"),
            _no(GJJ_RETIREMENT, "account_not_frozen", "公积金账户被冻结"),
        ),
        forms={
            INSURANCE_PROOF: {
                "purpose": "购房",
                "period_start": DaysFromToday(-1825, "month"),
                "period_end": DaysFromToday(-30, "month"),
                "insurance_kinds": ["养老保险"],
            },
            CROSS_PROVINCE_MEDICAL: {
                "settle_province": "上海市",
                "settle_city": "上海市",
                "reason": "临时外出就医",
                "start_date": DaysFromToday(2),
            },
            INVOICE_LIMIT: {"limit_amount": 100000, "reason": "业务量增长"},
            TAX_CLEARANCE: {"cancel_reason": "依法解散", "invoices_cancelled": True},
            SOLE_TRADER_SETUP: {
                "business_name": "东莞市虎门伟强货运代理部",
                "name_declaration_no": "4419002026001024",
                "organization_form": "个人经营",
                "business_address": "广东省东莞市虎门镇太沙路88号",
                "business_scope": "普通货物仓储服务；国内货物运输代理",
                "scope_category": "一般经营项目",
                "capital_yuan": 100000,
                "employee_count": 3,
            },
            LLC_SETUP: {
                "company_name": "东莞市鑫达供应链管理有限公司",
                "name_declaration_no": "4419002026001025",
                "registered_address": "广东省东莞市虎门镇虎门大道312号",
                "registered_capital": 200,
                "business_scope": "供应链管理服务；国内货物运输代理",
                "scope_category": "一般经营项目",
                "shareholders_count": 1,
                "legal_representative_is_applicant": True,
                "contact_phone": "13800138000",
            },
            GJJ_PROOF: {"purpose": "申请异地公积金贷款", "receiving_city": "广州市"},
            GJJ_RETIREMENT: {**_BANK_ICBC, "close_account": False},
        },
        companies=(USCC_XINDA,),
    ),
    Persona(
        key="wu_haiyan",
        name="吴海燕",
        id_number=ID_WU_HAIYAN,
        role="南城街道个体工商户“南城吴记便利店”经营者，1985年生，东莞户籍，以灵活就业人员身份参保；"
        "她此前开办的海燕食品贸易有限公司已注销",
        passes=(
            _ok(SOLE_TRADER_SETUP, "成年、无欠税，开第二家店，一般经营项目"),
            _ok(SOLE_TRADER_CHANGE, "便利店执照存续、无欠税，只变更经营场所", company=USCC_WUJI),
            _ok(FOOD_LICENCE_RENEWAL, "便利店执照存续，许可证未过期", company=USCC_WUJI),
        ),
        fails=(
            _no(TAX_CLEARANCE, "not_yet_cancelled", "贸易公司已注销", company=USCC_HAIYAN),
            _no(FOOD_LICENCE_NEW, "license_active", "贸易公司已注销", company=USCC_HAIYAN),
        ),
        forms={
            SOLE_TRADER_SETUP: {
                "business_name": "东莞市南城海燕文具店",
                "name_declaration_no": "4419002026000811",
                "organization_form": "个人经营",
                "business_address": "广东省东莞市南城街道胜和路21号",
                "business_scope": "文具用品零售；日用百货销售",
                "scope_category": "一般经营项目",
                "capital_yuan": 30000,
                "employee_count": 1,
            },
            SOLE_TRADER_CHANGE: {
                "change_items": ["经营场所"],
                "new_address": "广东省东莞市南城街道宏图路66号",
            },
            FOOD_LICENCE_RENEWAL: {
                "license_number": "JY14419000087341",
                "expiry_date": DaysFromToday(45),
                "business_items": ["预包装食品销售（含冷藏冷冻食品）"],
                "premises": "广东省东莞市南城街道胜和路21号",
                "conditions_unchanged": True,
                "delivery_method": "电子证照",
            },
            TAX_CLEARANCE: {"cancel_reason": "依法解散", "invoices_cancelled": True},
            FOOD_LICENCE_NEW: {
                "business_items": ["预包装食品销售（含冷藏冷冻食品）"],
                "premises": "广东省东莞市南城街道元美路9号",
                "premises_area": 60.0,
                "has_food_safety_officer": True,
                "delivery_method": "电子证照",
            },
        },
        companies=(USCC_WUJI, USCC_HAIYAN),
    ),
    Persona(
        key="li_guifen",
        name="李桂芬",
        id_number=ID_LI_GUIFEN,
        role="麻涌镇新基村股份经济合作社理事长（信用代码N2开头）、绿野香蕉专业合作社法定代表人，"
        "1968年生，东莞户籍",
        passes=(
            _ok(
                INVOICE_LIMIT, "字母打头的信用代码照样核验；无欠税，纳税信用B级", company=USCC_XINJI
            ),
            _ok(FOOD_LICENCE_NEW, "合作社执照存续，只销售预包装食品", company=USCC_LVYE),
        ),
        fails=(
            _no(PROPERTY_QUERY, "person_applicant", "以集体经济组织名义申请", company=USCC_XINJI),
        ),
        forms={
            INVOICE_LIMIT: {"limit_amount": 10000, "reason": "集体物业出租需开具增值税专用发票"},
            FOOD_LICENCE_NEW: {
                "business_items": ["预包装食品销售（含冷藏冷冻食品）"],
                "premises": "广东省东莞市麻涌镇新基村新基大街2号",
                "premises_area": 35.5,
                "storage_address": "广东省东莞市麻涌镇新基村新基大街2号",
                "has_food_safety_officer": True,
                "delivery_method": "电子证照",
            },
            PROPERTY_QUERY: {"query_scope": "本人名下不动产信息", "purpose": "其他"},
        },
        companies=(USCC_XINJI, USCC_LVYE),
    ),
)


# --- the population --------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredRecord:
    """A whole record as the department holds it, and when it last changed."""

    values: dict[str, Any] = field(repr=False)  # personal data: kept out of reprs
    updated_at: datetime


class SandboxPopulation:
    """Every record of every sandbox dataset, built once for a reference date (``today``)."""

    def __init__(self, *, today: date, records: Mapping[str, Mapping[str, StoredRecord]]) -> None:
        self.today = today
        self._records = records

    @classmethod
    def build(cls, *, today: date) -> SandboxPopulation:
        return _Builder(today).build()

    def record(self, dataset: str, subject_id: str) -> dict[str, Any] | None:
        """A copy of the whole record (all fields), or ``None``."""
        stored = self._records.get(dataset, {}).get(subject_id)
        return None if stored is None else copy.deepcopy(stored.values)

    def stored(self, dataset: str, subject_id: str) -> StoredRecord | None:
        return self._records.get(dataset, {}).get(subject_id)

    def subjects(self, dataset: str) -> list[str]:
        return list(self._records.get(dataset, {}))

    @property
    def datasets(self) -> list[str]:
        return list(self._records)

    @property
    def person_ids(self) -> list[str]:
        """Everyone with a household registration (户籍), named or generated."""
        return self.subjects("gongan.huji")

    @property
    def company_codes(self) -> list[str]:
        """Every organisation (all are named: see :data:`COMPANIES`)."""
        return [company.uscc for company in COMPANIES]

    def __repr__(self) -> str:
        return f"SandboxPopulation(today={self.today.isoformat()}, people={len(self.person_ids)})"


@lru_cache(maxsize=4)
def _population_for(today: date) -> SandboxPopulation:
    return SandboxPopulation.build(today=today)


class SandboxProvider:
    """A :class:`~sharing_service.providers.DataProvider` answering from the sandbox population.

    ``unavailable_datasets`` simulate an outage: lookups in them raise
    :class:`ProviderUnavailable`, as a department whose system is down would."""

    def __init__(
        self,
        population: SandboxPopulation | None = None,
        *,
        today: date | None = None,
        unavailable_datasets: frozenset[str] = frozenset(),
    ) -> None:
        if population is None:
            population = _population_for(today or date.today())
        self.population = population
        self.unavailable_datasets = unavailable_datasets
        self._closed = False

    async def fetch(
        self,
        *,
        dataset: str,
        subject: Subject,
        fields: Sequence[str],
        request_id: str,
    ) -> ProviderRecord | None:
        if self._closed:
            raise ProviderUnavailable("沙箱数据源已关闭")
        if dataset in self.unavailable_datasets:
            raise ProviderUnavailable(f"模拟故障：数据集 {dataset} 暂不可用")
        kinds = _SUBJECT_KINDS.get(dataset)
        if kinds is None:
            # A dataset the sandbox does not serve is a configuration error, but callers treat
            # it as any unavailable provider: manual handling, never a rejection.
            raise ProviderUnavailable(f"沙箱未提供数据集 {dataset}")
        if subject.kind not in kinds:
            return None
        stored = self.population.stored(dataset, subject.id.strip().upper())
        if stored is None:
            return None
        values = {
            name: copy.deepcopy(stored.values[name]) for name in fields if name in stored.values
        }
        return ProviderRecord(values=values, updated_at=stored.updated_at, source=SOURCES[dataset])

    async def close(self) -> None:
        self._closed = True


# --- building ----------------------------------------------------------------------------------

_SEED: Final = 4419_2026

_DONGGUAN: Final = "441900"
# Town or street (镇街) → roads in it. Real roads, invented house numbers and estates.
_TOWNS: Final[Mapping[str, tuple[str, ...]]] = {
    "莞城街道": ("西正路", "东正路", "运河东一路"),
    "南城街道": ("鸿福路", "元美路", "胜和路", "宏图路"),
    "东城街道": ("东纵大道", "东城中路", "主山路"),
    "万江街道": ("万江路", "新和路"),
    "长安镇": ("长安中路", "锦厦路", "振安路"),
    "虎门镇": ("虎门大道", "连升路", "太沙路"),
    "常平镇": ("常平大道", "环城路"),
    "塘厦镇": ("塘厦大道", "迎宾大道"),
    "寮步镇": ("寮步大道", "香市路"),
    "厚街镇": ("厚街大道", "康乐路"),
    "大朗镇": ("美景路", "富民路"),
    "石龙镇": ("西湖路", "绿化路"),
}
_ESTATES: Final = (
    "鸿景花园",
    "翠林苑",
    "东湖名居",
    "锦绣华庭",
    "盈丰雅苑",
    "富盈雅苑",
    "星河苑",
    "金域华府",
)
# Non-local household registrations: address code → place, its roads, ethnicities seen.
_ELSEWHERE: Final[Mapping[str, tuple[str, tuple[str, ...], tuple[str, ...]]]] = {
    "430102": ("湖南省长沙市芙蓉区", ("八一路", "五一大道", "韶山北路"), ("汉族",)),
    "360102": ("江西省南昌市东湖区", ("八一大道", "阳明路"), ("汉族",)),
    "450103": ("广西壮族自治区南宁市青秀区", ("民族大道", "东葛路"), ("汉族", "壮族")),
    "522601": (
        "贵州省黔东南苗族侗族自治州凯里市",
        ("北京西路", "韶山南路"),
        ("苗族", "侗族", "汉族"),
    ),
    "510104": ("四川省成都市锦江区", ("东大街", "书院街"), ("汉族",)),
    "411302": ("河南省南阳市宛城区", ("人民路", "新华东路"), ("汉族",)),
    "421002": ("湖北省荆州市沙市区", ("北京中路", "江汉北路"), ("汉族",)),
    "445102": ("广东省潮州市湘桥区", ("潮州大道", "枫春路"), ("汉族",)),
}
_PROPERTY_PREFIX: Final = {
    "4419": "粤（{year}）东莞不动产权第{no:07d}号",
    "4301": "湘（{year}）长沙市不动产权第{no:07d}号",
    "3601": "赣（{year}）南昌市不动产权第{no:07d}号",
    "4501": "桂（{year}）南宁市不动产权第{no:07d}号",
    "5226": "黔（{year}）凯里市不动产权第{no:07d}号",
    "5101": "川（{year}）成都市不动产权第{no:07d}号",
    "4113": "豫（{year}）南阳市不动产权第{no:07d}号",
    "4210": "鄂（{year}）荆州市不动产权第{no:07d}号",
    "4451": "粤（{year}）潮州市不动产权第{no:07d}号",
}
_SURNAMES_LOCAL: Final = "陈李黄张袁叶卢何梁莫刘钟王邓黎蔡方谢麦罗"
_SURNAMES_ELSEWHERE: Final = "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗唐彭"
_GIVEN_MALE: Final = "伟志国建明强俊杰浩家文荣辉锦振永健耀嘉宇子轩泽睿晨"
_GIVEN_FEMALE: Final = "丽秀美玲燕芳婷慧欣怡淑桂霞敏静雅诗梓琪晴"
_HOSPITALS: Final = (
    "东莞市妇幼保健院",
    "东莞市人民医院",
    "东莞市松山湖中心医院",
    "东莞市长安医院",
    "东莞市虎门医院",
    "东莞市常平医院",
)
_FULL_INSURANCE: Final = ["企业职工基本养老保险", "失业保险", "工伤保险"]
_EMPLOYEE_MEDICAL: Final = "职工基本医疗保险"
_RESIDENT_MEDICAL: Final = "城乡居民基本医疗保险"
_DISABILITY_CATEGORIES: Final = (
    "视力残疾",
    "听力残疾",
    "言语残疾",
    "肢体残疾",
    "智力残疾",
    "精神残疾",
)
_DISABILITY_LEVELS: Final = ("一级", "二级", "三级", "四级")
_DISABILITY_CATEGORY_CODES: Final = {
    "视力残疾": "1",
    "听力残疾": "2",
    "言语残疾": "3",
    "肢体残疾": "4",
    "智力残疾": "5",
    "精神残疾": "6",
    "多重残疾": "7",
}
"""The category digit of a 残疾人证号 (the ID number, then the category and level digits)."""
_BACKGROUND_EMPLOYERS: Final = ("huayue", "songhu", "hongfu", "jinxiu", "yufeng", "xinda")


def _age(born: date, today: date) -> int:
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


def _birth_of(id_number: str) -> date:
    return date(int(id_number[6:10]), int(id_number[10:12]), int(id_number[12:14]))


def _iso(day: date) -> str:
    return day.isoformat()


def _years_before(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February
        return day.replace(year=day.year - years, day=28)


class _Builder:
    def __init__(self, today: date) -> None:
        self.today = today
        self.yesterday = today - timedelta(days=1)
        self.rng = random.Random(_SEED)
        self.records: dict[str, dict[str, StoredRecord]] = {code: {} for code in _SUBJECT_KINDS}
        self.names: dict[str, str] = {}
        self.households: dict[str, list[tuple[str, str]]] = {}  # household id → (id, relation)
        self.properties: dict[str, list[dict[str, Any]]] = {}
        self.property_no = 31_000
        self.taken: set[str] = set()

    # --- stamps --------------------------------------------------------------------------

    def _stamp(self, dataset: str, changed: date | None = None) -> datetime:
        if dataset in _NIGHTLY or changed is None:
            # The nightly exchange ran in the small hours of yesterday's batch window.
            clock = time(2, self.rng.randrange(60), self.rng.randrange(60))
            return datetime.combine(self.yesterday, clock, tzinfo=CST)
        clock = time(self.rng.randrange(9, 18), self.rng.randrange(60), self.rng.randrange(60))
        return datetime.combine(min(changed, self.yesterday), clock, tzinfo=CST)

    def put(
        self, dataset: str, subject: str, values: dict[str, Any], changed: date | None = None
    ) -> None:
        self.records[dataset][subject] = StoredRecord(values, self._stamp(dataset, changed))

    # --- people and households -----------------------------------------------------------

    def household(
        self,
        household_id: str,
        *,
        region: str,
        address: str,
        members: Iterable[tuple[str, str, str]],
        ethnicity: str = "汉族",
        changed: date | None = None,
    ) -> None:
        """Register a household (户): ``members`` are (ID number, name, relation to head)."""
        if household_id in self.households:
            raise ValueError("duplicate household number in the sandbox population")
        rows = list(members)
        self.households[household_id] = [(pid, relation) for pid, _, relation in rows]
        listing = [{"name": name, "id_number": pid, "relation": rel} for pid, name, rel in rows]
        for pid, name, relation in rows:
            self.taken.add(pid)
            self.names[pid] = name
            born = _birth_of(pid)
            self.put(
                "gongan.huji",
                pid,
                {
                    "name": name,
                    "gender": "男" if int(pid[16]) % 2 else "女",
                    "birth_date": _iso(born),
                    "ethnicity": ethnicity,
                    "registered_region": region,
                    "registered_address": address,
                    "household_id": household_id,
                    "relation_to_head": relation,
                    "household_members": copy.deepcopy(listing),
                },
                changed or max(born, self.today - timedelta(days=self.rng.randrange(30, 1500))),
            )

    def marry(self, first: str, second: str, *, on: date, office: str) -> None:
        for me, spouse in ((first, second), (second, first)):
            self.put(
                "minzheng.hunyin",
                me,
                {
                    "marital_status": "已婚",
                    "spouse_name": self.names[spouse],
                    "spouse_id_number": spouse,
                    "registered_on": _iso(on),
                    "registration_office": office,
                },
            )

    def single(self, pid: str) -> None:
        self.put("minzheng.hunyin", pid, {"marital_status": "未婚"})

    def birth(
        self,
        *,
        mother: str,
        father: str,
        child: str,
        gender: str,
        born: date,
        hospital: str,
        certificate: str,
    ) -> None:
        """A birth registered by the hospital, found by either parent's ID number."""
        values = {
            "child_name": child,
            "child_gender": gender,
            "birth_date": _iso(born),
            "birth_certificate_no": certificate,
            "hospital": hospital,
            "mother_name": self.names[mother],
            "mother_id_number": mother,
            "father_name": self.names[father],
            "father_id_number": father,
        }
        for parent in (mother, father):
            self.put("weijian.chusheng", parent, dict(values), born + timedelta(days=1))

    # --- insurance, funds, tax -----------------------------------------------------------

    def employ(
        self,
        pid: str,
        company: Company,
        *,
        months: int,
        base: float,
        insured_since: date,
        gjj_months: int | None = None,
        gjj_balance: float = 0.0,
    ) -> None:
        """An employee: social insurance and employee medical insurance paid by the employer,
        housing fund if ``gjj_months``, individual income tax withheld monthly."""
        self.put(
            "renshe.shebao",
            pid,
            {
                "insured": True,
                "insurance_type": list(_FULL_INSURANCE),
                "insured_months": months,
                "pension_status": "未领取",
                "employer_name": company.name,
                "employer_uscc": company.uscc,
                "monthly_base": base,
            },
        )
        self.medical(pid, kind=_EMPLOYEE_MEDICAL, since=insured_since)
        if gjj_months is not None:
            self.gjj(
                pid,
                status="正常",
                balance=gjj_balance,
                months=gjj_months,
                base=base,
                employer=company.name,
            )
        self.tax(pid)

    def gjj(
        self, pid: str, *, status: str, balance: float, months: int, base: float, employer: str
    ) -> None:
        # 5 % from the employee and 5 % from the employer, Dongguan's usual minimum rates.
        deposit = round(base * 0.10, 2) if status == "正常" else 0.0
        self.put(
            "gjj.jiaocun",
            pid,
            {
                "account_status": status,
                "balance": balance,
                "months_deposited": months,
                "monthly_deposit": deposit,
                "employer_name": employer,
            },
        )

    def medical(self, pid: str, *, kind: str, since: date, insured: bool = True) -> None:
        self.put(
            "yibao.canbao", pid, {"insured": insured, "type": kind, "insured_since": _iso(since)}
        )

    def tax(self, pid: str, *, arrears: bool = False, filing: bool = True) -> None:
        values: dict[str, Any] = {"tax_arrears": arrears, "taxpayer_type": "自然人"}
        if filing:
            values["last_filing_period"] = (self.today.replace(day=1) - timedelta(days=1)).strftime(
                "%Y-%m"
            )
        self.put("shuiwu.nashui", pid, values)

    def company_tax(
        self,
        company: Company,
        *,
        arrears: bool,
        credit: str,
        taxpayer: str,
        last: date | None = None,
    ) -> None:
        period = last or (self.today.replace(day=1) - timedelta(days=1))
        self.put(
            "shuiwu.nashui",
            company.uscc,
            {
                "tax_arrears": arrears,
                "credit_level": credit,
                "taxpayer_type": taxpayer,
                "last_filing_period": period.strftime("%Y-%m"),
            },
        )

    def licence(
        self,
        company: Company,
        *,
        capital: float | None,
        established: date,
        address: str,
        scope: str,
    ) -> None:
        values: dict[str, Any] = {
            "name": company.name,
            "uscc": company.uscc,
            "status": company.status,
            "entity_type": company.entity_type,
            "legal_representative": company.representative,
            "legal_representative_id_number": company.representative_id,
            "established_on": _iso(established),
            "address": address,
            "business_scope": scope,
        }
        if capital is not None:  # 个体工商户 have no registered capital
            values["registered_capital"] = capital
        self.put("shichang.zhizhao", company.uscc, values, established)

    def disability(self, pid: str, *, level: str, category: str, valid_until: date) -> None:
        self.put(
            "minzheng.canji",
            pid,
            {
                "has_card": valid_until >= self.today,
                "disability_level": level,
                "disability_category": category,
                "card_no": pid
                + _DISABILITY_CATEGORY_CODES[category]
                + str(_DISABILITY_LEVELS.index(level) + 1),
                "card_valid_until": _iso(valid_until),
            },
        )

    def own(
        self, owners: Sequence[str], *, region: str, address: str, area: float, registered: date
    ) -> None:
        """A property; co-owners (共同共有) each see the same certificate."""
        template = next(v for k, v in _PROPERTY_PREFIX.items() if region.startswith(k))
        self.property_no += self.rng.randrange(7, 400)
        entry = {
            "certificate_no": template.format(year=registered.year, no=self.property_no),
            "region_code": region,
            "address": address,
            "area_m2": area,
            "registered_on": _iso(registered),
        }
        for owner in owners:
            self.properties.setdefault(owner, []).append(dict(entry))

    # --- the whole population ------------------------------------------------------------

    def build(self) -> SandboxPopulation:
        self._named()
        self._background()
        # Every person and organisation known to the city gets a property record: "no property"
        # is an answer (无房证明), not an absence.
        subjects = list(self.records["gongan.huji"]) + [c.uscc for c in COMPANIES]
        for subject in subjects:
            owned = self.properties.get(subject, [])
            in_city = [p for p in owned if p["region_code"].startswith("4419")]
            latest = max((date.fromisoformat(p["registered_on"]) for p in owned), default=None)
            self.put(
                "budongchan.dengji",
                subject,
                {
                    "owns_property_in_city": bool(in_city),
                    "property_count": len(in_city),
                    "properties": owned,
                },
                latest or self.today - timedelta(days=self.rng.randrange(30, 900)),
            )
        return SandboxPopulation(today=self.today, records=self.records)

    def _named(self) -> None:
        today = self.today
        c = _COMPANY
        dg = "东莞市民政局婚姻登记处"

        # 陈炳坤's household in 莞城: three generations.
        self.household(
            "441900131",
            region=_DONGGUAN,
            address="广东省东莞市莞城街道西正路112号",
            members=[
                (ID_CHEN_BINGKUN, "陈炳坤", "户主"),
                (ID_HE_XIUYING, "何秀英", "妻"),
                (ID_CHEN_JIAMING, "陈家明", "子"),
                (ID_LIN_SHUZHEN, "林淑贞", "儿媳"),
                (ID_CHEN_SIQI, "陈思琪", "孙女"),
            ],
        )
        self.marry(ID_CHEN_BINGKUN, ID_HE_XIUYING, on=date(1974, 5, 1), office="东莞县民政局")
        self.marry(ID_CHEN_JIAMING, ID_LIN_SHUZHEN, on=date(2001, 10, 8), office=dg)
        self.put(
            "renshe.shebao",
            ID_CHEN_BINGKUN,
            {
                "insured": False,
                "insurance_type": ["企业职工基本养老保险"],
                "insured_months": 372,
                "pension_status": "已领取",
                "employer_name": "东莞市莞城建筑工程公司",
            },
        )
        self.gjj(
            ID_CHEN_BINGKUN,
            status="封存",
            balance=46813.52,
            months=180,
            base=0,
            employer="东莞市莞城建筑工程公司",
        )
        self.medical(ID_CHEN_BINGKUN, kind=_EMPLOYEE_MEDICAL, since=date(1999, 7, 1))
        self.tax(ID_CHEN_BINGKUN, filing=False)
        self.own(
            [ID_CHEN_BINGKUN],
            region=_DONGGUAN,
            address="广东省东莞市莞城街道西正路112号",
            area=126.4,
            registered=date(1996, 4, 12),
        )
        self.put(
            "renshe.shebao",
            ID_HE_XIUYING,
            {
                "insured": False,
                "insurance_type": ["城乡居民养老保险"],
                "insured_months": 180,
                "pension_status": "已领取",
            },
        )
        self.medical(ID_HE_XIUYING, kind=_RESIDENT_MEDICAL, since=date(2008, 1, 1))
        self.employ(
            ID_CHEN_JIAMING,
            c["hongfu"],
            months=276,
            base=9800.0,
            insured_since=date(2003, 5, 1),
            gjj_months=140,
            gjj_balance=88215.40,
        )
        self.employ(
            ID_LIN_SHUZHEN, c["yufeng"], months=230, base=6200.0, insured_since=date(2006, 3, 1)
        )
        self.medical(ID_CHEN_SIQI, kind=_RESIDENT_MEDICAL, since=date(2014, 7, 1))

        # 黄伟明, villager of 新基村, 麻涌.
        self.household(
            "441900268",
            region=_DONGGUAN,
            address="广东省东莞市麻涌镇新基村新基大街28号",
            members=[(ID_HUANG_WEIMING, "黄伟明", "户主"), (ID_MAI_SHAOFEN, "麦少芬", "妻")],
        )
        self.marry(ID_HUANG_WEIMING, ID_MAI_SHAOFEN, on=date(1987, 12, 20), office=dg)
        for pid, months, status in (
            (ID_HUANG_WEIMING, 186, "未领取"),
            (ID_MAI_SHAOFEN, 204, "已领取"),
        ):
            self.put(
                "renshe.shebao",
                pid,
                {
                    "insured": False,
                    "insurance_type": ["城乡居民养老保险"],
                    "insured_months": months,
                    "pension_status": status,
                },
            )
            self.medical(pid, kind=_RESIDENT_MEDICAL, since=date(2008, 1, 1))
        self.tax(ID_HUANG_WEIMING, filing=False)
        self.own(
            [ID_HUANG_WEIMING],
            region=_DONGGUAN,
            address="广东省东莞市麻涌镇新基村新基大街28号",
            area=168.0,
            registered=date(2012, 8, 30),
        )

        # 罗文华's family, registered in 长沙, living in 长安镇; his grandmother lives with them.
        self.household(
            "430102547",
            region="430102",
            address="湖南省长沙市芙蓉区八一路217号",
            members=[
                (ID_LUO_WENHUA, "罗文华", "户主"),
                (ID_TANG_XIAOYAN, "唐小燕", "妻"),
                (ID_LUO_ZIHANG, "罗子航", "子"),
            ],
        )
        self.household(
            "430102318",
            region="430102",
            address="湖南省长沙市芙蓉区韶山北路45号",
            members=[(ID_YI_QIUJU, "易秋菊", "户主")],
        )
        self.marry(
            ID_LUO_WENHUA,
            ID_TANG_XIAOYAN,
            on=date(2019, 10, 2),
            office="长沙市芙蓉区民政局婚姻登记处",
        )
        self.employ(
            ID_LUO_WENHUA,
            c["huayue"],
            months=64,
            base=4800.0,
            insured_since=date(2021, 7, 1),
            gjj_months=26,
            gjj_balance=12430.60,
        )
        self.employ(
            ID_TANG_XIAOYAN, c["yufeng"], months=52, base=4500.0, insured_since=date(2021, 9, 1)
        )
        self.own(
            [ID_LUO_WENHUA],
            region="430102",
            address="湖南省长沙市芙蓉区五一大道988号2栋1203房",
            area=89.0,
            registered=date(2020, 11, 5),
        )
        self.own(
            [ID_YI_QIUJU],
            region="430102",
            address="湖南省长沙市芙蓉区韶山北路45号",
            area=72.5,
            registered=date(2003, 6, 18),
        )
        self.birth(
            mother=ID_TANG_XIAOYAN,
            father=ID_LUO_WENHUA,
            child="罗子航",
            gender="男",
            born=_birth_of(ID_LUO_ZIHANG),
            hospital="东莞市长安医院",
            certificate="V440631872",
        )

        # 刘建国 (hukou moved to 东莞 in 2019) and 张丽娟, with a daughter born ~2 months ago.
        self.household(
            "441900742",
            region=_DONGGUAN,
            address="广东省东莞市南城街道鸿福路88号鸿景花园3栋1502房",
            members=[(ID_LIU_JIANGUO, "刘建国", "户主"), (ID_ZHANG_LIJUAN, "张丽娟", "妻")],
            changed=date(2022, 5, 20),
        )
        self.marry(ID_LIU_JIANGUO, ID_ZHANG_LIJUAN, on=date(2022, 5, 20), office=dg)
        self.employ(
            ID_LIU_JIANGUO,
            c["songhu"],
            months=96,
            base=16800.0,
            insured_since=date(2018, 7, 1),
            gjj_months=96,
            gjj_balance=135620.00,
        )
        self.employ(
            ID_ZHANG_LIJUAN,
            c["hongfu"],
            months=84,
            base=6800.0,
            insured_since=date(2019, 8, 1),
            gjj_months=84,
            gjj_balance=41208.35,
        )
        self.own(
            [ID_LIU_JIANGUO, ID_ZHANG_LIJUAN],
            region=_DONGGUAN,
            address="广东省东莞市南城街道鸿福路88号鸿景花园3栋1502房",
            area=89.5,
            registered=date(2022, 9, 16),
        )
        self.birth(
            mother=ID_ZHANG_LIJUAN,
            father=ID_LIU_JIANGUO,
            child="刘可欣",
            gender="女",
            born=today - timedelta(days=61),
            hospital="东莞市妇幼保健院",
            certificate="W440215386",
        )

        # 王芳 and 周强, registered in 成都, renting in 虎门; a son born ~7 weeks ago.
        self.household(
            "510104633",
            region="510104",
            address="四川省成都市锦江区书院街72号",
            members=[(ID_ZHOU_QIANG, "周强", "户主"), (ID_WANG_FANG, "王芳", "妻")],
        )
        self.marry(
            ID_ZHOU_QIANG, ID_WANG_FANG, on=date(2023, 2, 14), office="成都市锦江区民政局婚姻登记处"
        )
        self.employ(
            ID_ZHOU_QIANG,
            c["jinxiu"],
            months=58,
            base=5200.0,
            insured_since=date(2021, 3, 1),
            gjj_months=20,
            gjj_balance=9860.00,
        )
        self.put(
            "renshe.shebao",
            ID_WANG_FANG,
            {
                "insured": False,
                "insurance_type": list(_FULL_INSURANCE),
                "insured_months": 30,
                "pension_status": "未领取",
                "employer_name": c["jinxiu"].name,
                "employer_uscc": c["jinxiu"].uscc,
            },
        )
        self.medical(ID_WANG_FANG, kind=_RESIDENT_MEDICAL, since=date(2024, 1, 1))
        self.tax(ID_WANG_FANG, filing=False)
        self.birth(
            mother=ID_WANG_FANG,
            father=ID_ZHOU_QIANG,
            child="周梓涵",
            gender="男",
            born=today - timedelta(days=47),
            hospital="东莞市虎门医院",
            certificate="W440228714",
        )

        # 赵志刚, out of work since his employer's licence was revoked; lives with his mother.
        self.household(
            "441900415",
            region=_DONGGUAN,
            address="广东省东莞市常平镇环城路76号",
            members=[(ID_ZHAO_ZHIGANG, "赵志刚", "户主"), (ID_WANG_GUILAN, "王桂兰", "母亲")],
        )
        self.single(ID_ZHAO_ZHIGANG)
        self.put(
            "renshe.shebao",
            ID_ZHAO_ZHIGANG,
            {
                "insured": False,
                "insurance_type": list(_FULL_INSURANCE),
                "insured_months": 132,
                "pension_status": "未领取",
                "employer_name": c["hengfa"].name,
                "employer_uscc": c["hengfa"].uscc,
                "monthly_base": 5600.0,
            },
        )
        self.gjj(
            ID_ZHAO_ZHIGANG,
            status="封存",
            balance=23650.00,
            months=86,
            base=0,
            employer=c["hengfa"].name,
        )
        self.medical(ID_ZHAO_ZHIGANG, kind=_EMPLOYEE_MEDICAL, since=date(2015, 4, 1), insured=False)
        self.tax(ID_ZHAO_ZHIGANG)
        self.put(
            "renshe.shebao",
            ID_WANG_GUILAN,
            {
                "insured": False,
                "insurance_type": ["城乡居民养老保险"],
                "insured_months": 150,
                "pension_status": "已领取",
            },
        )
        self.medical(ID_WANG_GUILAN, kind=_RESIDENT_MEDICAL, since=date(2008, 1, 1))

        # 梁永康, 一级肢体残疾, in 东城.
        self.household(
            "441900386",
            region=_DONGGUAN,
            address="广东省东莞市东城街道东纵大道236号翠林苑2栋801房",
            members=[
                (ID_LIANG_YONGKANG, "梁永康", "户主"),
                (ID_MO_LIHUA, "莫丽华", "妻"),
                (ID_LIANG_JIAHAO, "梁嘉豪", "子"),
            ],
        )
        self.marry(ID_LIANG_YONGKANG, ID_MO_LIHUA, on=date(1998, 1, 18), office=dg)
        self.put(
            "renshe.shebao",
            ID_LIANG_YONGKANG,
            {
                "insured": True,
                "insurance_type": ["城乡居民养老保险"],
                "insured_months": 120,
                "pension_status": "未领取",
            },
        )
        self.medical(ID_LIANG_YONGKANG, kind=_RESIDENT_MEDICAL, since=date(2009, 1, 1))
        self.disability(
            ID_LIANG_YONGKANG,
            level="一级",
            category="肢体残疾",
            valid_until=today + timedelta(days=40),
        )
        self.employ(
            ID_MO_LIHUA,
            c["hongfu"],
            months=240,
            base=5800.0,
            insured_since=date(2006, 1, 1),
            gjj_months=60,
            gjj_balance=31002.18,
        )
        self.employ(
            ID_LIANG_JIAHAO,
            c["songhu"],
            months=30,
            base=8200.0,
            insured_since=date(2024, 7, 1),
            gjj_months=30,
            gjj_balance=18630.00,
        )
        self.single(ID_LIANG_JIAHAO)
        self.own(
            [ID_LIANG_YONGKANG, ID_MO_LIHUA],
            region=_DONGGUAN,
            address="广东省东莞市东城街道东纵大道236号翠林苑2栋801房",
            area=102.3,
            registered=date(2005, 3, 28),
        )

        # 邓美玲, registered in 南宁 in her father's household, renting in 寮步.
        self.household(
            "450103209",
            region="450103",
            address="广西壮族自治区南宁市青秀区东葛路118号",
            members=[(ID_DENG_GUOQIANG, "邓国强", "户主"), (ID_DENG_MEILING, "邓美玲", "女")],
            ethnicity="壮族",
        )
        self.single(ID_DENG_MEILING)
        # Insured in 东莞 as a flexible worker since she came: 居住证签注's stable_condition
        # reads this record, and without one the engine refers her (no record, no decision).
        self.put(
            "renshe.shebao",
            ID_DENG_MEILING,
            {
                "insured": True,
                "insurance_type": ["企业职工基本养老保险"],
                "insured_months": 38,
                "pension_status": "未领取",
                "monthly_base": 4200.0,
            },
        )
        self.medical(ID_DENG_MEILING, kind=_RESIDENT_MEDICAL, since=date(2015, 1, 1), insured=False)
        self.disability(
            ID_DENG_MEILING, level="三级", category="视力残疾", valid_until=date(2030, 6, 30)
        )
        self.tax(ID_DENG_MEILING)

        # 周国华, business owner in 长安.
        self.household(
            "441900503",
            region=_DONGGUAN,
            address="广东省东莞市长安镇锦厦路19号金域华府1栋2601房",
            members=[
                (ID_ZHOU_GUOHUA, "周国华", "户主"),
                (ID_YUAN_SHUYI, "袁淑仪", "妻"),
                (ID_ZHOU_HAORAN, "周浩然", "子"),
            ],
        )
        self.marry(ID_ZHOU_GUOHUA, ID_YUAN_SHUYI, on=date(2003, 9, 9), office=dg)
        self.single(ID_ZHOU_HAORAN)
        self.employ(
            ID_ZHOU_GUOHUA,
            c["huayue"],
            months=178,
            base=25000.0,
            insured_since=date(2011, 4, 1),
            gjj_months=178,
            gjj_balance=302418.90,
        )
        self.employ(
            ID_YUAN_SHUYI, c["huayue"], months=170, base=12000.0, insured_since=date(2011, 4, 1)
        )
        self.medical(ID_ZHOU_HAORAN, kind=_RESIDENT_MEDICAL, since=date(2005, 6, 1))
        self.own(
            [ID_ZHOU_GUOHUA, ID_YUAN_SHUYI],
            region=_DONGGUAN,
            address="广东省东莞市长安镇锦厦路19号金域华府1栋2601房",
            area=143.6,
            registered=date(2013, 12, 2),
        )
        self.own(
            [ID_ZHOU_GUOHUA],
            region=_DONGGUAN,
            address="广东省东莞市南城街道宏图路120号星河苑6栋1801房",
            area=98.2,
            registered=date(2019, 7, 22),
        )

        # 钟伟强, with tax arrears and a frozen housing fund.
        self.household(
            "441900627",
            region=_DONGGUAN,
            address="广东省东莞市虎门镇虎门大道312号东湖名居9栋702房",
            members=[
                (ID_ZHONG_WEIQIANG, "钟伟强", "户主"),
                (ID_CAI_MEIYU, "蔡美玉", "妻"),
                (ID_ZHONG_XINYI, "钟欣怡", "女"),
            ],
        )
        self.marry(ID_ZHONG_WEIQIANG, ID_CAI_MEIYU, on=date(2007, 11, 18), office=dg)
        self.employ(
            ID_ZHONG_WEIQIANG, c["xinda"], months=140, base=8000.0, insured_since=date(2014, 10, 1)
        )
        self.gjj(
            ID_ZHONG_WEIQIANG,
            status="冻结",
            balance=15880.00,
            months=96,
            base=8000.0,
            employer=c["xinda"].name,
        )
        self.tax(ID_ZHONG_WEIQIANG, arrears=True)
        self.employ(
            ID_CAI_MEIYU, c["xinda"], months=120, base=5000.0, insured_since=date(2014, 10, 1)
        )
        self.medical(ID_ZHONG_XINYI, kind=_RESIDENT_MEDICAL, since=date(2009, 3, 1))
        self.own(
            [ID_ZHONG_WEIQIANG, ID_CAI_MEIYU],
            region=_DONGGUAN,
            address="广东省东莞市虎门镇虎门大道312号东湖名居9栋702房",
            area=118.0,
            registered=date(2010, 5, 6),
        )

        # 吴海燕, shopkeeper in 南城, insured as a flexible worker (灵活就业人员).
        self.household(
            "441900851",
            region=_DONGGUAN,
            address="广东省东莞市南城街道胜和路21号",
            members=[(ID_WU_HAIYAN, "吴海燕", "户主")],
        )
        self.single(ID_WU_HAIYAN)
        self.put(
            "renshe.shebao",
            ID_WU_HAIYAN,
            {
                "insured": True,
                "insurance_type": ["企业职工基本养老保险"],
                "insured_months": 150,
                "pension_status": "未领取",
                "monthly_base": 4600.0,
            },
        )
        self.medical(ID_WU_HAIYAN, kind=_EMPLOYEE_MEDICAL, since=date(2013, 6, 1))
        self.tax(ID_WU_HAIYAN)

        # 李桂芬 of 新基村, with her husband.
        self.household(
            "441900277",
            region=_DONGGUAN,
            address="广东省东莞市麻涌镇新基村新基大街6号",
            members=[(ID_GUO_ZHENNAN, "郭振南", "户主"), (ID_LI_GUIFEN, "李桂芬", "妻")],
        )
        self.marry(ID_GUO_ZHENNAN, ID_LI_GUIFEN, on=date(1990, 2, 8), office=dg)
        for pid in (ID_LI_GUIFEN, ID_GUO_ZHENNAN):
            self.put(
                "renshe.shebao",
                pid,
                {
                    "insured": True,
                    "insurance_type": ["城乡居民养老保险"],
                    "insured_months": 168,
                    "pension_status": "未领取",
                },
            )
            self.medical(pid, kind=_RESIDENT_MEDICAL, since=date(2008, 1, 1))
            self.tax(pid, filing=False)
        self.own(
            [ID_GUO_ZHENNAN, ID_LI_GUIFEN],
            region=_DONGGUAN,
            address="广东省东莞市麻涌镇新基村新基大街6号",
            area=152.0,
            registered=date(2011, 4, 9),
        )

        # The owners of the employers, each a household of one.
        for household_id, pid, name, address, company in (
            (
                "441900912",
                ID_HE_ZHIYUAN,
                "何志远",
                "广东省东莞市松山湖高新技术产业开发区工业北路6号",
                "songhu",
            ),
            ("441900933", ID_YUAN_MEIHUA, "袁美华", "广东省东莞市南城街道元美路9号", "hongfu"),
            ("441900954", ID_CAI_RONGHUI, "蔡荣辉", "广东省东莞市虎门镇连升路33号", "jinxiu"),
            ("441900975", ID_YE_JIANXIN, "叶建新", "广东省东莞市长安镇长安中路3号", "yufeng"),
        ):
            self.household(
                household_id, region=_DONGGUAN, address=address, members=[(pid, name, "户主")]
            )
            self.single(pid)
            self.employ(
                pid,
                c[company],
                months=150,
                base=20000.0,
                insured_since=date(2012, 1, 1),
                gjj_months=120,
                gjj_balance=210000.00,
            )
            self.own(
                [pid], region=_DONGGUAN, address=address, area=132.0, registered=date(2014, 8, 1)
            )

        # Companies: licences, tax, property.
        self._companies()

    def _companies(self) -> None:
        c = _COMPANY
        self.licence(
            c["huayue"],
            capital=500.0,
            established=date(2011, 3, 22),
            address="广东省东莞市长安镇锦厦路19号",
            scope="五金制品、精密模具制造、销售；货物进出口",
        )
        self.licence(
            c["hengfa"],
            capital=300.0,
            established=date(2017, 5, 10),
            address="广东省东莞市常平镇常平大道215号",
            scope="电子元器件研发、生产、销售",
        )
        self.licence(
            c["xinda"],
            capital=200.0,
            established=date(2014, 9, 1),
            address="广东省东莞市虎门镇太沙路88号",
            scope="道路普通货物运输；仓储服务（不含危险化学品）",
        )
        self.licence(
            c["wuji"],
            capital=None,
            established=date(2019, 4, 8),
            address="广东省东莞市南城街道胜和路21号",
            scope="预包装食品销售；日用百货零售；烟草制品零售",
        )
        self.licence(
            c["haiyan"],
            capital=50.0,
            established=date(2016, 11, 11),
            address="广东省东莞市南城街道元美路9号",
            scope="预包装食品批发",
        )
        self.licence(
            c["weiming"],
            capital=None,
            established=date(2008, 6, 2),
            address="广东省东莞市麻涌镇新基村新基大街28号",
            scope="日用百货、预包装食品零售",
        )
        self.licence(
            c["lvye"],
            capital=80.0,
            established=date(2017, 8, 18),
            address="广东省东莞市麻涌镇新基村新基大街2号",
            scope="组织成员种植、销售香蕉；农业技术服务",
        )
        self.licence(
            c["songhu"],
            capital=1000.0,
            established=date(2016, 6, 6),
            address="广东省东莞市松山湖高新技术产业开发区工业北路6号",
            scope="智能装备研发、制造；软件开发",
        )
        self.licence(
            c["hongfu"],
            capital=100.0,
            established=date(2009, 3, 16),
            address="广东省东莞市南城街道元美路9号",
            scope="日用百货、五金交电批发、零售",
        )
        self.licence(
            c["jinxiu"],
            capital=300.0,
            established=date(2005, 1, 10),
            address="广东省东莞市虎门镇连升路33号",
            scope="服装设计、生产、销售",
        )
        self.licence(
            c["yufeng"],
            capital=800.0,
            established=date(2016, 2, 29),
            address="广东省东莞市长安镇长安中路3号",
            scope="电子产品、线路板生产、销售",
        )
        general, small = "一般纳税人", "小规模纳税人"
        self.company_tax(c["huayue"], arrears=False, credit="A", taxpayer=general)
        self.company_tax(
            c["hengfa"], arrears=False, credit="D", taxpayer=general, last=date(2025, 12, 31)
        )
        self.company_tax(c["xinda"], arrears=True, credit="C", taxpayer=general)
        self.company_tax(c["wuji"], arrears=False, credit="B", taxpayer=small)
        self.company_tax(
            c["haiyan"], arrears=False, credit="B", taxpayer=small, last=date(2024, 3, 31)
        )
        self.company_tax(
            c["weiming"], arrears=False, credit="M", taxpayer=small, last=date(2022, 6, 30)
        )
        self.company_tax(c["xinji"], arrears=False, credit="B", taxpayer=small)
        self.company_tax(c["lvye"], arrears=False, credit="M", taxpayer=small)
        for key in ("songhu", "hongfu", "jinxiu", "yufeng"):
            self.company_tax(
                c[key], arrears=False, credit="A" if key == "songhu" else "B", taxpayer=general
            )
        self.own(
            [c["huayue"].uscc],
            region=_DONGGUAN,
            address="广东省东莞市长安镇锦厦路19号厂房A栋",
            area=4200.0,
            registered=date(2012, 6, 5),
        )
        self.own(
            [c["xinda"].uscc],
            region=_DONGGUAN,
            address="广东省东莞市虎门镇太沙路88号仓库",
            area=2600.0,
            registered=date(2016, 9, 19),
        )
        self.own(
            [c["xinji"].uscc],
            region=_DONGGUAN,
            address="广东省东莞市麻涌镇新基村工业区1号",
            area=5800.0,
            registered=date(2020, 11, 26),
        )

    # --- generated residents -------------------------------------------------------------

    def _new_id(self, region: str, born: date, male: bool) -> str:
        while True:
            sequence = self.rng.randrange(0, 1000)
            if (sequence % 2 == 1) != male:
                sequence = (sequence + 1) % 1000
            number = _rid(region, born.strftime("%Y%m%d"), f"{sequence:03d}")
            if number not in self.taken:
                self.taken.add(number)
                return number

    def _name(self, surname: str, male: bool) -> str:
        pool = _GIVEN_MALE if male else _GIVEN_FEMALE
        length = 1 if self.rng.random() < 0.2 else 2
        return surname + "".join(self.rng.choice(pool) for _ in range(length))

    def _born(self, age: int) -> date:
        return _years_before(self.today - timedelta(days=self.rng.randrange(1, 365)), age)

    def _background(self) -> None:
        for index in range(95):
            local = index < 65
            self._background_household(index, local=local)

    def _background_household(self, index: int, *, local: bool) -> None:
        rng = self.rng
        if local:
            region = _DONGGUAN
            town = rng.choice(list(_TOWNS))
            place = f"广东省东莞市{town}{rng.choice(_TOWNS[town])}{rng.randrange(1, 400)}号"
            ethnicity = "汉族"
            surnames = _SURNAMES_LOCAL
        else:
            region = rng.choice(list(_ELSEWHERE))
            province, roads, ethnicities = _ELSEWHERE[region]
            place = f"{province}{rng.choice(roads)}{rng.randrange(1, 400)}号"
            ethnicity = rng.choice(ethnicities)
            surnames = _SURNAMES_ELSEWHERE
        if rng.random() < 0.5:
            building, floor, flat = rng.randrange(1, 20), rng.randrange(2, 33), rng.randrange(1, 5)
            place += f"{rng.choice(_ESTATES)}{building}栋{floor}0{flat}房"
        head_age = rng.randrange(22, 88) if local else rng.randrange(20, 55)
        head_male = rng.random() < 0.8
        surname = rng.choice(surnames)
        head = self._new_id(region, self._born(head_age), head_male)
        members = [(head, self._name(surname, head_male), "户主")]
        spouse: str | None = None
        if head_age >= 24 and rng.random() < 0.8:
            spouse_age = max(23, head_age + rng.randrange(-4, 5))
            spouse = self._new_id(region, self._born(spouse_age), not head_male)
            members.append(
                (
                    spouse,
                    self._name(rng.choice(surnames), not head_male),
                    "妻" if head_male else "夫",
                )
            )
        children: list[str] = []
        if spouse is not None and head_age >= 26:
            for _ in range(rng.choice((0, 1, 1, 2, 2, 3))):
                child_age = rng.randrange(0, min(head_age - 22, 40))
                male = rng.random() < 0.52
                child = self._new_id(region, self._born(child_age), male)
                children.append(child)
                members.append((child, self._name(surname, male), "子" if male else "女"))
        household_id = f"{region}{index + 1:03d}"  # named households use 100 and up
        self.household(
            household_id, region=region, address=place, members=members, ethnicity=ethnicity
        )
        if spouse is not None:
            married = max(_birth_of(head), _birth_of(spouse))
            married = _years_before(married, -rng.randrange(22, 30))
            married = min(married, self.today - timedelta(days=rng.randrange(400, 900)))
            office = (
                "东莞市民政局婚姻登记处" if local else f"{_ELSEWHERE[region][0]}民政局婚姻登记处"
            )
            self.marry(head, spouse, on=married, office=office)
            mother, father = (spouse, head) if head_male else (head, spouse)
            mother_age = _age(_birth_of(mother), self.today)
            if 23 <= mother_age <= 38 and rng.random() < 0.35:
                male = rng.random() < 0.52
                self.birth(
                    mother=mother,
                    father=father,
                    child=self._name(surname, male),
                    gender="男" if male else "女",
                    born=self.today - timedelta(days=rng.randrange(10, 330)),
                    hospital=rng.choice(_HOSPITALS),
                    certificate=f"W44{rng.randrange(10**7):07d}",
                )
        for pid, _, _ in members:
            self._background_person(
                pid, local=local, married=pid in (head, spouse) and spouse is not None
            )
        if local and rng.random() < 0.6:
            owners = [head] if spouse is None else [head, spouse]
            self.own(
                owners,
                region=region,
                address=place,
                area=round(rng.uniform(55, 160), 1),
                registered=self.today - timedelta(days=rng.randrange(400, 9000)),
            )
        elif not local and rng.random() < 0.25:
            self.own(
                [head],
                region=region,
                address=place,
                area=round(rng.uniform(60, 140), 1),
                registered=self.today - timedelta(days=rng.randrange(400, 6000)),
            )

    def _background_person(self, pid: str, *, local: bool, married: bool) -> None:
        rng = self.rng
        born = _birth_of(pid)
        age = _age(born, self.today)
        male = int(pid[16]) % 2 == 1
        adult = age >= 18
        if adult and not married and pid not in self.records["minzheng.hunyin"]:
            self.single(pid)
        retired = age >= (60 if male else 55)
        if not adult:
            if rng.random() < 0.95:
                self.medical(pid, kind=_RESIDENT_MEDICAL, since=max(born, date(2008, 1, 1)))
        elif retired:
            employee_scheme = rng.random() < 0.6
            self.put(
                "renshe.shebao",
                pid,
                {
                    "insured": False,
                    "insurance_type": ["企业职工基本养老保险"]
                    if employee_scheme
                    else ["城乡居民养老保险"],
                    "insured_months": rng.randrange(180, 420),
                    "pension_status": "已领取",
                },
            )
            self.medical(
                pid,
                kind=_EMPLOYEE_MEDICAL if employee_scheme else _RESIDENT_MEDICAL,
                since=date(2001, 1, 1),
            )
            self.tax(pid, filing=False)
        elif rng.random() < 0.85:
            company = _COMPANY[rng.choice(_BACKGROUND_EMPLOYERS)]
            months = rng.randrange(1, max(2, (age - 17) * 12))
            base = float(rng.randrange(45, 200) * 100)
            since = self.today - timedelta(days=30 * months)
            gjj = rng.randrange(1, months + 1) if rng.random() < 0.6 else None
            self.employ(
                pid,
                company,
                months=months,
                base=base,
                insured_since=since,
                gjj_months=gjj,
                gjj_balance=round((gjj or 0) * base * 0.1 * rng.uniform(0.3, 1.0), 2),
            )
        else:
            months = rng.randrange(0, max(1, (age - 17) * 12))
            self.put(
                "renshe.shebao",
                pid,
                {
                    "insured": False,
                    "insurance_type": list(_FULL_INSURANCE) if months else [],
                    "insured_months": months,
                    "pension_status": "未领取",
                },
            )
            self.medical(
                pid, kind=_RESIDENT_MEDICAL, since=date(2012, 1, 1), insured=rng.random() < 0.7
            )
            self.tax(pid, filing=False)
        if rng.random() < 0.02:
            self.disability(
                pid,
                level=rng.choice(_DISABILITY_LEVELS),
                category=rng.choice(_DISABILITY_CATEGORIES),
                valid_until=self.today + timedelta(days=rng.randrange(-60, 3650)),
            )
