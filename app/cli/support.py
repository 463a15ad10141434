"""Support commands: `csos-desk self-test` (also `csos-desk --self-test`).

Run after installing, or when support asks: one line per check, ``ok`` or ``FAIL``, exit 1 if anything failed.
The order book checked is a temporary one unless --data-dir or --database-url says otherwise, so the self-test
never changes a pharmacy's records; the settings (token drivers) are the real profile's.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from app.cli.common import EXIT_OK, EXIT_RULE, add_json_flag, print_json


def register(commands: Any, groups: dict[str, Any]) -> None:
    p = commands.add_parser("self-test", help="check that this installation works (one line per check)")
    p.add_argument("--show", action="store_true",
                   help="open the main window on the real display instead of offscreen")
    add_json_flag(p)
    p.set_defaults(handler=cmd_self_test)


def cmd_self_test(args: argparse.Namespace) -> int:
    import tempfile

    from app.config import load_config
    from app.errors import CsosError
    from app.logging_setup import setup_logging
    from app.services.self_test import CheckResult, all_ok, iter_checks

    as_json = bool(getattr(args, "json", False))
    results: list[CheckResult] = []

    def emit(result: CheckResult) -> None:
        results.append(result)
        if not as_json:
            print(result.line, flush=True)

    data_dir, database_url = getattr(args, "data_dir", None), getattr(args, "database_url", None)
    with tempfile.TemporaryDirectory(prefix="csos-desk-self-test-", ignore_cleanup_errors=True) as scratch:
        try:
            config = load_config(data_dir=data_dir, database_url=database_url, profile=args.profile)
        except CsosError as exc:
            emit(CheckResult("settings", False, exc.message))
            config = load_config(data_dir=scratch, profile=args.profile)
        if data_dir is None and database_url is None:
            settings = config.settings
            config = load_config(data_dir=scratch, profile=config.profile)  # a throw-away order book
            config.settings = settings
        setup_logging(config.data_dir)

        for result in iter_checks(database_url=config.database_url, settings=config.settings):
            emit(result)
        for result in _window_checks(config, offscreen=not getattr(args, "show", False)):
            emit(result)

    if as_json:
        print_json({"ok": all_ok(results), "checks": [r.to_json() for r in results]})
    elif all_ok(results):
        print(f"All {len(results)} checks passed.")
    else:
        failed = sum(not r.ok for r in results)
        print(f"{failed} of {len(results)} checks FAILED. Send these lines to your support contact.",
              file=sys.stderr)
    return EXIT_OK if all_ok(results) else EXIT_RULE


def _window_checks(config: Any, *, offscreen: bool) -> list[Any]:
    """Qt checks on the same order book; if Qt itself cannot load, that is the failure to report."""
    from app.models.database import open_database
    from app.services.self_test import CheckResult, run_check

    opened: list[Any] = []
    failed = run_check("window order book", lambda: opened.append(open_database(config.database_url)) or "opened")
    if not failed.ok:
        return [failed]
    db = opened[0]
    try:
        try:
            from app.ui.self_test_window import iter_window_checks
        except ImportError as exc:
            return [CheckResult("qt", False, f"the Qt libraries cannot be loaded ({exc}).")]
        return list(iter_window_checks(config, db, offscreen=offscreen))
    finally:
        db.close()
