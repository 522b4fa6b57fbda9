"""CLI sub-commands a service contributes (``wangban calendar load``, ``wangban staff add`` …).

A service declares each in the ``wangban.commands`` entry-point group, pointing at a
:class:`Command` in its own ``commands.py``; ``wangban/cli.py`` adds them to its parser without
naming the service. A command module imports its service's code lazily, inside ``run``, so
``wangban --help`` stays fast and one service's import failure does not break the others'
commands.
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib.metadata import entry_points

from wangban.db import Database
from wangban.settings import Settings

GROUP = "wangban.commands"


class CommandError(Exception):
    """A CLI command failed for a reason the operator can act on (printed, exit status 2)."""


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    """Adds the command's arguments (and sub-commands) to its parser."""
    run: Callable[[argparse.Namespace, Settings], int]
    """Runs it; returns the exit status. Raises :class:`CommandError` for the operator."""


def service_commands() -> list[Command]:
    """The commands every installed service declares, in name order."""
    commands = []
    for ep in sorted(entry_points(group=GROUP), key=lambda e: e.name):
        command = ep.load()
        if not isinstance(command, Command) or command.name != ep.name:
            raise TypeError(f"entry point {ep.name!r} of {GROUP!r} is not a Command named so")
        commands.append(command)
    return commands


@asynccontextmanager
async def command_database(settings: Settings) -> AsyncIterator[Database]:
    """The configured database, or the embedded one in the data directory (left running if it
    already was, e.g. under ``wangban up``)."""
    embedded = None
    if not settings.database_url:
        from wangban.embedded import EmbeddedPostgres

        embedded = EmbeddedPostgres(settings.data_dir / "postgres")
        was_running = embedded.is_running()
        settings = settings.model_copy(update={"database_url": embedded.start()})
        if was_running:
            embedded = None
    database = Database.from_settings(settings)
    try:
        yield database
    finally:
        await database.dispose()
        if embedded is not None:
            embedded.stop()
