"""How search ranks, on the real database with item names from the real Sichuan list: name
matches above keyword matches above material matches, exact above partial, 秒批 and online
items neither preferred nor penalised, ties in implementing-code order on every run; typos
corrected only when the exact query finds little, and their hits after every exact one; a hit
on a 子项 names its 主项.

Each test publishes a few items of its own department and searches within it: other modules'
committed catalogues (the demo one) may share the database."""

from __future__ import annotations

import csv
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from catalog_service import search, service
from catalog_service.repository import ItemFilters
from tests.catalog.support import GUANGAN_CSV, item_content

REAL_NAMES = [
    row["name"] for row in csv.DictReader(GUANGAN_CSV.open(encoding="utf-8-sig", newline=""))
]
DEMO_ITEMS = Path(__file__).parents[2] / "catalog_service" / "demo" / "items.json"


def test_the_names_used_here_are_from_the_real_list() -> None:
    for name in [
        "离婚登记预约",
        "中国内地公民婚姻登记",
        "失业保险金申领",
        "社会保障卡申领",
        "住宅专项维修资金分户账更名",
        "户口恢复",
        "住院费用报销",
        "门诊费用报销",
        "公司设立登记",
        "代开发票作废（县级行使）",
        "残疾人证新办",
    ]:
        assert name in REAL_NAMES


class Catalogue:
    """Publishes items into one department of its own and searches it."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.department = f"排序测试-{uuid.uuid4().hex[:8]}"
        self.codes: dict[str, str] = {}

    async def item(self, name: str, *, code: str | None = None, **overrides: Any) -> str:
        code = code or f"RANK-{uuid.uuid4().hex[:12]}"
        values: dict[str, Any] = {
            "keywords": [],
            "themes": [],
            "materials": [{"name": "申请表", "source": "upload"}],
            "conditions": "符合条件的申请人",
            **overrides,
        }
        draft = await service.create_item_draft(
            self.session,
            content=item_content(
                name=name, implementing_code=code, department=self.department, **values
            ),
        )
        await service.publish_version(self.session, version_id=draft.id)
        self.codes[code] = name
        return code

    async def codes_for(self, query: str) -> list[str]:
        page = await service.search_items(
            self.session,
            query=query,
            filters=ItemFilters(department=self.department),
            page_size=100,
        )
        return [hit.implementing_code for hit in page.items]

    async def names_for(self, query: str) -> list[str]:
        return [self.codes[code] for code in await self.codes_for(query)]


@pytest.fixture
def catalogue(db_session: AsyncSession) -> Catalogue:
    return Catalogue(db_session)


# --- where it matches ------------------------------------------------------------------------


async def test_a_name_match_beats_keyword_matches_which_beat_material_matches(
    catalogue: Catalogue,
) -> None:
    in_material = await catalogue.item(
        "供养亲属抚恤金申领", materials=[{"name": "失业保险金领取证明", "source": "upload"}]
    )
    # Many keyword terms start with 失业: ts_rank alone sums them above the one name match.
    in_keywords = await catalogue.item(
        "就业见习补贴申领",
        keywords=["失业保险", "失业保险金", "失业登记", "失业人员", "失业金", "失业补助"],
    )
    in_name = await catalogue.item("失业保险金申领")
    assert await catalogue.codes_for("失业") == [in_name, in_keywords, in_material]
    assert await catalogue.codes_for("shiye") == [in_name, in_keywords, in_material]


async def test_a_theme_or_short_name_match_counts_as_a_keyword_match(catalogue: Catalogue) -> None:
    in_material = await catalogue.item(
        "户口恢复", materials=[{"name": "社会保障卡复印件", "source": "upload"}]
    )
    in_theme = await catalogue.item("住院伙食补助费申领", themes=["社会保障卡"])
    in_short_name = await catalogue.item("遗属待遇申领", short_name="社会保障卡领取")
    found = await catalogue.codes_for("社会保障卡")
    assert found[-1] == in_material
    assert set(found[:2]) == {in_theme, in_short_name}


# --- exact over partial ----------------------------------------------------------------------


async def test_the_name_that_is_the_query_then_starts_with_it_then_contains_it_then_the_rest(
    catalogue: Catalogue,
) -> None:
    scattered = await catalogue.item("中国内地公民婚姻登记（离婚）")
    contains = await catalogue.item("涉外离婚登记")
    starts = await catalogue.item("离婚登记预约")
    equal = await catalogue.item("离婚登记")
    assert await catalogue.codes_for("离婚登记") == [equal, starts, contains, scattered]
    # Spaces typed between the words do not make it less exact.
    assert await catalogue.codes_for("离婚 登记") == [equal, starts, contains, scattered]


async def test_a_name_with_a_synonym_of_the_whole_query_is_an_exact_match(
    catalogue: Catalogue,
) -> None:
    await service.replace_synonyms(catalogue.session, groups=[["社保", "社会保险"]])
    keyword = await catalogue.item("就业见习补贴申领", keywords=["社保", "社会保险"])
    contains = await catalogue.item("多重养老社会保险关系个人账户退费")
    starts = await catalogue.item("社会保险参保证明打印")
    assert await catalogue.codes_for("社保") == [starts, contains, keyword]


async def test_wildcards_typed_are_taken_literally(catalogue: Catalogue) -> None:
    longer = await catalogue.item("住房公积金提取")
    shorter = await catalogue.item("公积金缴存")
    # Unescaped, "_公积金" would be a LIKE pattern that 住房公积金提取 contains.
    assert await catalogue.codes_for("_公积金") == [shorter, longer]
    assert await catalogue.codes_for("%公积金") == [shorter, longer]


# --- nothing about 秒批 or channels -----------------------------------------------------------


@pytest.mark.parametrize("fast_one", ["first", "second"])
async def test_auto_approval_and_online_items_rank_exactly_where_the_same_offline_item_would(
    catalogue: Catalogue, fast_one: str
) -> None:
    fast = {
        "auto_approval": True,
        "channels": ["网上", "掌上"],
        "online_depth": 4,
        "committed_days": 0,
        "keywords": ["秒批", "网上办"],
    }
    slow = {
        "auto_approval": False,
        "rules": [],
        "channels": ["窗口"],
        "online_depth": 1,
        "committed_days": 15,
        "keywords": ["窗口办理", "现场"],
    }
    first = await catalogue.item(
        "社会保障卡申领", code="RANK-A-1", **(fast if fast_one == "first" else slow)
    )
    second = await catalogue.item(
        "社会保障卡申领", code="RANK-A-2", **(slow if fast_one == "first" else fast)
    )
    assert await catalogue.codes_for("社会保障卡") == [first, second]
    assert await catalogue.codes_for("shbzk") == [first, second]


# --- stable order ----------------------------------------------------------------------------


async def test_equal_scores_come_back_in_implementing_code_order_every_time(
    catalogue: Catalogue,
) -> None:
    # Published in an order that is neither the codes' nor random ids' order.
    for code in ["RANK-T-3", "RANK-T-1", "RANK-T-4", "RANK-T-2"]:
        await catalogue.item("户口恢复", code=code)
    expected = ["RANK-T-1", "RANK-T-2", "RANK-T-3", "RANK-T-4"]
    for _ in range(3):
        assert await catalogue.codes_for("户口") == expected
    page_one = await service.search_items(
        catalogue.session,
        query="户口",
        filters=ItemFilters(department=catalogue.department),
        page_size=2,
    )
    page_two = await service.search_items(
        catalogue.session,
        query="户口",
        filters=ItemFilters(department=catalogue.department),
        page=2,
        page_size=2,
    )
    assert [h.implementing_code for h in page_one.items + page_two.items] == expected


# --- typos -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "meant"),
    [
        ("shiyebaoxianjn", "失业保险金申领"),  # one letter missing
        ("shiyebaoxxian", "失业保险金申领"),  # one letter extra
        ("shiyebaoxain", "失业保险金申领"),  # two letters swapped
        ("shehuibaozhangkq", "社会保障卡申领"),  # one letter wrong
        ("社会保障卡申令", "社会保障卡申领"),  # 同音
        ("离婚登计", "离婚登记预约"),  # 同音
        ("分户帐更名", "住宅专项维修资金分户账更名"),  # 异体
        ("残疾人正新办", "残疾人证新办"),  # 同音, 证 also confused with 症
    ],
)
async def test_a_typo_still_finds_the_item(catalogue: Catalogue, typed: str, meant: str) -> None:
    await catalogue.item("失业保险金申领")
    await catalogue.item("社会保障卡申领")
    await catalogue.item("离婚登记预约")
    await catalogue.item("住宅专项维修资金分户账更名")
    await catalogue.item("残疾人证新办")
    assert meant in await catalogue.names_for(typed)


async def test_a_word_no_item_holds_is_left_out_when_the_rest_names_the_item(
    catalogue: Catalogue,
) -> None:
    hospital = await catalogue.item("住院费用报销")
    clinic = await catalogue.item("门诊费用报销")
    # 老人 is in no name: every word but it names 住院费用报销, which comes first.
    assert (await catalogue.codes_for("老人住院费用报销"))[0] == hospital
    # Every word matching still wins over one left out: 门诊费用报销 is found whole.
    assert (await catalogue.codes_for("门诊费用报销"))[0] == clinic
    # A lone character is never what is kept: 开 would match 代开发票 by prefix.
    company = await catalogue.item("公司设立登记")
    invoice = await catalogue.item("代开发票作废（县级行使）")
    found = await catalogue.codes_for("开公司")
    assert found == [company] and invoice not in found


def test_one_word_is_left_out_at_a_time_and_never_leaves_a_lone_character() -> None:
    table = search.SynonymTable([])
    assert search.relaxed_tsquery_for("公司设立", synonyms=table) == "(设立:*) | (公司:*)"
    assert search.relaxed_tsquery_for("开公司", synonyms=table) == "(公司:*)"
    assert search.relaxed_tsquery_for("公司", synonyms=table) is None  # one word: nothing to leave


async def test_fuzzy_hits_rank_after_every_exact_hit(catalogue: Catalogue) -> None:
    # Found by the corrected spelling only (帐户 → 账户), though in its name.
    fuzzy_only = await catalogue.item("定期待遇发放账户维护申请")
    # Found by what was typed, but only in a material: the weakest exact hit still comes first.
    exact = await catalogue.item(
        "遗属待遇申领", materials=[{"name": "银行帐户信息表", "source": "upload"}]
    )
    assert await catalogue.codes_for("帐户") == [exact, fuzzy_only]


async def test_no_correction_when_the_exact_query_finds_enough(catalogue: Catalogue) -> None:
    for n in range(service.FUZZY_BELOW):
        await catalogue.item(f"社会保障卡申领（{n}）")
    misspelt = await catalogue.item("社会保障卡申令")
    # 申令 exactly finds only the misspelt item: it is corrected, and the rest follow it.
    assert (await catalogue.codes_for("申令"))[0] == misspelt
    assert len(await catalogue.codes_for("申令")) == service.FUZZY_BELOW + 1
    # 申领 finds five items exactly: the misspelt one is not added to them.
    assert misspelt not in await catalogue.codes_for("申领")


async def test_nonsense_stays_empty(catalogue: Catalogue) -> None:
    await catalogue.item("失业保险金申领")
    assert await catalogue.codes_for("不存在的事项名称") == []
    assert await catalogue.codes_for("qqqqqqqq") == []


def test_pinyin_vocabulary_corrects_one_edit_and_initials_only_when_unambiguous() -> None:
    vocabulary = search.PinyinVocabulary(["gongjijin", "gjj", "zfgjj", "shebao", "sb", "sbk"])
    assert "gongjijin" in vocabulary.near("gongjijn")
    assert "gongjijin" in vocabulary.near("gongjjin")
    assert vocabulary.near("gongjijin") == []  # nothing to correct
    # A prefix of a term also counts for full pinyin: the user may still be typing.
    assert "gongji" in vocabulary.near("gongki")
    assert vocabulary.near("gjjj") == ["gjj"]  # one letter too many
    assert vocabulary.near("jgj") == ["gjj"]  # two swapped
    assert vocabulary.near("sbz") == ["sb"]  # one letter too many, the only such term
    # sbk and sbq are both one wrong letter from sbx: ambiguous, no correction.
    assert search.PinyinVocabulary(["sbk", "sbq"]).near("sbx") == []
    # An extra letter is corrected before a wrong one: sbkk's only deletion in the vocabulary.
    assert search.PinyinVocabulary(["sbk", "sbkx", "sbak"]).near("sbkk") == ["sbk"]
    assert vocabulary.near("公积金") == []
    assert vocabulary.near("12345") == []


def test_weight_restricted_queries_keep_every_operand_and_operator() -> None:
    query = "(gjj:* | (住房 & 公积金)) & 提取:*"
    assert search.restricted_to(query, "A") == "(gjj:*A | (住房:A & 公积金:A)) & 提取:*A"
    assert search.restricted_to(query, "AB") == "(gjj:*AB | (住房:AB & 公积金:AB)) & 提取:*AB"
    with pytest.raises(ValueError):
        search.restricted_to(query, "A'")


def test_the_right_side_of_every_confusion_pair_is_in_the_real_catalogues() -> None:
    demo = [item["name"] for item in json.loads(DEMO_ITEMS.read_text(encoding="utf-8"))]
    text = "".join(REAL_NAMES + demo)
    for right, wrong in search.CHARACTER_CONFUSIONS:
        assert right in text, (right, wrong)


# --- 主项 and 子项 ---------------------------------------------------------------------------


async def test_a_hit_on_a_sub_item_names_its_main_item_and_the_main_item_lists_it(
    catalogue: Catalogue,
) -> None:
    main = await catalogue.item("户口登记（包括注销、恢复、变更）")
    sub = await catalogue.item("户口恢复", main_item="户口登记（包括注销、恢复、变更）")
    page = await service.search_items(
        catalogue.session,
        query="户口恢复",
        filters=ItemFilters(department=catalogue.department),
    )
    hits = {hit.implementing_code: hit for hit in page.items}
    assert hits[sub].main_item == "户口登记（包括注销、恢复、变更）"
    assert hits[main].main_item is None
    main_version = await service.get_current_by_code(catalogue.session, implementing_code=main)
    assert await service.sub_items(catalogue.session, version=main_version) == [(sub, "户口恢复")]
