"""``wangban calendar load FILE``: a year's holiday notice into the working-day calendar."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from wangban.commands import Command, CommandError, command_database
from wangban.settings import Settings


def _configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="calendar_command", required=True)
    load = sub.add_parser(
        "load", help="load a year's holiday notice (JSON) into the override table"
    )
    load.add_argument("file", type=Path)


async def _load(settings: Settings, path: Path) -> tuple[int, list[int]]:
    from approval_service.calendar import load_notice

    async with command_database(settings) as database, database.sessionmaker() as session:
        async with session.begin():
            return await load_notice(session, path=path)


def _run(args: argparse.Namespace, settings: Settings) -> int:
    try:
        days, years = asyncio.run(_load(settings, args.file))
    except (OSError, ValueError) as exc:
        raise CommandError(str(exc)) from exc
    complete = ", ".join(map(str, years)) or "none"
    print(f"loaded {days} days; years complete: {complete}")
    return 0


CALENDAR = Command(
    name="calendar",
    help="the working-day calendar approval counts in",
    configure=_configure,
    run=_run,
)
