"""`csos-desk as2 identity`: this pharmacy's AS2 identity (issue 17, item 2).

    csos-desk as2 identity                          shows the AS2 ID and the certificate's SHA-256 fingerprint
    csos-desk as2 identity --create --as2-id ID     creates the transport key (0600) and self-signed certificate
    csos-desk as2 identity --export-cert FILE       writes the certificate (PEM) to hand to each AS2 supplier

The transport key only signs and encrypts the transfer; it is never the CSOS signing key.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from app.cli.common import EXIT_OK, UsageError, add_json_flag, print_json


def cmd_as2_identity(args: argparse.Namespace) -> int:
    from app.config import load_config
    from app.services.transport.as2 import create_identity, load_identity

    config = load_config(data_dir=args.data_dir, database_url=args.database_url, profile=args.profile)
    Path(config.data_dir).mkdir(mode=0o700, parents=True, exist_ok=True)
    if args.as2_id and not args.create:
        raise UsageError("--as2-id goes with --create (the AS2 ID of an existing identity does not change).",
                         code="usage.as2_id_without_create")
    if args.create:
        if not args.as2_id:
            raise UsageError("--create needs --as2-id ID: the AS2 name your suppliers will know you by (ask them "
                             "if they expect a particular form).", code="usage.as2_id_required")
        identity = create_identity(config.data_dir, args.as2_id, replace=args.replace)
        created = True
    else:
        identity = load_identity(config.data_dir)
        created = False
    exported = None
    if args.export_cert:
        exported = Path(args.export_cert)
        try:
            exported.write_bytes(identity.certificate_pem)
        except OSError as exc:
            raise UsageError(f"{exported} cannot be written ({exc.strerror}).", code="usage.file_unwritable") \
                from None
    if args.json:
        print_json({**identity.to_json(), "created": created, "exported_to": str(exported) if exported else None})
        return EXIT_OK
    print(("Created the AS2 identity of this pharmacy:" if created else "AS2 identity of this pharmacy:"))
    print(f"  AS2 ID:   {identity.as2_id}")
    print(f"  SHA-256:  {identity.fingerprint}")
    print(f"  Valid:    {identity.certificate.not_valid_before_utc:%Y-%m-%d} to "
          f"{identity.certificate.not_valid_after_utc:%Y-%m-%d}")
    if exported:
        print(f"Certificate written to {exported}. Give this file and the AS2 ID to the supplier; read the "
              "fingerprint to them on the phone so they can check it.")
    else:
        print("To give the certificate to a supplier: csos-desk as2 identity --export-cert pharmacy-as2.pem")
    return EXIT_OK


def register(commands: Any, groups: dict[str, Any]) -> None:
    as2 = commands.add_parser("as2", help="AS2 (EDI transfer to suppliers)").add_subparsers(
        dest="action", metavar="ACTION", required=True)
    p = as2.add_parser("identity", help="show, create or export this pharmacy's AS2 identity")
    p.add_argument("--create", action="store_true", help="create the AS2 transport key and certificate")
    p.add_argument("--as2-id", help="with --create: this pharmacy's AS2 ID")
    p.add_argument("--replace", action="store_true",
                   help="with --create: replace an existing identity (every AS2 supplier then needs the new "
                        "certificate)")
    p.add_argument("--export-cert", metavar="FILE", help="write the AS2 certificate (PEM) to FILE")
    add_json_flag(p)
    p.set_defaults(handler=cmd_as2_identity)
