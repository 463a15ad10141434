"""Command line: `csos-desk …`. Every listing also prints JSON with --json.

Exit codes: 0 done, 1 the thing asked for is not valid/acceptable (a rule failed), 2 usage or I/O problem.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import sys
from pathlib import Path
from typing import Any, Sequence

from app import __version__
from app.errors import CsosError, InvalidValue

log = logging.getLogger(__name__)

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
    from app.services.orderbook import OrderBook

    config = load_config(data_dir=args.data_dir, database_url=args.database_url, profile=args.profile)
    setup_logging(config.data_dir)
    db = open_database(config.database_url)
    return config, db, OrderBook(db, actor="cli")


# ---------------------------------------------------------------------------------------------------------------------
# check


def cmd_check(args: argparse.Namespace) -> int:
    from app.models.values import DeaNumber, Ndc, OrderNumber

    try:
        if args.kind == "dea":
            print(DeaNumber.parse(args.value).value)
        elif args.kind == "ndc":
            ndc = Ndc.parse(args.value)
            print(f"{ndc.display} ({ndc.digits})")
        else:
            print(OrderNumber.parse(args.value).value)
    except InvalidValue as exc:
        print(f"{exc.code}: {exc.message}")
        return EXIT_RULE
    return EXIT_OK


# ---------------------------------------------------------------------------------------------------------------------
# registrations and suppliers


def _registration_json(r: Any) -> dict[str, Any]:
    return {"dea_number": r.dea_number, "name": r.name, "address_lines": r.address_lines, "city": r.city,
            "state": r.state, "postal_code": r.postal_code, "schedules": r.schedules.split(",") if r.schedules else [],
            "expires_on": r.expires_on.isoformat() if r.expires_on else None,
            "business_activity": r.business_activity}


def cmd_registration_add(args: argparse.Namespace) -> int:
    _, db, book = open_context(args)
    expires = parse_date(args.expires, "--expires") if args.expires else None
    registration = book.add_registration(
        dea_number=args.dea, name=args.name, address_lines=args.address or [], city=args.city, state=args.state,
        postal_code=args.zip, schedules=[s for s in (args.schedules or "").split(",") if s.strip()],
        expires_on=expires, business_activity=args.business_activity,
    )
    if args.json:
        print_json(_registration_json(registration))
    else:
        print(f"Added registration {registration.dea_number} ({registration.name}).")
    return EXIT_OK


def cmd_registration_list(args: argparse.Namespace) -> int:
    _, db, book = open_context(args)
    items = [_registration_json(r) for r in book.list_registrations()]
    if args.json:
        print_json(items)
    elif not items:
        print("No registrations yet. Add one with: csos-desk registration add --dea … --name …")
    else:
        for r in items:
            print(f"{r['dea_number']}  {r['name']}, {r['city']} {r['state']}  schedules {','.join(r['schedules']) or '-'}"
                  f"  expires {r['expires_on'] or '?'}")
    return EXIT_OK


def _supplier_json(s: Any) -> dict[str, Any]:
    return {"name": s.name, "dea_number": s.dea_number, "address_lines": s.address_lines, "city": s.city,
            "state": s.state, "postal_code": s.postal_code, "connector": s.connector}


def cmd_supplier_add(args: argparse.Namespace) -> int:
    _, db, book = open_context(args)
    connector: dict[str, Any] = {"kind": args.connector}
    if args.url:
        connector["url"] = args.url
    if args.folder:
        connector["folder"] = args.folder
    supplier = book.add_supplier(name=args.name, dea_number=args.dea, address_lines=args.address or [],
                                 city=args.city, state=args.state, postal_code=args.zip, connector=connector)
    if args.json:
        print_json(_supplier_json(supplier))
    else:
        print(f"Added supplier {supplier.name}.")
    return EXIT_OK


def cmd_supplier_list(args: argparse.Namespace) -> int:
    _, db, book = open_context(args)
    items = [_supplier_json(s) for s in book.list_suppliers()]
    if args.json:
        print_json(items)
    elif not items:
        print("No suppliers yet. Add one with: csos-desk supplier add --name …")
    else:
        for s in items:
            print(f"{s['name']}  DEA {s['dea_number'] or '-'}  {s['city'] or ''} {s['state'] or ''}"
                  f"  ({s['connector'].get('kind', 'manual')})")
    return EXIT_OK


# ---------------------------------------------------------------------------------------------------------------------
# catalog


def cmd_catalog_import(args: argparse.Namespace) -> int:
    from app.services.catalog import import_fda_catalog

    _, db, _book = open_context(args)
    product_txt, package_txt = Path(args.product_txt), Path(args.package_txt)
    for path in (product_txt, package_txt):
        if not path.is_file():
            raise UsageError(f"{path} does not exist or is not a file.", code="usage.file_missing")

    last = [0.0]

    def progress(done: int, total: int) -> None:
        if args.json or not sys.stderr.isatty():
            return
        import time

        now = time.monotonic()
        if now - last[0] > 0.2 or done == total:
            last[0] = now
            print(f"\rImporting… {done:,}/{total:,}", end="", file=sys.stderr, flush=True)

    summary = import_fda_catalog(db, product_txt, package_txt, progress=progress)
    if not args.json and sys.stderr.isatty():
        print(file=sys.stderr)
    data = summary.__dict__ if hasattr(summary, "__dict__") else dict(summary)
    if args.json:
        print_json(data)
    else:
        print("Catalog imported: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in data.items()
                                                 if isinstance(v, int)))
    return EXIT_OK


def cmd_catalog_search(args: argparse.Namespace) -> int:
    from app.services.catalog import search_products

    _, db, _book = open_context(args)
    with db.session() as session:
        items = [{"ndc": p.ndc, "name": p.name, "strength": p.strength, "schedule": p.schedule,
                  "package": f"{p.package_quantity.normalize():f} {p.unit}", "description": p.package_description}
                 for p in search_products(session, args.text, limit=args.limit)]
    if args.json:
        print_json(items)
    else:
        for p in items:
            print(f"{p['ndc'][:5]}-{p['ndc'][5:9]}-{p['ndc'][9:]}  {p['schedule']:>4}  {p['name']} {p['strength']}"
                  f"  ({p['package']})")
        if not items:
            print("No product matches.")
    return EXIT_OK


# ---------------------------------------------------------------------------------------------------------------------
# orders


def _order_json(order: Any) -> dict[str, Any]:
    return {
        "id": order.id,
        "order_number": order.order_number,
        "status": order.status.value,
        "registration": order.registration.dea_number,
        "purchaser_name": order.registration.name,
        "supplier": order.supplier.name,
        "created_at": order.created_at.isoformat(),
        "signed_at": order.signed_at.isoformat() if order.signed_at else None,
        "signer_fingerprint": order.signer_fingerprint,
        "replaces_order_id": order.replaces_order_id,
        "lines": [
            {"line_number": line.line_number, "ndc": line.ndc, "description": line.description,
             "schedule": line.schedule, "packages": line.packages,
             "package_quantity": f"{line.package_quantity.normalize():f}", "unit": line.unit,
             "line_status": line.line_status.value,
             "received": [{"packages": r.packages_received, "date": r.received_on.isoformat()}
                          for r in line.receipts]}
            for line in order.lines
        ],
        "linked_records": [{"kind": r.kind.value, "created_at": r.created_at.isoformat(), "direction": r.direction}
                           for r in order.linked_records],
    }


def cmd_order_new(args: argparse.Namespace) -> int:
    _, db, book = open_context(args)
    order = book.new_order(registration_dea=args.registration, supplier_name=args.supplier,
                           order_number=args.number)
    if args.json:
        print_json(_order_json(order))
    else:
        print(f"Draft order {order.order_number} created for {order.registration.dea_number} → {order.supplier.name}.")
    return EXIT_OK


def cmd_order_add_line(args: argparse.Namespace) -> int:
    _, db, book = open_context(args)
    order = book.find_order(args.order_number, registration_dea=args.registration)
    line = book.add_line(order.id, ndc=args.ndc, packages=args.packages)
    if args.json:
        print_json(_order_json(book.get_order(order.id)))
    else:
        print(f"Line {line.line_number}: {line.packages} × {line.description} "
              f"({line.package_quantity.normalize():f} {line.unit}), schedule {line.schedule}.")
    return EXIT_OK


def cmd_order_list(args: argparse.Namespace) -> int:
    from app.models.states import OrderStatus
    from app.services.orderbook import OrderFilter

    _, db, book = open_context(args)
    statuses = frozenset(OrderStatus(s) for s in (args.status or []))
    supplier_id = book.supplier(args.supplier).id if args.supplier else None
    registration_id = book.registration(args.registration).id if args.registration else None
    order_filter = OrderFilter(statuses=statuses, supplier_id=supplier_id, registration_id=registration_id,
                               text=args.search or "")
    with db.session() as session:
        keys = book.order_ids_page(session, order_filter, limit=args.limit)
        rows = book.order_rows(session, [k.id for k in keys])
        total = book.count_orders(session, order_filter)
    items = [rows[k.id] for k in keys]
    if args.json:
        print_json([{"order_number": r.order_number, "status": r.status.value, "registration": r.registration_dea,
                      "supplier": r.supplier_name, "created_at": r.created_at.isoformat(),
                      "signed_at": r.signed_at.isoformat() if r.signed_at else None, "lines": r.line_count}
                     for r in items])
    else:
        if not items:
            print("No orders match.")
        for r in items:
            print(f"{r.order_number}  {r.status.value:<18} {r.registration_dea}  {r.supplier_name:<24} "
                  f"{r.created_at:%Y-%m-%d %H:%M}  {r.line_count} line(s)")
        if total > len(items):
            print(f"… {total - len(items)} more (use --limit).")
    return EXIT_OK


def cmd_order_show(args: argparse.Namespace) -> int:
    _, db, book = open_context(args)
    order = book.find_order(args.order_number, registration_dea=args.registration)
    data = _order_json(order)
    if args.json:
        print_json(data)
        return EXIT_OK
    print(f"Order {data['order_number']}  ({data['status']})")
    print(f"  Purchaser: {order.registration.name}, DEA {order.registration.dea_number}")
    print(f"  Supplier:  {order.supplier.name}, DEA {order.supplier.dea_number or '(supplier completes)'}")
    print(f"  Created:   {order.created_at:%Y-%m-%d %H:%M} UTC"
          + (f"; signed {order.signed_at:%Y-%m-%d %H:%M} UTC" if order.signed_at else ""))
    for line in data["lines"]:
        ndc = line["ndc"]
        print(f"  {line['line_number']:>3}. {line['packages']} × {line['description']}  NDC {ndc[:5]}-{ndc[5:9]}-"
              f"{ndc[9:]}  {line['package_quantity']} {line['unit']}/package  schedule {line['schedule']}")
    if not data["lines"]:
        print("  (no lines yet: csos-desk order add-line ORDER_NUMBER --ndc NDC --packages N)")
    for record in data["linked_records"]:
        print(f"  linked: {record['kind']} {record['created_at']}")
    return EXIT_OK


# ---------------------------------------------------------------------------------------------------------------------
# demo / summary (headless)


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


def cmd_gui(args: argparse.Namespace) -> int:
    from app.ui.app import run_gui

    return run_gui(data_dir=args.data_dir, database_url=args.database_url, profile=args.profile)


# ---------------------------------------------------------------------------------------------------------------------


def parse_date(text: str, option: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise UsageError(f"{option}: '{text}' is not a date (use YYYY-MM-DD).", code="usage.date") from None


def add_json_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print JSON")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="csos-desk", description="CSOS Desk: controlled-substance ordering.")
    parser.add_argument("--version", action="version", version=f"csos-desk {__version__}")
    parser.add_argument("--data-dir", help="folder for the order book, keys and settings")
    parser.add_argument("--database-url", help="SQLAlchemy URL of the order book (default: SQLite in the data dir)")
    parser.add_argument("--profile", choices=["training", "production"], help="training (default) or production")
    parser.add_argument("--self-test", action="store_true", help="check this installation and exit (= self-test)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = commands.add_parser("check", help="check a DEA number, NDC or order number")
    p.add_argument("kind", choices=["dea", "ndc", "order-number"])
    p.add_argument("value")
    p.set_defaults(handler=cmd_check)

    p = commands.add_parser("demo", help="the whole life of an order in the training sandbox, headless")
    p.add_argument("--out", help="new folder for the signed orders, records and summary.json")
    p.add_argument("--screenshots", action="store_true", help="also save a PNG of each screen")
    p.add_argument("--summary", action="store_true", help="only print the order book summary")
    p.set_defaults(handler=cmd_demo)

    registration = commands.add_parser("registration", help="DEA registrations of this pharmacy").add_subparsers(
        dest="action", metavar="ACTION", required=True)
    p = registration.add_parser("add", help="add a registration")
    p.add_argument("--dea", required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--address", action="append", help="address line (repeat for several)")
    p.add_argument("--city", required=True)
    p.add_argument("--state", required=True)
    p.add_argument("--zip", required=True)
    p.add_argument("--schedules", default="", help="e.g. II,IIN,III,IIIN,IV,V")
    p.add_argument("--expires", help="registration expiry date YYYY-MM-DD")
    p.add_argument("--business-activity", default="RETAIL PHARMACY")
    add_json_flag(p)
    p.set_defaults(handler=cmd_registration_add)
    p = registration.add_parser("list", help="list registrations")
    add_json_flag(p)
    p.set_defaults(handler=cmd_registration_list)

    supplier = commands.add_parser("supplier", help="suppliers").add_subparsers(dest="action", metavar="ACTION",
                                                                                  required=True)
    p = supplier.add_parser("add", help="add a supplier")
    p.add_argument("--name", required=True)
    p.add_argument("--dea")
    p.add_argument("--address", action="append")
    p.add_argument("--city")
    p.add_argument("--state")
    p.add_argument("--zip")
    p.add_argument("--connector", choices=["https", "folder", "manual"], default="manual")
    p.add_argument("--url", help="https connector: supplier's order endpoint")
    p.add_argument("--folder", help="folder connector: drop folder")
    add_json_flag(p)
    p.set_defaults(handler=cmd_supplier_add)
    p = supplier.add_parser("list", help="list suppliers")
    add_json_flag(p)
    p.set_defaults(handler=cmd_supplier_list)

    catalog = commands.add_parser("catalog", help="product catalog").add_subparsers(dest="action", metavar="ACTION",
                                                                                      required=True)
    p = catalog.add_parser("import", help="import FDA NDC Directory product.txt + package.txt")
    p.add_argument("product_txt")
    p.add_argument("package_txt")
    add_json_flag(p)
    p.set_defaults(handler=cmd_catalog_import)
    p = catalog.add_parser("search", help="find products by name or NDC")
    p.add_argument("text")
    p.add_argument("--limit", type=int, default=20)
    add_json_flag(p)
    p.set_defaults(handler=cmd_catalog_search)

    order = commands.add_parser("order", help="orders").add_subparsers(dest="action", metavar="ACTION", required=True)
    p = order.add_parser("new", help="start a draft order")
    p.add_argument("--registration", required=True, help="purchaser DEA number")
    p.add_argument("--supplier", required=True, help="supplier name")
    p.add_argument("--number", help="order number (default: next free one)")
    add_json_flag(p)
    p.set_defaults(handler=cmd_order_new)
    p = order.add_parser("add-line", help="add a product line to a draft order")
    p.add_argument("order_number")
    p.add_argument("--ndc", required=True)
    p.add_argument("--packages", type=int, required=True)
    p.add_argument("--registration")
    add_json_flag(p)
    p.set_defaults(handler=cmd_order_add_line)
    p = order.add_parser("list", help="list orders, newest first")
    p.add_argument("--status", action="append", choices=[s.value for s in _order_statuses()])
    p.add_argument("--supplier")
    p.add_argument("--registration")
    p.add_argument("--search", help="order number, NDC or product name")
    p.add_argument("--limit", type=int, default=50)
    add_json_flag(p)
    p.set_defaults(handler=cmd_order_list)
    p = order.add_parser("show", help="show one order")
    p.add_argument("order_number")
    p.add_argument("--registration")
    add_json_flag(p)
    p.set_defaults(handler=cmd_order_show)

    _extend_parser(commands, {"order": order, "registration": registration, "supplier": supplier,
                              "catalog": catalog})
    return parser


def _order_statuses() -> list[Any]:
    from app.models.states import OrderStatus

    return list(OrderStatus)


# Each area adds its commands from its own module: ``register(commands, groups)`` where ``commands`` is the top-level
# subparsers object and ``groups`` holds the existing groups' subparsers ("order", "registration", …). Modules import
# what they need inside their handlers so `csos-desk --help` stays fast.
EXTENSION_MODULES = ("app.cli_certs", "app.cli_signing", "app.cli_sandbox", "app.cli_lifecycle", "app.cli_records",
                     "app.cli_db", "app.cli_support")


def _extend_parser(commands: Any, groups: dict[str, Any]) -> None:
    import importlib

    for name in EXTENSION_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue  # that area is not built yet
            raise
        module.register(commands, groups)


GUI_OPTIONS = {"--data-dir": "data_dir", "--database-url": "database_url", "--profile": "profile"}


def gui_only_arguments(argv: Sequence[str] | None) -> argparse.Namespace | None:
    """``csos-desk [--data-dir D] [--database-url URL] [--profile P]``: the plain GUI start, read without building
    every command's parser (that imports each command module) so the window appears sooner. Anything else — a
    command, --help, an abbreviation, a missing or wrong value — returns None and goes to the full parser."""
    tokens = list(sys.argv[1:] if argv is None else argv)
    values: dict[str, str | None] = {dest: None for dest in GUI_OPTIONS.values()}
    index = 0
    while index < len(tokens):
        name, equals, value = tokens[index].partition("=")
        if name not in GUI_OPTIONS:
            return None
        if not equals:
            index += 1
            if index >= len(tokens) or tokens[index].startswith("-"):
                return None
            value = tokens[index]
        values[GUI_OPTIONS[name]] = value
        index += 1
    if values["profile"] not in (None, "training", "production"):
        return None
    return argparse.Namespace(**values, self_test=False, command=None)


def main(argv: Sequence[str] | None = None) -> int:
    args = gui_only_arguments(argv)
    if args is None:
        parser = build_parser()
        args = parser.parse_args(argv)
    handler = getattr(args, "handler", None) or cmd_gui
    if args.self_test and handler is cmd_gui:
        from app.cli_support import cmd_self_test

        handler = cmd_self_test
    try:
        return handler(args)
    except UsageError as exc:
        print(f"csos-desk: {exc.message}", file=sys.stderr)
        return EXIT_USAGE
    except CsosError as exc:
        log.info("command failed: %s", exc.code)
        print(f"error [{exc.code}]: {exc.message}", file=sys.stderr)
        return EXIT_USAGE if exc.code.startswith(("storage", "config", "usage")) else EXIT_RULE
    except KeyboardInterrupt:
        print("Stopped.", file=sys.stderr)
        return 130
    except Exception:  # last line of defence: never a traceback in the user's face
        log.exception("unexpected failure")
        print("csos-desk: an unexpected problem stopped this command. Details were written to the log file "
              "(see `csos-desk --help` for the data folder).", file=sys.stderr)
        return EXIT_USAGE
