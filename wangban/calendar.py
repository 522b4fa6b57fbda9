"""Working days: the calendar behind 容缺 deadlines, rectification due dates and 办结时限.

Why our own calendar rather than calling ``chinese_calendar`` directly:

- ``chinese_calendar`` bundles the State Council's holiday and 调休 schedule (make-up working
  Saturdays and Sundays) only for the years it was released with, and raises
  ``NotImplementedError`` for any other year. A deadline must never fail because the year
  turned over before we upgraded the package, so for those years we fall back to Monday–Friday
  minus the statutory holidays that fall on fixed Gregorian dates, and say so in the log.
- The State Council publishes next year's schedule each November or December, and local
  governments occasionally close or open on other days. Operators load such days as overrides
  that win over everything else, without waiting for a release: from a JSON file
  (``WANGBAN_CALENDAR_OVERRIDES_PATH``, see :func:`load_notice_file`) or from a database table
  (:func:`calendar_from_rows`).

For years ``chinese_calendar`` does not cover, the fallback knows only 元旦 (1 January),
劳动节 (1–2 May under the rules in force since 2025; 1–3 May for years before 2004, under the
1999 rules) and 国庆节 (1–3 October). The lunar holidays (春节 with
除夕, 清明节, 端午节, 中秋节), the 调休 make-up working days and any 补休 for a fixed holiday
that falls on a weekend cannot be computed and MUST come from the overrides; until they
do, a deadline in those weeks comes out too early. Note that the next year's schedule may also
move days at the end of a covered year (31 December has been part of 元旦 before).

Covered years and provisional deadlines: a year is *covered* when ``chinese_calendar`` knows
it, or when the overrides declare its official schedule loaded in full (``complete_years``:
the ``"years"`` of a notice file, or the years a service passes to :func:`calendar_from_rows`).
A declared year still starts from the fallback (weekdays minus the fixed holidays) with the
overrides on top, so the loaded notice must list every 放假 and 上班 day it announces.
Overrides for a year that is not declared complete (a flat file, a few local closures) are
honoured but leave it uncovered. :meth:`WorkingDayCalendar.deadline` says whether any day it
counted lies in an uncovered year: such a deadline is *provisional*, to be recomputed once the
notice is loaded. Nothing here raises for lack of data, whatever the year (only a deadline
beyond year 9999 does).

Counting convention (自受理之日起 N 个工作日): the start day never counts, whether or not it
is a working day. ``add_working_days(start, n)`` is the n-th working day strictly after
``start``, so an application accepted on a Friday with 1 working day is due the next Monday,
and one accepted during a holiday is due N working days after the holiday. ``n == 0`` is 即办
and returns ``start`` itself. ``working_days_between(start, end)`` counts the working days in
``(start, end]``, so ``working_days_between(s, add_working_days(s, n)) == n``.

Each calendar computes a year once (a flag per day, a running count and the list of working
days) and answers every question from those tables: a lookup is an index, a count over any
span is a subtraction per year boundary, and a deadline is an index into a list.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import threading
from array import array
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import MAXYEAR, date, datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Final

import chinese_calendar

if TYPE_CHECKING:
    from wangban.settings import Settings

__all__ = ["Deadline", "WorkingDayCalendar", "calendar_from_rows", "load_notice_file"]

log = logging.getLogger(__name__)

HOLIDAY: Final = "holiday"
WORKDAY: Final = "workday"
# The keys of the notice form of a calendar file (see load_notice_file).
_NOTICE_KEYS: Final = frozenset({"days", "years", "source"})
# date.fromisoformat also takes "20261001" and "2026-W40-4"; an overrides file is edited by
# hand, so only the one spelling everybody reads the same way is accepted.
_ISO_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


def _fixed_holidays(year: int) -> tuple[date, ...]:
    """Statutory holidays on fixed Gregorian dates (全国年节及纪念日放假办法).

    Only what the rules themselves fix: the schedule that moves them off weekends and adds
    调休 is published per year and belongs in the overrides file.
    """
    may_days: tuple[int, ...]
    if year >= 2025:
        # The 2024 revision (in force from 2025) gave 劳动节 a second day.
        may_days = (1, 2)
    elif year >= 2008:
        may_days = (1,)
    else:
        # 1999–2007: the three-day 劳动节 "golden week". Earlier rules differ again, but no
        # application is that old.
        may_days = (1, 2, 3)
    return (
        date(year, 1, 1),
        *(date(year, 5, day) for day in may_days),
        date(year, 10, 1),
        date(year, 10, 2),
        date(year, 10, 3),
    )


def _bundled_covers(year: int) -> bool:
    """Whether chinese_calendar knows this year's schedule.

    Asked of the library rather than hard-coded, so upgrading the package extends coverage
    with no change here.
    """
    try:
        chinese_calendar.is_workday(date(year, 1, 1))
    except NotImplementedError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class _Year:
    first: int
    """Ordinal of 1 January."""
    working: bytes
    """1 per working day, indexed by day of year from 0."""
    rank: array[int]
    """rank[i]: working days from 1 January up to and including day i."""
    days: array[int]
    """Ordinals of the working days, ascending."""
    covered: bool
    """chinese_calendar knows the year, or the overrides declare its schedule complete."""

    def rank_of(self, day: date) -> int:
        return self.rank[day.toordinal() - self.first]


@dataclass(frozen=True, slots=True)
class Deadline:
    """A deadline and whether it rests on a guessed schedule.

    ``provisional``: some working day counted towards ``due`` lies in a year that is not
    covered (neither chinese_calendar nor a loaded notice knows its holidays), so ``due`` may
    move once that year's schedule is loaded. Record it and recompute then.
    """

    due: date
    provisional: bool


class WorkingDayCalendar:
    """China's working days: chinese_calendar, a fixed-holiday fallback, overrides on top.

    Build one per process (``from_settings`` at start-up) and share it: each calendar caches
    the years it has computed and logs the fallback warning once per year.
    """

    def __init__(
        self,
        *,
        overrides: Mapping[date, bool] | None = None,
        complete_years: Iterable[int] = (),
    ) -> None:
        """``overrides``: day → True (working day) or False (day off); wins over everything.

        ``complete_years``: years whose official schedule the overrides hold in full, so that
        deadlines in them are not provisional. Each must have at least one override (a
        declared year with none is a loading mistake, not a year without holidays).
        """
        by_year: dict[int, dict[int, bool]] = {}
        for day, working in (overrides or {}).items():
            # A string such as "holiday" is truthy; refuse it rather than read it as a workday.
            # A datetime is a date too, but one from a timestamp column may be another day in
            # China than its UTC date says.
            if (
                not isinstance(day, date)
                or isinstance(day, datetime)
                or not isinstance(working, bool)
            ):
                raise TypeError(
                    f"overrides map dates to bool, got {day!r}: {working!r}",
                )
            by_year.setdefault(day.year, {})[day.toordinal()] = working
        complete: set[int] = set()
        for year_number in complete_years:
            if not isinstance(year_number, int) or isinstance(year_number, bool):
                raise TypeError(f"complete_years holds years as int, got {year_number!r}")
            problem = _complete_year_problem(year_number, by_year)
            if problem:
                raise ValueError(f"complete year {year_number}: {problem}")
            complete.add(year_number)
        self._overrides = by_year
        self._complete_years = frozenset(complete)
        self._years: dict[int, _Year] = {}
        # Years are built on first use; the lock keeps two threads from both building (and
        # both warning about) the same year. Reads of an already built year take no lock.
        self._lock = threading.Lock()

    # --- construction ---------------------------------------------------------------------

    @classmethod
    def from_file(cls, path: Path) -> WorkingDayCalendar:
        """A calendar with the overrides and complete years in ``path`` (see
        :func:`load_notice_file`, whose ``ValueError`` and ``FileNotFoundError`` it raises)."""
        overrides, complete_years = load_notice_file(path)
        return cls(overrides=overrides, complete_years=complete_years)

    @classmethod
    def from_settings(cls, settings: Settings) -> WorkingDayCalendar:
        """The calendar ``settings.calendar_overrides_path`` describes (no overrides if unset);
        one per file and process, so its per-year tables and warnings are not repeated."""
        return _calendar_for(settings.calendar_overrides_path)

    # --- questions --------------------------------------------------------------------------

    def is_working_day(self, day: date) -> bool:
        year = self._year(day.year)
        return bool(year.working[day.toordinal() - year.first])

    def next_working_day(self, day: date) -> date:
        """``day`` if it is a working day, else the first working day after it."""
        return day if self.is_working_day(day) else self.add_working_days(day, 1)

    def add_working_days(self, start: date, days: int) -> date:
        """The deadline ``days`` working days after ``start`` (``start`` itself never counts).

        ``days == 0`` returns ``start`` (即办件). Negative ``days`` raise ``ValueError``.
        """
        if days < 0:
            raise ValueError(f"days must be 0 or more, got {days}")
        if days == 0:
            return start
        year_number = start.year
        year = self._year(year_number)
        # The wanted day is the target-th working day of the year being looked at.
        target = year.rank_of(start) + days
        while target > len(year.days):
            target -= len(year.days)
            year_number += 1
            if year_number > MAXYEAR:
                raise OverflowError(f"{days} working days after {start} is beyond year {MAXYEAR}")
            year = self._year(year_number)
        return date.fromordinal(year.days[target - 1])

    def deadline(self, start: date, days: int) -> Deadline:
        """:meth:`add_working_days`, and whether the answer is provisional: whether any day
        counted (after ``start`` up to and including the due date) lies in an uncovered year.

        ``days == 0`` counts no day, so it is never provisional.
        """
        due = self.add_working_days(start, days)
        if days == 0:
            return Deadline(due=due, provisional=False)
        first_counted = start + timedelta(days=1)
        provisional = any(
            not self._year(year_number).covered
            for year_number in range(first_counted.year, due.year + 1)
        )
        return Deadline(due=due, provisional=provisional)

    def is_provisional(self, day: date) -> bool:
        """Whether ``day``'s year is uncovered: its working days are the fallback's guess plus
        whatever overrides there are, not a schedule known in full."""
        return not self._year(day.year).covered

    def working_days_between(self, start: date, end: date) -> int:
        """Working days after ``start`` up to and including ``end``; 0 if ``end <= start``."""
        if end <= start:
            return 0
        count = self._year(end.year).rank_of(end) - self._year(start.year).rank_of(start)
        for year_number in range(start.year, end.year):
            count += len(self._year(year_number).days)
        return count

    # --- years ----------------------------------------------------------------------------------

    def _year(self, year_number: int) -> _Year:
        year = self._years.get(year_number)
        if year is None:
            with self._lock:
                year = self._years.get(year_number)
                if year is None:
                    year = self._build(year_number)
                    self._years[year_number] = year
        return year

    def _build(self, year_number: int) -> _Year:
        first = date(year_number, 1, 1).toordinal()
        length = date(year_number, 12, 31).toordinal() - first + 1
        overrides = self._overrides.get(year_number, {})
        bundled = _bundled_covers(year_number)
        complete = year_number in self._complete_years
        if bundled:
            # The library's own rule (is_workday), read from its public tables: asking
            # is_workday day by day re-validates the year against all its data on each call.
            workdays = chinese_calendar.workdays
            holidays = chinese_calendar.holidays

            def working(day: date) -> bool:
                return day in workdays or (day.weekday() < 5 and day not in holidays)

        else:
            if complete:
                log.info(
                    "chinese_calendar has no holiday schedule for %d: using the loaded notice "
                    "(%d entries) over Monday–Friday without 元旦, 劳动节 and 国庆",
                    year_number,
                    len(overrides),
                    extra={"fields": {"year": year_number, "overrides": len(overrides)}},
                )
            else:
                log.warning(
                    "chinese_calendar has no holiday schedule for %d: using Monday–Friday "
                    "without 元旦, 劳动节 and 国庆; 春节, 清明, 端午, 中秋 and 调休 come only "
                    "from the calendar overrides (%d entries for that year); deadlines counting "
                    "days of %d are provisional",
                    year_number,
                    len(overrides),
                    year_number,
                    extra={"fields": {"year": year_number, "overrides": len(overrides)}},
                )
            fixed = set(_fixed_holidays(year_number))

            def working(day: date) -> bool:
                return day.weekday() < 5 and day not in fixed

        flags = bytearray(length)
        rank = array("l", bytes(length * array("l").itemsize))
        days = array("l")
        count = 0
        for index in range(length):
            ordinal = first + index
            is_working = overrides.get(ordinal)
            if is_working is None:
                is_working = working(date.fromordinal(ordinal))
            if is_working:
                flags[index] = 1
                count += 1
                days.append(ordinal)
            rank[index] = count
        return _Year(
            first=first,
            working=bytes(flags),
            rank=rank,
            days=days,
            covered=bundled or complete,
        )


CHINA_TZ = timezone(timedelta(hours=8), "CST")
"""China Standard Time: UTC+8 all year (no daylight saving since 1991)."""


def china_date(moment: datetime) -> date:
    """The calendar date in China of an aware ``moment``: deadlines and "on time" are counted
    in China's days, and between 00:00 and 08:00 there the UTC date is still yesterday's."""
    if moment.tzinfo is None:
        raise ValueError("an aware datetime is needed to know the date in China")
    return moment.astimezone(CHINA_TZ).date()


@functools.lru_cache(maxsize=8)
def _calendar_for(path: Path | None) -> WorkingDayCalendar:
    return WorkingDayCalendar() if path is None else WorkingDayCalendar.from_file(path)


def calendar_from_rows(
    rows: Iterable[tuple[date, bool]], *, complete_years: Iterable[int]
) -> WorkingDayCalendar:
    """A calendar from an override table: ``rows`` of (day, is working day), as a service
    reads them from the database, and the years whose official notice the table holds in full.

    Raises ``ValueError`` for a day given twice (even with the same value: a loading mistake
    either way) or a complete year with no row, ``TypeError`` for a row that is not a date and
    a bool.
    """
    overrides: dict[date, bool] = {}
    for day, working in rows:
        if day in overrides:
            raise ValueError(f"calendar rows: {day.isoformat()} is given more than once")
        overrides[day] = working
    return WorkingDayCalendar(overrides=overrides, complete_years=complete_years)


def load_notice_file(path: Path) -> tuple[dict[date, bool], frozenset[int]]:
    """The overrides (day → is working day) and complete years in a calendar file.

    Two shapes are accepted. The notice form::

        {"source": "国务院办公厅关于2027年部分节假日安排的通知",
         "years": [2027],
         "days": {"2027-01-01": "holiday", "2027-02-20": "workday", ...}}

    declares the ``"years"`` complete: ``"days"`` holds their whole official schedule (and may
    hold days of other years too, such as local exceptions). ``"years"`` and ``"source"`` (free
    text for people: which notice, which revision) are optional. The flat form
    ``{"YYYY-MM-DD": "holiday" | "workday"}`` is the ``"days"`` object alone and declares no
    year complete.

    Raises ``ValueError`` naming the file and the bad entry (malformed JSON, a key that is not
    a YYYY-MM-DD date, a value other than "holiday" or "workday", a day or year given twice, an
    unknown key, a year that is not a whole number from 1 to 9999, a complete year with no day
    in ``"days"``). A missing file raises ``FileNotFoundError``.
    """
    text = path.read_text(encoding="utf-8")

    def refuse_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
        # json.loads keeps the last of two equal keys silently; in a hand-edited schedule a
        # repeated day is a mistake whichever value was meant.
        seen: dict[str, object] = {}
        for key, value in pairs:
            if key in seen:
                raise ValueError(f"{path}: {key!r} is given more than once")
            seen[key] = value
        return seen

    try:
        raw = json.loads(text, object_pairs_hook=refuse_duplicates)
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"{path}: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
        ) from exc
    if not isinstance(raw, dict):
        raise ValueError(
            f'{path}: expected a JSON object {{"YYYY-MM-DD": "holiday" | "workday"}} or '
            f'{{"years": [...], "days": {{...}}}}, got {type(raw).__name__}'
        )
    if _NOTICE_KEYS.isdisjoint(raw):
        return _parse_days(path, raw), frozenset()

    unknown = sorted(set(raw) - _NOTICE_KEYS)
    if unknown:
        raise ValueError(
            f'{path}: unknown key {unknown[0]!r}; a notice has "days" and optionally "years" '
            'and "source"'
        )
    source = raw.get("source")
    if source is not None and not isinstance(source, str):
        raise ValueError(f'{path}: "source" is free text, got {source!r}')
    if "days" not in raw:
        raise ValueError(f'{path}: a notice needs "days"')
    days = raw["days"]
    if not isinstance(days, dict):
        raise ValueError(
            f'{path}: "days" is an object {{"YYYY-MM-DD": "holiday" | "workday"}}, '
            f"got {type(days).__name__}"
        )
    overrides = _parse_days(path, days)

    years = raw.get("years", [])
    if not isinstance(years, list):
        raise ValueError(f'{path}: "years" is a list of years, got {type(years).__name__}')
    by_year: dict[int, dict[int, bool]] = {}
    for day, working in overrides.items():
        by_year.setdefault(day.year, {})[day.toordinal()] = working
    complete: set[int] = set()
    for year_number in years:
        # JSON true is a Python bool, which is an int; 2027.0 is not a year either.
        if not isinstance(year_number, int) or isinstance(year_number, bool):
            raise ValueError(f'{path}: "years" holds {year_number!r}, not a year')
        if year_number in complete:
            raise ValueError(f'{path}: year {year_number} is given more than once in "years"')
        problem = _complete_year_problem(year_number, by_year)
        if problem:
            raise ValueError(f"{path}: year {year_number}: {problem}")
        complete.add(year_number)
    return overrides, frozenset(complete)


def _parse_days(path: Path, raw: Mapping[str, object]) -> dict[date, bool]:
    overrides: dict[date, bool] = {}
    for key, value in raw.items():
        if not _ISO_DAY.fullmatch(key):
            raise ValueError(f"{path}: {key!r} is not a date in the form YYYY-MM-DD")
        try:
            day = date.fromisoformat(key)
        except ValueError as exc:
            raise ValueError(f"{path}: {key!r} is not a valid date ({exc})") from exc
        if value == HOLIDAY:
            overrides[day] = False
        elif value == WORKDAY:
            overrides[day] = True
        else:
            raise ValueError(f'{path}: {key!r} has {value!r}; expected "{HOLIDAY}" or "{WORKDAY}"')
    return overrides


def _complete_year_problem(year_number: int, overrides: Mapping[int, Mapping[int, bool]]) -> str:
    """Why ``year_number`` cannot be declared complete given ``overrides`` (by year), or ''."""
    if not 1 <= year_number <= MAXYEAR:
        return f"not a year from 1 to {MAXYEAR}"
    if not overrides.get(year_number):
        # Every notice lists 春节 at least; declaring a year with no day would silently turn
        # the fallback's guess into an unflagged schedule.
        return "declared complete but no day of it is given"
    return ""
