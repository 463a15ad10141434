"""`csos-desk trust add|list|remove`: this profile's CSOS trust roots (issue 17, item 3).

    csos-desk trust add FILE                      shows each certificate (subject, validity, SHA-256) and asks
    csos-desk trust add FILE --yes --fingerprint HEX    in scripts: refused unless the fingerprint matches
    csos-desk trust list [--json]
    csos-desk trust remove FINGERPRINT            (the full fingerprint or its first 16 hex digits)

Never the operating system's store: only what is added here (or in Settings) is trusted.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from app.cli.common import EXIT_OK, UsageError, add_json_flag, print_json


def _store(args: argparse.Namespace) -> Any:
    from app.config import load_config
    from app.services.certificates.trust import TrustStore

    config = load_config(data_dir=args.data_dir, database_url=args.database_url, profile=args.profile)
    return config, TrustStore(config.data_dir)


def describe(candidate: Any, *, out: Any = sys.stdout) -> None:
    """What a person must compare before trusting a certificate."""
    from app.services.certificates.trust import group_fingerprint

    print(f"  Subject:  {candidate.subject}", file=out)
    print(f"  Valid:    {candidate.not_before:%Y-%m-%d} to {candidate.not_after:%Y-%m-%d}", file=out)
    print(f"  SHA-256:  {group_fingerprint(candidate.fingerprint)}", file=out)
    print(f"  This is {candidate.plain_kind()}.", file=out)


def cmd_trust_add(args: argparse.Namespace) -> int:
    from app.services.certificates.trust import TrustStoreError, inspect

    try:
        data = Path(args.file).read_bytes()
    except OSError as exc:
        raise UsageError(f"{args.file} cannot be read ({exc.strerror}).", code="usage.file_unreadable") from None
    if args.yes and not args.fingerprint:
        raise UsageError("--yes needs --fingerprint HEX: a script must say which certificate it expects (compare "
                         "it with the fingerprint DEA publishes).", code="usage.fingerprint_required")
    config, store = _store(args)
    candidates = inspect(data, source=args.file)
    out = sys.stderr if args.json else sys.stdout
    print(f"{args.file} holds {len(candidates)} certificate(s):", file=out)
    for number, candidate in enumerate(candidates, 1):
        print(f"Certificate {number}:", file=out)
        describe(candidate, out=out)
    chosen = candidates
    if not args.fingerprint:
        chosen = offered(candidates)
        if not chosen:
            raise TrustStoreError("None of these is a CA certificate, so none can be a CSOS trust root. Add the root "
                                  "certificate of the CA instead (DEA publishes it). Nothing was added.",
                                  code="trust.not_ca")
        for skipped in (c for c in candidates if c not in chosen):
            why = "not a CA certificate" if not skipped.is_ca else "not a root; the root in the file covers it"
            print(f"Skipped '{skipped.name}': {why}.", file=out)
    if not args.yes:
        if not sys.stdin.isatty():
            raise UsageError("No terminal to confirm on. In scripts use --yes --fingerprint HEX with the SHA-256 "
                             "fingerprint shown above.", code="usage.no_terminal")
        answer = input(f"Compare the SHA-256 fingerprint with the one DEA publishes. Trust "
                       f"{'this certificate' if len(chosen) == 1 else f'these {len(chosen)} certificates'} for "
                       f"CSOS orders in the {config.profile.value} profile? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("Nothing was added.", file=out)
            return EXIT_OK
    added, already = store.add(chosen, fingerprints=args.fingerprint)
    if args.json:
        print_json({"added": [c.to_json() for c in added], "already_trusted": [c.to_json() for c in already],
                    "store": str(store.path)})
        return EXIT_OK
    for candidate in added:
        print(f"Added {candidate.name} ({candidate.short_id}) to the CSOS trust roots of the "
              f"{config.profile.value} profile.")
    for candidate in already:
        print(f"{candidate.name} ({candidate.short_id}) was already trusted.")
    return EXIT_OK


def offered(candidates: list[Any]) -> list[Any]:
    """What to offer from a file: its roots (self-signed CAs), else its CA certificates (said not to be roots)."""
    roots = [c for c in candidates if c.kind == "root"]
    return roots or [c for c in candidates if c.is_ca]


def offer_root(args: argparse.Namespace, config: Any, data: bytes) -> None:
    """After `cert install` in production: if the downloaded file holds a root this profile does not trust yet, show
    its fingerprint (to compare with the one DEA publishes) and the exact command that adds it. Never fails."""
    import shlex

    from app.errors import CsosError
    from app.services.certificates.trust import TrustStore, group_fingerprint, read_certificates, root_offer

    if config.is_training:
        return
    try:
        root = root_offer(read_certificates(data), TrustStore(config.data_dir))
    except CsosError:
        return
    if root is None:
        return
    command = "csos-desk" + (f" --data-dir {shlex.quote(str(args.data_dir))}" if args.data_dir else "")
    command += f" --profile {config.profile.value} trust add {shlex.quote(str(args.file))}"
    print(f"The file also holds the root certificate '{root.name}', which this profile does not trust yet.\n"
          f"  SHA-256:  {group_fingerprint(root.fingerprint)}\n"
          "Compare it with the fingerprint DEA publishes. Only if they are the same, trust it with:\n"
          f"  {command}", file=sys.stderr)


def cmd_trust_list(args: argparse.Namespace) -> int:
    from app.services.certificates.trust import group_fingerprint

    config, store = _store(args)
    roots = store.roots()
    legacy = config.settings.get("csos_trust_bundle")
    if args.json:
        print_json({"profile": config.profile.value, "store": str(store.path), "roots": [r.to_json() for r in roots],
                    "csos_trust_bundle_setting": legacy})
        return EXIT_OK
    if not roots:
        print(f"No CSOS trust roots were added to the {config.profile.value} profile. Add DEA's CSOS root with: "
              "csos-desk trust add FILE")
    for root in roots:
        print(f"{root.name}\n  Subject:  {root.subject}\n  Valid:    {root.not_before:%Y-%m-%d} to "
              f"{root.not_after:%Y-%m-%d}\n  SHA-256:  {group_fingerprint(root.fingerprint)}")
    if legacy:
        print(f"Also trusted through the csos_trust_bundle setting: {legacy}")
    return EXIT_OK


def cmd_trust_remove(args: argparse.Namespace) -> int:
    config, store = _store(args)
    removed = store.remove(args.fingerprint)
    if args.json:
        print_json({"removed": removed.to_json()})
    else:
        print(f"Removed {removed.name} ({removed.short_id}) from the CSOS trust roots of the "
              f"{config.profile.value} profile. Orders signed under it are no longer called trusted.")
    return EXIT_OK


def register(commands: Any, groups: dict[str, Any]) -> None:
    trust = commands.add_parser("trust", help="CSOS trust roots of this profile (never the system's store)")
    actions = trust.add_subparsers(dest="action", metavar="ACTION", required=True)

    p = actions.add_parser("add", help="trust the CA certificate(s) in FILE (PEM, DER or .p7b) after checking them")
    p.add_argument("file")
    p.add_argument("--yes", action="store_true", help="do not ask (scripts; needs --fingerprint)")
    p.add_argument("--fingerprint", action="append",
                   help="SHA-256 fingerprint you expect (hex, colons allowed; repeat for several); nothing is added "
                        "if it does not match")
    add_json_flag(p)
    p.set_defaults(handler=cmd_trust_add)

    p = actions.add_parser("list", help="the CSOS trust roots of this profile, with fingerprints")
    add_json_flag(p)
    p.set_defaults(handler=cmd_trust_list)

    p = actions.add_parser("remove", help="stop trusting a root (full fingerprint or its first 16 hex digits)")
    p.add_argument("fingerprint")
    add_json_flag(p)
    p.set_defaults(handler=cmd_trust_remove)
