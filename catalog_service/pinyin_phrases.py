"""Pinyin of the phrases whose reading differs from pypinyin's per-character default.

pypinyin reads a polyphonic character from phrase context (重庆 → chóng qìng, not zhòng qìng)
using a phrase dictionary of ~47k entries that costs ~44 MB resident, a fifth of the
catalog service. :mod:`catalog_service.search` imports pypinyin without that dictionary and
loads this table instead: exactly the phrases, among those the full dictionary finds in the
catalogue's texts (``tests/catalog/data/*.csv``, ``catalog_service/demo/items.json``) and in the
catalog tests, whose reading differs from reading each character on its own. So every one of
those texts gets exactly the pinyin it would get with the full dictionary — including readings
that are wrong in context (发卡 fà qiǎ, "hairpin", in 预付卡发卡企业备案), because changing them
would change what is indexed.

A text outside that set reads a polyphonic character per character unless one of these phrases
covers it: a new item "音乐培训…" would be indexed as yinle, where the full dictionary says
yinyue. The test below catches that for the catalogue kept in this repository.

``tests/catalog/test_search_memory.py`` checks that, comparing with pypinyin's full dictionary
in a subprocess; when a new catalogue text needs a phrase, that test fails and names it. Add
the reading the test shows (with tones, syllables separated by spaces, as pypinyin writes it).
"""

from __future__ import annotations

from typing import Final

PHRASE_READINGS: Final[dict[str, str]] = {
    "会计": "kuài jì",
    "会计制度": "kuài jì zhì dù",
    "协调": "xié tiáo",
    "发卡": "fà qiǎ",
    "建行": "jiàn háng",
    "弹性": "tán xìng",
    "成都": "chéng dū",
    "无着": "wú zhuó",
    "校验": "jiào yàn",
    "畜牧": "xù mù",
    "畜牧业": "xù mù yè",
    "的当": "dí dàng",
    "的确": "dí què",
    "结扎": "jié zā",
    "给付": "jǐ fù",
    "行业": "háng yè",
    "调处": "tiáo chǔ",
    "调控": "tiáo kòng",
    "调整": "tiáo zhěng",
    "调档": "tiáo dàng",
    "调解": "tiáo jiě",
    "返还": "fǎn huán",
    "重复": "chóng fù",
    "重庆": "chóng qìng",
    "重建": "chóng jiàn",
    "重新": "chóng xīn",
    "银行": "yín háng",
    "长寿": "cháng shòu",
    "长期": "cháng qī",
}
