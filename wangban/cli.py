"""The ``wangban`` command: up, serve, migrate, seed, events (dlq list/replay, docs), openapi
(write the services' snapshots; the gateway's document for the mini-program), db roles, and what
the services add (audit verify …)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from wangban.commands import CommandError, command_database, service_commands
from wangban.db import Database
from wangban.settings import SERVICE_NAMES, ConfigurationError, Settings, get_settings


@asynccontextmanager
async def _database(settings: Settings) -> AsyncIterator[tuple[Database, Settings]]:
    async with command_database(settings) as database:
        yield database, settings


async def migrate_services(settings: Settings, services: Sequence[str]) -> None:
    from wangban.migrations import upgrade_service
    from wangban.services import load_spec

    async with _database(settings) as (database, _):
        for name in services:
            spec = load_spec(name)
            await upgrade_service(database, spec)
            for load in spec.reference_data:
                async with database.sessionmaker() as session, session.begin():
                    await load(session)


async def seed_services(settings: Settings, services: Sequence[str]) -> None:
    """Run each service's seeds, each in its own transaction (seeds are idempotent)."""
    from wangban.services import load_spec

    async with _database(settings) as (database, _):
        for name in services:
            for seed in load_spec(name).seeds:
                async with database.sessionmaker() as session, session.begin():
                    await seed(session)


async def list_dead_letters(
    settings: Settings, services: Sequence[str], *, include_replayed: bool
) -> list[dict[str, Any]]:
    from wangban import deadletter
    from wangban.services import load_spec

    rows: list[dict[str, Any]] = []
    async with _database(settings) as (database, _), database.sessionmaker() as session:
        for name in services:
            outbox = load_spec(name).outbox
            if outbox is None:
                continue  # a service without events (the gateway) has no dead letters
            found = await deadletter.list_dead_letters(
                session, outbox=outbox, include_replayed=include_replayed
            )
            rows.extend({"service": name, **row} for row in found)
    return rows


async def replay_dead_letter(settings: Settings, dead_letter_id: str) -> str:
    """Replay a dead letter of whichever service holds it; returns that service's name."""
    from wangban import deadletter
    from wangban.services import load_spec

    async with _database(settings) as (database, _):
        for name in SERVICE_NAMES:
            outbox = load_spec(name).outbox
            if outbox is None:
                continue
            async with database.sessionmaker() as session, session.begin():
                try:
                    replayed = await deadletter.replay_dead_letter(
                        session, outbox=outbox, dead_letter_id=dead_letter_id
                    )
                except deadletter.DeadLetterError as exc:
                    raise CommandError(str(exc)) from exc
            if replayed:
                return name
    raise CommandError(f"no dead letter with id {dead_letter_id}")


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="wangban", description="Wangban (网办) platform tools")
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="start the whole platform locally")
    up.add_argument("--no-seed", action="store_true", help="do not load demo data")

    serve = sub.add_parser("serve", help="run one service (what a container runs)")
    serve.add_argument("service", choices=SERVICE_NAMES)
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)

    migrate = sub.add_parser("migrate", help="upgrade service schemas to head")
    migrate.add_argument("services", nargs="*", help="default: all")

    seed = sub.add_parser("seed", help="load demo data (idempotent)")
    seed.add_argument("services", nargs="*", help="default: all")

    events = sub.add_parser("events", help="event operations")
    events_sub = events.add_subparsers(dest="events_command", required=True)
    dlq = events_sub.add_parser("dlq", help="dead letters")
    dlq_sub = dlq.add_subparsers(dest="dlq_command", required=True)
    dlq_list = dlq_sub.add_parser("list", help="list dead letters not yet replayed")
    dlq_list.add_argument("--service", action="append", choices=SERVICE_NAMES)
    dlq_list.add_argument("--all", action="store_true", help="include replayed ones")
    dlq_list.add_argument("--json", action="store_true", help="one JSON object per line")
    dlq_replay = dlq_sub.add_parser("replay", help="put a dead letter back on its topic")
    dlq_replay.add_argument("id")
    docs = events_sub.add_parser("docs", help="write docs/asyncapi.yaml and docs/events/*.json")
    docs.add_argument("--check", action="store_true", help="fail if the files are stale")
    docs.add_argument("--out", type=Path, default=Path("docs"))
    openapi = sub.add_parser("openapi", help="the services' committed OpenAPI snapshots")
    openapi_sub = openapi.add_subparsers(dest="openapi_command", required=True)
    snapshots = openapi_sub.add_parser(
        "write", help="write contracts/openapi/<service>.json (what the gateway's document uses)"
    )
    snapshots.add_argument("--check", action="store_true", help="fail if a snapshot is stale")
    snapshots.add_argument("--out", type=Path, default=None)
    gateway_doc = openapi_sub.add_parser(
        "gateway", help="write the gateway's own document (the clients' API contract)"
    )
    gateway_doc.add_argument(
        "--out", type=Path, default=Path("contracts/clients/gateway.json"), help="'-': stdout"
    )
    # What the services add (wangban calendar, staff, audit …), declared by entry point.
    for command in service_commands():
        command.configure(sub.add_parser(command.name, help=command.help))

    db = sub.add_parser("db", help="database administration")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    roles = db_sub.add_parser(
        "roles",
        help="create one role per service (owner + runtime login), hand each its schema, "
        "make the sharing audit log insert-only (docs/operations.md); run after migrate",
    )
    roles.add_argument("services", nargs="*", help="default: all")
    roles.add_argument("--sql", action="store_true", help="print the SQL instead of running it")

    return parser


def _schema_of(service: str) -> str:
    from wangban.services import load_spec

    return load_spec(service).schema


async def _apply_roles(
    settings: Settings, schemas: Sequence[str], passwords: dict[str, str], apply: Any
) -> None:
    async with _database(settings) as (database, _):
        await apply(database, schemas, passwords=passwords)


def _services(names: Sequence[str]) -> list[str]:
    unknown = [n for n in names if n not in SERVICE_NAMES]
    if unknown:
        raise CommandError(f"unknown service(s): {', '.join(unknown)}")
    return list(names) or list(SERVICE_NAMES)


def main(argv: Sequence[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    try:
        settings = get_settings()
    except (ConfigurationError, ValidationError) as exc:
        # Refused settings are an operator's problem to fix, not a crash: say what, exit 2.
        print(f"wangban: invalid configuration: {exc}", file=sys.stderr)
        return 2
    try:
        return _dispatch(args, settings)
    except (CommandError, ConfigurationError) as exc:
        # ConfigurationError: e.g. no database URL and no embedded PostgreSQL installed.
        print(f"wangban: {exc}", file=sys.stderr)
        return 2


def _dispatch(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "up":
        from wangban.launcher import run_up

        return run_up(settings, seed=not args.no_seed)
    if args.command == "serve":
        from wangban.server import serve

        serve(args.service, settings, host=args.host, port=args.port)
        return 0
    if args.command == "migrate":
        services = _services(args.services)
        asyncio.run(migrate_services(settings, services))
        print(f"migrated: {', '.join(services)}")
        return 0
    if args.command == "seed":
        services = _services(args.services)
        asyncio.run(seed_services(settings, services))
        print(f"seeded: {', '.join(services)}")
        return 0
    if args.command == "events" and args.events_command == "dlq":
        if args.dlq_command == "list":
            rows = asyncio.run(
                list_dead_letters(
                    settings, _services(args.service or []), include_replayed=args.all
                )
            )
            _print_dead_letters(rows, as_json=args.json)
            return 0
        service = asyncio.run(replay_dead_letter(settings, args.id))
        print(f"replayed {args.id} through the {service} outbox")
        return 0
    if args.command == "events" and args.events_command == "docs":
        from wangban.asyncapi import write_docs

        stale = write_docs(args.out, check=args.check)
        if args.check and stale:
            print("stale event docs: " + ", ".join(str(p) for p in stale), file=sys.stderr)
            print("run `wangban events docs` and commit the result", file=sys.stderr)
            return 1
        return 0
    if args.command == "openapi" and args.openapi_command == "gateway":
        from wangban.openapi import render, service_document

        text = render(service_document("gateway"))
        if str(args.out) == "-":
            sys.stdout.write(text)
        else:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(text, encoding="utf-8")
        return 0
    if args.command == "openapi":
        from wangban.openapi import DEFAULT_OUT, write_snapshots

        changed = write_snapshots(args.out or DEFAULT_OUT, check=args.check)
        if args.check and changed:
            print("stale OpenAPI snapshots: " + ", ".join(map(str, changed)), file=sys.stderr)
            print("run `wangban openapi write` and commit the result", file=sys.stderr)
            return 1
        return 0
    if args.command == "db":
        from wangban.dbroles import apply_roles, password_variable, role_statements, runtime_role

        services = _services(args.services)
        schemas = [_schema_of(name) for name in services]
        if args.sql:
            print(";\n".join(role_statements(schemas)) + ";")
            return 0
        passwords = {
            schema: os.environ[password_variable(schema)]
            for schema in schemas
            if os.environ.get(password_variable(schema))
        }
        asyncio.run(_apply_roles(settings, schemas, passwords, apply_roles))
        print("roles applied: " + ", ".join(runtime_role(s) for s in schemas))
        return 0
    for command in service_commands():
        if args.command == command.name:
            return command.run(args, settings)
    raise CommandError("unknown command")


def _print_dead_letters(rows: list[dict[str, Any]], *, as_json: bool) -> None:
    if as_json:
        for row in rows:
            print(json.dumps({k: str(v) if v is not None else None for k, v in row.items()}))
        return
    if not rows:
        print("no dead letters")
        return
    for row in rows:
        replayed = f" replayed {row['replayed_at']:%Y-%m-%d %H:%M}" if row["replayed_at"] else ""
        print(
            f"{row['id']}  {row['service']}/{row['consumer']}  {row['event_type']}  "
            f"key={row['key']}  attempts={row['attempts']}  {row['created_at']:%Y-%m-%d %H:%M:%S}"
            f"{replayed}\n    {row['error'][:200]}"
        )


if __name__ == "__main__":  # pragma: no cover
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
