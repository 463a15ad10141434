"""`csos-desk records export|check` and `csos-desk backup`: the two-year record duty (O9)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from app.cli.common import EXIT_OK, EXIT_RULE, UsageError, add_json_flag, open_context, parse_date, print_json


def _progress(args: argparse.Namespace, what: str) -> Any:
    last = [0.0]

    def report(done: int, total: int) -> None:
        if args.json or not sys.stderr.isatty():
            return
        now = time.monotonic()
        if now - last[0] > 0.2 or done == total:
            last[0] = now
            print(f"\r{what} {done:,}/{total:,}", end="\n" if done == total else "", file=sys.stderr, flush=True)

    return report


def cmd_records_export(args: argparse.Namespace) -> int:
    from app import __version__
    from app.services.orders.records import export_records

    _, db, _book = open_context(args)
    date_from, date_to = parse_date(args.date_from, "--from"), parse_date(args.date_to, "--to")
    renderer = None
    if not args.no_pdf:
        from app.ui.records_pdf import RecordsPdfProcess

        renderer = RecordsPdfProcess
    summary = export_records(db, date_from=date_from, date_to=date_to, out_dir=Path(args.out), render_pdf=renderer,
                             progress=_progress(args, "Exporting orders"), version=__version__)
    if args.json:
        print_json(summary.to_json())
    else:
        print(f"Exported {summary.orders} order(s), {summary.files} file(s) to {summary.out_dir}:")
        if summary.pdf:
            print(f"  {summary.pdf.name}   the records to read or print")
        print(f"  {summary.csv.name}    one row per order line")
        print(f"  {summary.archive.name}/ and {summary.zip.name}   every signed order and linked record, "
              "manifest.json, README.txt")
    return EXIT_OK


def _trust_roots(args: argparse.Namespace, config: Any, db: Any) -> list[Any] | None:
    from app.errors import ConfigError
    from app.services.certificates.trust import configured_trust_roots

    try:
        return configured_trust_roots(config, explicit=args.trust)
    except ConfigError:
        if args.trust:
            raise
        return None


def cmd_records_check(args: argparse.Namespace) -> int:
    from app.services.orders.records import check_records
    from app.services.certificates.validation import CertificateValidationService
    from app.services.signing.verifier import MappingSchedules, OrderVerifier

    config, db, _book = open_context(args)
    if args.archive and not Path(args.archive).exists():
        raise UsageError(f"{args.archive} does not exist.", code="usage.file_missing")
    roots = _trust_roots(args, config, db)
    verifier = None
    if roots:
        # Judged as of each signing time, offline: see app.services.orders.records for which rules count.
        verifier = OrderVerifier(validation=CertificateValidationService(trust_roots=roots),
                                 catalog=MappingSchedules.from_database(db), fetch_crls=False)
    report = check_records(db, verifier=verifier, archive=args.archive, progress=_progress(args, "Checking orders"))
    if args.json:
        print_json(report.to_json() | {"trust_roots_used": bool(verifier)})
        return EXIT_OK if report.clean else EXIT_RULE
    print(f"Checked {report.signatures_checked} signed order(s), {report.linked_records_checked} linked record(s), "
          f"the audit chain" + (f" and {report.archive_files_checked} archived file(s)" if args.archive else "") + ".")
    if verifier is None:
        print("  (No CSOS trust roots configured: signatures and digests were checked, the certificate chains were "
              "not. Give --trust FILE.)")
    for note in report.notes:
        print(f"  note [{note.code}]: {note.message}")
    if report.clean:
        print("Everything is intact.")
        return EXIT_OK
    print(f"{len(report.problems)} problem(s):")
    for problem in report.problems:
        print(f"  [{problem.code}] {problem.message}")
    return EXIT_RULE


def cmd_backup(args: argparse.Namespace) -> int:
    from app.services.orders.records import backup_order_book

    _, db, _book = open_context(args)
    summary = backup_order_book(db, Path(args.out))
    if args.json:
        print_json(summary.to_json())
    else:
        print(f"Backed up the order book ({summary.orders} orders, {summary.bytes:,} bytes) to {summary.path}. "
              "Private keys are not in it; keep their own backups as your key policy says.")
    return EXIT_OK


def register(commands: Any, groups: dict[str, Any]) -> None:
    records = commands.add_parser("records", help="records for inspection: export and integrity check").add_subparsers(
        dest="action", metavar="ACTION", required=True)
    p = records.add_parser("export", help="PDF + CSV + archive (with manifest) of the orders in a period")
    p.add_argument("--from", dest="date_from", required=True, help="first day YYYY-MM-DD (orders created)")
    p.add_argument("--to", dest="date_to", required=True, help="last day YYYY-MM-DD (inclusive)")
    p.add_argument("--out", required=True, help="a new (or empty) folder")
    p.add_argument("--no-pdf", action="store_true", help="skip the PDF (no Qt needed)")
    add_json_flag(p)
    p.set_defaults(handler=cmd_records_export)
    p = records.add_parser("check", help="re-verify every signature, linked record, the audit chain (and an archive)")
    p.add_argument("--archive", help="an exported archive folder or archive.zip to compare with its manifest")
    p.add_argument("--trust", help="PEM file with the CSOS trust roots (default: the configured ones)")
    add_json_flag(p)
    p.set_defaults(handler=cmd_records_check)

    p = commands.add_parser("backup", help="a consistent copy of the order book (never private keys)")
    p.add_argument("--out", required=True, help="backup file to write")
    add_json_flag(p)
    p.set_defaults(handler=cmd_backup)
