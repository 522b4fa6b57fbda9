"""Search terms for the service catalog: Chinese segmentation and pinyin for PostgreSQL full text.

A citizen on a phone types a few characters ("公积金"), pinyin initials ("gjj") or full pinyin
("gongjijin") and expects "住房公积金提取（租房）" to come up. The catalog runs on plain PostgreSQL
without extensions (no zhparser, no pg_trgm), and PostgreSQL's own parser cannot segment Chinese.
So the application does the linguistics and PostgreSQL only stores and matches opaque terms:

* documents: :func:`document_for` turns an item into three lists of terms (weights A, B and C),
  and :func:`tsvector_sql_parts` joins them with spaces for
  ``setweight(to_tsvector('simple', :a), 'A') || … 'B' || … 'C'``;
* queries: :func:`tsquery_for` turns what the user typed into a string for
  ``to_tsquery('simple', :q)``, expanding admin-maintained synonyms (:class:`SynonymTable`).

Every term is a run of lowercase letters and digits only (ASCII, Chinese or other scripts) and at
most :data:`MAX_TERM_LENGTH` characters, so PostgreSQL's default parser reads each one as exactly
one lexeme and no term can carry tsquery syntax (``& | ! ( ) : * \\ '`` and the like). Because the
document side and the query side go through the same normalisation and the same segmenter, what
was indexed is exactly what a query can ask for.

Synonyms are applied at query time only: an admin's edit takes effect on the next search without
re-indexing every item, and the stored vectors stay small.

Nothing here touches the database or the network.
"""

from __future__ import annotations

import bisect
import functools
import os
import re
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import chain

from catalog_service.pinyin_phrases import PHRASE_READINGS
from catalog_service.segmenter import CompactTokenizer


@contextmanager
def _environment(name: str, value: str) -> Iterator[None]:
    """``os.environ[name] = value`` for the duration of the block only."""
    previous = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if previous is None:
            del os.environ[name]
        else:
            os.environ[name] = previous


# pypinyin's phrase dictionary (~47k phrases) costs ~44 MB resident; the catalogue needs a few
# dozen of its readings (see catalog_service/pinyin_phrases.py). pypinyin reads
# PYPINYIN_NO_PHRASES once, when it is first imported, so it is set around this import only
# (no other part of the process, nor a child process, inherits it). Nothing else in the service
# imports pypinyin; had something imported it before us, with the full dictionary, the
# catalogue's readings would be the same (the table is part of that dictionary) and only the
# memory would not be saved; tests/catalog/test_search_memory.py checks a fresh process.
with _environment("PYPINYIN_NO_PHRASES", "true"):
    from pypinyin import Style, lazy_pinyin, load_phrases_dict

load_phrases_dict(
    {
        phrase: [[syllable] for syllable in reading.split()]
        for phrase, reading in PHRASE_READINGS.items()
    }
)

# A private segmenter rather than jieba's global one: indexing and querying must segment the same
# way, so nothing else in the process (a stray ``jieba.add_word``) may change this one's
# dictionary. It is jieba's own tokenizer with a compact read-only dictionary (~5 MB instead of
# ~66 MB, same segmentation; see catalog_service/segmenter.py). Construction is cheap; the
# dictionary is loaded on first use (thread-safe, jieba holds a lock) or by :func:`warm_up`.
_SEGMENTER = CompactTokenizer()

MAX_TERM_LENGTH = 64
"""Longest term kept; longer ones are cut. Nobody types more than this, a cut pinyin term still
serves prefix queries, and it keeps every lexeme far below PostgreSQL's 2047-byte limit."""

MAX_QUERY_LENGTH = 100
"""Characters of a query that are looked at: a search box is not a document, and a pasted essay
must not turn into a huge tsquery."""

MAX_QUERY_TOKENS = 12
"""Tokens of a query that become AND-groups; beyond this the query is already so specific that
more groups would only cost time."""

MAX_SYNONYM_SPAN = 6
"""Most consecutive query tokens that are joined back together to find a multi-word synonym
phrase (jieba may split "不动产登记" into "不动产" + "登记")."""

_HAN = "\u3007\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f"
_HAN_CHAR = re.compile(f"[{_HAN}]")
_HAN_RUN = re.compile(f"[{_HAN}]+")


def warm_up() -> None:
    """Load jieba's dictionary and pypinyin's tables now rather than on the first request.

    The segmenter builds its dictionary of ~350k words on first use, which takes about half a
    second; a service calls this at start-up so no citizen waits for it.
    """
    _SEGMENTER.initialize()
    lazy_pinyin("预热")


def _is_term_char(char: str) -> bool:
    """Letters and digits only: they are what PostgreSQL's parser keeps together in one word, and
    none of them has a meaning in tsquery syntax."""
    if char.isascii():
        return char.isalnum()
    return unicodedata.category(char)[0] in "LN"


def _clean(text: str) -> str:
    """Normalise text before segmentation: NFKC (full-width ``ＡＢＣ１２３`` and ``（`` become
    ``ABC123`` and ``(``), lowercase, and every character that cannot be part of a term becomes a
    space, so jieba never sees punctuation and never glues words across it."""
    text = unicodedata.normalize("NFKC", text).lower()
    return "".join(char if _is_term_char(char) else " " for char in text)


def _term(token: str) -> str:
    """The single gate every term passes: only term characters, no spaces, bounded length.

    Returns ``""`` when nothing usable is left.
    """
    return "".join(char for char in token if _is_term_char(char))[:MAX_TERM_LENGTH]


def _is_safe_term(term: str) -> bool:
    return 0 < len(term) <= MAX_TERM_LENGTH and all(_is_term_char(char) for char in term)


def _has_han(text: str) -> bool:
    return _HAN_CHAR.search(text) is not None


def _keep_non_han(chars: str) -> str:
    """pypinyin's fallback for characters it has no reading for: keep letters and digits as they
    are (``x光`` → ``xguang``), drop the rare Chinese character without a reading."""
    return "".join(char for char in chars if not _HAN_CHAR.match(char))


# Catalogue texts repeat their words (申请, 证明, 身份证, a department's name in every item), and
# pypinyin reads a word afresh each time: remembered, an import of a real list of ~1,200 items
# spends half as long on its search documents. Bounded, so distinct texts cost at most this.
@functools.lru_cache(maxsize=16384)
def _pinyin(text: str) -> tuple[str, str]:
    """Full pinyin without tones (``gongjijin``) and initials (``gjj``) of ``text``.

    pypinyin chooses readings of polyphonic characters from phrase context (重庆 → chongqing);
    only that one reading is indexed, since every alternative would multiply the terms and
    mostly match nothing anyone types. ``ü`` comes out as ``v`` (``lv``), as phone keyboards
    type it.
    """
    full = "".join(lazy_pinyin(text, style=Style.NORMAL, errors=_keep_non_han))
    initials = "".join(lazy_pinyin(text, style=Style.FIRST_LETTER, errors=_keep_non_han))
    return _term(full), _term(initials)


class _Terms:
    """An insertion-ordered set of terms that ignores empty ones: output order is stable, which
    keeps the generated SQL parameters (and any diff of them) deterministic."""

    def __init__(self) -> None:
        self._terms: dict[str, None] = {}

    def add(self, term: str) -> None:
        if term:
            self._terms.setdefault(term, None)

    def add_pinyin(self, text: str) -> None:
        full, initials = _pinyin(text)
        self.add(full)
        # A single initial is never needed: the full pinyin starts with the same letter, so a
        # prefix query for that letter already matches it.
        if len(initials) > 1:
            self.add(initials)

    def as_list(self) -> list[str]:
        return list(self._terms)


def terms_of(text: str) -> list[str]:
    """The normalised search terms of a Chinese or mixed text, de-duplicated, in stable order.

    * jieba ``cut_for_search`` tokens (住房, 公积, 积金, 公积金, 提取, 租房): the search mode also
      emits the shorter dictionary words inside long ones, so a query for a part of a word finds
      it;
    * for each token containing Chinese, its full pinyin (``gongjijin``) and initials (``gjj``),
      so pinyin typed on a phone matches without the user switching to a Chinese keyboard;
    * the full pinyin and initials of each whole run of Chinese characters (``zfgjjtq``,
      ``zhufanggongjijintiqu``), and of all runs joined when there are several, so the initials
      of a whole name, or a prefix of them (``zfgjj``), match too.

    Punctuation and whitespace are dropped, ASCII is lowercased and full-width characters become
    half-width. Each term is safe as a word inside ``to_tsvector('simple', …)``.
    """
    cleaned = _clean(text)
    terms = _Terms()
    for token in _SEGMENTER.cut_for_search(cleaned):
        term = _term(token)
        if not term:
            continue
        terms.add(term)
        if _has_han(term):
            terms.add_pinyin(term)
    runs = _HAN_RUN.findall(cleaned)
    for run in runs:
        terms.add_pinyin(run)
    if len(runs) > 1:
        terms.add_pinyin("".join(runs))
    return terms.as_list()


@dataclass(frozen=True)
class SearchDocument:
    """The terms of one catalog item, by weight: ``name`` (A), ``secondary`` (B: short name,
    keywords, themes) and ``body`` (C: materials, conditions, department).

    Every term is checked on construction, so a document built by hand (or from stored data)
    can never smuggle tsvector syntax into :func:`tsvector_sql_parts`.
    """

    name: list[str]
    secondary: list[str]
    body: list[str]

    def __post_init__(self) -> None:
        for term in chain(self.name, self.secondary, self.body):
            if not _is_safe_term(term):
                raise ValueError(f"not a safe search term: {term!r}")


def _fresh_terms(texts: Iterable[str], seen: set[str]) -> list[str]:
    """Terms of ``texts`` (each text on its own, so run pinyin never spans two keywords) that are
    not in ``seen``; ``seen`` is updated. A term already stored at a higher weight adds nothing
    at a lower one: ts_rank takes the highest weight of a lexeme's positions."""
    fresh: list[str] = []
    for text in texts:
        for term in terms_of(text):
            if term not in seen:
                seen.add(term)
                fresh.append(term)
    return fresh


def document_for(
    *,
    name: str,
    short_name: str | None,
    keywords: Sequence[str],
    themes: Sequence[str],
    department: str,
    materials: Sequence[str],
    conditions: str | None,
) -> SearchDocument:
    """Build the weighted search terms of a catalog item.

    The item's name is what citizens search for, so it weighs most (A); the short name, keywords
    and themes are curated to be searched (B); materials, conditions and the department only
    help when nothing better matches (C). A term appears once, at its highest weight.
    """
    name_terms = terms_of(name)
    seen = set(name_terms)
    secondary = _fresh_terms(chain([short_name or ""], keywords, themes), seen)
    body = _fresh_terms(chain(materials, [conditions or "", department]), seen)
    return SearchDocument(name=name_terms, secondary=secondary, body=body)


def tsvector_sql_parts(document: SearchDocument) -> tuple[str, str, str]:
    """The A, B and C texts for ``setweight(to_tsvector('simple', :a), 'A') || …``.

    Terms are joined with single spaces; since no term contains a space or punctuation, the
    ``simple`` configuration turns each term into exactly one lexeme. Pass them as bound
    parameters, never by string interpolation into SQL.
    """
    return (
        " ".join(document.name),
        " ".join(document.secondary),
        " ".join(document.body),
    )


def _phrase_key(phrase: str) -> str:
    """A synonym phrase in the form query tokens are compared with: normalised like terms, with
    the spaces in between removed (``"社会 保险"`` is ``"社会保险"``)."""
    return "".join(_clean(phrase).split())


class SynonymTable:
    """Admin-maintained groups of equivalent phrases: 身份证 ↔ 居民身份证, 社保 ↔ 社会保险.

    Built from pairs or larger groups; equivalence is symmetric and transitive, also across
    groups that share a phrase (``("a", "b")`` and ``("b", "c")`` make one group a, b, c), since
    that is what an admin who enters them means. Phrases are normalised like search terms
    (full-width → half-width, lowercase, punctuation and spaces removed).
    """

    def __init__(self, groups: Iterable[Iterable[str]] = ()) -> None:
        parent: dict[str, str] = {}

        def root(phrase: str) -> str:
            while parent[phrase] != phrase:
                parent[phrase] = parent[parent[phrase]]
                phrase = parent[phrase]
            return phrase

        for group in groups:
            keys = list(dict.fromkeys(key for key in map(_phrase_key, group) if key))
            for key in keys:
                parent.setdefault(key, key)
            for key in keys[1:]:
                parent[root(key)] = root(keys[0])

        members: dict[str, set[str]] = {}
        for key in parent:
            members.setdefault(root(key), set()).add(key)
        self._groups: dict[str, frozenset[str]] = {}
        for group_members in members.values():
            if len(group_members) > 1:
                frozen = frozenset(group_members)
                for key in frozen:
                    self._groups[key] = frozen

    def __contains__(self, phrase: object) -> bool:
        return isinstance(phrase, str) and _phrase_key(phrase) in self._groups

    def __len__(self) -> int:
        """Number of phrases that have at least one synonym."""
        return len(self._groups)

    def expand(self, phrase: str) -> set[str]:
        """The normalised phrase and all its synonyms; just the phrase when it has none, and an
        empty set when nothing of it survives normalisation. Including the phrase itself lets a
        caller use the result directly as the set of alternatives."""
        key = _phrase_key(phrase)
        if not key:
            return set()
        return set(self._groups.get(key, {key}))


def _or(alternatives: Sequence[str]) -> str:
    unique = list(dict.fromkeys(alternatives))
    return unique[0] if len(unique) == 1 else "(" + " | ".join(unique) + ")"


def _and(operands: Sequence[str]) -> str:
    unique = list(dict.fromkeys(operands))
    return unique[0] if len(unique) == 1 else "(" + " & ".join(unique) + ")"


def _covering_words(token: str) -> list[str]:
    """The fewest dictionary words inside a Chinese token that together cover all of it
    (居民身份证 → 居民, 身份证; 城乡居民 → 城乡, 居民), or ``[]`` when they cannot (社保卡: 卡 is
    in no inner word, and 社保 alone would match far more than the user asked for).

    The candidates are the pieces of two or more characters that ``cut_for_search`` finds in the
    token alone — the same pieces search mode puts into a document that contains the token's
    words. They are chosen by the classic greedy interval cover: from the first uncovered
    character, take the candidate that starts at or before it and reaches furthest.
    """
    pieces = {_term(piece) for piece in _SEGMENTER.cut_for_search(token)}
    intervals = sorted(
        (match.start(), match.start() + len(piece), piece)
        for piece in pieces
        if 2 <= len(piece) < len(token)
        for match in re.finditer(re.escape(piece), token)
    )
    cover: list[str] = []
    position = 0
    while position < len(token):
        best: tuple[int, str] | None = None
        for start, end, piece in intervals:
            if start <= position < end and (best is None or end > best[0]):
                best = (end, piece)
        if best is None:
            return []
        position, piece = best
        cover.append(piece)
    return cover


def _exact_alternatives(word: str) -> list[str]:
    """How a complete word matches: itself, or all of its covering inner words together.

    jieba segments a document in context, so the same characters can be split differently in a
    document ("城乡居民身份证" may become 城乡居民 + 身份证) than alone in a short query
    ("居民身份证"); the document's search-mode tokens still contain the inner words. Only
    Chinese words of three or more characters have such words (shorter ones have no smaller
    dictionary words of two characters).
    """
    alternatives = [word]
    if _has_han(word):
        cover = _covering_words(word)
        if cover:
            alternatives.append(_and(cover))
    return alternatives


def _query_tokens(text: str) -> list[str]:
    """jieba ``cut`` (not search mode: the user's own words are what must match) of normalised
    text, as terms."""
    return [term for term in (_term(piece) for piece in _SEGMENTER.cut(_clean(text))) if term]


def _phrase_alternatives(phrase: str) -> list[str]:
    """A synonym phrase as tsquery alternatives: each of its words must occur, matched exactly
    (a synonym is a complete phrase, not something being typed)."""
    words = _query_tokens(phrase)
    if len(words) == 1:
        return _exact_alternatives(words[0])
    if not words:
        return []
    return [_and([_or(_exact_alternatives(word)) for word in words])]


def _merge_synonym_phrases(tokens: list[str], synonyms: SynonymTable) -> list[str]:
    """Join consecutive tokens back into one when together they are a synonym phrase that jieba
    split (不动产 + 登记 → 不动产登记), longest match first, left to right."""
    merged: list[str] = []
    index = 0
    while index < len(tokens):
        span = 1
        for length in range(min(MAX_SYNONYM_SPAN, len(tokens) - index), 1, -1):
            if "".join(tokens[index : index + length]) in synonyms:
                span = length
                break
        merged.append("".join(tokens[index : index + span]))
        index += span
    return merged


def _token_group(token: str, synonyms: SynonymTable) -> str:
    """The OR-group of one query token: the token as a prefix, its covering inner words and
    the alternatives of each of its synonyms."""
    term = _term(token)
    alternatives = [f"{term}:*", *_exact_alternatives(term)[1:]]
    for synonym in sorted(synonyms.expand(token) - {token}):
        alternatives.extend(_phrase_alternatives(synonym))
    return _or(alternatives)


def _token_groups(query: str, synonyms: SynonymTable) -> dict[str, str]:
    """Each token's OR-group (:func:`tsquery_for`) by group, in order, without repeats; the
    value is the token it came from."""
    tokens = _query_tokens(query[:MAX_QUERY_LENGTH])
    groups: dict[str, str] = {}
    for token in _merge_synonym_phrases(tokens, synonyms)[:MAX_QUERY_TOKENS]:
        groups.setdefault(_token_group(token, synonyms), token)
    return groups


MAX_RELAXED_TOKENS = 6
"""Queries of at most this many words are relaxed by one word (:func:`relaxed_tsquery_for`):
the alternatives grow with the square of the words."""


def relaxed_tsquery_for(query: str, *, synonyms: SynonymTable) -> str | None:
    """Every way of leaving one word out, OR-ed; None for a single word.

    Citizens wrap what they want in words no item name holds: 养狗**办证**, 开餐馆**办什么证**,
    **老板**拖欠工资, 在外地看病报销, **免费**请律师. Requiring every word then finds nothing,
    though the rest names the item. For a second pass only, like the typo corrections: the caller
    ranks every hit of it below every hit of the whole query."""
    groups = _token_groups(query, synonyms)
    if not 2 <= len(groups) <= MAX_RELAXED_TOKENS:
        return None
    alternatives = []
    for left_out in groups:
        kept = [group for group in groups if group != left_out]
        # What is kept must say something: a lone character (办, 开, 要) matches half the
        # catalogue by prefix.
        if any(len(groups[group]) >= 2 for group in kept):
            alternatives.append(" & ".join(kept))
    if not alternatives:
        return None
    return " | ".join(f"({alternative})" for alternative in alternatives)


def tsquery_for(query: str, *, synonyms: SynonymTable) -> str | None:
    """A string for ``to_tsquery('simple', …)`` that finds what the user typed, or ``None`` when
    the query has nothing to search for (empty, only punctuation).

    Strategy, chosen to be predictable for a user typing on a phone:

    * The query is normalised like documents and segmented with jieba ``cut`` (not the search
      mode: the user's words are what must match). ASCII words stay as typed (``gjj``).
    * Tokens that together form a synonym phrase are joined back into one token.
    * Every token must match (AND); each token is an OR-group of:

      - the token as a **prefix** (``gjj:*``, ``公积:*``): ASCII tokens are usually pinyin or
        initials typed so far, and Chinese tokens may be the start of a longer indexed word.
        A prefix match includes the exact term, and ts_rank scores both alike, so the exact
        form is not repeated;
      - for a Chinese token of three or more characters, the fewest dictionary words inside it
        that cover all its characters, ANDed (居民身份证 → ``(居民 & 身份证)``), because jieba
        may segment the same characters differently inside a document than alone in a query;
        when they cannot cover it (社保卡), there is no such alternative;
      - each synonym phrase, matched exactly (no prefix: it is a complete phrase, not something
        being typed): all of its words, each with the same inner-words alternative.

    Chinese tokens are not converted to pinyin: that would match homophones nobody meant.
    Synonym lookup is by whole token (or whole run of tokens); an abbreviation inside a longer
    word (社保 in 社保卡) needs its own entry (社保卡 ↔ 社会保障卡).

    Only bare terms, ``&``, ``|``, parentheses and ``:*`` appear in the result.
    """
    groups = _token_groups(query, synonyms)
    if not groups:
        return None
    return " & ".join(groups)


# --- ranking ----------------------------------------------------------------------------------

_OPERAND = re.compile(r"([^\s&|()!:]+)(:\*)?")


def restricted_to(tsquery: str, weights: str) -> str:
    """``tsquery`` with every operand restricted to the given weights (``gjj:*`` → ``gjj:*A``).

    The ranking asks where a query matches, not only whether: ``search @@ restricted_to(q, "A")``
    holds when the whole query matches inside the name (weight A), ``"AB"`` when it matches in
    the name, short name, keywords and themes. Since a document stores each term once, at its
    highest weight, this tells a name match from a keyword match from a material match exactly,
    which ts_rank's sums of weights do not (many prefix hits in keywords can outscore one hit
    in the name).
    """
    if not weights or not weights.isalpha() or set(weights) - set("ABCD"):
        raise ValueError(f"not tsquery weights: {weights!r}")
    return _OPERAND.sub(
        lambda match: f"{match.group(1)}:{'*' if match.group(2) else ''}{weights}", tsquery
    )


def phrase_of(query: str) -> str:
    """What a name is compared with to tell an exact match (the name is the query, starts with
    it or contains it) from a partial one: the query with whitespace removed, nothing else
    changed (names are stored as published, full-width brackets and all)."""
    return "".join(query[:MAX_QUERY_LENGTH].split())


def exact_phrases(query: str, synonyms: SynonymTable) -> tuple[str, ...]:
    """The phrases a name must equal, start with or contain to be an exact match: what was typed
    (:func:`phrase_of`) and, when the whole of it is a synonym phrase, its synonyms (社保 →
    社会保险: "社会保险参保证明打印" starts with what the citizen meant)."""
    phrase = phrase_of(query)
    if not phrase:
        return ()
    others = sorted(synonyms.expand(phrase) - {phrase, _phrase_key(phrase)})
    return (phrase, *others)


# --- typo tolerance ---------------------------------------------------------------------------

# Common wrong characters in what citizens type for service items: homophones a pinyin keyboard
# offers first (同音: 申令 for 申领, 登计 for 登记, 交费 for 缴费) and look-alikes (形近: 货款 for
# 贷款). Compiled by hand for this catalogue from the pairs the search issue names (申领/申令,
# 登记/登计, 帐/账, 型/形) and the well-known 常见错别字 pairs of government-service vocabulary
# (户籍, 备案, 抵押, 驾驶, 拆迁, 注销, 咨询, 补贴 …), as (right, wrong); tests/catalog/
# test_search_ranking.py checks that the right side of every pair occurs in the real Sichuan
# list or the demo catalogue, so no pair is dead weight. Pairs are used both ways: 帐 and 账 (型
# and 形) both occur in correct words, and a replacement only adds alternatives to a query that
# already found little.
CHARACTER_CONFUSIONS: tuple[tuple[str, str], ...] = (
    ("领", "令"),
    ("记", "计"),
    ("账", "帐"),
    ("型", "形"),
    ("缴", "交"),
    ("籍", "藉"),
    ("办", "半"),
    ("备", "被"),
    ("案", "按"),
    ("续", "序"),
    ("证", "症"),
    ("查", "察"),
    ("抵", "低"),
    ("押", "压"),
    ("贷", "货"),
    ("贴", "帖"),
    ("驶", "使"),
    ("驾", "架"),
    ("拆", "折"),
    ("迁", "签"),
    ("销", "消"),
    ("咨", "资"),
    ("租", "祖"),
    ("婚", "昏"),
    ("营", "赢"),
    ("历", "厉"),
    ("需", "须"),
    ("执", "职"),
    # 同音 slips citizens' queries show (the search quality set's typo queries):
    ("证", "正"),
    ("更", "跟"),
    ("取", "区"),
    ("簿", "薄"),
)

_CONFUSABLE: dict[str, list[str]] = {}
for _right, _wrong in CHARACTER_CONFUSIONS:
    # Both ways (which one the citizen meant is unknown), and a character may be confused with
    # more than one (证: 症 and 正).
    _CONFUSABLE.setdefault(_wrong, []).append(_right)
    _CONFUSABLE.setdefault(_right, []).append(_wrong)

MAX_CHARACTER_VARIANTS = 6
"""Spellings with corrected characters tried for one query: each confusable character alone,
then all of them at once; more would only lengthen the tsquery."""

MAX_PINYIN_VARIANTS = 8
"""Nearby pinyin terms tried for one typed word."""

MIN_FULL_PINYIN = 5
"""Typed words at least this long are taken as full pinyin (``gongjijn``): a nearby term may
also be a prefix of an indexed one, as the user may not have finished typing. Shorter words are
initials (``gjj``), dense among short strings: a near one is used only when it is the only
one (see :meth:`PinyinVocabulary.near`)."""

_LETTERS = "abcdefghijklmnopqrstuvwxyz"


def _deletes(word: str) -> set[str]:
    return {word[:i] + word[i + 1 :] for i in range(len(word))} - {word}


def _swaps(word: str) -> set[str]:
    return {word[:i] + word[i + 1] + word[i] + word[i + 2 :] for i in range(len(word) - 1)} - {word}


def _one_edit(word: str) -> set[str]:
    """Every string one deletion, insertion, substitution or swap of neighbours away."""
    splits = [(word[:i], word[i:]) for i in range(len(word) + 1)]
    deletes = {a + b[1:] for a, b in splits if b}
    swaps = {a + b[1] + b[0] + b[2:] for a, b in splits if len(b) > 1}
    replaces = {a + c + b[1:] for a, b in splits if b for c in _LETTERS if c != b[0]}
    inserts = {a + c + b for a, b in splits for c in _LETTERS}
    return (deletes | swaps | replaces | inserts) - {word}


class PinyinVocabulary:
    """The pinyin and initials terms of the published catalogue, to correct typed pinyin.

    PostgreSQL here has no trigram extension, and a tsquery has no fuzzy operator, so the
    correction happens before the query: a typed word is replaced by the indexed terms one
    edit away (:func:`_one_edit`, Damerau-Levenshtein distance 1). A few thousand terms; the
    lookup tries the ~50·n strings one edit away against a set and a sorted list (prefixes).
    """

    def __init__(self, terms: Iterable[str]) -> None:
        ascii_terms = {t for t in terms if t.isascii() and t.isalpha() and _is_safe_term(t)}
        self._terms = frozenset(ascii_terms)
        self._sorted = sorted(ascii_terms)

    def __len__(self) -> int:
        return len(self._terms)

    def _starts_a_term(self, prefix: str) -> bool:
        index = bisect.bisect_left(self._sorted, prefix)
        return index < len(self._sorted) and self._sorted[index].startswith(prefix)

    def near(self, word: str) -> list[str]:
        """Indexed terms (or, for full pinyin, prefixes of indexed terms) one edit from
        ``word``, at most :data:`MAX_PINYIN_VARIANTS`, in a stable order; ``[]`` for a word
        that is not ASCII letters, is too short, or is an initials word without exactly one
        near term."""
        if not (word.isascii() and word.isalpha()) or len(word) < 2:
            return []
        if word in self._terms or (len(word) >= MIN_FULL_PINYIN and self._starts_a_term(word)):
            return []  # found as typed: nothing to correct
        candidates = sorted(_one_edit(word))
        if len(word) >= MIN_FULL_PINYIN:
            found = [
                c
                for c in candidates
                if len(c) >= MIN_FULL_PINYIN - 1 and (c in self._terms or self._starts_a_term(c))
            ]
            return found[:MAX_PINYIN_VARIANTS]
        # Initials: one letter too many, then two swapped, then one wrong or missing, each
        # class on its own (the smaller the class, the likelier its only hit is meant: "gjjj"
        # has one deletion that is a term, gjj, while a dozen three-letter terms are one
        # substitution away).
        for edits in (_deletes(word), _swaps(word), _one_edit(word)):
            found = sorted(c for c in edits if len(c) >= 2 and c in self._terms)
            if found:
                return found if len(found) == 1 else []
        return []


def _character_variants(text: str) -> list[str]:
    """``text`` with confusable characters replaced: each one alone, then all together."""
    positions = [i for i, char in enumerate(text) if char in _CONFUSABLE]
    variants: list[str] = []
    for i in positions:
        variants.extend(text[:i] + other + text[i + 1 :] for other in _CONFUSABLE[text[i]])
    if len(positions) > 1:
        variants.append(
            "".join(_CONFUSABLE[char][0] if char in _CONFUSABLE else char for char in text)
        )
    return list(dict.fromkeys(variants))[:MAX_CHARACTER_VARIANTS]


def _fuzzy_query(text: str, synonyms: SynonymTable, vocabulary: PinyinVocabulary) -> str | None:
    """One spelling's tsquery with each pinyin word widened to its near indexed terms; None when
    no word has any."""
    tokens = _merge_synonym_phrases(_query_tokens(text), synonyms)[:MAX_QUERY_TOKENS]
    groups: list[str] = []
    widened = False
    for token in tokens:
        group = _token_group(token, synonyms)
        near = vocabulary.near(token)
        if near:
            widened = True
            group = _or([group, *(f"{term}:*" for term in near)])
        if group not in groups:
            groups.append(group)
    return " & ".join(groups) if widened and groups else None


def fuzzy_tsquery_for(
    query: str, *, synonyms: SynonymTable, vocabulary: PinyinVocabulary
) -> str | None:
    """A tsquery for what the user probably meant, or None when nothing in the query can be
    corrected or relaxed: the spellings with corrected characters (:data:`CHARACTER_CONFUSIONS`),
    pinyin words replaced by near indexed terms (:class:`PinyinVocabulary`) and the query with one
    word left out (:func:`relaxed_tsquery_for`), OR-ed.

    Only for a second pass when the exact query (:func:`tsquery_for`) found little: the caller
    ranks every fuzzy-only hit below every exact one.
    """
    text = query[:MAX_QUERY_LENGTH]
    alternatives: list[str] = []
    fuzzy = _fuzzy_query(text, synonyms, vocabulary)
    if fuzzy is not None:
        alternatives.append(fuzzy)
    for variant in _character_variants(text):
        variant_query = _fuzzy_query(variant, synonyms, vocabulary) or tsquery_for(
            variant, synonyms=synonyms
        )
        if variant_query is not None:
            alternatives.append(variant_query)
    relaxed = relaxed_tsquery_for(text, synonyms=synonyms)
    if relaxed is not None:
        alternatives.append(relaxed)
    unique = list(dict.fromkeys(alternatives))
    if not unique:
        return None
    return " | ".join(f"({alternative})" for alternative in unique)
