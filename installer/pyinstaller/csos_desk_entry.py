"""Frozen entry point for both bundled executables (`csos-desk` and `csos-desk-console`).

PyInstaller runs this file as ``__main__``; everything else lives in the ``app`` package, exactly as in `python -m app`.
"""

import sys

from app.__main__ import main

if __name__ == "__main__":
    sys.exit(main())
