"""`csos-desk order new|add-line|list|show`: draft orders, the order list, and one order with its discrepancies."""

from __future__ import annotations

import argparse
from typing import Any

from app.cli.common import EXIT_OK, add_json_flag, open_context, print_json


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
    from app.services.orders.orderbook import OrderFilter

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


def _problems_json(order: Any) -> dict[str, Any]:
    """What the supplier's answers claimed that does not match the signed order (discrepancies, each from the answer
    that raised it) and the receipts recorded on purpose despite a problem (with their reason): the same stored flags
    the order detail and the records export show."""
    from app.models.orderbook import LinkedRecordKind

    discrepancies: list[dict[str, Any]] = []
    flagged_receipts: list[dict[str, Any]] = []
    for record in order.linked_records:
        parsed = record.parsed if isinstance(record.parsed, dict) else {}
        flags = [f for f in parsed.get("flags", []) or [] if isinstance(f, dict) and f.get("message")]
        if not flags:
            continue
        if record.kind is LinkedRecordKind.RECEIPT:
            flagged_receipts.append({
                "received_on": parsed.get("received_on"), "recorded_by": parsed.get("recorded_by", ""),
                "reason": parsed.get("reason", ""),
                "lines": [{"line_number": item.get("line_number"), "packages": item.get("packages_received")}
                          for item in parsed.get("lines", []) if isinstance(item, dict)],
                "problems": [{"code": f.get("code"), "line_number": f.get("line_number"), "message": f["message"]}
                             for f in flags]})
            continue
        for flag in flags:
            discrepancies.append({"code": flag.get("code"), "line_number": flag.get("line_number"),
                                  "message": str(flag["message"]), "answer": record.kind.value,
                                  "recorded_at": record.created_at.isoformat()})
    return {"discrepancies": discrepancies, "flagged_receipts": flagged_receipts}


def _print_problems(problems: dict[str, Any]) -> None:
    if problems["discrepancies"]:
        print("  Discrepancies (the supplier's answers do not match the signed order; the quantities ordered stay as signed):")
        seen: set[str] = set()
        for item in problems["discrepancies"]:
            if item["message"] not in seen:
                seen.add(item["message"])
                print(f"    ! {item['message']}")
    for receipt in problems["flagged_receipts"]:
        packages = ", ".join(f"line {i['line_number']}: {i['packages']}" for i in receipt["lines"])
        print(f"  Receipt of {receipt['received_on']} ({packages} package(s)) was recorded despite a problem:")
        for problem in receipt["problems"]:
            print(f"    ! {problem['message']}")
        if receipt["reason"]:
            print(f"    Reason given: {receipt['reason']}")


def cmd_order_show(args: argparse.Namespace) -> int:
    _, db, book = open_context(args)
    order = book.find_order(args.order_number, registration_dea=args.registration)
    data = {**_order_json(order), **_problems_json(order)}
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
    _print_problems(data)
    return EXIT_OK




def _order_statuses() -> list[Any]:
    from app.models.states import OrderStatus

    return list(OrderStatus)


def register(commands: Any, groups: dict[str, Any]) -> None:
    order = groups["order"]
    p = order.add_parser("new", help="start a draft order")
    p.add_argument("--registration", required=True, help="purchaser DEA number (or the registration's name)")
    p.add_argument("--supplier", required=True, help="supplier name (capitals do not matter)")
    p.add_argument("--number", help="order number typed by hand: this year's two digits, X, six letters or digits "
                                     "(default: the next free one)")
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

