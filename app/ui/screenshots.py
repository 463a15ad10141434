"""A PNG of each screen, rendered offscreen (``csos-desk demo --screenshots``; the GUI tests use it too).

Screens that change data (sign and send, cancel) are shown on a copy of the order book, so taking screenshots never
alters the records it pictures.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from app.errors import CsosError

log = logging.getLogger(__name__)

SIZE = (1180, 760)


def _application() -> Any:
    """The QApplication; None when this process already runs a widget-less Qt application (e.g. the records PDF
    writer's QGuiApplication), which can host no widgets."""
    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY") and sys.platform.startswith("linux"):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QCoreApplication
    from PySide6.QtWidgets import QApplication

    existing = QCoreApplication.instance()
    if existing is None:
        return QApplication(sys.argv[:1])
    return existing if isinstance(existing, QApplication) else None


def _in_child_process(folder: Path, config: Any, db: Any) -> list[Path]:
    """Render in a fresh process (same profile, same order book) when this one cannot host widgets."""
    import subprocess

    command = [sys.executable, "-m", "app.ui.screenshots", str(folder), "--data-dir", str(config.data_dir),
               "--profile", config.profile.value, "--database-url", db.url]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, QT_QPA_PLATFORM=os.environ.get("QT_QPA_PLATFORM", "offscreen")))
    if done.returncode != 0:
        raise CsosError("The screenshots could not be rendered: " + (done.stderr.strip().splitlines() or ["?"])[-1],
                        code="screenshots.failed")
    return [Path(line) for line in done.stdout.splitlines() if line.endswith(".png")]


def _settle(app: Any, until: Callable[[], bool] = lambda: True, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        app.processEvents()
        if until() or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    for _ in range(3):
        app.processEvents()


def save_screenshots(folder: str | Path, *, config: Any, db: Any, book: Any) -> list[Path]:
    """Render every screen of the program into ``folder``; returns the files written."""
    from app.services.orders.records import backup_order_book

    app = _application()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if app is None:
        return _in_child_process(folder, config, db)
    written: list[Path] = []
    with tempfile.TemporaryDirectory(prefix="csos-shots-") as scratch:
        copy_path = Path(scratch) / "orderbook.sqlite3"
        from app.models.database import open_database, sqlite_url
        from app.services.orders.orderbook import OrderBook

        if db.engine.dialect.name == "sqlite":
            backup_order_book(db, copy_path)
            copy = open_database(sqlite_url(copy_path))
        else:  # a server database: pictures are taken on the real one, without the screens that change data
            copy = None
        try:
            written += _render(app, folder, config, db, book, copy, OrderBook(copy, actor="screenshots")
                               if copy is not None else None)
        finally:
            if copy is not None:
                copy.close()
        written += _render_first_run(app, folder, Path(scratch), config, book)
    try:
        from app.ui.wizards import render_wizard_screenshots

        written += render_wizard_screenshots(folder / "wizards")
    except CsosError as exc:
        log.info("wizard screenshots skipped: %s", exc.code)
    return written


def _render(app: Any, folder: Path, config: Any, db: Any, book: Any, copy_db: Any, copy_book: Any) -> list[Path]:
    from app.ui.facade import AppFacade
    from app.ui.main_window import MainWindow

    written: list[Path] = []

    def shoot(name: str, widget: Any, size: tuple[int, int] | None = None,
              until: Callable[[], bool] = lambda: True, close: bool = True) -> None:
        if size:
            widget.resize(*size)
        widget.show()
        _settle(app, until)
        target = folder / f"{name}.png"
        widget.grab().save(str(target))
        written.append(target)
        if close:
            widget.close()
            widget.deleteLater()
        else:
            widget.hide()

    facade = AppFacade(config, book, db)
    try:
        window = MainWindow(config, book, db, facade=facade, start_checks=False)
        latest = window.model.order_id(0) if window.model.rowCount() else None
        if latest is not None:
            window.select_order(latest)
        shoot("main-window", window, SIZE, close=False)
        if latest is not None and _discrepancies(db, latest):
            # What a discrepancy looks like: the order's fields scrolled to it, and the order's page of the
            # records export (the same HTML the PDF paints).
            sizes = window.splitter.sizes()
            window.splitter.setSizes([sum(sizes) // 4, sum(sizes) - sum(sizes) // 4])  # the detail, not the list
            window.detail.tabs.setCurrentIndex(0)
            _settle(app)
            window.detail.form_scroll.ensureWidgetVisible(window.detail.fields["discrepancies"])
            shoot("discrepancy-order-detail", window, SIZE, close=False)
            window.splitter.setSizes(sizes)
            written.append(_records_page(folder / "discrepancy-records-page.png", book, latest))
        if latest is not None:
            window.detail.tabs.setCurrentIndex(1)
            shoot("main-window-timeline", window, SIZE, close=False)
            from app.ui.lifecycle_dialogs import LostOrderDialog, ReceivingDialog
            from app.ui.records_dialog import RecordsDialog

            shoot("receiving", ReceivingDialog(facade, latest, parent=window))
            shoot("lost-order", LostOrderDialog(facade, latest, parent=window))
            for tab, name in ((0, "records-export"), (2, "records-backup")):
                shoot(name, RecordsDialog(facade, tab=tab, parent=window))
            records = RecordsDialog(facade, tab=1, parent=window)
            records.show()
            records.run_check()
            shoot("records-check", records, until=lambda: records.job is None)
        from app.ui.order_editor import OrderEditor

        shoot("order-editor", OrderEditor(facade, parent=window))
        from app.ui.catalog_import_dialog import CatalogImportDialog

        shoot("catalog-import", CatalogImportDialog(facade, parent=window, path=str(Path.home() / "ndctext.zip")))
        from app.ui.settings_dialog import SettingsDialog

        shoot("settings", SettingsDialog(facade, parent=window))
        from app.ui.about_dialog import AboutDialog

        shoot("about", AboutDialog(window, profile_text="training (practice orders only)" if config.is_training
                                   else "production", data_dir=config.data_dir))
        from app.ui.certificates_page import CertificatesPage

        shoot("certificates", CertificatesPage(facade), (1320, 420))
        from app.ui.history_window import HistoryWindow

        history = HistoryWindow(facade)
        shoot("history-all", history, SIZE, until=lambda: history.report is not None, close=False)
        history.substance_combo.setCurrentIndex(max(history.substance_combo.findData("oxycodone"),
                                                    history.substance_combo.count() - 1))
        shoot("history-substance", history, SIZE)
        window.close()
        window.deleteLater()
        _flush_deletes(app)
    finally:
        facade.shutdown()

    if copy_book is None:
        return written
    copied = AppFacade(config, copy_book, copy_db)
    try:
        registrations, suppliers = copy_book.list_registrations(), copy_book.list_suppliers()
        products = _sample_products(copy_db)
        if registrations and suppliers and products:
            draft = copy_book.new_order(registration_dea=registrations[0].dea_number, supplier_name=suppliers[0].name)
            for ndc, packages in zip(products, (2, 1, 3)):
                copy_book.add_line(draft.id, ndc=ndc, packages=packages)
            from app.ui.lifecycle_dialogs import CancelOrderDialog
            from app.ui.sign_dialog import SignAndSendDialog

            dialog = SignAndSendDialog(copied, draft.id)
            shoot("sign-and-send", dialog, until=lambda: dialog.preparation is not None)
            shoot("cancel-order", CancelOrderDialog(copied, draft.id))
            _flush_deletes(app)
    finally:
        copied.shutdown()
    return written


def _render_first_run(app: Any, folder: Path, scratch: Path, config: Any, book: Any) -> list[Path]:
    """Getting started on an empty order book and half done (registrations and suppliers there, no certificate),
    the registrations screen, and the main screens at 1024×600 (in ``small/``)."""
    from app.models.database import open_database, sqlite_url
    from app.services.orders.orderbook import OrderBook
    from app.ui.facade import AppFacade
    from app.ui.main_window import MainWindow
    from app.ui.registrations_window import RegistrationsWindow

    written: list[Path] = []
    (folder / "small").mkdir(parents=True, exist_ok=True)

    def shoot(name: str, widget: Any, size: tuple[int, int], until: Callable[[], bool] = lambda: True) -> None:
        widget.resize(*size)
        widget.show()
        _settle(app, until)
        target = folder / f"{name}.png"
        widget.grab().save(str(target))
        written.append(target)

    for stage in ("empty", "half-done"):
        db = open_database(sqlite_url(scratch / f"first-run-{stage}.sqlite3"))
        fresh = OrderBook(db, actor="screenshots")
        if stage == "half-done":
            for reg in book.list_registrations():
                fresh.add_registration(dea_number=reg.dea_number, name=reg.name, address_lines=reg.address_lines,
                                       city=reg.city, state=reg.state, postal_code=reg.postal_code,
                                       schedules=[s for s in (reg.schedules or "").split(",") if s],
                                       expires_on=reg.expires_on, business_activity=reg.business_activity)
            for supplier in book.list_suppliers():
                fresh.add_supplier(name=supplier.name, dea_number=supplier.dea_number,
                                   address_lines=supplier.address_lines or [], city=supplier.city or "",
                                   state=supplier.state or "", postal_code=supplier.postal_code or "",
                                   connector=dict(supplier.connector or {}))
        facade = AppFacade(config, fresh, db)
        try:
            window = MainWindow(config, fresh, db, facade=facade, start_checks=False)
            panel = window.getting_started_panel()
            shoot(f"first-run-{stage}", window, SIZE, until=lambda: panel.checklist is not None)
            if stage == "half-done":
                shoot("small/first-run-half-done", window, (1024, 600))
            window.close()
            window.deleteLater()
            _flush_deletes(app)
        finally:
            facade.shutdown()
            db.close()

    facade = AppFacade(config, book, book.db)
    try:
        screen = RegistrationsWindow(facade)
        shoot("registrations", screen, (900, 640), until=lambda: bool(screen.rows) and not screen.busy)
        if screen.rows:
            screen.table.selectRow(0)
            shoot("registrations-selected", screen, (900, 640))
            shoot("small/registrations", screen, (1024, 600))
        screen.start_new()
        screen.edits["dea_number"].setText("BJ6125342")
        screen._check_dea("BJ6125342")
        shoot("registrations-new-check-digit", screen, (900, 640))
        screen.close()
        window = MainWindow(config, book, book.db, facade=facade, start_checks=False)
        if window.model.rowCount():
            window.select_order(window.model.order_id(0))  # the detail pane at this size too
        shoot("small/main-window", window, (1024, 600))
        window.close()
        window.deleteLater()
        _flush_deletes(app)
    finally:
        facade.shutdown()
    return written


def _discrepancies(db: Any, order_id: int) -> tuple[str, ...]:
    from app.services.orders.details import order_details

    return tuple(order_details(db, order_id).discrepancies)


def _records_page(target: Path, book: Any, order_id: int) -> Path:
    """The order's page of the records export as a PNG: its HTML laid out at the PDF's width (US Letter at 96 dpi,
    15 mm margins), as the PDF writer lays it out."""
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QImage, QPainter, QTextDocument

    from app.services.orders.records import order_view
    from app.ui.records_pdf import _STYLE, order_html

    page_width, margin = 816, 57
    document = QTextDocument()
    document.setDefaultStyleSheet(_STYLE)
    document.setHtml(f"<html><body>{order_html(order_view(book.get_order(order_id)))}</body></html>")
    document.setTextWidth(page_width - 2 * margin)
    image = QImage(page_width, int(document.size().height()) + 2 * margin, QImage.Format.Format_RGB32)
    image.fill(Qt.GlobalColor.white)
    painter = QPainter(image)
    try:
        painter.translate(margin, margin)
        document.drawContents(painter)
    finally:
        painter.end()
    image.save(str(target))
    return target


def _flush_deletes(app: Any) -> None:
    """Delete the closed screens now, while the services they point at are still open."""
    from PySide6.QtCore import QCoreApplication, QEvent

    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    app.processEvents()


def _sample_products(db: Any) -> list[str]:
    """A C-II, a C-IV and a non-controlled product from the catalog, as the demo orders."""
    from sqlalchemy import select

    from app.models.orderbook import Product

    wanted = []
    with db.session() as session:
        for schedule in ("II", "IV", "NC"):
            ndc = session.scalar(select(Product.ndc).where(Product.schedule == schedule).order_by(Product.ndc).limit(1))
            if ndc:
                wanted.append(ndc)
    return wanted


def main(argv: list[str] | None = None) -> int:
    """``python -m app.ui.screenshots FOLDER --data-dir D --profile P --database-url U``: prints each file written."""
    import argparse

    from app.config import load_config
    from app.models.database import open_database
    from app.services.orders.orderbook import OrderBook

    parser = argparse.ArgumentParser()
    parser.add_argument("folder")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--profile", required=True)
    parser.add_argument("--database-url", required=True)
    args = parser.parse_args(argv)
    # The data folder given is the profile's own folder; load_config expects the root above it.
    config = load_config(data_dir=Path(args.data_dir).parent, profile=args.profile, database_url=args.database_url)
    db = open_database(args.database_url)
    try:
        for path in save_screenshots(args.folder, config=config, db=db, book=OrderBook(db, actor="screenshots")):
            print(path)
    finally:
        db.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
