"""`csos-desk cert …`, `csos-desk token list` and `csos-desk reminders`.

Passwords and PINs are never command-line arguments (they would end up in the shell history and the process list,
K1). They are typed masked at the terminal, or -- for scripts -- given with ``--password-stdin``: one secret per line
on standard input, in the order each command's help states.
"""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import json
import sys
from pathlib import Path
from typing import Any

from app.cli.common import EXIT_OK, UsageError, add_json_flag, open_context, print_json

ALGORITHMS = {"rsa2048": "rsa_2048", "rsa3072": "rsa_3072", "ec-p256": "ec_p256"}

EXPORT_WARNING = (
    "WARNING: this writes a copy of your private CSOS key to a file. Anyone who has the file and its password can "
    "sign controlled-substance orders in your name. Keep it offline and locked away, make no other copies, and if "
    "it is ever lost or exposed, revoke your certificate within 24 hours (21 CFR 1311.30). Keys on a token cannot "
    "be exported."
)


# ---------------------------------------------------------------------------------------------------------------------
# secrets


def read_secrets(args: argparse.Namespace, prompts: list[tuple[str, bool]]) -> list[str]:
    """One secret per ``(prompt, is_new)``: masked at the terminal (new ones typed twice), or one line each from stdin
    with ``--password-stdin``."""
    if getattr(args, "password_stdin", False):
        secrets = []
        for prompt, _ in prompts:
            line = sys.stdin.readline()
            if not line:
                raise UsageError(f"--password-stdin: standard input ended before the line for '{prompt}'.",
                                 code="usage.password_stdin")
            secrets.append(line.rstrip("\r\n"))
        return secrets
    if not sys.stdin.isatty():
        raise UsageError("No terminal to type the password on. Use --password-stdin to give it on standard input.",
                         code="usage.no_terminal")
    secrets = []
    for prompt, is_new in prompts:
        while True:
            first = getpass.getpass(f"{prompt}: ")
            if not is_new or getpass.getpass(f"{prompt} (again): ") == first:
                break
            print("The two entries differ; type it again.", file=sys.stderr)
        secrets.append(first)
    return secrets


def _add_password_stdin(p: argparse.ArgumentParser, order: str) -> None:
    p.add_argument("--password-stdin", action="store_true",
                   help=f"read secrets from standard input, one per line: {order}")


# ---------------------------------------------------------------------------------------------------------------------
# presentation


def _key_json(key_ref: dict[str, Any]) -> dict[str, Any]:
    return {k: key_ref.get(k) for k in ("store", "key_id", "label", "algorithm", "token") if k in key_ref}


def _record_json(record: Any) -> dict[str, Any]:
    from app.services.certificates.book import record_subject_serial

    from app.services.enrollment.certificate_overview import certificate_id

    return {
        "fingerprint": record.fingerprint,
        "certificate_id": certificate_id(record.fingerprint) or None,
        "status": record.status.value,
        "kind": record.kind,
        "subscriber_name": record.subscriber_name,
        "email": record.email,
        "subject_serial": record_subject_serial(record),
        "registration": record.registration.dea_number if record.registration is not None else None,
        "schedules": record.schedules.split(",") if record.schedules else [],
        "not_before": record.not_before.isoformat() if record.not_before else None,
        "not_after": record.not_after.isoformat() if record.not_after else None,
        "superseded_by_id": record.superseded_by_id,
        "id": record.id,
        "key": _key_json(record.key_ref or {}),
    }


def _where(key: dict[str, Any]) -> str:
    token = key.get("token")
    if token:
        return f"token '{token.get('label')}' (serial {token.get('serial')})"
    return "key file" if key else "no key"


def _line(data: dict[str, Any]) -> str:
    ident = data["certificate_id"] or f"key {data['key'].get('key_id', '?')[:12]}"
    until = f"until {data['not_after'][:10]}" if data["not_after"] else "no certificate yet"
    who = data["subscriber_name"] or data["key"].get("label", "")
    return (f"{ident:<18} {data['status']:<10} {data['kind']:<14} {who:<24} {data['registration'] or '-':<10} "
            f"{until}  ({_where(data['key'])})")


# ---------------------------------------------------------------------------------------------------------------------
# handlers


def _certificates(args: argparse.Namespace) -> Any:
    from app.services.certificates.book import CertificateBook

    config, db, _book = open_context(args)
    return CertificateBook(db, config, actor="cli")


def cmd_cert_list(args: argparse.Namespace) -> int:
    with _certificates(args) as certs:
        certs.refresh_statuses()
        items = [_record_json(r) for r in certs.list()]
    if args.json:
        print_json(items)
    elif not items:
        print("No keys or certificates yet. Start with: csos-desk cert keygen --label \"Your Name 2026\"")
    else:
        for item in items:
            print(_line(item))
    return EXIT_OK


def cmd_cert_show(args: argparse.Namespace) -> int:
    with _certificates(args) as certs:
        certs.refresh_statuses()
        record = certs.get(args.fingerprint)
        data = _record_json(record)
        if record.certificate_der is not None:
            cert, chain = certs.chain(record)
            data["issuer"] = cert.issuer.rfc4514_string()
            data["serial_number"] = format(cert.serial_number, "x")
            data["chain"] = [c.subject.rfc4514_string() for c in chain]
    if args.json:
        print_json(data)
        return EXIT_OK
    print(f"Certificate {data['certificate_id'] or '(none yet: key waiting for its certificate)'}")
    if data["fingerprint"]:
        print(f"  SHA-256:      {data['fingerprint']}")
    print(f"  Status:       {data['status']}  ({data['kind']})")
    if data["subscriber_name"]:
        print(f"  Subscriber:   {data['subscriber_name']} <{data['email']}>, serial {data['subject_serial']}")
    print(f"  Registration: {data['registration'] or '-'}   schedules {','.join(data['schedules']) or '-'}")
    if data["not_after"]:
        print(f"  Valid:        {data['not_before']} → {data['not_after']}")
        print(f"  Issuer:       {data['issuer']}")
    key = data["key"]
    print(f"  Key:          {key.get('key_id')} '{key.get('label')}' {key.get('algorithm')} in {_where(key)}")
    return EXIT_OK


def cmd_cert_keygen(args: argparse.Namespace) -> int:
    from app.services.keys import KeyAlgorithm

    on_token = args.token is not None
    prompt = ("Token PIN", False) if on_token else ("New password for the key file", True)
    (secret,) = read_secrets(args, [prompt])
    with _certificates(args) as certs:
        ref = certs.keygen(store="token" if on_token else "software", algorithm=KeyAlgorithm(ALGORITHMS[args.algorithm]),
                           label=args.label, secret=secret, token_label=args.token or None)
    del secret
    if args.json:
        print_json(_key_json(json.loads(ref.to_json())))
    else:
        print(f"Key {ref.key_id} created: {ref.describe()}.")
        print(f"Next: csos-desk cert csr --key {ref.key_id[:8]} --name \"Full Name\" --email you@example.com "
              "--registrant \"Pharmacy name\" --serial DIGITS --out request.csr")
    return EXIT_OK


def cmd_cert_csr(args: argparse.Namespace) -> int:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    out = Path(args.out)
    if not out.parent.is_dir():
        raise UsageError(f"The folder {out.parent} does not exist.", code="usage.file_missing")
    with _certificates(args) as certs:
        ref, module = certs.find_key(args.key)
        (secret,) = read_secrets(args, [("Token PIN" if ref.token else "Password of the key file", False)])
        der = certs.make_csr(ref, secret=secret, full_name=args.name, email=args.email,
                             registrant_name=args.registrant, subject_serial=args.serial, module=module)
        del secret
    data = der if args.der else x509.load_der_x509_csr(der).public_bytes(serialization.Encoding.PEM)
    try:
        out.write_bytes(data)
    except OSError as exc:
        raise UsageError(f"{out} could not be written ({exc.strerror}).", code="usage.io") from None
    print(f"Certificate request written to {out} (key {ref.key_id}).")
    return EXIT_OK


def cmd_cert_install(args: argparse.Namespace) -> int:
    from app.cli.trust import offer_root
    from app.services.keys import KeyStoreError

    data = _read_file(args.file)
    pin = read_secrets(args, [("Token PIN", False)])[0] if args.password_stdin else None
    with _certificates(args) as certs:
        try:
            try:
                record = certs.install(data, secret=pin)
            except KeyStoreError as exc:
                if exc.code != "key.pin_required" or pin is not None or not sys.stdin.isatty():
                    raise
                (pin,) = read_secrets(args, [("Token PIN", False)])
                record = certs.install(data, secret=pin)
        finally:  # production: the root found in the downloaded chain, its fingerprint and the `trust add` command
            offer_root(args, certs.config, data)
        del pin
        return _print_record(args, record, "Installed")


def cmd_cert_import(args: argparse.Namespace) -> int:
    data = _read_file(args.file)
    on_token = args.token is not None
    password, new_secret = read_secrets(args, [
        ("Password of the .p12/.pfx file", False),
        ("Token PIN", False) if on_token else ("New password for the key file", True),
    ])
    with _certificates(args) as certs:
        record = certs.import_p12(data, password=password, new_secret=new_secret, label=args.label,
                                  to_token=on_token, token_label=args.token or None)
        del password, new_secret
        return _print_record(args, record, "Imported")


def cmd_cert_export(args: argparse.Namespace) -> int:
    print(EXPORT_WARNING, file=sys.stderr)
    if not args.i_understand_the_risk:
        raise UsageError("Nothing was exported. Repeat with --i-understand-the-risk once you have read the warning.",
                         code="usage.export_not_acknowledged")
    out = Path(args.out)
    with _certificates(args) as certs:
        record = certs.get(args.fingerprint)
        secret, export_password = read_secrets(args, [("Password of the key file", False),
                                                      ("Password for the export file", True)])
        target = certs.export_p12(record.fingerprint or args.fingerprint, secret=secret,
                                  export_password=export_password, path=out, acknowledge_backup_risk=True)
        del secret, export_password
    print(f"Private key and certificate exported to {target} (readable by you only).")
    return EXIT_OK


def cmd_cert_remove(args: argparse.Namespace) -> int:
    with _certificates(args) as certs:
        data = _record_json(certs.get(args.fingerprint))
        record = certs.remove(args.fingerprint)
    if args.json:
        print_json({"removed": data})
        return EXIT_OK
    what = f"certificate {data['certificate_id']}" if record.fingerprint else f"key {data['key'].get('key_id')}"
    print(f"Removed {what} ({data['subscriber_name'] or data['key'].get('label', '')}).")
    return EXIT_OK


def cmd_token_list(args: argparse.Namespace) -> int:
    config, db, _book = open_context(args)
    from app.services.certificates.book import CertificateBook

    with CertificateBook(db, config, actor="cli") as certs:
        if not certs.token_modules():
            if args.json:
                print_json([])
            else:
                print("No token driver configured (setting pkcs11_modules, or PKCS11_MODULE).")
            return EXIT_OK
        tokens = [t.__dict__ for t in certs.list_tokens()]
    if args.json:
        print_json(tokens)
    elif not tokens:
        print("No token found. Insert your token.")
    else:
        for t in tokens:
            flags = ", ".join(f for f, on in (("PIN pad", t["pin_pad"]), ("PIN LOCKED", t["pin_locked"])) if on)
            print(f"{t['label']:<24} serial {t['serial']:<18} {t['manufacturer']} {t['model']}"
                  + (f"  [{flags}]" if flags else ""))
            if t.get("pin_notice"):
                print(f"    {t['pin_notice']}")
    return EXIT_OK


def cmd_reminders(args: argparse.Namespace) -> int:
    from app.services.certificates.book import CertificateBook
    from app.services.orders.reminders import due_reminders

    config, db, _book = open_context(args)
    with CertificateBook(db, config, actor="cli") as certs:
        certs.refresh_statuses()
    reminders = due_reminders(db, today=dt.date.today())
    if args.json:
        print_json([r.to_json() for r in reminders])
    elif not reminders:
        print("Nothing is due: no certificate or registration expires within 45 days.")
    else:
        for r in reminders:
            print(f"[{r.severity.value.upper()}] {r.headline}\n    {r.action}")
    return EXIT_OK


def _read_file(name: str) -> bytes:
    path = Path(name)
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"{path} does not exist.", code="usage.file_missing") from None
    except OSError as exc:
        raise UsageError(f"{path} could not be read ({exc.strerror}).", code="usage.io") from None


def _print_record(args: argparse.Namespace, record: Any, verb: str) -> int:
    data = _record_json(record)
    if args.json:
        print_json(data)
        return EXIT_OK
    if data["fingerprint"] is None:
        print(f"{verb} the key {data['key'].get('key_id')}; the file held no certificate for it.")
        return EXIT_OK
    print(f"{verb} {data['kind']} certificate {data['fingerprint']} ({data['status']}).")
    if data["kind"] == "signing" and data["registration"] is None:
        print("Note: no registration in the order book matches this certificate's DEA number. Add the registration "
              "(csos-desk registration add) so orders can be signed with it.")
    elif data["registration"]:
        print(f"It signs for {data['registration']}, schedules {','.join(data['schedules']) or '-'}, until "
              f"{data['not_after'][:10]}.")
    return EXIT_OK


# ---------------------------------------------------------------------------------------------------------------------


def register(commands: Any, groups: dict[str, Any]) -> None:
    cert = commands.add_parser("cert", help="keys and CSOS certificates").add_subparsers(
        dest="action", metavar="ACTION", required=True)

    p = cert.add_parser("list", help="keys and certificates with their status")
    add_json_flag(p)
    p.set_defaults(handler=cmd_cert_list)

    p = cert.add_parser("show", help="one certificate (by fingerprint prefix, or key id for a key without one)")
    p.add_argument("fingerprint", metavar="FINGERPRINT_PREFIX")
    add_json_flag(p)
    p.set_defaults(handler=cmd_cert_show)

    p = cert.add_parser("keygen", help="generate a signing key (key file, or on a token with --token)")
    p.add_argument("--label", required=True, help="a name for the key, e.g. your name and the year")
    p.add_argument("--algorithm", choices=sorted(ALGORITHMS), default="rsa2048")
    p.add_argument("--token", nargs="?", const="", metavar="LABEL",
                   help="generate on the token with this label (alone: the configured or only token)")
    _add_password_stdin(p, "the new key-file password, or the token PIN with --token")
    add_json_flag(p)
    p.set_defaults(handler=cmd_cert_keygen)

    p = cert.add_parser("csr", help="write a certificate request signed by the key (proof of possession)")
    p.add_argument("--key", required=True, metavar="KEY_ID", help="key id (or its first characters)")
    p.add_argument("--name", required=True, help="subscriber's full name")
    p.add_argument("--email", required=True)
    p.add_argument("--registrant", required=True, help="registrant (pharmacy) name")
    p.add_argument("--serial", required=True, help="subscriber serial number (digits)")
    p.add_argument("--out", required=True, metavar="FILE.csr")
    p.add_argument("--der", action="store_true", help="write DER instead of PEM")
    _add_password_stdin(p, "the key-file password or token PIN")
    p.set_defaults(handler=cmd_cert_csr)

    p = cert.add_parser("install", help="install an issued certificate (PEM, DER or PKCS#7 chain) next to its key")
    p.add_argument("file")
    _add_password_stdin(p, "the token PIN (only for tokens that need it to store a certificate)")
    add_json_flag(p)
    p.set_defaults(handler=cmd_cert_install)

    p = cert.add_parser("import", help="import a key and certificate from a .p12/.pfx file")
    p.add_argument("file", metavar="FILE.p12")
    p.add_argument("--label", required=True)
    p.add_argument("--token", nargs="?", const="", metavar="LABEL", help="put the key on this token instead")
    _add_password_stdin(p, "line 1 the .p12 password, line 2 the new key-file password (or the token PIN)")
    add_json_flag(p)
    p.set_defaults(handler=cmd_cert_import)

    p = cert.add_parser("export", help="back up a key-file key and its certificate to a .p12 (read the warning)")
    p.add_argument("fingerprint", metavar="FINGERPRINT")
    p.add_argument("--out", required=True, metavar="FILE.p12")
    p.add_argument("--i-understand-the-risk", action="store_true", help="confirm you read the export warning")
    _add_password_stdin(p, "line 1 the key-file password, line 2 the password for the export file")
    p.set_defaults(handler=cmd_cert_export)

    token = commands.add_parser("token", help="PKCS#11 tokens").add_subparsers(dest="action", metavar="ACTION",
                                                                               required=True)
    p = cert.add_parser("remove", help="remove a certificate that never signed an order (and its unused key file)")
    p.add_argument("fingerprint", metavar="FINGERPRINT_PREFIX")
    add_json_flag(p)
    p.set_defaults(handler=cmd_cert_remove)

    p = token.add_parser("list", help="tokens in the readers of the configured drivers")
    add_json_flag(p)
    p.set_defaults(handler=cmd_token_list)

    p = commands.add_parser("reminders", help="certificate and registration expiry reminders (45/30/14/7/1 days)")
    add_json_flag(p)
    p.set_defaults(handler=cmd_reminders)
