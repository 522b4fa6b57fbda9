"""The working-day calendar on real dates: 2026's schedule, the fallback, overrides, files."""

from __future__ import annotations

import json
import logging
import random
from calendar import isleap
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path

import chinese_calendar
import pytest

from wangban.calendar import (
    Deadline,
    WorkingDayCalendar,
    calendar_from_rows,
    load_notice_file,
)
from wangban.settings import Environment, Settings

# A year chinese_calendar will not cover for a long while, with its fixed holidays on weekdays:
# 1 Jan is a Tuesday, 1–2 May Wednesday–Thursday, 1–3 October Tuesday–Thursday.
UNCOVERED = 2030


def covered_years() -> range:
    return range(min(chinese_calendar.holidays).year, max(chinese_calendar.holidays).year + 1)


@pytest.fixture(scope="module")
def calendar() -> WorkingDayCalendar:
    return WorkingDayCalendar()


def days(first: date, last: date) -> list[date]:
    return [first + timedelta(n) for n in range((last - first).days + 1)]


def naive_between(cal: WorkingDayCalendar, start: date, end: date) -> int:
    return sum(cal.is_working_day(d) for d in days(start + timedelta(1), end)) if end > start else 0


def naive_add(start: date, n: int, working: Callable[[date], bool]) -> date:
    """The n-th day after ``start`` for which ``working`` holds, counted one day at a time."""
    day = start
    while n:
        day += timedelta(1)
        n -= working(day)
    return day


# --- the bundled calendar ---------------------------------------------------------------------


def test_agrees_with_chinese_calendar_on_every_covered_day(calendar: WorkingDayCalendar) -> None:
    years = covered_years()
    for day in days(date(years.start, 1, 1), date(years.stop - 1, 12, 31)):
        assert calendar.is_working_day(day) is chinese_calendar.is_workday(day), day


def test_national_day_2026(calendar: WorkingDayCalendar) -> None:
    # The 2026 schedule (as chinese_calendar 1.11 has it): 国庆 is 1–7 October, not 1–8 as in
    # 2025, when 中秋 fell inside it; 中秋 2026 is 25–27 September on its own. The make-up
    # working days are Sunday 20 September and Saturday 10 October.
    for day in days(date(2026, 10, 1), date(2026, 10, 7)):
        assert not calendar.is_working_day(day), day
    assert calendar.is_working_day(date(2026, 10, 8))  # Thursday, back at work
    assert not calendar.is_working_day(date(2026, 9, 25))  # 中秋, a Friday
    saturday = date(2026, 10, 10)
    assert saturday.weekday() == 5
    assert chinese_calendar.get_holiday_detail(saturday) == (False, "National Day")
    assert calendar.is_working_day(saturday)
    assert calendar.is_working_day(date(2026, 9, 20))  # a 调休 Sunday


def test_national_day_2025(calendar: WorkingDayCalendar) -> None:
    # 2025: 中秋 (Monday 6 October) falls inside 国庆, so 1–8 October are off together, with
    # make-up working days on Sunday 28 September and Saturday 11 October. Read from
    # chinese_calendar's own details rather than assumed.
    for day in days(date(2025, 10, 1), date(2025, 10, 8)):
        assert chinese_calendar.get_holiday_detail(day)[0] is True, day
        assert not calendar.is_working_day(day), day
    assert chinese_calendar.get_holiday_detail(date(2025, 10, 6)) == (True, "Mid-autumn Festival")
    for makeup, weekday in ((date(2025, 9, 28), 6), (date(2025, 10, 11), 5)):
        assert makeup.weekday() == weekday
        assert chinese_calendar.get_holiday_detail(makeup) == (False, "National Day")
        assert calendar.is_working_day(makeup), makeup
        assert not calendar.is_provisional(makeup)
    assert not calendar.is_working_day(date(2025, 9, 27))  # the Saturday before stays off
    assert not calendar.is_working_day(date(2025, 10, 12))  # and so does the Sunday after
    assert calendar.is_working_day(date(2025, 10, 9))  # Thursday, back at work


def test_deadline_across_national_day_2025(calendar: WorkingDayCalendar) -> None:
    accepted = date(2025, 9, 26)  # Friday
    # Sunday 28 Sep (1), 29–30 Sep (3), 9–10 Oct (5), Saturday 11 Oct (6), Monday 13 Oct (7).
    expected = {
        1: date(2025, 9, 28),
        3: date(2025, 9, 30),
        4: date(2025, 10, 9),
        6: date(2025, 10, 11),
        7: date(2025, 10, 13),
    }
    for n, due in expected.items():
        assert calendar.deadline(accepted, n) == Deadline(due=due, provisional=False), n
        assert calendar.add_working_days(accepted, n) == due
        assert naive_add(accepted, n, chinese_calendar.is_workday) == due
    assert calendar.working_days_between(accepted, date(2025, 10, 13)) == 7
    # Counting Monday to Friday only would be wrong both ways: too late before the holiday
    # (the Sunday counts), too early after it (1–8 October do not).
    assert naive_add(accepted, 7, lambda d: d.weekday() < 5) == date(2025, 10, 7)
    # Accepted during the holiday: the 8 days are skipped, the 调休 Saturday counts.
    assert calendar.deadline(date(2025, 10, 3), 3) == Deadline(date(2025, 10, 11), False)


def test_spring_festival_2026(calendar: WorkingDayCalendar) -> None:
    for day in days(date(2026, 2, 15), date(2026, 2, 23)):
        assert not calendar.is_working_day(day), day
    assert calendar.is_working_day(date(2026, 2, 14))  # 调休 Saturday before
    assert calendar.is_working_day(date(2026, 2, 28))  # 调休 Saturday after
    # Accepted on the Friday before: the next working day is that 调休 Saturday.
    assert calendar.add_working_days(date(2026, 2, 13), 1) == date(2026, 2, 14)
    # Accepted on the Saturday: the holiday is skipped whole.
    assert calendar.add_working_days(date(2026, 2, 14), 1) == date(2026, 2, 24)
    assert calendar.working_days_between(date(2026, 2, 13), date(2026, 2, 24)) == 2


def test_friday_plus_one_is_monday(calendar: WorkingDayCalendar) -> None:
    friday = date(2026, 3, 6)
    assert friday.weekday() == 4
    assert calendar.add_working_days(friday, 1) == date(2026, 3, 9)
    assert calendar.add_working_days(friday, 5) == date(2026, 3, 13)
    assert calendar.working_days_between(friday, date(2026, 3, 9)) == 1
    assert calendar.working_days_between(friday, date(2026, 3, 8)) == 0


def test_deadline_across_national_day(calendar: WorkingDayCalendar) -> None:
    accepted = date(2026, 9, 30)  # Wednesday, the last working day before 国庆
    # 8 Oct (Thu), 9 Oct (Fri), 10 Oct (调休 Saturday).
    assert calendar.add_working_days(accepted, 3) == date(2026, 10, 10)
    assert calendar.add_working_days(accepted, 4) == date(2026, 10, 12)
    assert calendar.working_days_between(accepted, date(2026, 10, 10)) == 3
    # 承诺 20 working days from mid-September crosses 中秋 and 国庆 together: 16–18 Sep (3),
    # Sunday 20 (4), 21–24 (8), 28–30 (11), 8–9 Oct (13), Saturday 10 (14), 12–16 (19), 19 (20).
    accepted = date(2026, 9, 15)
    due = calendar.add_working_days(accepted, 20)
    assert due == date(2026, 10, 19)
    assert naive_between(calendar, accepted, due) == 20


def test_accepted_during_a_holiday(calendar: WorkingDayCalendar) -> None:
    assert calendar.add_working_days(date(2026, 10, 3), 1) == date(2026, 10, 8)
    assert calendar.next_working_day(date(2026, 10, 3)) == date(2026, 10, 8)
    assert calendar.next_working_day(date(2026, 10, 8)) == date(2026, 10, 8)
    assert calendar.next_working_day(date(2026, 3, 7)) == date(2026, 3, 9)  # a Saturday


def test_zero_days_is_the_start_itself(calendar: WorkingDayCalendar) -> None:
    assert calendar.add_working_days(date(2026, 3, 6), 0) == date(2026, 3, 6)
    # 即办: even on a day off, nothing moves.
    assert calendar.add_working_days(date(2026, 10, 1), 0) == date(2026, 10, 1)


def test_negative_days_are_refused(calendar: WorkingDayCalendar) -> None:
    with pytest.raises(ValueError, match="0 or more"):
        calendar.add_working_days(date(2026, 3, 6), -1)


def test_between_is_zero_when_end_is_not_after_start(calendar: WorkingDayCalendar) -> None:
    assert calendar.working_days_between(date(2026, 3, 9), date(2026, 3, 9)) == 0
    assert calendar.working_days_between(date(2026, 3, 9), date(2026, 3, 2)) == 0


def test_counts_across_years_and_into_the_fallback(calendar: WorkingDayCalendar) -> None:
    # 2026-12-31 is a Thursday; 1 January 2027 is 元旦 even without a published schedule.
    assert calendar.add_working_days(date(2026, 12, 31), 1) == date(2027, 1, 4)
    start, end = date(2019, 6, 1), date(2031, 3, 1)
    assert calendar.working_days_between(start, end) == naive_between(calendar, start, end)


def test_add_and_between_agree(calendar: WorkingDayCalendar) -> None:
    rng = random.Random(20261001)
    first = date(2003, 1, 1).toordinal()
    last = date(2032, 12, 31).toordinal()
    for _ in range(3000):
        start = date.fromordinal(rng.randint(first, last))
        n = rng.choice((rng.randint(0, 10), rng.randint(0, 60), rng.randint(0, 800)))
        due = calendar.add_working_days(start, n)
        assert calendar.working_days_between(start, due) == n, (start, n)
        if n:
            assert due > start
            assert calendar.is_working_day(due)
            # The deadline is the first day that reaches n, not any later one.
            assert calendar.working_days_between(start, due - timedelta(1)) == n - 1
    for _ in range(300):
        start = date.fromordinal(rng.randint(first, last))
        end = start + timedelta(rng.randint(-5, 90))
        assert calendar.working_days_between(start, end) == naive_between(calendar, start, end)


# --- overrides ----------------------------------------------------------------------------------


def test_overrides_win_over_the_bundled_calendar() -> None:
    holiday_made_workday = date(2026, 10, 5)
    workday_made_holiday = date(2026, 3, 9)  # Monday, e.g. a local closure
    calendar = WorkingDayCalendar(
        overrides={holiday_made_workday: True, workday_made_holiday: False}
    )
    assert calendar.is_working_day(holiday_made_workday)
    assert not calendar.is_working_day(workday_made_holiday)
    assert calendar.add_working_days(date(2026, 9, 30), 1) == holiday_made_workday
    assert calendar.add_working_days(date(2026, 3, 6), 1) == date(2026, 3, 10)
    assert calendar.working_days_between(date(2026, 3, 6), date(2026, 3, 10)) == 1
    # Overrides are per calendar: the default one is untouched.
    assert not WorkingDayCalendar().is_working_day(holiday_made_workday)


def test_overrides_must_be_dates_to_bools() -> None:
    with pytest.raises(TypeError):
        WorkingDayCalendar(overrides={date(2026, 10, 5): "workday"})  # type: ignore[dict-item]


# --- years chinese_calendar does not cover ------------------------------------------------


def test_uncovered_year_falls_back_to_fixed_holidays() -> None:
    assert UNCOVERED not in covered_years(), "pick a later year for UNCOVERED"
    calendar = WorkingDayCalendar()
    for day in (
        date(2030, 1, 1),
        date(2030, 5, 1),
        date(2030, 5, 2),
        *days(date(2030, 10, 1), date(2030, 10, 3)),
    ):
        assert day.weekday() < 5
        assert not calendar.is_working_day(day), day
    assert calendar.is_working_day(date(2030, 5, 3))  # Friday
    assert calendar.is_working_day(date(2030, 10, 4))  # Friday
    assert not calendar.is_working_day(date(2030, 10, 5))  # Saturday
    # Nothing is known about lunar holidays: 春节 2030 falls on Sunday 3 February, and the
    # Monday after it is a working day until the overrides file says otherwise.
    assert calendar.is_working_day(date(2030, 2, 4))
    assert calendar.add_working_days(date(2030, 9, 30), 1) == date(2030, 10, 4)


def test_uncovered_year_honours_overrides() -> None:
    # As if the State Council had published 2030: 春节 2–8 February, 调休 Saturday 9 February.
    overrides = {day: False for day in days(date(2030, 2, 2), date(2030, 2, 8))}
    overrides[date(2030, 2, 9)] = True
    overrides[date(2030, 10, 4)] = False  # 国庆 extended over the Friday
    calendar = WorkingDayCalendar(overrides=overrides)
    assert not calendar.is_working_day(date(2030, 2, 4))
    assert calendar.is_working_day(date(2030, 2, 9))
    assert calendar.add_working_days(date(2030, 2, 1), 1) == date(2030, 2, 9)
    assert calendar.add_working_days(date(2030, 2, 1), 2) == date(2030, 2, 11)
    assert calendar.add_working_days(date(2030, 9, 30), 1) == date(2030, 10, 7)
    # The fixed holidays stay unless an override says otherwise.
    assert not calendar.is_working_day(date(2030, 5, 1))


def test_uncovered_year_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    calendar = WorkingDayCalendar()
    with caplog.at_level(logging.WARNING, logger="wangban.calendar"):
        calendar.is_working_day(date(2030, 3, 1))
        calendar.add_working_days(date(2030, 3, 1), 30)
        calendar.working_days_between(date(2030, 1, 1), date(2031, 6, 1))
        calendar.is_working_day(date(2026, 3, 2))
    warned = [r for r in caplog.records if r.name == "wangban.calendar"]
    assert [r.levelno for r in warned] == [logging.WARNING, logging.WARNING]
    assert "2030" in warned[0].getMessage()
    assert "2031" in warned[1].getMessage()


def test_coverage_is_asked_of_chinese_calendar(monkeypatch: pytest.MonkeyPatch) -> None:
    # Not a hard-coded last year: if the library stops at 2025, 2026 falls back.
    real = chinese_calendar.is_workday

    def stops_at_2025(day: date) -> bool:
        if day.year > 2025:
            raise NotImplementedError(f"no available data for year {day.year}")
        return bool(real(day))

    monkeypatch.setattr(chinese_calendar, "is_workday", stops_at_2025)
    calendar = WorkingDayCalendar()
    assert calendar.is_working_day(date(2026, 10, 5))  # a Monday: only 1–3 Oct are known
    assert not calendar.is_working_day(date(2026, 10, 10))  # the 调休 Saturday is unknown
    assert not calendar.is_working_day(date(2025, 10, 8))  # 2025 still from the library


# --- files and settings ---------------------------------------------------------------------------


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "calendar.json"
    path.write_text(text, encoding="utf-8")
    return path


def test_from_file(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        json.dumps({"2026-10-05": "workday", "2026-03-09": "holiday", "2030-02-04": "holiday"}),
    )
    calendar = WorkingDayCalendar.from_file(path)
    assert calendar.is_working_day(date(2026, 10, 5))
    assert not calendar.is_working_day(date(2026, 3, 9))
    assert not calendar.is_working_day(date(2030, 2, 4))
    assert calendar.is_working_day(date(2026, 3, 10))
    assert WorkingDayCalendar.from_file(write(tmp_path, "{}")).is_working_day(date(2026, 3, 9))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"2026-10-05": "workday",', "not valid JSON"),
        ('["2026-10-05"]', "expected a JSON object"),
        ('{"2026/10/05": "workday"}', "'2026/10/05' is not a date in the form YYYY-MM-DD"),
        ('{"20261005": "workday"}', "'20261005' is not a date in the form YYYY-MM-DD"),
        ('{"2026-02-30": "holiday"}', "'2026-02-30' is not a valid date"),
        ('{"2026-10-05": "Workday"}', "'2026-10-05' has 'Workday'"),
        ('{"2026-10-05": true}', "'2026-10-05' has True"),
        ('{"2026-10-05": "workday", "2026-10-05": "holiday"}', "'2026-10-05' is given more"),
    ],
)
def test_bad_files_name_the_entry(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ValueError, match=r"calendar\.json") as raised:
        WorkingDayCalendar.from_file(path)
    assert message in str(raised.value)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"years": [2027], "days": {}}, "year 2027: declared complete but no day of it is given"),
        ({"years": [2027], "days": {"2026-12-31": "holiday"}}, "year 2027: declared complete"),
        ({"years": [2027]}, 'a notice needs "days"'),
        ({"years": 2027, "days": {"2027-01-01": "holiday"}}, '"years" is a list of years, got int'),
        ({"years": ["2027"], "days": {"2027-01-01": "holiday"}}, "\"years\" holds '2027'"),
        ({"years": [True], "days": {"2027-01-01": "holiday"}}, '"years" holds True'),
        ({"years": [2027.0], "days": {"2027-01-01": "holiday"}}, '"years" holds 2027.0'),
        ({"years": [2027, 2027], "days": {"2027-01-01": "holiday"}}, "2027 is given more than"),
        ({"years": [0], "days": {"2027-01-01": "holiday"}}, "year 0: not a year from 1 to 9999"),
        ({"year": [2027], "days": {"2027-01-01": "holiday"}}, "unknown key 'year'"),
        ({"days": {"2027-01-01": "holiday"}, "2027-02-08": "holiday"}, "unknown key '2027-02-08'"),
        ({"days": ["2027-01-01"]}, '"days" is an object'),
        ({"days": {"2027-02-30": "holiday"}}, "'2027-02-30' is not a valid date"),
        ({"days": {"2027-02-08": "off"}}, "'2027-02-08' has 'off'"),
        ({"source": 2027, "days": {"2027-01-01": "holiday"}}, '"source" is free text'),
    ],
)
def test_bad_notices_name_the_entry(tmp_path: Path, document: object, message: str) -> None:
    path = write(tmp_path, json.dumps(document))
    with pytest.raises(ValueError, match=r"calendar\.json") as raised:
        load_notice_file(path)
    assert message in str(raised.value)


def test_a_day_given_twice_in_a_notice(tmp_path: Path) -> None:
    text = '{"years": [2027], "days": {"2027-02-08": "holiday", "2027-02-08": "holiday"}}'
    with pytest.raises(ValueError, match="'2027-02-08' is given more than once"):
        WorkingDayCalendar.from_file(write(tmp_path, text))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        WorkingDayCalendar.from_file(tmp_path / "absent.json")


def test_from_settings(tmp_path: Path) -> None:
    plain = WorkingDayCalendar.from_settings(Settings(env=Environment.TEST))
    assert plain.is_working_day(date(2026, 3, 9))
    path = write(tmp_path, '{"2026-03-09": "holiday"}')
    configured = WorkingDayCalendar.from_settings(
        Settings(env=Environment.TEST, calendar_overrides_path=path)
    )
    assert not configured.is_working_day(date(2026, 3, 9))


# --- covered years, provisional deadlines, notices and database rows ---------------------------

# 2027 has no published schedule in chinese_calendar 1.11. The fixed-date fallback for it:
# 元旦 is Friday 1 January, 劳动节 Saturday–Sunday 1–2 May, 国庆 Friday–Sunday 1–3 October.
FIXED_2027 = frozenset(
    {
        date(2027, 1, 1),
        date(2027, 5, 1),
        date(2027, 5, 2),
        *days(date(2027, 10, 1), date(2027, 10, 3)),
    }
)

# TEST DATA, NOT THE OFFICIAL 2027 SCHEDULE: the State Council had not published it when this
# was written. Only plausible: 春节 2027 (正月初一) is Saturday 6 February by the lunar calendar,
# 中秋 Wednesday 15 September, and the make-up days are invented.
NOTICE_2027: dict[str, object] = {
    "source": "TEST DATA - not the State Council's 2027 notice",
    "years": [2027],
    "days": {
        "2027-01-01": "holiday",  # 元旦, a Friday
        "2027-01-31": "workday",  # 调休 Sunday before 春节
        **{d.isoformat(): "holiday" for d in days(date(2027, 2, 6), date(2027, 2, 12))},
        "2027-02-20": "workday",  # 调休 Saturday after 春节
        "2027-09-15": "holiday",  # 中秋, a Wednesday
        **{d.isoformat(): "holiday" for d in days(date(2027, 10, 1), date(2027, 10, 7))},
        "2027-10-09": "workday",  # 调休 Saturday after 国庆
    },
}


def notice_days() -> dict[date, bool]:
    listed = NOTICE_2027["days"]
    assert isinstance(listed, dict)
    return {date.fromisoformat(key): value == "workday" for key, value in listed.items()}


def fallback_2027(day: date) -> bool:
    return day.weekday() < 5 and day not in FIXED_2027


def notice_2027(day: date) -> bool:
    return notice_days().get(day, fallback_2027(day))


def assert_2027_unpublished() -> None:
    assert 2027 not in covered_years(), (
        "chinese_calendar now has 2027: move these tests to its first uncovered year"
    )


def test_deadline_into_2027_without_overrides_is_provisional() -> None:
    assert_2027_unpublished()
    calendar = WorkingDayCalendar()
    assert calendar.is_provisional(date(2027, 1, 1))
    assert not calendar.is_provisional(date(2026, 12, 31))
    assert not calendar.is_provisional(date(2025, 10, 1))
    for day in days(date(2027, 1, 1), date(2027, 12, 31)):
        assert calendar.is_working_day(day) is fallback_2027(day), day

    def fallback(day: date) -> bool:
        return chinese_calendar.is_workday(day) if day.year < 2027 else fallback_2027(day)

    # Monday–Thursday 28–31 December (4), 元旦 off, 4–8 January (9), Monday 11 January (10).
    start = date(2026, 12, 25)
    assert calendar.deadline(start, 10) == Deadline(due=date(2027, 1, 11), provisional=True)
    for n in (1, 4, 5, 30, 200, 252):
        deadline = calendar.deadline(start, n)
        assert deadline.due == naive_add(start, n, fallback) == calendar.add_working_days(start, n)
        # Four working days end on 31 December: nothing of 2027 was counted.
        assert deadline.provisional is (n > 4), n
    # 春节 2027 is unknown: the Monday after 初一 counts, which the notice will likely undo.
    assert calendar.deadline(date(2027, 2, 5), 1) == Deadline(date(2027, 2, 8), True)
    # Accepted on 31 December, the first counted day is in 2027; with 0 days none is counted.
    assert calendar.deadline(date(2026, 12, 31), 1) == Deadline(date(2027, 1, 4), True)
    assert calendar.deadline(date(2026, 12, 31), 0) == Deadline(date(2026, 12, 31), False)
    assert calendar.deadline(date(2027, 3, 1), 0) == Deadline(date(2027, 3, 1), False)
    assert calendar.deadline(date(2026, 12, 24), 5) == Deadline(date(2026, 12, 31), False)


def test_deadline_into_2027_with_a_complete_notice(tmp_path: Path) -> None:
    assert_2027_unpublished()
    calendar = WorkingDayCalendar.from_file(write(tmp_path, json.dumps(NOTICE_2027)))
    assert not calendar.is_provisional(date(2027, 6, 1))
    assert calendar.is_provisional(date(2028, 1, 1))
    for day in days(date(2027, 1, 1), date(2027, 12, 31)):
        assert calendar.is_working_day(day) is notice_2027(day), day
    # 春节 6–12 February is honoured: Friday 5 + 1 is Monday 15, + 6 the 调休 Saturday.
    assert calendar.deadline(date(2027, 2, 5), 1) == Deadline(date(2027, 2, 15), False)
    assert calendar.deadline(date(2027, 2, 5), 5) == Deadline(date(2027, 2, 19), False)
    assert calendar.deadline(date(2027, 2, 5), 6) == Deadline(date(2027, 2, 20), False)
    assert calendar.deadline(date(2027, 1, 29), 1) == Deadline(date(2027, 1, 31), False)
    assert calendar.deadline(date(2027, 9, 30), 2) == Deadline(date(2027, 10, 9), False)
    # From 2026 into 2027: every counted day is known now.
    assert calendar.deadline(date(2026, 12, 25), 10) == Deadline(date(2027, 1, 11), False)
    # Into 2028, which nobody has published: Friday 31 Dec, Monday 3 and Tuesday 4 January.
    assert calendar.deadline(date(2027, 12, 30), 3) == Deadline(date(2028, 1, 4), True)
    assert calendar.deadline(date(2027, 12, 30), 1) == Deadline(date(2027, 12, 31), False)

    def known(day: date) -> bool:
        return chinese_calendar.is_workday(day) if day.year < 2027 else notice_2027(day)

    rng = random.Random(2027)
    for _ in range(300):
        start = date(2026, 11, 1) + timedelta(rng.randint(0, 400))
        n = rng.randint(0, 40)
        deadline = calendar.deadline(start, n)
        if deadline.due.year < 2028:
            assert deadline == Deadline(naive_add(start, n, known), False), (start, n)


def test_complete_years_in_code() -> None:
    assert_2027_unpublished()
    calendar = WorkingDayCalendar(overrides=notice_days(), complete_years=frozenset({2027}))
    assert not calendar.is_provisional(date(2027, 2, 8))
    assert not calendar.is_working_day(date(2027, 2, 8))
    assert calendar.deadline(date(2027, 2, 5), 1) == Deadline(date(2027, 2, 15), False)
    # A year chinese_calendar knows may be declared as well; it changes nothing.
    both = WorkingDayCalendar(
        overrides={date(2026, 3, 9): False, **notice_days()}, complete_years=[2026, 2027]
    )
    assert not both.is_provisional(date(2026, 3, 9))
    assert not both.is_working_day(date(2026, 3, 9))


def test_overrides_alone_leave_the_year_provisional(tmp_path: Path) -> None:
    assert_2027_unpublished()
    listed = NOTICE_2027["days"]
    assert isinstance(listed, dict)
    flat = WorkingDayCalendar.from_file(write(tmp_path, json.dumps(listed)))
    undeclared = WorkingDayCalendar.from_file(write(tmp_path, json.dumps({"days": listed})))
    in_code = WorkingDayCalendar(overrides=notice_days())
    for calendar in (flat, undeclared, in_code):
        # The days are honoured, but nobody said the year's schedule is all there.
        assert calendar.is_provisional(date(2027, 2, 8))
        assert not calendar.is_working_day(date(2027, 2, 8))
        assert calendar.deadline(date(2027, 2, 5), 1) == Deadline(date(2027, 2, 15), True)


def test_complete_years_are_checked() -> None:
    with pytest.raises(ValueError, match="complete year 2027: declared complete but no day"):
        WorkingDayCalendar(complete_years={2027})
    with pytest.raises(ValueError, match="complete year 2027: declared complete but no day"):
        WorkingDayCalendar(overrides={date(2026, 3, 9): False}, complete_years={2027})
    with pytest.raises(ValueError, match="not a year from 1 to 9999"):
        WorkingDayCalendar(overrides=notice_days(), complete_years={0})
    with pytest.raises(TypeError, match="complete_years"):
        WorkingDayCalendar(overrides=notice_days(), complete_years={"2027"})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="complete_years"):
        WorkingDayCalendar(overrides=notice_days(), complete_years={True})
    with pytest.raises(TypeError, match="overrides map dates to bool"):
        WorkingDayCalendar(overrides={datetime(2027, 2, 8, 16): False})


def test_load_notice_file(tmp_path: Path) -> None:
    overrides, complete_years = load_notice_file(write(tmp_path, json.dumps(NOTICE_2027)))
    assert overrides == notice_days()
    assert complete_years == frozenset({2027})
    flat, none = load_notice_file(write(tmp_path, '{"2027-02-08": "holiday"}'))
    assert flat == {date(2027, 2, 8): False}
    assert none == frozenset()
    assert load_notice_file(write(tmp_path, "{}")) == ({}, frozenset())
    # Days of other years may ride along in a notice (here a local closure in 2026).
    mixed = {"years": [2027], "days": {"2026-03-09": "holiday", "2027-02-08": "holiday"}}
    overrides, complete_years = load_notice_file(write(tmp_path, json.dumps(mixed)))
    assert overrides == {date(2026, 3, 9): False, date(2027, 2, 8): False}
    assert complete_years == frozenset({2027})


def test_calendar_from_rows_matches_the_file(tmp_path: Path) -> None:
    # As a service reads an override table: (day, is working day) rows, and the years whose
    # notice was loaded in full.
    rows = sorted({date(2026, 3, 9): False, **notice_days()}.items())
    from_db = calendar_from_rows(rows, complete_years=[2027])
    document = {
        "years": [2027],
        "days": {day.isoformat(): "workday" if working else "holiday" for day, working in rows},
    }
    path = write(tmp_path, json.dumps(document))
    assert load_notice_file(path) == (dict(rows), frozenset({2027}))
    from_file = WorkingDayCalendar.from_file(path)
    for day in days(date(2026, 1, 1), date(2028, 12, 31)):
        assert from_db.is_working_day(day) is from_file.is_working_day(day), day
        assert from_db.is_provisional(day) is from_file.is_provisional(day), day
    for start in days(date(2026, 12, 1), date(2027, 12, 31)):
        for n in (0, 1, 5, 20, 200):
            assert from_db.deadline(start, n) == from_file.deadline(start, n), (start, n)
    # A generator is as good as a list; no complete year leaves everything provisional.
    lazy = calendar_from_rows(((d, w) for d, w in rows), complete_years=())
    assert lazy.is_provisional(date(2027, 2, 8))
    assert not lazy.is_working_day(date(2027, 2, 8))


def test_calendar_from_rows_refuses_bad_rows() -> None:
    with pytest.raises(ValueError, match="2027-02-08 is given more than once"):
        calendar_from_rows(
            [(date(2027, 2, 8), False), (date(2027, 2, 8), False)], complete_years=[2027]
        )
    with pytest.raises(TypeError, match="overrides map dates to bool"):
        calendar_from_rows([(date(2027, 2, 8), 0)], complete_years=[])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="complete year 2028"):
        calendar_from_rows([(date(2027, 2, 8), False)], complete_years=[2028])


def test_no_year_from_1900_to_2100_raises() -> None:
    calendar = WorkingDayCalendar()
    bundled = covered_years()
    for year in range(1900, 2101):
        assert calendar.is_provisional(date(year, 6, 1)) is (year not in bundled), year
        for start in (date(year, 1, 1), date(year, 2, 28), date(year, 12, 31)):
            for n in (0, 1, 10, 300):
                deadline = calendar.deadline(start, n)
                assert calendar.working_days_between(start, deadline.due) == n, (start, n)
        if isleap(year):
            leap_day = date(year, 2, 29)
            assert calendar.is_working_day(leap_day) is (
                chinese_calendar.is_workday(leap_day) if year in bundled else leap_day.weekday() < 5
            )
            # No holiday falls in early March, bundled or not.
            assert calendar.deadline(leap_day, 1).due == naive_add(
                leap_day, 1, lambda d: d.weekday() < 5
            ), year
    span = calendar.working_days_between(date(1900, 1, 1), date(2100, 12, 31))
    assert span == naive_between(calendar, date(1900, 1, 1), date(2100, 12, 31))
