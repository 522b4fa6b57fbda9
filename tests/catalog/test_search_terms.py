"""Search terms and tsquery strings of the catalog (pure Python: no database, no HTTP).

Besides checking the strings, these tests evaluate each tsquery against a document's terms with a
small model of PostgreSQL's matching (``term`` is an exact lexeme, ``term:*`` a prefix), so
"finds what the citizen meant" is tested here too; relevance against the real database is
tested elsewhere.
"""

from __future__ import annotations

import re
from collections.abc import Collection

import pytest

from catalog_service.search import (
    MAX_QUERY_TOKENS,
    MAX_TERM_LENGTH,
    SearchDocument,
    SynonymTable,
    document_for,
    terms_of,
    tsquery_for,
    tsvector_sql_parts,
)
from tests.catalog.support import ITEM_NAMES

SYNONYMS = SynonymTable(
    [
        ("身份证", "居民身份证"),
        ("社保", "社会保险"),
        ("不动产登记", "房产证"),
        ("医保", "医疗保险", "基本医疗保险"),
    ]
)

# A term is letters and digits only: nothing PostgreSQL's parser would split on, nothing with a
# meaning in tsquery syntax.
TERM = re.compile(r"^[^\W_]+$")
FORBIDDEN = set("&|!():*\\'\"<>-@./,;_ \t\n\u3000，。（）：！")
TOKEN = re.compile(r"\(|\)|&|\||[^\s()&|]+")


def assert_safe_term(term: str) -> None:
    assert TERM.match(term), term
    assert len(term) <= MAX_TERM_LENGTH, term
    assert not FORBIDDEN & set(term), term


class _Parser:
    """Recursive descent over the only syntax tsquery_for may produce:

    expr := conj ('|' conj)* ; conj := atom ('&' atom)* ; atom := '(' expr ')' | TERM [':*']

    Parsing returns a predicate over a document's set of terms, modelling PostgreSQL's match.
    """

    def __init__(self, text: str) -> None:
        self.tokens = TOKEN.findall(text)
        assert "".join(self.tokens) == text.replace(" ", ""), text
        self.position = 0

    def parse(self) -> _Matcher:
        matcher = self.expression()
        assert self.position == len(self.tokens), self.tokens[self.position :]
        return matcher

    def peek(self) -> str | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def take(self) -> str:
        token = self.tokens[self.position]
        self.position += 1
        return token

    def expression(self) -> _Matcher:
        alternatives = [self.conjunction()]
        while self.peek() == "|":
            self.take()
            alternatives.append(self.conjunction())
        return _Matcher("or", alternatives)

    def conjunction(self) -> _Matcher:
        operands = [self.atom()]
        while self.peek() == "&":
            self.take()
            operands.append(self.atom())
        return _Matcher("and", operands)

    def atom(self) -> _Matcher:
        token = self.take()
        if token == "(":
            inner = self.expression()
            assert self.take() == ")"
            return inner
        prefix = token.endswith(":*")
        term = token.removesuffix(":*")
        assert_safe_term(term)
        return _Matcher("prefix" if prefix else "term", [], term)


class _Matcher:
    def __init__(self, kind: str, children: list[_Matcher], term: str = "") -> None:
        self.kind, self.children, self.term = kind, children, term

    def __call__(self, terms: Collection[str]) -> bool:
        if self.kind == "term":
            return self.term in terms
        if self.kind == "prefix":
            return any(candidate.startswith(self.term) for candidate in terms)
        results = (child(terms) for child in self.children)
        return any(results) if self.kind == "or" else all(results)


def matches(query: str, text: str) -> bool:
    tsquery = tsquery_for(query, synonyms=SYNONYMS)
    assert tsquery is not None
    return _Parser(tsquery).parse()(set(terms_of(text)))


def top_level(tsquery: str, operator: str) -> list[str]:
    """Split a tsquery at ``operator`` outside parentheses."""
    parts, depth, start = [], 0, 0
    for index, char in enumerate(tsquery):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == operator and depth == 0:
            parts.append(tsquery[start:index].strip())
            start = index + 1
    parts.append(tsquery[start:].strip())
    return parts


def query_terms(tsquery: str) -> set[str]:
    return {token.removesuffix(":*") for token in TOKEN.findall(tsquery)} - set("()&|")


# --- terms_of -----------------------------------------------------------------------------------


def test_terms_of_item_name_has_words_pinyin_and_initials() -> None:
    terms = terms_of("住房公积金提取（租房）")
    for expected in ["住房", "公积金", "提取", "租房", "gongjijin", "gjj", "zufang", "zfgjjtq"]:
        assert expected in terms
    # Whole-run pinyin, so a prefix of the name's initials or pinyin finds it.
    assert "zhufanggongjijintiqu" in terms
    assert any(term.startswith("zfgjj") for term in terms)


def test_terms_of_joins_all_chinese_runs_too() -> None:
    assert "zfgjjtqzf" in terms_of("住房公积金提取（租房）")


def test_terms_of_drops_punctuation_and_whitespace() -> None:
    terms = terms_of("住房公积金 提取（租房）：“一件事”！")
    assert terms
    for term in terms:
        assert_safe_term(term)
    assert terms_of("，。！？（）  \t\n") == []
    assert terms_of("") == []


def test_terms_of_normalises_full_width_and_case() -> None:
    terms = terms_of("ＡＢＣ类人才认定（Ｔ１）")
    assert "abc" in terms
    assert "t1" in terms
    assert not any(char in "".join(terms) for char in "ＡＢＣＴ１ABC")
    assert terms_of("２０２４年度") == terms_of("2024年度")


def test_terms_of_is_deduplicated_and_stable() -> None:
    terms = terms_of("公积金公积金，公积金")
    assert len(terms) == len(set(terms))
    assert terms == terms_of("公积金公积金，公积金")
    assert terms.index("公积金") < terms.index("gongjijin") < terms.index("gjj")


def test_terms_of_reads_polyphonic_characters_in_context() -> None:
    terms = terms_of("重庆银行")
    assert "chongqing" in terms
    assert "yinhang" in terms
    assert "cqyh" in terms


def test_terms_of_caps_term_length() -> None:
    assert terms_of("a" * 500) == ["a" * MAX_TERM_LENGTH]


# --- documents ----------------------------------------------------------------------------------


def rent_withdrawal() -> SearchDocument:
    return document_for(
        name="住房公积金提取（租房）",
        short_name="租房提取",
        keywords=["公积金", "租房"],
        themes=["住房保障"],
        department="市住房公积金管理中心",
        materials=["居民身份证", "租房合同"],
        conditions="连续足额缴存住房公积金满3个月。",
    )


def test_document_weights_terms_once_at_the_highest_weight() -> None:
    document = rent_withdrawal()
    assert "公积金" in document.name
    assert "gjj" in document.name
    assert "zftq" in document.secondary  # initials of the short name 租房提取
    assert "保障" in document.secondary
    assert "居民身份证" in document.body
    assert "管理中心" in document.body
    name, secondary, body = map(set, (document.name, document.secondary, document.body))
    assert not name & secondary
    assert not (name | secondary) & body
    # Keywords only repeating the name add nothing.
    assert "公积金" not in document.secondary


def test_document_accepts_missing_optional_parts() -> None:
    document = document_for(
        name="离婚登记",
        short_name=None,
        keywords=[],
        themes=[],
        department="民政局",
        materials=[],
        conditions=None,
    )
    assert document.secondary == []
    assert "民政局" in document.body


def test_tsvector_sql_parts_are_space_joined_safe_terms() -> None:
    document = rent_withdrawal()
    parts = tsvector_sql_parts(document)
    assert parts == (
        " ".join(document.name),
        " ".join(document.secondary),
        " ".join(document.body),
    )
    for part, terms in zip(parts, (document.name, document.secondary, document.body), strict=True):
        assert part.split(" ") == terms
        for term in terms:
            assert_safe_term(term)


@pytest.mark.parametrize(
    "bad", ["", "a b", "a:*", "x'y", "公积金&租房", "a" * (MAX_TERM_LENGTH + 1)]
)
def test_search_document_rejects_unsafe_terms(bad: str) -> None:
    with pytest.raises(ValueError, match="not a safe search term"):
        SearchDocument(name=["ok"], secondary=[bad], body=[])


# --- synonyms -----------------------------------------------------------------------------------


def test_synonyms_expand_both_ways() -> None:
    assert SYNONYMS.expand("身份证") == {"身份证", "居民身份证"}
    assert SYNONYMS.expand("居民身份证") == {"身份证", "居民身份证"}
    assert SYNONYMS.expand("社会保险") == {"社保", "社会保险"}


def test_synonyms_are_transitive_within_and_across_groups() -> None:
    assert SYNONYMS.expand("医疗保险") == {"医保", "医疗保险", "基本医疗保险"}
    chained = SynonymTable([("甲证", "乙证"), ("乙证", "丙证")])
    assert chained.expand("丙证") == {"甲证", "乙证", "丙证"}
    assert chained.expand("甲证") == chained.expand("丙证")


def test_synonyms_normalise_phrases() -> None:
    table = SynonymTable([("ＣＡ证书", "数字 证书")])
    assert table.expand("ca证书") == {"ca证书", "数字证书"}
    assert "数字证书" in table
    assert "数字  证书" in table


def test_synonyms_of_unknown_and_empty_phrases() -> None:
    assert SYNONYMS.expand("结婚登记") == {"结婚登记"}
    assert SYNONYMS.expand("，。") == set()
    assert len(SynonymTable([("独自",), ("同一", "同一")])) == 0


# --- tsquery_for --------------------------------------------------------------------------------


def test_tsquery_for_pinyin_initials_is_a_prefix_query() -> None:
    assert tsquery_for("gjj", synonyms=SYNONYMS) == "gjj:*"
    assert tsquery_for("ＧＪＪ", synonyms=SYNONYMS) == "gjj:*"


def test_tsquery_for_expands_synonyms() -> None:
    tsquery = tsquery_for("身份证", synonyms=SYNONYMS)
    assert tsquery is not None
    alternatives = top_level(tsquery.removeprefix("(").removesuffix(")"), "|")
    assert "身份证:*" in alternatives
    assert "居民身份证" in alternatives
    reverse = tsquery_for("居民身份证", synonyms=SYNONYMS)
    assert reverse is not None
    assert "身份证" in query_terms(reverse)


def test_tsquery_for_rejoins_a_synonym_phrase_jieba_splits() -> None:
    tsquery = tsquery_for("不动产登记", synonyms=SYNONYMS)
    assert tsquery is not None
    assert "房产证" in query_terms(tsquery)
    assert len(top_level(tsquery, "&")) == 1


def test_tsquery_for_ands_the_words_of_a_query() -> None:
    tsquery = tsquery_for("公积金 租房", synonyms=SYNONYMS)
    assert tsquery is not None
    groups = top_level(tsquery, "&")
    assert len(groups) == 2
    assert "公积金" in query_terms(groups[0])
    assert "租房" in query_terms(groups[1])
    assert tsquery_for("公积金租房", synonyms=SYNONYMS) == tsquery


def test_tsquery_for_long_chinese_word_also_matches_through_its_inner_words() -> None:
    tsquery = tsquery_for("居民身份证", synonyms=SYNONYMS)
    assert tsquery is not None
    assert "(居民 & 身份证)" in tsquery


@pytest.mark.parametrize("query", ["", "   ", "，。", "（）！？", "&|!():*\\'"])
def test_tsquery_for_meaningless_query_is_none(query: str) -> None:
    assert tsquery_for(query, synonyms=SYNONYMS) is None


def test_tsquery_for_strips_tsquery_syntax_from_input() -> None:
    tsquery = tsquery_for("gjj & !租房 | (a:*) 'x' \\", synonyms=SYNONYMS)
    assert tsquery is not None
    assert query_terms(tsquery) == {"gjj", "租房", "a", "x"}
    _Parser(tsquery).parse()


def test_tsquery_for_bounds_the_number_of_groups() -> None:
    query = " ".join(f"w{index}" for index in range(50))
    tsquery = tsquery_for(query, synonyms=SYNONYMS)
    assert tsquery is not None
    assert len(top_level(tsquery, "&")) == MAX_QUERY_TOKENS


def test_tsquery_for_is_deterministic() -> None:
    reordered = SynonymTable([("基本医疗保险", "医疗保险", "医保"), ("居民身份证", "身份证")])
    for query in ["医保", "身份证", "基本医疗保险 居民身份证"]:
        assert tsquery_for(query, synonyms=SYNONYMS) == tsquery_for(query, synonyms=reordered)


@pytest.mark.parametrize(
    ("query", "text"),
    [
        ("公积金", "住房公积金提取（租房）"),
        ("gjj", "住房公积金提取（租房）"),
        ("gongjijin", "住房公积金提取（租房）"),
        ("gongji", "住房公积金提取（租房）"),
        ("zfgjj", "住房公积金提取（租房）"),
        ("ZFGJJTQ", "住房公积金提取（租房）"),
        ("公积金 租房", "住房公积金提取（租房）"),
        ("提取公积金", "住房公积金提取（租房）"),
        ("身份证", "居民身份证换领"),
        ("居民身份证", "第2代居民身份证补领"),
        ("居民身份证", "身份证丢失补办"),
        ("社保", "城乡居民社会保险参保登记"),
        ("社会保险", "社保关系转移"),
        ("医保", "职工基本医疗保险参保登记"),
        ("房产证", "不动产登记资料查询"),
        ("居民身", "居民身份证换领"),
        ("gtgsh", "个体工商户设立登记"),
    ],
)
def test_query_finds_item(query: str, text: str) -> None:
    assert matches(query, text)


@pytest.mark.parametrize(
    ("query", "text"),
    [
        ("公积金 换领", "住房公积金提取（租房）"),
        ("gjjx", "住房公积金提取（租房）"),
        ("身份证", "住房公积金提取（租房）"),
        ("社保", "居民身份证换领"),
        ("结婚", "离婚登记"),
    ],
)
def test_query_does_not_find_unrelated_item(query: str, text: str) -> None:
    assert not matches(query, text)


@pytest.mark.parametrize("name", ITEM_NAMES)
def test_every_term_and_tsquery_is_safe(name: str) -> None:
    for term in terms_of(name):
        assert_safe_term(term)
    for query in [name, name[:3], name[-4:], " ".join(terms_of(name)[:5])]:
        tsquery = tsquery_for(query, synonyms=SYNONYMS)
        if tsquery is None:
            continue
        assert not set("!\\'\"<>-") & set(tsquery), tsquery
        _Parser(tsquery).parse()
    # A citizen typing the whole name finds the item.
    assert matches(name, name)
