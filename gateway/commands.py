"""``wangban staff add USERNAME``: a staff login of the gateway."""

from __future__ import annotations

import argparse
import asyncio
import os

from sqlalchemy.exc import IntegrityError

from wangban.commands import Command, CommandError, command_database
from wangban.settings import Settings


def _configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="staff_command", required=True)
    add = sub.add_parser(
        "add", help="create a staff login; the password is read from WANGBAN_NEW_STAFF_PASSWORD"
    )
    add.add_argument("username")
    add.add_argument("--name", required=True, help="display name")
    add.add_argument("--role", action="append", required=True, dest="roles")
    add.add_argument("--department")
    add.add_argument("--region")


async def _add(settings: Settings, args: argparse.Namespace, password: str) -> str:
    from gateway.accounts import create_staff

    async with command_database(settings) as database, database.sessionmaker() as session:
        async with session.begin():
            staff = await create_staff(
                session,
                username=args.username,
                display_name=args.name,
                password=password,
                roles=args.roles,
                department=args.department,
                region=args.region,
            )
            return staff.subject


def _run(args: argparse.Namespace, settings: Settings) -> int:
    # From the environment, not an argument: arguments end up in shell history and `ps`.
    password = os.environ.get("WANGBAN_NEW_STAFF_PASSWORD", "")
    if not password:
        raise CommandError("set WANGBAN_NEW_STAFF_PASSWORD to the new account's password")
    from wangban.errors import Problem

    try:
        subject = asyncio.run(_add(settings, args, password))
    except Problem as refused:
        raise CommandError(refused.detail or refused.title) from None
    except IntegrityError:
        raise CommandError(f"staff account {args.username!r} already exists") from None
    print(f"created staff account {args.username} ({subject})")
    return 0


STAFF = Command(name="staff", help="staff accounts of the gateway", configure=_configure, run=_run)
