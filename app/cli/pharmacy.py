"""`csos-desk check`, `registration …`, `supplier …` and `catalog …`: what a pharmacy sets up before ordering."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from app.cli.common import EXIT_OK, EXIT_RULE, UsageError, add_json_flag, open_context, parse_date, print_json
from app.errors import InvalidValue


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


def cmd_registration_edit(args: argparse.Namespace) -> int:
    _, db, book = open_context(args)
    changes = {"name": args.name, "address_lines": args.address, "city": args.city, "state": args.state,
               "postal_code": args.zip, "business_activity": args.business_activity,
               "schedules": [s for s in args.schedules.split(",") if s.strip()] if args.schedules is not None else None}
    if all(value is None for value in changes.values()) and args.expires is None:
        raise UsageError("Say what to change, e.g. --name or --zip (see `csos-desk registration edit --help`).",
                         code="usage.nothing_to_change")
    expires = parse_date(args.expires, "--expires") if args.expires else None
    registration = book.update_registration(args.dea, expires_on=expires, **changes)
    if args.json:
        print_json(_registration_json(registration))
    else:
        print(f"Changed registration {registration.dea_number} ({registration.name}).")
    return EXIT_OK


def cmd_registration_remove(args: argparse.Namespace) -> int:
    _, db, book = open_context(args)
    book.remove_registration(args.dea)
    print(f"Removed registration {args.dea.strip().upper()}.")
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
    if args.connector == "as2" or any(getattr(args, name) for name in _AS2_OPTIONS):
        connector = _as2_connector(args)
    supplier = book.add_supplier(name=args.name, dea_number=args.dea, address_lines=args.address or [],
                                 city=args.city, state=args.state, postal_code=args.zip, connector=connector)
    if args.json:
        print_json(_supplier_json(supplier))
    else:
        print(f"Added supplier {supplier.name}.")
    return EXIT_OK


_AS2_OPTIONS = ("as2_url", "as2_partner_id", "as2_partner_cert", "as2_encryption", "as2_content_type",
                "as2_records_url")


def _as2_connector(args: argparse.Namespace) -> dict[str, Any]:
    """`--connector as2`: the supplier's AS2 address, AS2 ID and certificate (the certificate is stored as PEM)."""
    from app.services.transport.as2 import supplier_settings

    if args.connector != "as2":
        raise UsageError("The --as2-… options go with --connector as2.", code="usage.as2_options")
    missing = [option for option, value in (("--as2-url", args.as2_url), ("--as2-partner-id", args.as2_partner_id),
                                            ("--as2-partner-cert", args.as2_partner_cert)) if not value]
    if missing:
        raise UsageError(f"--connector as2 needs {', '.join(missing)} (the supplier gives you its AS2 address, AS2 "
                         "ID and certificate file).", code="usage.as2_options")
    return supplier_settings(url=args.as2_url, partner_as2_id=args.as2_partner_id,
                             partner_certificate_file=args.as2_partner_cert,
                             encryption=args.as2_encryption or "aes256_cbc",
                             content_type=args.as2_content_type or "application/x-csos-signed-order",
                             records_url=args.as2_records_url)


def cmd_supplier_edit(args: argparse.Namespace) -> int:
    import dataclasses

    from app.services.app_settings import form_of, update_supplier

    _, db, book = open_context(args)
    supplier = book.supplier(args.supplier)
    given = {"name": args.name, "dea_number": args.dea, "city": args.city, "state": args.state,
             "postal_code": args.zip, "kind": args.connector, "url": args.url, "folder": args.folder,
             "tls_bundle": args.tls_bundle,
             "address_lines": tuple(args.address) if args.address is not None else None}
    changes = {key: value for key, value in given.items() if value is not None}
    if not changes:
        raise UsageError("Say what to change, e.g. --name or --url (see `csos-desk supplier edit --help`).",
                         code="usage.nothing_to_change")
    update_supplier(book, supplier.id, dataclasses.replace(form_of(supplier), **changes))
    changed = book.supplier(changes.get("name", supplier.name))
    if args.json:
        print_json(_supplier_json(changed))
    else:
        print(f"Changed supplier {changed.name}.")
    return EXIT_OK


def cmd_supplier_remove(args: argparse.Namespace) -> int:
    _, db, book = open_context(args)
    book.remove_supplier(args.supplier)
    print(f"Removed supplier {args.supplier.strip()}.")
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




def register(commands: Any, groups: dict[str, Any]) -> None:
    p = commands.add_parser("check", help="check a DEA number, NDC or order number")
    p.add_argument("kind", choices=["dea", "ndc", "order-number"])
    p.add_argument("value")
    p.set_defaults(handler=cmd_check)


    registration = groups["registration"]
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
    p = registration.add_parser("edit", help="change a registration's details (not its DEA number)")
    p.add_argument("dea", help="DEA number of the registration")
    p.add_argument("--name")
    p.add_argument("--address", action="append", help="address line (repeat; replaces all lines)")
    p.add_argument("--city")
    p.add_argument("--state")
    p.add_argument("--zip")
    p.add_argument("--schedules", help="e.g. II,IIN,III,IIIN,IV,V (replaces the list)")
    p.add_argument("--expires", help="registration expiry date YYYY-MM-DD")
    p.add_argument("--business-activity")
    add_json_flag(p)
    p.set_defaults(handler=cmd_registration_edit)
    p = registration.add_parser("remove", help="remove a registration no order or certificate refers to")
    p.add_argument("dea", help="DEA number of the registration")
    p.set_defaults(handler=cmd_registration_remove)
    p = registration.add_parser("list", help="list registrations")
    add_json_flag(p)
    p.set_defaults(handler=cmd_registration_list)

    supplier = groups["supplier"]
    p = supplier.add_parser("add", help="add a supplier")
    p.add_argument("--name", required=True)
    p.add_argument("--dea")
    p.add_argument("--address", action="append")
    p.add_argument("--city")
    p.add_argument("--state")
    p.add_argument("--zip")
    p.add_argument("--connector", choices=["https", "folder", "manual", "as2"], default="manual")
    p.add_argument("--url", help="https connector: supplier's order endpoint")
    p.add_argument("--folder", help="folder connector: drop folder")
    p.add_argument("--as2-url", help="as2 connector: the supplier's AS2 address (https://)")
    p.add_argument("--as2-partner-id", help="as2 connector: the supplier's AS2 ID")
    p.add_argument("--as2-partner-cert", metavar="FILE", help="as2 connector: the supplier's AS2 certificate file")
    p.add_argument("--as2-encryption", choices=["aes256_cbc", "aes128_cbc"], help="default aes256_cbc")
    p.add_argument("--as2-content-type", help="default application/x-csos-signed-order (e.g. application/edi-x12)")
    p.add_argument("--as2-records-url", help="as2 connector: the supplier's https records address, if it offers "
                                             "one, to fetch its answers")
    add_json_flag(p)
    p.set_defaults(handler=cmd_supplier_add)
    p = supplier.add_parser("edit", help="change a supplier's details or how orders reach it")
    p.add_argument("supplier", help="the supplier's current name")
    p.add_argument("--name", help="new name")
    p.add_argument("--dea", help="DEA number (\"\" to clear)")
    p.add_argument("--address", action="append", help="address line (repeat; replaces all lines)")
    p.add_argument("--city")
    p.add_argument("--state")
    p.add_argument("--zip")
    p.add_argument("--connector", choices=["https", "folder", "manual"])
    p.add_argument("--url", help="https connector: supplier's order endpoint")
    p.add_argument("--folder", help="folder connector: drop folder")
    p.add_argument("--tls-bundle", help="https connector: the supplier's TLS certificate file (\"\" to clear)")
    add_json_flag(p)
    p.set_defaults(handler=cmd_supplier_edit)
    p = supplier.add_parser("remove", help="remove a supplier no order refers to")
    p.add_argument("supplier", help="the supplier's name")
    p.set_defaults(handler=cmd_supplier_remove)
    p = supplier.add_parser("list", help="list suppliers")
    add_json_flag(p)
    p.set_defaults(handler=cmd_supplier_list)

    catalog = groups["catalog"]
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

