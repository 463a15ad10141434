"""Helper for the private-files checks (issue 19): every folder 0700 and every file 0600 at most, on POSIX."""

from __future__ import annotations

import os
import stat
from pathlib import Path


def not_private(root: Path) -> list[str]:
    """Everything under ``root`` (and ``root`` itself) that a group or other users could read, with its mode."""
    found = []
    for path in [root, *root.rglob("*")]:
        mode = path.lstat().st_mode
        if stat.S_ISLNK(mode):
            continue
        if mode & 0o077:
            found.append(f"{path.relative_to(root.parent)} {stat.S_IMODE(mode):o}")
    return found


def posix() -> bool:
    return os.name == "posix"
