"""Command line: `csos-desk …`. Every listing also prints JSON with --json.

Exit codes: 0 done, 1 the thing asked for is not valid/acceptable (a rule failed), 2 usage or I/O problem.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Sequence

from app import __version__
from app.cli.common import EXIT_RULE, EXIT_USAGE, UsageError, log
from app.errors import CsosError


def cmd_gui(args: argparse.Namespace) -> int:
    from app.ui.app import run_gui

    return run_gui(data_dir=args.data_dir, database_url=args.database_url, profile=args.profile)


GROUPS = {"registration": "DEA registrations of this pharmacy", "supplier": "suppliers", "catalog": "product catalog",
          "order": "orders"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="csos-desk", description="CSOS Desk: controlled-substance ordering.")
    parser.add_argument("--version", action="version", version=f"csos-desk {__version__}")
    parser.add_argument("--data-dir", help="folder for the order book, keys and settings")
    parser.add_argument("--database-url", help="SQLAlchemy URL of the order book (default: SQLite in the data dir)")
    parser.add_argument("--profile", choices=["training", "production"], help="training (default) or production")
    parser.add_argument("--self-test", action="store_true", help="check this installation and exit (= self-test)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    groups = {name: commands.add_parser(name, help=text).add_subparsers(dest="action", metavar="ACTION", required=True)
              for name, text in GROUPS.items()}
    _extend_parser(commands, groups)
    return parser


# Each area adds its commands from its own module: ``register(commands, groups)`` where ``commands`` is the top-level
# subparsers object and ``groups`` holds the existing groups' subparsers ("order", "registration", …). Modules import
# what they need inside their handlers so `csos-desk --help` stays fast.
EXTENSION_MODULES = ("app.cli.pharmacy", "app.cli.orders", "app.cli.lifecycle", "app.cli.signing", "app.cli.certificates",
                     "app.cli.records", "app.cli.database", "app.cli.sandbox", "app.cli.support", "app.cli.demo",
                     "app.cli.trust", "app.cli.as2", "app.cli.history")


def _extend_parser(commands: Any, groups: dict[str, Any]) -> None:
    import importlib

    for name in EXTENSION_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue  # that area is not built yet
            raise
        module.register(commands, groups)


GUI_OPTIONS = {"--data-dir": "data_dir", "--database-url": "database_url", "--profile": "profile"}


def gui_only_arguments(argv: Sequence[str] | None) -> argparse.Namespace | None:
    """``csos-desk [--data-dir D] [--database-url URL] [--profile P]``: the plain GUI start, read without building
    every command's parser (that imports each command module) so the window appears sooner. Anything else — a
    command, --help, an abbreviation, a missing or wrong value — returns None and goes to the full parser."""
    tokens = list(sys.argv[1:] if argv is None else argv)
    values: dict[str, str | None] = {dest: None for dest in GUI_OPTIONS.values()}
    index = 0
    while index < len(tokens):
        name, equals, value = tokens[index].partition("=")
        if name not in GUI_OPTIONS:
            return None
        if not equals:
            index += 1
            if index >= len(tokens) or tokens[index].startswith("-"):
                return None
            value = tokens[index]
        values[GUI_OPTIONS[name]] = value
        index += 1
    if values["profile"] not in (None, "training", "production"):
        return None
    return argparse.Namespace(**values, self_test=False, command=None)


def main(argv: Sequence[str] | None = None) -> int:
    args = gui_only_arguments(argv)
    if args is None:
        parser = build_parser()
        args = parser.parse_args(argv)
    handler = getattr(args, "handler", None) or cmd_gui
    if args.self_test and handler is cmd_gui:
        from app.cli.support import cmd_self_test

        handler = cmd_self_test
    try:
        code = handler(args)
        sys.stdout.flush()  # a reader that went away (`| head -1`) shows up here, not at interpreter exit
        return code
    except BrokenPipeError:
        return _quiet_after_broken_pipe()
    except UsageError as exc:
        print(f"csos-desk: {exc.message}", file=sys.stderr)
        return EXIT_USAGE
    except CsosError as exc:
        log.info("command failed: %s", exc.code)
        print(f"error [{exc.code}]: {exc.message}", file=sys.stderr)
        return EXIT_USAGE if exc.code.startswith(("storage", "config", "usage")) else EXIT_RULE
    except KeyboardInterrupt:
        print("Stopped.", file=sys.stderr)
        return 130
    except Exception:  # last line of defence: never a traceback in the user's face
        log.exception("unexpected failure")
        print("csos-desk: an unexpected problem stopped this command. Details were written to the log file "
              "(see `csos-desk --help` for the data folder).", file=sys.stderr)
        return EXIT_USAGE


def _quiet_after_broken_pipe() -> int:
    """The reader of our output closed the pipe (`csos-desk order list | head -1`): nothing is wrong and nothing
    more can be shown. Exit quietly like other command-line tools (128 + SIGPIPE), with stdout pointed at the null
    device so the interpreter's final flush does not complain either."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    return 141
