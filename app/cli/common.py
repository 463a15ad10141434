"""Helpers every command module shares: exit codes, the usage error, JSON output, dates, opening the order book.

It imports no command module, so command modules can import it without a cycle.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
from typing import Any

from app.errors import CsosError

log = logging.getLogger("app.cli")

EXIT_OK = 0
EXIT_RULE = 1
EXIT_USAGE = 2


class UsageError(CsosError):
    code = "usage"


def print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, sort_keys=True, default=str))


def open_context(args: argparse.Namespace) -> Any:
    """Open the configured order book (lazily: `check` and `--help` never touch the database)."""
    from app.config import load_config
    from app.logging_setup import setup_logging
    from app.models.database import open_database
    from app.services.orders.local_dates import configured_time_zones
    from app.services.orders.orderbook import OrderBook

    config = load_config(data_dir=args.data_dir, database_url=args.database_url, profile=args.profile)
    setup_logging(config.data_dir)
    db = open_database(config.database_url)
    return config, db, OrderBook(db, actor="cli", time_zones=configured_time_zones(config.settings))


def parse_date(text: str, option: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise UsageError(f"{option}: '{text}' is not a date (use YYYY-MM-DD).", code="usage.date") from None


def add_json_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print JSON")

