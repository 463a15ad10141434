"""The one object every screen is given: the configuration, the order book, the job runner and app-wide signals.

Screens receive it when they are built (no globals), talk to services through what it holds, and refresh on its
signals: ``orders_changed(ids)`` after any order changed, ``parties_changed`` after registrations or suppliers
changed, ``settings_changed`` after the settings file was written.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any, Callable, Iterable

from PySide6.QtCore import QObject, Signal

from app.errors import ConfigError
from app.models.orderbook import utcnow
from app.ui.jobs import JobRunner

log = logging.getLogger(__name__)


class AppFacade(QObject):
    orders_changed = Signal(list)
    parties_changed = Signal()
    settings_changed = Signal()
    # The person chose the other profile in Settings; the application reopens in it.
    profile_switch_requested = Signal(str)

    def __init__(self, config: Any, book: Any, db: Any, *, jobs: JobRunner | None = None,
                 clock: Callable[[], dt.datetime] = utcnow, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.config = config
        self.book = book
        self.db = db
        self.jobs = jobs or JobRunner(self)
        self.clock = clock

    @property
    def is_training(self) -> bool:
        return bool(self.config.is_training)

    @property
    def settings(self) -> dict[str, Any]:
        return self.config.settings

    def today(self) -> dt.date:
        return self.clock().astimezone().date()

    def notify_orders_changed(self, ids: Iterable[int]) -> None:
        self.orders_changed.emit([int(i) for i in ids])

    def save_settings(self, updates: dict[str, Any], *, remove: Iterable[str] = ()) -> None:
        """Merge ``updates`` into settings.json (written atomically) and tell the screens."""
        for key in remove:
            self.config.settings.pop(key, None)
        self.config.settings.update(updates)
        try:
            self.config.save_settings()
        except OSError as exc:
            raise ConfigError(f"The settings could not be saved in {self.config.data_dir} ({exc.strerror or exc}). "
                              "Check that the disk has space and the folder can be written, then save again.",
                              code="config.settings_unwritable") from exc
        log.info("settings saved: %s", sorted(updates))
        self.settings_changed.emit()

    def shutdown(self) -> None:
        self.jobs.shutdown()
