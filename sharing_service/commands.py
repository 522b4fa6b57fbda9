"""``wangban audit verify``: check the data-sharing lookup audit log's MAC chain."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from wangban.commands import Command, command_database
from wangban.settings import Settings


def _configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="audit_command", required=True)
    sub.add_parser(
        "verify",
        help="check the MAC chain and the latest signed checkpoint; exit status 1 if broken",
    )


async def _verify(settings: Settings) -> Any:
    """The chain under the key and against the latest signed checkpoint in the object store
    (outside the database)."""
    from sharing_service.audit import AuditKeys, verify_chain
    from wangban.storage import object_store_from_settings

    store = object_store_from_settings(settings, caller="sharing")
    try:
        async with command_database(settings) as database, database.sessionmaker() as session:
            return await verify_chain(session, keys=AuditKeys.from_settings(settings), store=store)
    finally:
        await store.close()


def _run(args: argparse.Namespace, settings: Settings) -> int:
    report = asyncio.run(_verify(settings))
    if report.ok:
        checkpoint = (
            f"latest signed checkpoint at record {report.checkpoint_seq}"
            if report.checkpoint_seq is not None
            else "no signed checkpoint yet"
        )
        print(f"audit chain intact: {report.records} records; {checkpoint}")
        return 0
    print(f"audit chain BROKEN at record {report.first_bad_seq}:", file=sys.stderr)
    for problem in report.problems:
        print(f"  {problem}", file=sys.stderr)
    return 1


AUDIT = Command(
    name="audit", help="the data-sharing lookup audit log", configure=_configure, run=_run
)
