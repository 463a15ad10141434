"""`csos-desk sandbox …`: run the training sandbox, show where it is, and drive its suppliers (training controls).

    csos-desk sandbox [--dir DIR] [--host 127.0.0.1] [--port N]        run until Ctrl+C
    csos-desk sandbox status                                          addresses of the running sandbox
    csos-desk sandbox supplier ship acme --purchaser BJ6125341 --order 26X000001 [--line 1:2 …] [--ship-date D]
    csos-desk sandbox supplier void acme --purchaser … --order … [--line 2 …] --reason TEXT
    csos-desk sandbox supplier reject acme [--next 1] --reason TEXT
    csos-desk sandbox supplier faults acme [--latency-ms N] [--fail-next N] [--drop-next N] [--malformed-next N]
                                           [--wrong-order-next N] [--unreadable-ack-next N] [--deep-json-next N]
    csos-desk sandbox supplier auto acme --ship | --no-ship
"""

from __future__ import annotations

import argparse
import functools
import json
import signal
import threading
from pathlib import Path
from typing import Any

from app.cli.common import EXIT_OK, EXIT_RULE, UsageError, add_json_flag, print_json


def _sandbox_dir(args: argparse.Namespace) -> Path:
    if getattr(args, "dir", None):
        return Path(args.dir).expanduser()
    from app.config import load_config

    # The sandbox belongs to training: its folder is inside the training profile's data folder.
    return load_config(data_dir=args.data_dir, profile="training").data_dir / "sandbox"


def cmd_sandbox_run(args: argparse.Namespace) -> int:
    from app.config import load_config
    from app.logging_setup import setup_logging
    from app.sandbox import start_sandbox

    config = load_config(data_dir=args.data_dir, profile="training")
    setup_logging(config.data_dir)
    directory = _sandbox_dir(args)
    handle = start_sandbox(directory, host=args.host, port=args.port)
    _follow_time_server(config, directory, handle)
    signal.signal(signal.SIGTERM, _interrupt)  # `kill` stops it as cleanly as Ctrl+C
    try:
        # flush=True: the banner must show at once when output goes to a file or a pipe (e.g. `./run`'s log).
        say = functools.partial(print, flush=True)
        say("CSOS Desk TRAINING sandbox is running (Ctrl+C stops it).")
        say(f"  portal / CA:   {handle.portal_url}")
        for supplier in handle.suppliers:
            say(f"  supplier:      {supplier.url}   {supplier.name} (DEA {supplier.dea_number})")
        say(f"  mailbox:       {handle.mailbox_url}")
        say(f"  CRLs (http):   {handle.crl_urls['root']}  {handle.crl_urls['sub']}")
        say(f"  TLS bundle:    {handle.tls_bundle}   (verify the sandbox's HTTPS with this)")
        say(f"  CSOS trust:    {handle.trust_bundle}   (the CSOS training root)")
        if handle.sntp_port:
            say(f"  SNTP (clock):  127.0.0.1:{handle.sntp_port}")
        say(f"  folder:        {directory}")
        say("  The same ports are used again on the next start while they are free.")
        threading.Event().wait()  # until Ctrl+C (main() prints "Stopped.")
    finally:
        handle.stop()
    return EXIT_OK


def _follow_time_server(config: Any, directory: Path, handle: Any) -> None:
    """If the training profile uses this sandbox and its time server had to move (old port taken), point the
    profile's ``sntp_server`` setting at the new one, so signing does not warn that the clock was not checked."""
    if not handle.sntp_port or config.settings.get("sandbox_dir") != str(directory):
        return
    wanted = f"127.0.0.1:{handle.sntp_port}"
    if config.settings.get("sntp_server") != wanted:
        config.settings["sntp_server"] = wanted
        config.save_settings()


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _running(args: argparse.Namespace) -> dict[str, Any]:
    path = _sandbox_dir(args) / "sandbox.json"
    try:
        return json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        raise UsageError(f"No sandbox was started in {path.parent}. Start one with: csos-desk sandbox"
                         + (f" --dir {path.parent}" if getattr(args, "dir", None) else ""),
                         code="usage.sandbox_not_started") from None


def cmd_sandbox_status(args: argparse.Namespace) -> int:
    info = _running(args)
    if args.json:
        print_json(info)
        return EXIT_OK
    print(f"portal:      {info['portal_url']}")
    for supplier in info["suppliers"]:
        print(f"supplier:    {supplier['url']}   {supplier['name']} (DEA {supplier['dea_number']})")
    if info.get("crl_urls"):
        print(f"CRLs:        {info['crl_urls'].get('root')}  {info['crl_urls'].get('sub')}")
    print(f"TLS bundle:  {info['tls_bundle']}")
    print(f"CSOS trust:  {info['trust_bundle']}")
    if info.get("sntp_port"):
        print(f"SNTP:        127.0.0.1:{info['sntp_port']}")
    return EXIT_OK


def _control(args: argparse.Namespace, action: str, body: dict[str, Any]) -> int:
    import requests

    info = _running(args)
    slugs = {s["slug"]: s for s in info["suppliers"]}
    if args.supplier not in slugs:
        raise UsageError(f"No supplier '{args.supplier}'; the sandbox has {', '.join(slugs)}.",
                         code="usage.unknown_supplier")
    url = f"{slugs[args.supplier]['url']}/_training/{action}"
    try:
        response = requests.post(url, json=body, verify=info["tls_bundle"], timeout=15)
    except requests.RequestException as exc:
        raise UsageError(f"The sandbox at {info['base_url']} does not answer ({type(exc).__name__}). Is it "
                         "running?", code="usage.sandbox_unreachable") from None
    try:
        data = response.json()
    except ValueError:
        data = {"error": "bad_answer", "message": f"HTTP {response.status_code}"}
    if args.json:
        print_json(data)
    elif response.ok:
        record = data.get("record")
        print(f"{record['kind']} record #{record['seq']} added." if record else json.dumps(data))
    else:
        print(f"{data.get('error')}: {data.get('message')}")
    return EXIT_OK if response.ok else EXIT_RULE


def _order_key(args: argparse.Namespace) -> dict[str, Any]:
    return {"purchaser_dea": args.purchaser, "order_number": args.order}


def cmd_supplier_ship(args: argparse.Namespace) -> int:
    lines = None
    if args.line:
        lines = []
        for item in args.line:
            number, _, packages = item.partition(":")
            if not (number.isdigit() and packages.isdigit()):
                raise UsageError(f"--line {item}: use LINE:PACKAGES, e.g. --line 1:2.", code="usage.line")
            lines.append({"line_number": int(number), "packages": int(packages)})
    body = {**_order_key(args), "lines": lines}
    if args.ship_date:
        body["ship_date"] = args.ship_date
    return _control(args, "ship", body)


def cmd_supplier_void(args: argparse.Namespace) -> int:
    return _control(args, "void", {**_order_key(args), "lines": args.line or None, "reason": args.reason})


def cmd_supplier_reject(args: argparse.Namespace) -> int:
    return _control(args, "reject", {"next": args.next, "reason": args.reason})


# The sandbox supplier's fault switches (app.sandbox.suppliers.FAULT_KEYS), each a --flag of `supplier faults`.
FAULT_FLAGS = {
    "latency_ms": "answer every request this many milliseconds late (0 switches it off)",
    "fail_next": "answer the next N orders with 503 (nothing recorded)",
    "drop_next": "drop the connection on the next N orders (nothing recorded)",
    "malformed_next": "record the next N orders but garble the answer",
    "wrong_order_next": "record the next N orders but let the 855 name another order number",
    "unreadable_ack_next": "record the next N orders but send an 855 that is not X12",
    "deep_json_next": "record the next N orders but answer with JSON nested deeper than any parser allows",
}


def cmd_supplier_faults(args: argparse.Namespace) -> int:
    body = {key: getattr(args, key) for key in FAULT_FLAGS if getattr(args, key) is not None}
    return _control(args, "faults", body)


def cmd_supplier_auto(args: argparse.Namespace) -> int:
    return _control(args, "auto", {"ship": args.ship})


def register(commands: Any, groups: dict[str, Any]) -> None:
    sandbox = commands.add_parser("sandbox", help="training sandbox: local CSOS portal/CA and suppliers over HTTPS")
    sandbox.add_argument("--dir", help="sandbox folder (default: <training data folder>/sandbox)")
    sandbox.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    sandbox.add_argument("--port", type=int, default=0, help="port (default: the last one used, else any free one)")
    sandbox.set_defaults(handler=cmd_sandbox_run)
    actions = sandbox.add_subparsers(dest="sandbox_action", metavar="ACTION")

    p = actions.add_parser("status", help="where the sandbox started in --dir is listening")
    add_json_flag(p)
    p.set_defaults(handler=cmd_sandbox_status)

    supplier = actions.add_parser("supplier", help="training controls of a sandbox supplier").add_subparsers(
        dest="supplier_action", metavar="CONTROL", required=True)

    def control(name: str, help_text: str) -> argparse.ArgumentParser:
        p = supplier.add_parser(name, help=help_text)
        p.add_argument("supplier", help="supplier slug (acme, blue-river, summit)")
        add_json_flag(p)
        return p

    p = control("ship", "ship an order (in full, or --line LINE:PACKAGES for a partial fill) -> 856")
    p.add_argument("--purchaser", required=True, help="purchaser DEA number")
    p.add_argument("--order", required=True, help="order number")
    p.add_argument("--line", action="append", help="LINE:PACKAGES (repeat); default: everything still open")
    p.add_argument("--ship-date", help="YYYY-MM-DD (default today; at most 60 days after signing)")
    p.set_defaults(handler=cmd_supplier_ship)

    p = control("void", "void an order or some of its lines -> 865")
    p.add_argument("--purchaser", required=True)
    p.add_argument("--order", required=True)
    p.add_argument("--line", action="append", type=int, help="line number to void (repeat); default: whole order")
    p.add_argument("--reason", default="Voided by the supplier")
    p.set_defaults(handler=cmd_supplier_void)

    p = control("reject", "answer the next order(s) 'not accepted' with a reason")
    p.add_argument("--next", type=int, default=1)
    p.add_argument("--reason", default="Declined by the supplier")
    p.set_defaults(handler=cmd_supplier_reject)

    p = control("faults", "fault switches: latency, 503s, dropped connections, malformed or wrong answers")
    for key, help_text in FAULT_FLAGS.items():
        p.add_argument("--" + key.replace("_", "-"), dest=key, type=int, metavar="N", help=help_text)
    p.set_defaults(handler=cmd_supplier_faults)

    p = control("auto", "ship accepted orders in full automatically")
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--ship", dest="ship", action="store_true")
    group.add_argument("--no-ship", dest="ship", action="store_false")
    p.set_defaults(handler=cmd_supplier_auto)
