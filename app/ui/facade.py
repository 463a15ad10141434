"""The one object every screen is given: the configuration, the order book, the job runner and app-wide signals.

Screens receive it when they are built (no globals), talk to services through what it holds, and refresh on its
signals: ``orders_changed(ids)`` after any order changed, ``parties_changed`` after registrations or suppliers
changed, ``settings_changed`` after the settings file was written.

At start-up the main window is built before the order book is open (issue 9/10): the façade is then made without
one (``AppFacade(config)``) and given it with ``attach(book, db)`` once a worker has opened it. Importing this module
does not import SQLAlchemy.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any, Callable, Iterable

from PySide6.QtCore import QObject, Signal

from app.errors import ConfigError
from app.ui.jobs import JobRunner

log = logging.getLogger(__name__)


def utcnow() -> dt.datetime:
    """Now, in UTC (the same as ``app.models.orderbook.utcnow``, without importing the models with the window)."""
    return dt.datetime.now(dt.timezone.utc)


class AppFacade(QObject):
    orders_changed = Signal(list)
    # Many orders may have changed (the outbox sent or a sync fetched answers): read the order book again.
    order_book_changed = Signal()
    parties_changed = Signal()
    settings_changed = Signal()
    # The person chose the other profile in Settings; the application reopens in it.
    profile_switch_requested = Signal(str)
    # Help → Start training over was confirmed: the application closes, empties the training folder and reopens.
    training_reset_requested = Signal()

    def __init__(self, config: Any, book: Any = None, db: Any = None, *, jobs: JobRunner | None = None,
                 clock: Callable[[], dt.datetime] = utcnow, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.config = config
        self.book = book
        self.db = db
        self.jobs = jobs or JobRunner(self)
        self.clock = clock
        self._certificates: Any = None
        self._sessions: Any = None
        self._clock_rule: tuple[Any, Any] | None = None  # (what it was made for, the ClockRule)
        self.outbox_runner: Any = None
        self.training_environment: Any = None

    @property
    def is_open(self) -> bool:
        """The order book is there (screens other than the main window's frame are only opened after this)."""
        return self.book is not None

    def attach(self, book: Any, db: Any) -> None:
        """The order book, opened after the window was built (the deferred start)."""
        if self.book is not None and self.book is not book:
            raise ValueError("this façade already has an order book")
        self.book = book
        self.db = db

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

    # -- services the screens share (built on first use, so the first window paints before they are imported) ----

    @property
    def certificates(self) -> Any:
        """One CertificateBook per window: it keeps token logins, which the signing sessions rely on."""
        if self._certificates is None:
            from app.services.certificates.book import CertificateBook

            self._certificates = CertificateBook(self.db, self.config, clock=self.clock, actor="gui")
        return self._certificates

    @property
    def sessions(self) -> Any:
        """The unlocked keys, each locked again after 10 minutes without use (K4)."""
        if self._sessions is None:
            from app.ui.signing_sessions import SigningSessions

            self._sessions = SigningSessions(self.certificates, parent=self)
        return self._sessions

    def verifier(self) -> Any:
        """The same verifier suppliers run, with this profile's trust roots, CRL cache and catalog."""
        from app.services.certificates.crl_cache import signing_crl_cache
        from app.services.certificates.trust import configured_trust_roots
        from app.services.certificates.validation import CertificateValidationService
        from app.services.signing.verifier import MappingSchedules, OrderVerifier

        cache = signing_crl_cache(self.config.cache_dir / "crl", self.settings)  # refreshed when over an hour old
        validation = CertificateValidationService(trust_roots=configured_trust_roots(self.config), crl_cache=cache)
        return OrderVerifier(validation=validation, catalog=MappingSchedules.from_database(self.db))

    def clock_server(self) -> tuple[str, int] | None:
        """Where the official time comes from; None in training mode before the practice time server runs."""
        from app.services.app_settings import sntp_server

        if self.is_training and not self.settings.get("sntp_server"):
            return None
        host, _, port = sntp_server(self.settings).partition(":")
        return host, int(port or 123)

    def clock_check(self) -> Callable[[], Any]:
        """The K6 rule signing obeys (no time server set in training: the memory of a check and the OS only).

        One rule for the profile and its time server, kept: a check that verified is reused for a minute while the
        clock is untouched (``ClockRule.check``), so the sign screen's check when it opens serves the signing that
        follows instead of asking the time server again after the password."""
        from app.services.signing.clock import STATE_FILE, ClockRule

        server = self.clock_server()
        host, port = server if server is not None else (None, 123)
        made_for = (self.config.data_dir, host, port, not self.is_training)
        if self._clock_rule is None or self._clock_rule[0] != made_for:
            self._clock_rule = (made_for, ClockRule(self.config.data_dir / STATE_FILE, server=host, port=port,
                                                    production=not self.is_training))
        return self._clock_rule[1]

    def connector(self, supplier: Any) -> Any:
        from app.services.signing.usage_indicator import for_profile
        from app.services.transport.connectors import connector_for

        # A training supplier takes test (T) interchanges only, a production one P (ISA15).
        return connector_for(supplier, data_dir=self.config.data_dir, tls_bundle=self.settings.get("tls_bundle"),
                             test_indicator=for_profile(self.config))

    def lifecycle(self) -> Any:
        from app.services.orders.lifecycle import Lifecycle

        return Lifecycle(self.book, clock=self.clock)

    def outbox(self) -> Any:
        from app.services.orders.outbox import Outbox

        return Outbox(self.book, connector_for=self.connector, lifecycle=self.lifecycle(), clock=self.clock)

    def start_outbox(self, **kwargs: Any) -> Any:
        """Send queued orders and fetch supplier answers in the background while the window is open."""
        if self.outbox_runner is None:
            from app.ui.outbox_runner import OutboxRunner

            self.outbox_runner = OutboxRunner(self, parent=self, **kwargs)
        self.outbox_runner.start()
        return self.outbox_runner

    def wake_outbox(self) -> None:
        if self.outbox_runner is not None:
            self.outbox_runner.wake()

    def shutdown(self) -> None:
        if self.outbox_runner is not None:
            self.outbox_runner.stop()
        self.jobs.shutdown()
        if self._sessions is not None:
            self._sessions.stop()
        if self._certificates is not None:
            self._certificates.close()
        environment, self.training_environment = self.training_environment, None
        if environment is not None:
            environment.stop()
