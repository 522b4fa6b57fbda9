"""The catalog's search terms stay exactly what full jieba and full pypinyin make of them, while
the process holds neither full dictionary (see catalog_service/segmenter.py and
catalog_service/pinyin_phrases.py).

* The compact jieba dictionary answers every look-up jieba makes exactly like jieba's own dict,
  so segmentation is the same for any text.
* The small pinyin phrase table gives every catalogue text (and every text of these tests) the
  pinyin pypinyin's full phrase dictionary gives it: compared with a reference computed in a
  subprocess that imports pypinyin with its full dictionary. When the catalogue grows, this is
  the test that says which phrase readings to add.
* A fresh catalog process, ready to serve and after indexing the catalogue, stays well under the
  200 MB every service must fit in.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import jieba
import pytest

from catalog_service.pinyin_phrases import PHRASE_READINGS
from catalog_service.segmenter import CompactFrequencies, CompactTokenizer
from tests.catalog.support import ITEM_NAMES

pytestmark = pytest.mark.slow  # left out of `./dev test --fast`

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(__file__).parent / "data"
DEMO_ITEMS = ROOT / "catalog_service" / "demo" / "items.json"

SYNONYMS = [
    ["身份证", "居民身份证"],
    ["社保", "社会保险"],
    ["社保卡", "社会保障卡"],
    ["不动产登记", "房产证"],
    ["医保", "医疗保险", "基本医疗保险"],
    ["公积金", "住房公积金"],
]

TYPICAL_QUERIES = [
    "公积金",
    "gjj",
    "gongjijin",
    "提取公积金",
    "租房提取公积金",
    "身份证",
    "居民身份证换领",
    "身份证丢了怎么办",
    "社保",
    "社保卡补办",
    "社会保险",
    "医保异地就医",
    "不动产登记",
    "房产证",
    "结婚登记",
    "离婚",
    "出生证明",
    "新生儿上户口",
    "户口迁移",
    "居住证",
    "营业执照",
    "个体户注册",
    "驾驶证换证",
    "护照",
    "港澳通行证续签",
    "养老保险",
    "失业金",
    "残疾人证",
    "老年人优待证",
    "食品经营许可",
    "企业名称",
    "入学登记",
    "高龄津贴",
    "重庆",
    "银行开户",
    "ＡＢＣ",
    "zfgjj",
]


def _catalogue_texts() -> list[str]:
    """Every text of the catalogue that is indexed, plus the item names of the search tests."""
    texts: list[str] = []
    for path in sorted(DATA.glob("*.csv")):
        with path.open(encoding="utf-8", newline="") as handle:
            for row in csv.DictReader(handle):
                texts.extend(value for value in row.values() if value)
    for item in json.loads(DEMO_ITEMS.read_text(encoding="utf-8")):
        texts.extend([item["name"], item.get("short_name") or "", item["department"]])
        texts.extend(item.get("keywords", []))
        texts.extend(item.get("themes", []))
        texts.extend(material["name"] for material in item.get("materials", []))
        texts.append(item.get("conditions") or "")
    texts.extend(ITEM_NAMES)
    return [text for text in dict.fromkeys(texts) if text]


def _queries(texts: list[str]) -> list[str]:
    """Typical queries, and what a citizen has typed after a few characters of an item name."""
    prefixes = [text[:length] for text in texts[:400] for length in (2, 3, 4, 6)]
    return list(dict.fromkeys([*TYPICAL_QUERIES, *prefixes]))


# Runs in a fresh interpreter. With "reference", it first imports pypinyin with its full phrase
# dictionary and keeps our table out of it, and gives search jieba's own dictionary: that is the
# search terms as they were before the dictionaries were made small.
_TERMS_SCRIPT = """
import json, sys

reference = sys.argv[1] == "reference"
if reference:
    import jieba
    import pypinyin
    from pypinyin.constants import PHRASES_DICT
    from pypinyin.seg.mmseg import seg

    assert len(PHRASES_DICT) > 40000, "pypinyin has no full phrase dictionary"
    pypinyin.load_phrases_dict = lambda *args, **kwargs: None

from catalog_service import search

if reference:
    search._SEGMENTER = jieba.Tokenizer()

texts, queries, synonyms = json.load(sys.stdin)
table = search.SynonymTable(synonyms)
result = {
    "terms": {text: search.terms_of(text) for text in texts},
    "queries": {query: search.tsquery_for(query, synonyms=table) for query in queries},
}
if reference:
    # The phrases the full dictionary finds in each text whose reading (without tones) differs
    # from reading each character on its own: what a text with other pinyin needs in
    # PHRASE_READINGS.
    def differs(word):
        return pypinyin.lazy_pinyin(word) != [pypinyin.lazy_pinyin(char)[0] for char in word]

    result["phrases"] = {
        text: {
            word: " ".join(reading[0] for reading in PHRASES_DICT[word])
            for word in seg.cut(text)
            if len(word) > 1 and word in PHRASES_DICT and differs(word)
        }
        for text in texts
    }
json.dump(result, sys.stdout, ensure_ascii=False)
"""


def _run(script: str, *args: str, payload: Any = None) -> Any:
    env = {name: value for name, value in os.environ.items() if not name.startswith("PYPINYIN")}
    completed = subprocess.run(
        [sys.executable, "-c", script, *args],
        input=json.dumps(payload, ensure_ascii=False),
        capture_output=True,
        text=True,
        encoding="utf-8",
        cwd=ROOT,
        env=env,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout)


@pytest.fixture(scope="module")
def compact() -> CompactFrequencies:
    tokenizer = CompactTokenizer()
    tokenizer.initialize()
    assert isinstance(tokenizer.FREQ, CompactFrequencies)
    return tokenizer.FREQ


def test_compact_dictionary_answers_like_jiebas_dict(compact: CompactFrequencies) -> None:
    tokenizer = jieba.Tokenizer()
    with tokenizer.get_dict_file() as lines:
        freq, total = tokenizer.gen_pfdict(lines)
    assert compact.total == total
    # Every word with its frequency, every proper prefix of a word with 0 ...
    for fragment, frequency in freq.items():
        assert fragment in compact, fragment
        assert compact[fragment] == frequency, fragment
        assert compact.get(fragment) == frequency, fragment
    # ... and nothing else: every fragment jieba may look up in catalogue texts (a substring
    # starting anywhere), plus strings that only look like records.
    fragments = {
        text[start:end]
        for text in _catalogue_texts()
        for start in range(len(text))
        for end in range(start + 1, min(start + 8, len(text)) + 1)
    }
    fragments |= {"", "\n", "\t", "重\t", "不动\n产", "B超\t", "\n不动产"}
    for fragment in fragments:
        assert (fragment in compact) == (fragment in freq), fragment
        assert compact.get(fragment, -1) == freq.get(fragment, -1), fragment
        if fragment not in freq:
            with pytest.raises(KeyError):
                compact[fragment]


def test_compact_tokenizer_segments_like_jieba() -> None:
    ours, theirs = CompactTokenizer(), jieba.Tokenizer()
    texts = _catalogue_texts()
    for text in [*texts, *_queries(texts)]:
        assert list(ours.cut(text)) == list(theirs.cut(text)), text
        assert list(ours.cut_for_search(text)) == list(theirs.cut_for_search(text)), text


def test_catalogue_search_terms_are_those_of_the_full_dictionaries() -> None:
    texts = _catalogue_texts()
    payload = [texts, _queries(texts), SYNONYMS]
    reference = _run(_TERMS_SCRIPT, "reference", payload=payload)
    ours = _run(_TERMS_SCRIPT, "ours", payload=payload)

    differing = [text for text in texts if ours["terms"][text] != reference["terms"][text]]
    missing = {
        phrase: reading
        for text in differing
        for phrase, reading in reference["phrases"][text].items()
        if phrase not in PHRASE_READINGS
    }
    assert not differing, (
        f"{len(differing)} catalogue texts get other pinyin than with pypinyin's full phrase "
        f"dictionary, e.g. {differing[:5]}; add the readings that differ from the per-character "
        f"default to catalog_service/pinyin_phrases.py; candidates: {missing}"
    )
    assert ours["queries"] == reference["queries"]


def test_phrase_table_agrees_with_pypinyins_dictionary() -> None:
    script = (
        "import json; from pypinyin.constants import PHRASES_DICT; "
        "print(json.dumps({w: ' '.join(r[0] for r in v) for w, v in PHRASES_DICT.items()}))"
    )
    full = _run(script)
    assert {phrase: full.get(phrase) for phrase in PHRASE_READINGS} == PHRASE_READINGS


_MEMORY_SCRIPT = """
import json, os, sys
import psutil

import catalog_service.app
from catalog_service import search

texts = json.load(sys.stdin)
search.warm_up()
idle = psutil.Process().memory_info().rss
for text in texts:
    search.terms_of(text)  # what indexing an item does with each of its texts
indexing = psutil.Process().memory_info().rss
try:  # the high-water mark, building the dictionaries included (Linux)
    with open("/proc/self/status") as status:
        peak = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM:"))
except OSError:
    peak = indexing
print(json.dumps({
    "idle": idle, "indexing": indexing, "peak": peak,
    "phrases_dict": "pypinyin.phrases_dict" in sys.modules,
    "env": sorted(name for name in os.environ if name.startswith("PYPINYIN")),
}))
"""


def test_catalog_process_memory() -> None:
    """A regression guard with a generous bound: ~140 MB were measured (~146 MB at the peak,
    while the segmenter builds its dictionary), 200 MB is the limit."""
    result = _run(_MEMORY_SCRIPT, payload=_catalogue_texts())
    assert not result["phrases_dict"], "pypinyin's full phrase dictionary was loaded"
    assert result["env"] == [], "PYPINYIN_* leaked into the process environment"
    assert result["idle"] < 200 * 2**20, result
    assert result["indexing"] < 200 * 2**20, result
    assert result["peak"] < 200 * 2**20, result


def test_compact_dictionary_reads_a_dictionary_like_jieba() -> None:
    dictionary = "公积金 100 n\n公积 20\nB超 3 n\n住房 50 n\nB超 10 n\n住 7 v\n"
    compact = CompactFrequencies(io.BytesIO(dictionary.encode()))
    # The total counts every line; a repeated word keeps its last frequency, as in jieba.
    assert compact.total == 190
    assert compact.get("B超") == 10
    assert [compact.get(word) for word in ["公积金", "公积", "公", "住房", "住", "B"]] == [
        100,
        20,
        0,
        50,
        7,
        0,
    ]
    assert compact.get("积金") is None and "积金" not in compact
    assert compact.get("公积金提取", 1) == 1
    # The last line may lack its newline.
    assert CompactFrequencies(io.BytesIO("社保 5".encode())).get("社保") == 5


@pytest.mark.parametrize("line", ["社保", "社保 five n", " 社保 5", "社保  5", "社保\t5", ""])
def test_compact_dictionary_refuses_lines_not_in_jiebas_own_form(line: str) -> None:
    with pytest.raises(ValueError, match="not a jieba dictionary line"):
        CompactFrequencies(io.BytesIO(f"公积金 100 n\n{line}\n住房 50\n".encode()))
