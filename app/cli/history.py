"""`csos-desk history`: controlled substances ordered and received per month; `history limit`: the monthly limit
above which signing warns (issue 21)."""

from __future__ import annotations

import argparse
import csv
import sys
from typing import Any

from app.cli.common import EXIT_OK, UsageError, add_json_flag, open_context, print_json


def cmd_history(args: argparse.Namespace) -> int:
    from app.errors import CsosError
    from app.services.orders.history import (
        CSV_HEADER,
        UNIT_WORDS,
        HistoryFilter,
        monthly_history,
        pharmacy_zone,
        substance_label,
    )

    if args.json and args.csv:
        raise UsageError("Choose --json or --csv, not both.", code="usage.history_format")
    config, db, _book = open_context(args)
    substances = (args.substance.strip().lower(),) if args.substance else ()
    try:
        zone = pharmacy_zone(config.settings, args.registration)
        report = monthly_history(db, HistoryFilter(registration=args.registration, supplier=args.supplier,
                                                   schedule=args.schedule, substances=substances),
                                 months=args.months, zone=zone)
    except CsosError as exc:
        raise UsageError(exc.message, code=exc.code) from None
    if args.json:
        print_json({"months": [m.strftime("%Y-%m") for m in report.months], "time_zone": report.zone_name,
                    "rows": [row.to_json() for row in report.rows]})
    elif args.csv:
        writer = csv.writer(sys.stdout)
        writer.writerow(CSV_HEADER)
        writer.writerows(report.csv_rows())
    elif not report.rows:
        print(f"No controlled-substance orders in the last {args.months} months"
              + (" for these choices." if any((args.registration, args.supplier, args.schedule, substances))
                 else "."))
    else:
        print(f"{'month':<8} {'registration':<12} {'substance':<22} {'supplier':<24} {'ordered':>14} "
              f"{'received':>14}")
        for row in report.rows:
            unit = UNIT_WORDS.get(row.unit, row.unit)
            print(f"{row.month:%Y-%m}  {row.registration:<12} {substance_label(row.substance)[:22]:<22} "
                  f"{row.supplier[:24]:<24} {f'{row.ordered_units:,} {unit}':>14} "
                  f"{f'{row.fulfilled_units:,} {unit}':>14}")
    return EXIT_OK


def cmd_history_limit(args: argparse.Namespace) -> int:
    from app.services.orders.history import monthly_limits, substance_label, with_monthly_limit

    config, _db, book = open_context(args)
    dea = book.registration(args.registration).dea_number  # a registration of this order book, or NotFound
    amount = "" if args.remove else args.units
    if amount is None:
        raise UsageError("Give --units N (tablets, mL or g a month) or --remove.", code="usage.history_limit")
    config.settings["monthly_limits"] = with_monthly_limit(config.settings, registration=dea,
                                                           substance=args.substance, limit=amount)
    config.save_settings()
    limit = monthly_limits(config.settings).get((dea, args.substance.strip().lower()))
    name = substance_label(args.substance.strip().lower())
    print(f"{name} for {dea}: " + (f"signing warns above {limit:,} a month." if limit is not None else
                                   "no limit; signing warns above twice your usual month."))
    return EXIT_OK


def register(commands: Any, groups: dict[str, Any]) -> None:
    p = commands.add_parser("history", help="controlled substances ordered and received per month")
    p.add_argument("--registration", help="DEA number (default: every registration)")
    p.add_argument("--substance", help="generic name, e.g. oxycodone (every product of it counts)")
    p.add_argument("--schedule", help="II, IIN, III, IIIN, IV or V")
    p.add_argument("--supplier", help="supplier name")
    p.add_argument("--months", type=int, default=24, help="months back from this one (default 24)")
    p.add_argument("--csv", action="store_true", help="print CSV")
    add_json_flag(p)
    p.set_defaults(handler=cmd_history)
    actions = p.add_subparsers(dest="history_action", metavar="ACTION")
    limit = actions.add_parser("limit", help="the monthly quantity above which signing warns")
    limit.add_argument("--registration", required=True, help="DEA number")
    limit.add_argument("--substance", required=True, help="generic name, e.g. oxycodone")
    limit.add_argument("--units", help="tablets, mL or g a month")
    limit.add_argument("--remove", action="store_true", help="back to the default: twice your usual month")
    limit.set_defaults(handler=cmd_history_limit)
