"""Log to a rotating file in the profile's data folder. Only codes and identifiers are logged, never secrets."""

from __future__ import annotations

import logging
import os
from pathlib import Path

_configured: set[Path] = set()

# Library loggers stay quiet unless something is wrong; without a handler Python's last-resort handler would print
# our records (and tracebacks) on the terminal.
logging.getLogger("app").addHandler(logging.NullHandler())


def log_path(data_dir: Path) -> Path:
    return Path(data_dir) / "logs" / "csos-desk.log"


def setup_logging(data_dir: Path, *, level: int = logging.INFO) -> Path:
    path = log_path(data_dir)
    if path in _configured:
        return path
    import logging.handlers  # here, not at import: the entry point imports this module before the first window

    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))  # private even without the umask
        handler: logging.Handler = logging.handlers.RotatingFileHandler(
            path, maxBytes=2_000_000, backupCount=5, encoding="utf-8")
    except OSError:
        return path  # a read-only data folder must not stop the program; storage errors surface elsewhere
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    app_logger = logging.getLogger("app")
    app_logger.addHandler(handler)
    app_logger.setLevel(level)
    _configured.add(path)
    return path
