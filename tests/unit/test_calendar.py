"""The working-day calendar on real dates: 2026's schedule, the fallback, overrides, files."""

from __future__ import annotations

import json
import logging
import random
from datetime import date, timedelta
from pathlib import Path

import chinese_calendar
import pytest

from wangban.calendar import WorkingDayCalendar
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
