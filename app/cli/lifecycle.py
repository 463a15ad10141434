"""`csos-desk order send|sync|receive|import|answer|lost|cancel|new-from` and `outbox list|run`: an order's life after
signing (issue 5/10); supplier answers from files and by hand, checked against the order (issues 16, 17)."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from typing import Any

from app.cli.common import EXIT_OK, EXIT_RULE, UsageError, add_json_flag, open_context, parse_date, print_json


def _services(args: argparse.Namespace) -> tuple[Any, Any, Any, Any, Any]:
    from app.services.orders.lifecycle import Lifecycle
    from app.services.orders.outbox import Outbox
    from app.services.signing.usage_indicator import for_profile
    from app.services.transport.connectors import connector_for

    config, db, book = open_context(args)

    def connectors(supplier: Any) -> Any:  # training suppliers take T interchanges only, production ones P
        return connector_for(supplier, data_dir=config.data_dir, tls_bundle=config.settings.get("tls_bundle"),
                             test_indicator=for_profile(config))

    lifecycle = Lifecycle(book)
    return config, book, lifecycle, Outbox(book, connector_for=connectors, lifecycle=lifecycle), connectors


def _find(book: Any, args: argparse.Namespace) -> Any:
    return book.find_order(args.order_number, registration_dea=getattr(args, "registration", None))


def _packages(values: list[str] | None) -> dict[int, int] | None:
    if not values:
        return None
    packages: dict[int, int] = {}
    for value in values:
        line, sep, count = value.partition("=")
        if not sep or not line.strip().isdigit() or not count.strip().isdigit():
            raise UsageError(f"--line '{value}': write LINE=PACKAGES, e.g. --line 1=2.", code="usage.line")
        packages[int(line)] = int(count)
    return packages


def _print_applied(applied: Any) -> None:
    for item in applied:
        change = (f"{item.status_before} → {item.status_after}" if item.status_before != item.status_after
                  else item.status_after)
        print(f"  {item.order_number}: {item.kind} linked{' (already had it)' if item.duplicate else ''}; {change}")
        for flag in item.flags:
            print(f"    ⚠ Discrepancy: {flag.message}")


def _lines_answers(values: list[str] | None) -> dict[int, str]:
    answers: dict[int, str] = {}
    for value in values or []:
        line, sep, verdict = value.partition("=")
        if not sep or not line.strip().isdigit() or verdict.strip().lower() not in ("accepted", "rejected"):
            raise UsageError(f"--line '{value}': write LINE=accepted or LINE=rejected, e.g. --line 2=rejected.",
                             code="usage.line")
        answers[int(line)] = verdict.strip().lower()
    return answers


def cmd_order_send(args: argparse.Namespace) -> int:
    from app.models.states import OrderStatus

    _, book, _lifecycle, outbox, _ = _services(args)
    order = _find(book, args)
    if order.status is OrderStatus.SIGNED:
        outbox.enqueue(order.id)
    elif outbox.entry_for(order.id) is None:
        raise UsageError(f"Order {order.order_number} is {order.status.label.lower()}; sign it first "
                         "(csos-desk order sign).", code="usage.not_signed")
    outbox.retry_now(order.id)
    report = outbox.run_once(order_ids=[order.id])
    entry = outbox.entry_for(order.id)
    order = book.get_order(order.id)
    from app.services.orders.answers import sent_state_words

    sent = entry.state.value == "sent"
    data = {"order_number": order.order_number, "status": order.status.value, "outbox": entry.state.value,
            "attempts": entry.attempts, "last_error": entry.last_error or None,
            "last_error_code": entry.last_error_code or None,
            "next_attempt_at": entry.next_attempt_at.isoformat() if entry.state.value == "queued" else None,
            "where": (entry.answer or {}).get("where")}
    if sent and entry.last_error_code:
        data["state_in_words"] = sent_state_words(entry.last_error_code)
    if args.json:
        print_json(data)
    elif sent and entry.last_error_code:
        print(f"Order {order.order_number}: {data['state_in_words']}.")
        print(f"  The supplier has the order; it will not be sent again. What went wrong: {entry.last_error}",
              file=sys.stderr)
        print("  Next: `csos-desk order sync` fetches the supplier's records later, or record its answer with "
              "`csos-desk order answer` / `csos-desk order import`.", file=sys.stderr)
        return EXIT_RULE
    elif report.sent or sent:
        print(f"Order {order.order_number} sent ({data['where']}); status now {order.status.value}.")
    else:
        print(f"Order {order.order_number} was not sent: {entry.last_error}", file=sys.stderr)
        if entry.state.value == "queued":
            print(f"It stays queued; the next try is at {entry.next_attempt_at:%Y-%m-%d %H:%M} UTC "
                  "(or run `csos-desk outbox run`).", file=sys.stderr)
    return EXIT_OK if entry.state.value == "sent" else EXIT_RULE


def cmd_order_sync(args: argparse.Namespace) -> int:
    _, book, lifecycle, _outbox, connectors = _services(args)
    ids = [_find(book, args).id] if args.order_number else None
    report = lifecycle.sync(connectors, order_ids=ids)
    if args.json:
        print_json(report.to_json())
        return EXIT_OK if not report.errors else EXIT_RULE
    if not report.applied and not report.errors and not report.expired:
        print("Nothing new from suppliers.")
    _print_applied(report.applied)
    for number in report.expired:
        print(f"  {number}: expired (not fully received 60 days after signing).")
    for error in report.errors:
        print(f"  problem [{error['code']}]: {error['message']}", file=sys.stderr)
    return EXIT_OK if not report.errors else EXIT_RULE


def cmd_order_receive(args: argparse.Namespace) -> int:
    from app.services.orders.lifecycle import receivable_lines

    _, book, lifecycle, _outbox, _ = _services(args)
    order = _find(book, args)
    when = parse_date(args.date, "--date") if args.date else None
    result = lifecycle.receive(order.id, packages=_packages(args.line), received_on=when, reason=args.reason or "",
                               recorded_by=args.by or "")
    lines = receivable_lines(book.get_order(order.id))
    flags = [{"code": f.code, "message": f.message, "line_number": f.line_number} for f in result.flags or []]
    if args.json:
        print_json({"order_number": result.order_number, "status": result.status,
                    "received_on": result.received_on.isoformat(), "recorded": result.lines, "lines": lines,
                    "flags": flags})
    else:
        recorded = ", ".join(f"line {n}: {c}" for n, c in sorted(result.lines.items()))
        print(f"Recorded for {result.order_number} on {result.received_on.isoformat()}: {recorded}. "
              f"Status now {result.status}.")
        for flag in flags:
            print(f"  ⚠ Marked on the receipt: {flag['message']}")
        for line in lines:
            print(f"  {line['line_number']:>3}. {line['description']}: ordered {line['ordered']}, shipped "
                  f"{line['shipped']}, received {line['received']} ({line['status']})")
    return EXIT_OK


def cmd_order_import(args: argparse.Namespace) -> int:
    """Supplier answer files (855/856/865, plain or signed, one or several documents each), linked after the checks."""
    from pathlib import Path

    _, _book, lifecycle, _outbox, _ = _services(args)
    reports = lifecycle.import_answer_files([Path(p) for p in args.files])
    if args.json:
        print_json([r.to_json() for r in reports])
    else:
        for report in reports:
            signed = f" (signed by {report.signed_by}; signature checked, not a CSOS trust decision)" \
                if report.signed_by else ""
            print(f"{report.file}{signed}: {len(report.linked)} linked, {len(report.refused)} refused")
            _print_applied(report.linked)
            for refused in report.refused:
                print(f"  refused [{refused['code']}]: {refused['message']}", file=sys.stderr)
        if any(r.refused for r in reports):
            print("Refused documents changed nothing. Check them with the supplier; a corrected file can be "
                  "imported again.", file=sys.stderr)
    return EXIT_OK if all(r.linked and not r.refused for r in reports) else EXIT_RULE


def cmd_order_answer(args: argparse.Namespace) -> int:
    """An answer the supplier gave by e-mail, PDF or phone, typed in; the attached file is kept in the records."""
    _, book, lifecycle, _outbox, _ = _services(args)
    order = _find(book, args)
    result = lifecycle.record_answer_by_hand(order.id, accepted=args.accepted, lines=_lines_answers(args.line),
                                             reason=args.reason, attachment=args.attach,
                                             recorded_by=args.by or "")
    if args.json:
        print_json(result.to_json())
    else:
        print(f"Answer recorded for {result.order_number}: status now {result.status_after.replace('_', ' ')}"
              + (f"; {result.attachment} is kept with the order." if result.attachment else "."))
        if result.status_after == "not_accepted":
            print(f"To order these goods again: `csos-desk order new-from {result.order_number}`.")
    return EXIT_OK


def cmd_order_lost(args: argparse.Namespace) -> int:
    from app.cli.signing import read_secret
    from app.services.certificates.book import CertificateBook

    config, book, lifecycle, outbox, _ = _services(args)
    order = _find(book, args)
    certificates = CertificateBook(book.db, config)
    record = certificates.signing_certificate_for(order.registration.dea_number, at=dt.datetime.now(dt.timezone.utc))
    certificate, intermediates = certificates.chain(record)
    secret = read_secret(args, f"Password or PIN for {record.subscriber_name or 'your key'}: ")
    signer = certificates.open_signer(record, secret=secret)
    try:
        result = lifecycle.report_lost(order.id, signer=signer, certificate=certificate, intermediates=intermediates,
                                       lines_not_received=_packages(args.line),
                                       replacement=not args.no_replacement)
    finally:
        signer.close()
    report = outbox.run_once(order_ids=[order.id])
    data = {"order_number": result.order_number, "statement_record_id": result.statement_record_id,
            "statement": result.statement, "replacement_order_number": result.replacement_order_number,
            "statement_sent": bool(report.sent),
            "send_problem": report.failed[0]["message"] if report.failed else None}
    if args.json:
        print_json(data)
    else:
        print(f"Order {result.order_number} reported lost; the signed statement is linked to it and "
              + ("was sent to the supplier." if report.sent else
                 f"is queued for the supplier ({data['send_problem']})."))
        if result.replacement_order_number:
            print(f"Replacement order {result.replacement_order_number} is a draft: check it, then sign and send it.")
    return EXIT_OK


def cmd_order_cancel(args: argparse.Namespace) -> int:
    _, book, lifecycle, _outbox, _ = _services(args)
    order = lifecycle.cancel(_find(book, args).id, reason=args.reason)
    if args.json:
        print_json({"order_number": order.order_number, "status": order.status.value})
    else:
        print(f"Order {order.order_number} cancelled; it will not be sent. The reason is kept with the order.")
    return EXIT_OK


def cmd_order_new_from(args: argparse.Namespace) -> int:
    _, book, lifecycle, _outbox, _ = _services(args)
    old = _find(book, args)
    new = lifecycle.new_from(old.id)
    if args.json:
        print_json({"order_number": new.order_number, "replaces": old.order_number, "status": new.status.value,
                    "lines": len(new.lines)})
    else:
        print(f"New draft order {new.order_number} with the {len(new.lines)} line(s) of {old.order_number}. "
              f"{old.order_number} stays as it is, linked to the new one.")
    return EXIT_OK


def cmd_outbox_list(args: argparse.Namespace) -> int:
    from app.models.outbox import OutboxState

    _, _book, _lifecycle, outbox, _ = _services(args)
    states = [OutboxState(s) for s in args.state] if args.state else None
    entries = outbox.entries(states=states, limit=args.limit)
    if args.json:
        print_json([e.to_json() for e in entries])
        return EXIT_OK
    if not entries:
        print("The outbox is empty.")
    for e in entries:
        line = f"{e.order_number}  {e.purpose:<14} {e.state:<9} {e.supplier:<24} tries {e.attempts}"
        if e.next_attempt_at:
            line += f"  next {e.next_attempt_at:%Y-%m-%d %H:%M}"
        if e.sent_at:
            line += f"  sent {e.sent_at:%Y-%m-%d %H:%M}"
        print(line)
        if e.last_error:
            print(f"    last error [{e.last_error_code}]: {e.last_error}")
    return EXIT_OK


def cmd_outbox_run(args: argparse.Namespace) -> int:
    _, _book, _lifecycle, outbox, _ = _services(args)
    report = outbox.run_until_idle()
    from app.services.orders.answers import sent_state_words

    if args.json:
        print_json({"sent": report.sent, "failed": report.failed, "skipped": report.skipped,
                    "answer_unreadable": report.unreadable})
    else:
        if not report.tried:
            print("Nothing is due in the outbox.")
        unreadable = {u["order_number"]: u for u in report.unreadable}
        for number in report.sent:
            if number in unreadable:
                print(f"  {number}: {sent_state_words(unreadable[number]['code'])}")
            else:
                print(f"  sent {number}")
        for failure in report.failed:
            print(f"  not sent {failure['order_number']} [{failure['code']}]: {failure['message']}", file=sys.stderr)
        for problem in report.unreadable:
            print(f"  {problem['order_number']} [{problem['code']}]: {problem['message']}", file=sys.stderr)
    return EXIT_OK if not report.failed and not report.unreadable else EXIT_RULE


def register(commands: Any, groups: dict[str, Any]) -> None:
    order = groups["order"]

    def order_parser(name: str, help_text: str) -> argparse.ArgumentParser:
        p = order.add_parser(name, help=help_text)
        p.add_argument("order_number")
        p.add_argument("--registration", help="purchaser DEA number (when the number exists for several)")
        add_json_flag(p)
        return p

    p = order_parser("send", "queue a signed order and send it to its supplier now")
    p.set_defaults(handler=cmd_order_send)

    p = order.add_parser("sync", help="fetch suppliers' answers, shipments and voids (and apply the 60-day rule)")
    p.add_argument("order_number", nargs="?")
    p.add_argument("--registration")
    add_json_flag(p)
    p.set_defaults(handler=cmd_order_sync)

    p = order_parser("receive", "record packages received (default: what was shipped and not yet received)")
    p.add_argument("--line", action="append", metavar="LINE=PACKAGES", help="packages received on a line (repeat)")
    p.add_argument("--date", help="date received YYYY-MM-DD (default today)")
    p.add_argument("--reason", help="required when more is received than shipped or ordered, against a flagged "
                                    "shipment, or before the ship date")
    p.add_argument("--by", help="who counted the packages")
    p.set_defaults(handler=cmd_order_receive)

    p = order.add_parser("import", help="link supplier answer files (X12 855/856/865, plain or signed; several "
                                        "per file) after checking them against the orders")
    p.add_argument("files", nargs="+", metavar="FILE")
    add_json_flag(p)
    p.set_defaults(handler=cmd_order_import)

    p = order_parser("answer", "record the supplier's answer given by e-mail, PDF or phone")
    verdict = p.add_mutually_exclusive_group(required=True)
    verdict.add_argument("--accepted", dest="accepted", action="store_true", help="the supplier accepted the order")
    verdict.add_argument("--not-accepted", dest="accepted", action="store_false",
                         help="the supplier did not accept the order")
    p.add_argument("--line", action="append", metavar="LINE=accepted|rejected",
                   help="the supplier's answer for one line (repeat); other lines follow --accepted")
    p.add_argument("--reason", required=True, help="what the supplier said (its reason or reference)")
    p.add_argument("--attach", metavar="FILE", help="the supplier's e-mail, PDF or note, kept with the order")
    p.add_argument("--by", help="who took the answer")
    p.set_defaults(handler=cmd_order_answer)

    p = order_parser("lost", "send a signed lost-order statement and start a replacement order (O7)")
    p.add_argument("--line", action="append", metavar="LINE=PACKAGES", help="packages not received (default: all "
                                                                              "not received)")
    p.add_argument("--no-replacement", action="store_true", help="do not start a replacement order")
    p.add_argument("--password-stdin", action="store_true", help="read the password/PIN from standard input")
    p.set_defaults(handler=cmd_order_lost)

    p = order_parser("cancel", "cancel an order that has not been sent")
    p.add_argument("--reason", required=True)
    p.set_defaults(handler=cmd_order_cancel)

    p = order_parser("new-from", "start a new order from one that was not accepted (the old one is kept as is)")
    p.set_defaults(handler=cmd_order_new_from)

    outbox = commands.add_parser("outbox", help="orders waiting to be sent").add_subparsers(
        dest="action", metavar="ACTION", required=True)
    p = outbox.add_parser("list", help="what is queued, sent or failed, with the last error")
    p.add_argument("--state", action="append", choices=["queued", "sent", "failed", "cancelled", "expired"])
    p.add_argument("--limit", type=int, default=100)
    add_json_flag(p)
    p.set_defaults(handler=cmd_outbox_list)
    p = outbox.add_parser("run", help="send everything that is due now")
    add_json_flag(p)
    p.set_defaults(handler=cmd_outbox_run)
