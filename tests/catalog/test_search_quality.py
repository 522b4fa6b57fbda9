"""Search quality over the real catalogue, measured as a citizen would feel it.

tests/catalog/search_quality.yaml holds queries written the way citizens type them (开饭店, 社保卡
丢了, gjj, 户口薄补办), each with the items of which one must be among the first five results.
They run through ``service.search_items`` — what the gateway's ``/items`` search calls — over the
real 广安区 list (all 1,135 items published) plus the demo catalogue, with the shipped citizen
lexicon loaded as ``wangban migrate`` loads it. The test prints the hit rate and every miss and
fails below 90 %. ``WANGBAN_WRITE_DOCS=1`` writes the figure and the misses into docs/search.md.
"""

from __future__ import annotations

import csv
import os
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from sqlalchemy.ext.asyncio import AsyncSession

from catalog_service import service
from catalog_service.lexicon import shipped_lexicon
from catalog_service.repository import ItemFilters
from catalog_service.seed import seed_catalogue
from tests.catalog.support import GUANGAN_CSV, publish_guangan

QUALITY_SET = Path(__file__).parent / "search_quality.yaml"
SEARCH_DOC = Path(__file__).parents[2] / "docs" / "search.md"
GENERATED_BEGIN = "<!-- search-quality:begin (tests/catalog/test_search_quality.py) -->"
GENERATED_END = "<!-- search-quality:end -->"
TOP = 5
REQUIRED_HIT_RATE = 0.90
KINDS = ("everyday", "abbreviation", "pinyin", "typo", "exact")


# What a department adds when it completes the names-only list; none of it is searched by
# name (conditions and the rest weigh least), so it does not help any query.
@dataclass(frozen=True)
class Query:
    text: str
    kind: str
    expect: tuple[str, ...]


@dataclass(frozen=True)
class Outcome:
    query: Query
    found: list[str]

    @property
    def hit(self) -> bool:
        return any(expected in self.found for expected in self.query.expect)


def quality_set() -> list[Query]:
    raw = yaml.safe_load(QUALITY_SET.read_text(encoding="utf-8"))["queries"]
    return [Query(text=str(q["q"]), kind=q["kind"], expect=tuple(q["expect"])) for q in raw]


def test_the_quality_set_is_citizen_phrasing_over_real_items() -> None:
    queries = quality_set()
    assert len(queries) >= 150
    assert {q.kind for q in queries} <= set(KINDS)
    assert len({q.text for q in queries}) == len(queries), "a query twice"
    # Honest: mostly the citizens' own words, not copies of item names.
    exactish = [q for q in queries if q.kind == "exact"]
    assert len(exactish) <= 0.2 * len(queries)
    with GUANGAN_CSV.open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.DictReader(handle))
    known = {r["name"] for r in rows} | {r["item_code"] for r in rows}
    from catalog_service.seed import demo_items

    known |= {i.name for i in demo_items()} | {i.implementing_code for i in demo_items()}
    unknown = {e for q in queries for e in q.expect if e not in known}
    assert not unknown, f"expected items that are in neither list: {sorted(unknown)}"
    # Not an item name verbatim (those need no help), except the few marked exact.
    verbatim = [q.text for q in queries if q.text in known and q.kind != "exact"]
    assert not verbatim, verbatim


async def publish_the_real_catalogue(session: AsyncSession) -> None:
    """The real list, completed and published in one import, plus the demo catalogue."""
    await publish_guangan(session)
    await seed_catalogue(session)
    await service.load_shipped_lexicon(session)


async def run_quality_set(session: AsyncSession, queries: list[Query]) -> list[Outcome]:
    # The catalog's /items route searches with the app's synonym cache: so do we.
    synonyms = service.SynonymCache(ttl_s=3600.0)
    outcomes = []
    for query in queries:
        page = await service.search_items(
            session, query=query.text, filters=ItemFilters(), page_size=TOP, synonyms=synonyms
        )
        outcomes.append(Outcome(query=query, found=[hit.name for hit in page.items]))
    return outcomes


def render_report(outcomes: list[Outcome]) -> str:
    hits = sum(o.hit for o in outcomes)
    lines = [
        GENERATED_BEGIN,
        "",
        f"**{hits} of {len(outcomes)} queries ({hits / len(outcomes):.1%}) find an expected item "
        f"in the top {TOP}** (lexicon version {shipped_lexicon().version}).",
        "",
        "| kind | queries | hits |",
        "| --- | ---: | ---: |",
    ]
    for kind in KINDS:
        of_kind = [o for o in outcomes if o.query.kind == kind]
        if of_kind:
            lines.append(f"| {kind} | {len(of_kind)} | {sum(o.hit for o in of_kind)} |")
    lexicon = shipped_lexicon()
    lines += [
        "",
        "The lexicon by theme (groups, citizen phrases, where the phrases come from):",
        "",
        "| theme | groups | phrases | sources |",
        "| --- | ---: | ---: | --- |",
    ]
    for theme, groups in lexicon.by_theme().items():
        sources = Counter(group.source for group in groups).most_common()
        lines.append(
            f"| {lexicon.theme_labels[theme]} (`{theme}`) | {len(groups)} | "
            f"{sum(len(g.say) for g in groups)} | "
            + ", ".join(f"{source} {count}" for source, count in sources)
            + " |"
        )
    lines.append(
        f"| **all** | **{len(lexicon.groups)}** | **{sum(len(g.say) for g in lexicon.groups)}** | |"
    )
    lines += ["", "Misses (query → expected; what came first instead):", ""]
    misses = [o for o in outcomes if not o.hit]
    for miss in misses:
        got = "、".join(miss.found[:3]) or "nothing"
        lines.append(
            f"- `{miss.query.text}` ({miss.query.kind}) → {miss.query.expect[0]}; got: {got}"
        )
    if not misses:
        lines.append("- none")
    lines += ["", GENERATED_END]
    return "\n".join(lines)


def write_report(report: str) -> None:
    doc = SEARCH_DOC.read_text(encoding="utf-8")
    start, end = doc.index(GENERATED_BEGIN), doc.index(GENERATED_END) + len(GENERATED_END)
    SEARCH_DOC.write_text(doc[:start] + report + doc[end:], encoding="utf-8")


@pytest.mark.slow  # publishes the whole real list (about 25 s)
async def test_citizen_queries_find_the_right_item_in_the_top_five(
    db_session: AsyncSession,
) -> None:
    queries = quality_set()
    started = time.perf_counter()
    await publish_the_real_catalogue(db_session)
    loaded = time.perf_counter()
    outcomes = await run_quality_set(db_session, queries)
    searched = time.perf_counter()
    report = render_report(outcomes)
    print(
        f"\ncatalogue published in {loaded - started:.1f} s, "
        f"{len(queries)} queries in {searched - loaded:.1f} s\n{report}"
    )
    if os.environ.get("WANGBAN_WRITE_DOCS") == "1":
        write_report(report)
    rate = sum(o.hit for o in outcomes) / len(outcomes)
    assert rate >= REQUIRED_HIT_RATE, f"hit rate {rate:.1%} < {REQUIRED_HIT_RATE:.0%}"
