"""Filling a drive to the last byte (with the ``tiny_filesystem`` fixture of tests/conftest.py): a full disk for real."""

from __future__ import annotations

import errno
from pathlib import Path


def fill_up(folder: Path) -> Path:
    """Take every free byte of the filesystem ``folder`` is on; the filler file is returned (delete it for room)."""
    filler = folder / "filler"
    with open(filler, "wb") as handle:
        try:
            while True:
                handle.write(b"\0" * 16384)
                handle.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    return filler
