"""Figures per department and month, as the catalogue's and intake's statistics give them: the
months of a period, a figure with its numerator and denominator (so a reader can check it), and
the CSV table a manager opens in Excel.

A value is None when its denominator is 0, never a made-up 0 or 100 %.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Final

from fastapi import Response

from wangban.auth import AUDITOR, Identity
from wangban.errors import ValidationFailed

MONTH: Final = re.compile(r"^((?:19|2\d)\d{2})-(0[1-9]|1[0-2])$")
"""``YYYY-MM``, 1900 to 2999 (year 0 is no date, and 9999-12 has no month after it)."""

MAX_MONTHS: Final = 120
"""Ten years: a longer period is a mistake, and would scan everything."""

_FORMULA: Final = re.compile(r"^[=+\-@\t\r]")


class InvalidPeriod(ValidationFailed):
    type_slug = "invalid-statistics-period"
    title = "统计期间有误"


@dataclass(frozen=True)
class Figure:
    numerator: int
    denominator: int
    value: float | None
    """numerator ÷ denominator; None when the denominator is 0."""

    @classmethod
    def of(cls, numerator: int, denominator: int) -> Figure:
        return cls(numerator, denominator, numerator / denominator if denominator else None)


def scope_of(member: Identity, department: str | None) -> tuple[str | None, str | None]:
    """(department, region) whose figures ``member`` reads: an auditor, the department asked
    for (all when None) in every region; anyone else, their own department and region, whatever
    they asked."""
    if member.has_any_role(AUDITOR):
        return department, None
    return member.department or "-", member.region or "-"


def first_days(start_month: str, end_month: str) -> list[date]:
    """The first day of every month from ``start_month`` to ``end_month`` (``YYYY-MM``,
    inclusive); a malformed, backwards or over-long period is refused."""
    first, last = MONTH.match(start_month), MONTH.match(end_month)
    if first is None or last is None:
        raise InvalidPeriod("统计月份应写作“年-月”，例如 2026-01")
    start = date(int(first[1]), int(first[2]), 1)
    end = date(int(last[1]), int(last[2]), 1)
    if end < start:
        raise InvalidPeriod("统计截止月份不能早于起始月份")
    if (end.year - start.year) * 12 + end.month - start.month >= MAX_MONTHS:
        raise InvalidPeriod("统计期间不能超过十年")
    days, day = [], start
    while day <= end:
        days.append(day)
        day = next_month(day)
    return days


def next_month(day: date) -> date:
    """The first day of the month after ``day``'s."""
    return (day.replace(day=1) + timedelta(days=31)).replace(day=1)


def month_range(start_month: str, end_month: str) -> tuple[date, date]:
    """The first day of ``start_month`` and the last of ``end_month`` (checked as
    :func:`first_days` checks them)."""
    days = first_days(start_month, end_month)
    return days[0], next_month(days[-1]) - timedelta(days=1)


def months_of(start: date, end: date) -> list[str]:
    """``YYYY-MM`` of every month from ``start``'s to ``end``'s."""
    months, day = [], start.replace(day=1)
    while day <= end:
        months.append(f"{day:%Y-%m}")
        day = next_month(day)
    return months


def percentage(value: float | None) -> str:
    return "" if value is None else f"{value * 100:.2f}%"


def text_cell(text: str) -> str:
    """A text cell Excel will not run as a formula (a department's name is typed by staff)."""
    return "'" + text if _FORMULA.match(text) else text


def figures_table(
    *,
    leading: Sequence[str],
    figure_names: Mapping[str, str],
    rows: Iterable[tuple[Sequence[str], Mapping[str, Figure]]],
    value_text: Callable[[str, float | None], str] = lambda _name, value: percentage(value),
) -> str:
    """A CSV table: the ``leading`` columns (each row's text cells), then each figure of
    ``figure_names`` (key → Chinese name) as its numerator, denominator and value."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\r\n")
    header = list(leading)
    for name in figure_names.values():
        header += [f"{name}分子", f"{name}分母", name]
    writer.writerow(header)
    for cells, figures in rows:
        line = [text_cell(cell) for cell in cells]
        for key in figure_names:
            figure = figures[key]
            line += [str(figure.numerator), str(figure.denominator), value_text(key, figure.value)]
        writer.writerow(line)
    return buffer.getvalue()


def csv_attachment(table: str, *, filename: str) -> Response:
    """The table as a download, with a BOM so that Excel opens the Chinese headers as UTF-8."""
    return Response(
        table.encode("utf-8-sig"),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
