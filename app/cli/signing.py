"""`csos-desk verify`, `order sign`, `order export`: signed orders from the command line (issue 3/10)."""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import sys
from pathlib import Path
from typing import Any

from app.cli.common import EXIT_OK, EXIT_RULE, EXIT_USAGE, UsageError, add_json_flag, open_context, print_json

CRL_FETCH_TIMEOUT = 10.0  # seconds, connect and read each


def _read_file(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise UsageError(f"The {what} {path} cannot be read ({exc.strerror}).", code="usage.file_unreadable") from None


def _parse_at(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"--at: '{text}' is not an ISO-8601 time (e.g. 2026-11-30T12:00:00Z).",
                         code="usage.time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)


def _load_crls(paths: list[str]) -> list[bytes]:
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    crls = []
    for path in paths:
        data = _read_file(path, "CRL file")
        try:
            crl = (x509.load_pem_x509_crl(data) if data.lstrip().startswith(b"-----")
                   else x509.load_der_x509_crl(data))
        except ValueError:
            raise UsageError(f"{path} is not a CRL (PEM or DER).", code="usage.crl_unreadable") from None
        crls.append(crl.public_bytes(Encoding.DER))
    return crls


def _catalog_from_files(product_txt: str, package_txt: str) -> Any:
    import tempfile

    from app.models.database import open_database, sqlite_url
    from app.services.catalog import import_fda_catalog
    from app.services.signing.verifier import MappingSchedules

    for path in (product_txt, package_txt):
        if not Path(path).is_file():
            raise UsageError(f"{path} does not exist or is not a file.", code="usage.file_missing")
    with tempfile.TemporaryDirectory(prefix="csos-verify-") as folder:
        db = open_database(sqlite_url(Path(folder) / "catalog.sqlite3"))
        try:
            import_fda_catalog(db, Path(product_txt), Path(package_txt))
            return MappingSchedules.from_database(db)
        finally:
            db.close()


def cmd_verify(args: argparse.Namespace) -> int:
    from app.errors import CsosError
    from app.services.certificates.crl_cache import CrlCache
    from app.services.certificates.validation import CertificateValidationService, load_trust_bundle
    from app.services.signing.verifier import MappingSchedules, OrderVerifier

    try:
        data = _read_file(args.file, "signed order")
        trust_roots = load_trust_bundle(args.trust)
        crls = _load_crls(args.crl or [])
        now = _parse_at(args.at)
        if bool(args.catalog) != bool(args.packages):
            raise UsageError("--catalog and --packages go together (FDA product.txt and package.txt).",
                             code="usage.catalog")
        if args.catalog:
            catalog = _catalog_from_files(args.catalog, args.packages)
        else:
            _, db, _book = open_context(args)
            catalog = MappingSchedules.from_database(db)
    except UsageError:
        raise
    except CsosError as exc:
        print(f"error [{exc.code}]: {exc.message}", file=sys.stderr)
        return EXIT_USAGE
    cache = None if crls else CrlCache(None, connect_timeout=CRL_FETCH_TIMEOUT, read_timeout=CRL_FETCH_TIMEOUT)
    validation = CertificateValidationService(trust_roots=trust_roots, crl_cache=cache)
    verifier = OrderVerifier(validation=validation, catalog=catalog, crls=crls or None, fetch_crls=not crls)
    verdict = verifier.verify(data, now=now)
    if args.json:
        print_json(verdict.to_json())
    else:
        if verdict.order is not None:
            print(f"Order {verdict.order.order_number} from {verdict.order.purchaser.name} "
                  f"(DEA {verdict.order.purchaser.dea_number}), {len(verdict.order.lines)} line(s)")
        if verdict.signer is not None:
            print(f"Signed by {verdict.signer.subscriber_name or '?'}"
                  + (f" on {verdict.signing_time:%Y-%m-%d %H:%M} UTC" if verdict.signing_time else ""))
        if verdict.test_indicator:  # a note, not a rule: T = a test interchange (training)
            kind = "a test interchange, made in training" if verdict.test_indicator == "T" else "production"
            print(f"Note: test_indicator: {verdict.test_indicator} ({kind})")
        if verdict.accepted:
            print("ACCEPTABLE: every rule passed.")
        else:
            print("NOT ACCEPTABLE:")
            for reason in verdict.reasons:
                print(f"{reason.code}: {reason.message}")
    return EXIT_OK if verdict.accepted else EXIT_RULE


def read_secret(args: argparse.Namespace, prompt: str) -> str:
    """A password or PIN: one line from stdin with --password-stdin, else asked masked on the terminal (K1)."""
    if getattr(args, "password_stdin", False):
        line = sys.stdin.readline()
        if not line:
            raise UsageError("--password-stdin was given but nothing came on standard input.",
                             code="usage.no_password")
        return line.rstrip("\r\n")
    if not sys.stdin.isatty():
        raise UsageError("No terminal to ask for the password on; use --password-stdin in scripts.",
                         code="usage.no_terminal")
    return getpass.getpass(prompt)


def cmd_order_sign(args: argparse.Namespace) -> int:
    from app.services.certificates.book import CertificateBook
    from app.services.signing.clock import DEFAULT_SERVER, STATE_FILE, ClockRule
    from app.services.certificates.trust import configured_trust_roots
    from app.services.certificates.crl_cache import signing_crl_cache
    from app.services.signing.order_signing import OrderSigningService
    from app.services.signing.usage_indicator import for_profile
    from app.services.certificates.validation import CertificateValidationService
    from app.services.signing.verifier import MappingSchedules, OrderVerifier

    config, db, book = open_context(args)
    order = book.find_order(args.order_number, registration_dea=args.registration)
    with CertificateBook(db, config) as certificates:  # closes token logins on the way out
        record = certificates.signing_certificate_for(order.registration.dea_number,
                                                      at=dt.datetime.now(dt.timezone.utc))
        certificate, intermediates = certificates.chain(record)
        trust = configured_trust_roots(config)
        cache = signing_crl_cache(config.cache_dir / "crl", config.settings)
        verifier = OrderVerifier(validation=CertificateValidationService(trust_roots=trust, crl_cache=cache),
                                 catalog=MappingSchedules.from_database(db))
        # K6, no bypass: off by more than 5 minutes refuses; unverified refuses in production, warns in training.
        host, _, port = str(config.settings.get("sntp_server") or DEFAULT_SERVER).partition(":")
        rule = ClockRule(config.data_dir / STATE_FILE, server=host, port=int(port or 123),
                         production=not config.is_training)
        service = OrderSigningService(book, verifier, clock_check=rule,
                                      on_revoked=certificates.record_crl_revocation,
                                      usage_settings=config.settings, test_indicator=for_profile(config))
        clock = service.verify_clock()  # before the password is asked; sign() checks again
        if clock is not None and not clock.verified:
            print(f"warning: {clock.message}", file=sys.stderr)
        verdict = service.check(order.id, certificate=certificate, intermediates=intermediates)
        if not verdict.accepted:
            print("The order cannot be signed; a supplier would refuse it:", file=sys.stderr)
            for reason in verdict.reasons:
                print(f"{reason.code}: {reason.message}", file=sys.stderr)
            return EXIT_RULE
        shown = service.notices_to_show(order.id)
        for notice in shown.notices:  # a notice, never a block (issue 21); recorded with the signing
            print(f"warning: {notice.message}", file=sys.stderr)
        secret = read_secret(args, f"Password or PIN for {record.subscriber_name or 'your key'}: ")
        signer = certificates.open_signer(record, secret=secret)
        try:
            signed = service.sign(order.id, signer=signer, certificate=certificate, intermediates=intermediates,
                                  shown_notices=shown)
        finally:
            signer.close()
    if args.json:
        print_json({"order_number": signed.order.order_number, "status": signed.order.status.value,
                    "signed_at": signed.order.signed_at.isoformat(), "bytes": len(signed.document),
                    "signer_fingerprint": signed.order.signer_fingerprint})
    else:
        print(f"Order {signed.order.order_number} signed ({len(signed.document)} bytes). It is ready to send.")
    return EXIT_OK


def cmd_order_export(args: argparse.Namespace) -> int:
    _, db, book = open_context(args)
    order = book.find_order(args.order_number, registration_dea=args.registration)
    if not order.signed_document:
        raise UsageError(f"Order {order.order_number} is not signed yet; there is no signed document to export.",
                         code="usage.not_signed")
    out = Path(args.out)
    try:
        tmp = out.with_name(out.name + ".part")
        tmp.write_bytes(order.signed_document)
        tmp.replace(out)
    except OSError as exc:
        raise UsageError(f"{out} cannot be written ({exc.strerror}).", code="usage.file_unwritable") from None
    print(f"Wrote {out} ({len(order.signed_document)} bytes, application/x-csos-signed-order).")
    return EXIT_OK


def register(commands: Any, groups: dict[str, Any]) -> None:
    p = commands.add_parser("verify", help="check a signed order (.csos) as a supplier would")
    p.add_argument("file", help="the .csos file")
    p.add_argument("--trust", required=True, help="PEM file with the CSOS trust roots")
    p.add_argument("--crl", action="append", help="CRL file to use instead of fetching (repeatable)")
    p.add_argument("--catalog", help="FDA product.txt (default: this order book's catalog)")
    p.add_argument("--packages", help="FDA package.txt (with --catalog)")
    p.add_argument("--at", help="judge the time rules and CRLs as of this ISO-8601 time")
    add_json_flag(p)
    p.set_defaults(handler=cmd_verify)

    order = groups["order"]
    p = order.add_parser("sign", help="sign a draft order with your CSOS certificate")
    p.add_argument("order_number")
    p.add_argument("--registration")
    p.add_argument("--password-stdin", action="store_true", help="read the password/PIN from standard input")
    add_json_flag(p)
    p.set_defaults(handler=cmd_order_sign)

    p = order.add_parser("export", help="save a signed order as a .csos file")
    p.add_argument("order_number")
    p.add_argument("--registration")
    p.add_argument("--out", required=True)
    p.set_defaults(handler=cmd_order_export)
