"""Entry point: `python -m app` = `csos-desk`."""

from __future__ import annotations

import time; START = time.perf_counter()  # noqa: E702,I001 - as early as possible: the first-paint figure starts here
import sys


def main() -> int:
    import app.logging_setup  # noqa: F401  - quiet default handlers before anything logs
    from app.cli import main as cli_main

    return cli_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
