"""Entry point: `python -m app` = `csos-desk`."""

from __future__ import annotations

import time; START = time.perf_counter()  # noqa: E702,I001 - as early as possible: the first-paint figure starts here
import os
import sys


def main() -> int:
    if os.name == "posix":  # = app.config.PRIVATE_UMASK: all the program writes is the user's alone (0700/0600)
        os.umask(0o077)
    import app.logging_setup  # noqa: F401  - quiet default handlers before anything logs

    if sys.argv[1:] == ["--draw-records-pdf"]:  # = records_pdf.DRAW_RECORDS_PDF: the records export's PDF process
        from app.ui.records_pdf import draw_from_stdin

        return draw_from_stdin()
    from app.cli import main as cli_main

    return cli_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
