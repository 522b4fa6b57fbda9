"""The generator of the sandbox population: the named records of ``data/records.yaml`` written
in order, then a few hundred background residents in households, drawn from a seeded random
generator (the same reference date always gives the same people and the same stamps)."""

from __future__ import annotations

import copy
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, datetime, time, timedelta
from typing import Any, Final

from sandbox.population import (
    COMPANIES,
    COMPANY,
    CST,
    NIGHTLY,
    PEOPLE,
    SUBJECT_KINDS,
    Company,
    SandboxPopulation,
    StoredRecord,
    load_data,
)
from wangban.identifiers import resident_id_check_char


def _rid(region: str, born: str, sequence: str) -> str:
    """A resident ID number; the sequence's last digit is odd for men, even for women."""
    body = region + born + sequence
    return body + resident_id_check_char(body)


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


class Builder:
    def __init__(self, today: date) -> None:
        self.today = today
        self.yesterday = today - timedelta(days=1)
        self.rng = random.Random(_SEED)
        self.records: dict[str, dict[str, StoredRecord]] = {code: {} for code in SUBJECT_KINDS}
        self.names: dict[str, str] = {}
        self.households: dict[str, list[tuple[str, str]]] = {}  # household id → (id, relation)
        self.properties: dict[str, list[dict[str, Any]]] = {}
        self.property_no = 31_000
        self.taken: set[str] = set()

    # --- stamps --------------------------------------------------------------------------

    def _stamp(self, dataset: str, changed: date | None = None) -> datetime:
        if dataset in NIGHTLY or changed is None:
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

    def marry(self, first: str, second: str, *, married_on: date, office: str) -> None:
        for me, spouse in ((first, second), (second, first)):
            self.put(
                "minzheng.hunyin",
                me,
                {
                    "marital_status": "已婚",
                    "spouse_name": self.names[spouse],
                    "spouse_id_number": spouse,
                    "registered_on": _iso(married_on),
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

    # --- the named records (data/records.yaml) -------------------------------------------

    def _named(self) -> None:
        operations: Mapping[str, Callable[..., None]] = {
            "household": self.household,
            "marry": self.marry,
            "single": self.single,
            "birth": self.birth,
            "employ": self.employ,
            "gjj": self.gjj,
            "medical": self.medical,
            "tax": self.tax,
            "company_tax": self.company_tax,
            "licence": self.licence,
            "disability": self.disability,
            "own": self.own,
            "put": self.put,
        }
        for entry in load_data("records.yaml"):
            arguments = dict(entry)
            operation = operations[arguments.pop("op")]
            operation(**{name: self._resolve(name, value) for name, value in arguments.items()})

    def _resolve(self, name: str, value: Any) -> Any:
        """An argument of a record as the builder takes it: people and companies by key
        become their ID numbers, credit codes or :class:`Company`; relative dates are placed
        against the reference date."""
        if isinstance(value, dict) and "days_from_today" in value:
            return self.today + timedelta(days=int(value["days_from_today"]))
        if name in _SUBJECT_ARGUMENTS:
            return _subject(value)
        if name == "owners":
            return [_subject(key) for key in value]
        if name == "company":
            return COMPANY[value]
        if name == "members":
            return [(PEOPLE[key].id_number, PEOPLE[key].name, relation) for key, relation in value]
        return value

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
            self.marry(head, spouse, married_on=married, office=office)
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
            company = COMPANY[rng.choice(_BACKGROUND_EMPLOYERS)]
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


_SUBJECT_ARGUMENTS: Final = frozenset({"pid", "first", "second", "mother", "father", "subject"})
"""Arguments of a record that name a person (or, for ``subject``, a company) by key."""


def _subject(key: str) -> str:
    """The ID number of a person or the credit code of a company, by key."""
    person = PEOPLE.get(key)
    return person.id_number if person is not None else COMPANY[key].uscc
