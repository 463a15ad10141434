"""`csos-desk demo`: the whole life of an order in the training sandbox, headless (or the order book summary)."""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path
from typing import Any

from app import __version__
from app.cli.common import EXIT_OK, UsageError, open_context


def cmd_demo(args: argparse.Namespace) -> int:
    """The whole life of an order in the training sandbox; with --summary only the order book summary."""
    if args.summary:
        return _order_book_summary(args)
    import os

    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # the PDF and screenshots render without a display
    from app.demo import run_demo

    if args.out:
        out = Path(args.out)
    else:  # beside the profiles, never inside them: the demo has an order book and a sandbox of its own
        from app.config import default_data_root

        root = Path(args.data_dir or os.environ.get("CSOS_DATA_DIR") or default_data_root()).expanduser()
        out = root / "demo-runs" / f"{dt.datetime.now():%Y%m%d-%H%M%S}"
    try:
        run_demo(out, screenshots=args.screenshots)
    except FileExistsError as exc:
        raise UsageError(str(exc), code="usage.out_not_empty") from None
    return EXIT_OK


def _order_book_summary(args: argparse.Namespace) -> int:
    config, db, book = open_context(args)
    summary = book.summary()
    banner = "TRAINING — practice data, not real orders" if config.is_training else "PRODUCTION"
    print(f"CSOS Desk {__version__}  [{banner}]")
    print(f"Order book: {db.url}")
    print(f"  registrations {summary.registrations}, suppliers {summary.suppliers}, products {summary.products}, "
          f"orders {summary.total}")
    for status, count in sorted(summary.by_status.items()):
        print(f"    {status:<20} {count}")
    return EXIT_OK



def register(commands: Any, groups: dict[str, Any]) -> None:
    p = commands.add_parser("demo", help="the whole life of an order in the training sandbox, headless")
    p.add_argument("--out", help="new folder for the signed orders, records and summary.json")
    p.add_argument("--screenshots", action="store_true", help="also save a PNG of each screen")
    p.add_argument("--summary", action="store_true", help="only print the order book summary")
    p.set_defaults(handler=cmd_demo)

