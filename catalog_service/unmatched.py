"""Searches that found nothing: help for the citizen, and a record for the admins.

When a search finds nothing, the answer carries :class:`ZeroResultHelp`: the nearest items and
the hotline to call. The query is also counted (:class:`UnmatchedRecorder`) so catalogue
admins see what citizens could not find and can add a synonym or a keyword.

**Nearest items**, tried in order until one finds something, over the whole catalogue (the
filters are what may have emptied the list, so they are not applied):

1. when filters were set: the query itself without them (the catalogue has it; the filters
   hid it, so nothing is recorded);
2. *any* of the query's parts instead of all of them: its words (with synonyms), each pair of
   adjacent Chinese characters as a prefix (饭店 in 开饭店), each word of letters as a prefix
   and, from four letters on, its first half and a bit (``gongjjin`` → ``gongj``; numbers
   alone are left out), ranked by how much
   of it an item's terms match (name above keywords above the rest);
3. the Chinese characters the query shares with item names (stop characters such as 的, 怎,
   办, 理 left out), most shared first, at least 60 % of them (and two, when it has two): one
   shared character among four (开 in 我想开个小饭馆) is a coincidence, not a suggestion.

Ties go to the shorter name, then the implementing code, so the same query always suggests the
same items.

**What is recorded** (:func:`recordable`): the query, normalised (NFKC, lowercase, whitespace
collapsed), and nothing else: no person, session, address or filter. A query is *never*
recorded when it

* has 6 or more digits in a row, counting digits separated only by spaces, dashes or dots
  (resident ID numbers, mobile and landline phone numbers, bank cards), or anything the logs'
  redaction (:func:`wangban.observability.redact`) would hide, or an ``@`` (an e-mail address);
* is longer than :data:`MAX_RECORDED_LENGTH` characters (a pasted sentence, more likely to
  carry personal details than a search for a service);
* has fewer than two letters, digits or Chinese characters (one character, pure punctuation).

A name (张三) cannot be told from a word by its shape; it is recorded like any query, without
anything that links it to who typed it, and is dropped after :data:`RETENTION_DAYS` days.

**Cost**: counting is in memory (a dict update per zero-result search); each process writes its
counts in one upsert every :data:`FLUSH_INTERVAL_S` seconds and when it stops (a process that
dies loses at most those seconds of counts). The search's read-only session never writes.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from catalog_service import repository, search
from catalog_service.repository import ItemFilters, SearchHit
from wangban.observability import redact
from wangban.settings import Settings

SUGGESTIONS = 5
"""Nearest items offered when nothing matched."""

MAX_RECORDED_LENGTH = 40
"""Longest normalised query that is recorded; a longer one is not recorded at all."""

MAX_PENDING = 2_000
"""Distinct queries a process holds between two writes; beyond that new ones are not counted
(a flood of random queries must not grow the process's memory)."""

FLUSH_INTERVAL_S = 10.0
RETENTION_DAYS = 400
"""Daily counts older than this are deleted: more than a year of trends, not forever."""

MAX_PARTS = 24
"""Most query parts ORed together for the nearest items."""

STOP_CHARS = frozenset("的了吗呢啊吧么怎样哪里我你他她要想在和与及或是去请问如何什办理可以能需个些")
"""Characters of questions and requests (怎么办理, 我想要, 在哪里) rather than of a service:
they match hundreds of names and say nothing about which item is meant."""

_HAN_RUN = re.compile("[\u3007\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f]+")
_ASCII_WORD = re.compile("[a-z0-9]+")
_DIGIT_RUN = re.compile(r"[0-9](?:[\s.\-]*[0-9]){5,}")
"""Six or more digits, allowing the separators people type inside numbers."""


# --- what may be recorded ---------------------------------------------------------------------


def normalise(query: str) -> str:
    """NFKC (full-width to half-width), lowercase, whitespace collapsed to single spaces."""
    return " ".join(unicodedata.normalize("NFKC", query).lower().split())


def recordable(query: str) -> str | None:
    """The form in which ``query`` is recorded, or None when it must not be (see the module's
    docstring for the rule)."""
    text = normalise(query)
    if len(text) > MAX_RECORDED_LENGTH:
        return None
    if sum(1 for char in text if unicodedata.category(char)[0] in "LN") < 2:
        return None
    if _DIGIT_RUN.search(text) or "@" in text or redact(text) != text:
        return None
    return text


@dataclass
class _Tally:
    count: int
    first_seen: datetime
    last_seen: datetime


@dataclass
class UnmatchedRecorder:
    """Counts of recordable zero-result queries per (query, UTC day), held in memory until
    :meth:`flush` writes them. One per process (:data:`RECORDER`): searches add to it without
    touching the database, and the catalog's periodic job writes it."""

    max_pending: int = MAX_PENDING
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    _pending: dict[tuple[str, date], _Tally] = field(default_factory=dict)
    dropped: int = 0
    """Zero-result searches not counted because :attr:`max_pending` queries were waiting."""

    def note(self, query: str) -> bool:
        """Count one zero-result search for ``query``; False when it is not recorded."""
        text = recordable(query)
        if text is None:
            return False
        now = self.clock()
        key = (text, now.date())
        tally = self._pending.get(key)
        if tally is None:
            if len(self._pending) >= self.max_pending:
                self.dropped += 1
                return False
            self._pending[key] = _Tally(1, now, now)
        else:
            tally.count += 1
            tally.last_seen = now
        return True

    def pending(self) -> int:
        return len(self._pending)

    async def flush(self, session: AsyncSession) -> int:
        """Add the counts held so far to the table (in ``session``'s transaction); returns how
        many (query, day) rows were written. Counts taken are gone from memory even if the
        transaction later fails: losing a few seconds of counts beats counting them twice."""
        if not self._pending:
            return 0
        taken, self._pending = self._pending, {}
        await repository.add_unmatched_counts(
            session,
            [
                repository.UnmatchedCount(
                    query=query,
                    day=day,
                    count=tally.count,
                    first_seen=tally.first_seen,
                    last_seen=tally.last_seen,
                )
                for (query, day), tally in sorted(taken.items())
            ],
        )
        return len(taken)


RECORDER = UnmatchedRecorder()
"""This process's counts (like the segmenter, one per process: every app of it adds here)."""


async def flush_recorded(session: AsyncSession, settings: Settings) -> None:
    """The catalog's periodic job: write this process's counts."""
    await RECORDER.flush(session)


async def forget_old(session: AsyncSession, settings: Settings) -> None:
    """The catalog's periodic job: delete daily counts older than :data:`RETENTION_DAYS`."""
    today = datetime.now(UTC).date()
    await repository.delete_unmatched_before(session, day=today - timedelta(days=RETENTION_DAYS))


# --- help for the citizen ---------------------------------------------------------------------


@dataclass(frozen=True)
class Hotline:
    name: str
    phone: str


@dataclass(frozen=True)
class ZeroResultHelp:
    suggestions: list[SearchHit]
    hotlines: list[Hotline]
    recorded: bool
    """Whether the query was counted as one the catalogue cannot answer."""


def hotlines(settings: Settings) -> list[Hotline]:
    """Whom to call: the platform-wide hotline (12345 政务服务便民热线 by default). Items carry no
    department phone number yet; when they do, the searched department's comes first."""
    return [Hotline(name=settings.catalog_hotline_name, phone=settings.catalog_hotline_phone)]


def _relaxed_tsquery(query: str, synonyms: search.SynonymTable) -> str | None:
    """A tsquery matching items that have *any* part of ``query`` (see the module docstring),
    or None when it has no part worth searching for."""
    text = normalise(query)[: search.MAX_QUERY_LENGTH]
    parts: list[str] = []
    for run in _HAN_RUN.findall(text):
        for term in search.terms_of(run):
            # Words of two or more characters from the segmenter (pinyin of them would match
            # homophones), each with its synonyms.
            if _HAN_RUN.fullmatch(term) and len(term) >= 2 and not set(term) <= STOP_CHARS:
                words = search.tsquery_for(term, synonyms=synonyms)
                if words:
                    parts.append(f"({words})")
        for start in range(len(run) - 1):
            pair = run[start : start + 2]
            if not set(pair) <= STOP_CHARS:
                parts.append(f"{pair}:*")
        if len(run) == 1 and run not in STOP_CHARS:
            parts.append(f"{run}:*")
    for word in _ASCII_WORD.findall(text):
        # Pinyin or an abbreviation; bare numbers (a year, a count) say nothing about which
        # item is meant.
        if len(word) >= 2 and not word.isdigit():
            parts.append(f"{word}:*")
            if len(word) >= 4:
                parts.append(f"{word[: len(word) // 2 + 1]}:*")
    unique = list(dict.fromkeys(parts))[:MAX_PARTS]
    return " | ".join(unique) if unique else None


def _shared_characters(query: str) -> list[str]:
    seen = dict.fromkeys(
        char for run in _HAN_RUN.findall(normalise(query)) for char in run if char not in STOP_CHARS
    )
    return list(seen)[:12]


async def zero_result_help(
    session: AsyncSession,
    *,
    query: str | None,
    filters: ItemFilters,
    synonyms: search.SynonymTable,
    settings: Settings,
    recorder: UnmatchedRecorder | None = None,
) -> ZeroResultHelp:
    """What a search that found nothing answers besides its empty list; counts the query in
    ``recorder`` (default: this process's) when the catalogue has nothing for it."""
    lines = hotlines(settings)
    raw = (query or "").strip()
    if not raw:
        return ZeroResultHelp(suggestions=[], hotlines=lines, recorded=False)
    if filters != ItemFilters():
        strict = search.tsquery_for(raw, synonyms=synonyms)
        if strict is not None:
            unfiltered, _ = await repository.search_current(
                session,
                query=repository.SearchQuery(
                    tsquery=strict, phrases=search.exact_phrases(raw, synonyms)
                ),
                filters=ItemFilters(),
                offset=0,
                limit=SUGGESTIONS,
            )
            if unfiltered:
                return ZeroResultHelp(suggestions=unfiltered, hotlines=lines, recorded=False)
    recorded = (recorder or RECORDER).note(raw)
    suggestions: Sequence[SearchHit] = []
    relaxed = _relaxed_tsquery(raw, synonyms)
    if relaxed is not None:
        suggestions = await repository.nearest_by_terms(session, tsquery=relaxed, limit=SUGGESTIONS)
    if not suggestions:
        characters = _shared_characters(raw)
        if characters:
            suggestions = await repository.nearest_by_characters(
                session,
                characters=characters,
                at_least=max(min(2, len(characters)), math.ceil(0.6 * len(characters))),
                limit=SUGGESTIONS,
            )
    return ZeroResultHelp(suggestions=list(suggestions), hotlines=lines, recorded=recorded)


# --- the admins' list -------------------------------------------------------------------------


async def unmatched_page(
    session: AsyncSession, *, since: date, include_handled: bool, offset: int, limit: int
) -> tuple[list[repository.UnmatchedRow], int]:
    return await repository.unmatched_page(
        session, since=since, include_handled=include_handled, offset=offset, limit=limit
    )


async def mark_handled(session: AsyncSession, *, query: str, by: str) -> datetime | None:
    """Mark a recorded query handled by ``by``; None when it was never recorded."""
    if not await repository.unmatched_recorded(session, query=query):
        return None
    return await repository.mark_unmatched_handled(session, query=query, by=by)
