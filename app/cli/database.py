"""`csos-desk db init|upgrade|status|grants`: set up and look after the order book's database (issue 10/10).

Without --url the configured order book is used (--database-url, CSOS_DATABASE_URL or the settings). Keep passwords
off the command line where others can see them: PostgreSQL's own PGPASSWORD or ~/.pgpass work with an address that
names no password.
"""

from __future__ import annotations

import argparse
from typing import Any

from app.cli.common import EXIT_OK, EXIT_RULE, EXIT_USAGE, add_json_flag, print_json


def _url(args: argparse.Namespace) -> str:
    if args.url:
        return args.url
    from app.config import load_config

    config = load_config(data_dir=args.data_dir, database_url=args.database_url, profile=args.profile)
    return config.database_url


def _print_status(status: Any, *, as_json: bool) -> None:
    if as_json:
        print_json(status.to_json())
        return
    version = f" ({status.server_version})" if status.server_version else ""
    print(f"Database: {status.url}{version}")
    if status.revision or status.state != "unavailable":
        print(f"Schema:   {status.revision or 'none'} (this program: {status.head})")
    print(f"State:    {status.state}: {status.message}")


def _exit_for(status: Any) -> int:
    if status.state == "ready":
        return EXIT_OK
    return EXIT_USAGE if status.state == "unavailable" else EXIT_RULE


def cmd_db_status(args: argparse.Namespace) -> int:
    from app.services import database_admin

    status = database_admin.database_status(_url(args))
    _print_status(status, as_json=args.json)
    return _exit_for(status)


def cmd_db_init(args: argparse.Namespace) -> int:
    from app.services import database_admin

    status = database_admin.init_database(_url(args))
    _print_status(status, as_json=args.json)
    return _exit_for(status)


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from app.services import database_admin

    status = database_admin.upgrade_database(_url(args))
    _print_status(status, as_json=args.json)
    return _exit_for(status)


def cmd_db_grants(args: argparse.Namespace) -> int:
    from sqlalchemy.engine import make_url

    from app.services import database_admin

    database = args.database
    if not database:
        database = make_url(database_admin.check_url(_url(args))).database or ""
    for statement in database_admin.app_role_grants(args.role, database):
        print(statement)
    return EXIT_OK


def register(commands: Any, groups: dict[str, Any]) -> None:
    db = commands.add_parser(
        "db", help="set up, check and upgrade the order book's database (e.g. a shared PostgreSQL server)",
    ).add_subparsers(dest="action", metavar="ACTION", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--url", help="database address, e.g. postgresql://csos_owner@server/csos "
                                     "(default: the configured order book)")

    p = db.add_parser("status", help="connect and say what is there (changes nothing); exit 0 ready, 1 something "
                                     "to do, 2 cannot connect")
    common(p)
    add_json_flag(p)
    p.set_defaults(handler=cmd_db_status)
    p = db.add_parser("init", help="set up the order book in an empty database")
    common(p)
    add_json_flag(p)
    p.set_defaults(handler=cmd_db_init)
    p = db.add_parser("upgrade", help="apply schema changes of a newer CSOS Desk (back up first)")
    common(p)
    add_json_flag(p)
    p.set_defaults(handler=cmd_db_upgrade)
    p = db.add_parser("grants", help="print the SQL that gives the workstations' role least privilege")
    common(p)
    p.add_argument("--role", required=True, help="the role the workstations connect as, e.g. csos_app")
    p.add_argument("--database", help="database name (default: the one in the address)")
    p.set_defaults(handler=cmd_db_grants)
