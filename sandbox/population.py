"""The sandbox population of 东莞市: its people, companies and personas (read from ``data/``),
and the records of every sandbox dataset built from them.

The population has two parts:

* **Named demo personas** (:data:`PERSONAS`) and **demo companies** (:data:`COMPANIES`), each
  documented with the 秒批 items (``catalog_service/demo/items.json``) they pass or fail and
  why. Their ID numbers and credit codes are fixed, so ``docs/demo.md`` stays right; their
  birth dates are fixed too, chosen so that every documented outcome holds until at least
  2031 (the tests evaluate the real rules on the real date and say when one stops holding).
  Events that must be recent — a baby born about two months ago, a disability card about to
  expire — are placed relative to the population's reference date.
* **Background residents**: a few hundred generated people in households (seeded, so the same
  reference date always gives the same people), so lists and searches look lived in
  (:mod:`sandbox.generator`).

Everything is invented: the numbers have valid check characters and consistent birth dates
but belong to nobody. Street names are real roads of 东莞; house numbers, estates, companies
and people are not.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from importlib import resources
from typing import Any, Final, Literal

import yaml

from sandbox.items import ITEMS

SubjectKind = Literal["person", "company"]
"""Whom a record is about (as the provider protocol says; written out here so the population,
which the gateway's local identity register reads too, loads no service)."""

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

SUBJECT_KINDS: Final[Mapping[str, frozenset[SubjectKind]]] = {
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
"""Every dataset the sandbox serves, and whom it holds records of."""

NIGHTLY: Final = frozenset(
    {
        "minzheng.hunyin",
        "renshe.shebao",
        "gjj.jiaocun",
        "shuiwu.nashui",
        "yibao.canbao",
        "minzheng.canji",
    }
)
"""Datasets synchronised nightly (T+1 in datasets.json); the others are queried live, and a
record's stamp is when it last changed."""


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
class Person:
    """Someone the named records point at: a persona, a relative, a representative."""

    key: str
    name: str
    id_number: str = field(repr=False)  # never in a repr, an assertion message or a log


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


# --- the data files ------------------------------------------------------------------------


def load_data(name: str) -> Any:
    """A YAML file of ``sandbox/data`` (installed with the package)."""
    text = resources.files("sandbox").joinpath("data", name).read_text(encoding="utf-8")
    return yaml.safe_load(text)


def _people() -> dict[str, Person]:
    return {
        key: Person(key=key, name=entry["name"], id_number=entry["id_number"])
        for key, entry in load_data("people.yaml").items()
    }


PEOPLE: Final[Mapping[str, Person]] = _people()
"""Everyone the named records point at, by key (``data/people.yaml``)."""


def _companies() -> tuple[Company, ...]:
    companies = []
    for entry in load_data("companies.yaml"):
        representative = PEOPLE[entry["representative"]]
        companies.append(
            Company(
                key=entry["key"],
                name=entry["name"],
                uscc=entry["uscc"],
                entity_type=entry["entity_type"],
                status=entry["status"],
                representative=representative.name,
                representative_id=representative.id_number,
                role=entry["role"],
            )
        )
    return tuple(companies)


COMPANIES: Final[tuple[Company, ...]] = _companies()
COMPANY: Final[Mapping[str, Company]] = {company.key: company for company in COMPANIES}
"""The demo companies by key (``data/companies.yaml``)."""


def _form_value(value: Any) -> Any:
    if isinstance(value, dict) and "days_from_today" in value:
        return DaysFromToday(int(value["days_from_today"]), value.get("style", "date"))
    return value


def _claim(entry: Mapping[str, Any], *, failing: bool) -> ItemClaim:
    company = entry.get("company")
    outcome: Outcome = entry.get("outcome", "reject") if failing else "pass"
    return ItemClaim(
        item_code=ITEMS[entry["item"]],
        outcome=outcome,
        why=entry["why"],
        rule=entry.get("rule"),
        as_company=None if company is None else COMPANY[company].uscc,
    )


def _personas() -> tuple[Persona, ...]:
    personas = []
    for entry in load_data("personas.yaml")["personas"]:
        person = PEOPLE[entry["key"]]
        personas.append(
            Persona(
                key=person.key,
                name=person.name,
                id_number=person.id_number,
                role=entry["role"],
                passes=tuple(_claim(c, failing=False) for c in entry["passes"]),
                fails=tuple(_claim(c, failing=True) for c in entry["fails"]),
                forms={
                    ITEMS[item]: {name: _form_value(value) for name, value in form.items()}
                    for item, form in entry["forms"].items()
                },
                companies=tuple(COMPANY[key].uscc for key in entry.get("companies", ())),
            )
        )
    return tuple(personas)


PERSONAS: Final[tuple[Persona, ...]] = _personas()
"""The demo personas (``data/personas.yaml``), as ``docs/demo.md`` documents them."""


def persona_for(item_code: str, *, passes: bool = True) -> Persona:
    """The persona whose own records pass (or, ``passes=False``, fail) the item's rules when
    they apply for themselves, not for a company: whom the tests and the bench apply as, so
    they all meet the same person (the first one in the data file)."""
    for persona in PERSONAS:
        claims = persona.passes if passes else persona.fails
        if any(c.item_code == item_code and c.as_company is None for c in claims):
            return persona
    raise LookupError(f"no persona {'passes' if passes else 'fails'} {item_code}")


# Fixed identities the code and the tests name directly.
ID_YUAN_SHUYI: Final = PEOPLE["yuan_shuyi"].id_number
ID_CAI_MEIYU: Final = PEOPLE["cai_meiyu"].id_number
USCC_HUAYUE: Final = COMPANY["huayue"].uscc
USCC_HENGFA: Final = COMPANY["hengfa"].uscc
USCC_XINDA: Final = COMPANY["xinda"].uscc


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
        # Imported here: the generator builds from this module's people and companies.
        from sandbox.generator import Builder

        return Builder(today).build()

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
