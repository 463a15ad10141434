"""The detail pane under the order book: header fields, lines, the timeline of linked records, receipts, audit."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtGui import QFontMetrics
from PySide6.QtWidgets import (
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QScrollArea,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from app.ui import theme
from app.ui.order_table_model import format_local, format_local_full
from app.ui.widgets import RowsTableModel, make_table

if TYPE_CHECKING:  # services (SQLAlchemy) are imported when an order is shown, not with the main window's frame
    from app.services.orders.details import OrderDetails

LINE_HEADERS = ("Line", "Product", "NDC", "Schedule", "Per package", "Packages", "Supplier's answer", "Received")
TIMELINE_HEADERS = ("When", "What", "Direction", "Details")
_BYTE_COUNT = re.compile(r"^\(?[\d,]+ bytes kept exactly as (received|sent)\)?$")


def plain_summary(text: str) -> str:
    """No byte counts on the main path: "324 bytes kept exactly as received" reads "Kept exactly as received"
    (the count stays in the tooltip, for whoever wants the detail)."""
    found = _BYTE_COUNT.match((text or "").strip())
    return f"Kept exactly as {found.group(1)}" if found else text


RECEIPT_HEADERS = ("Received on", "Line", "Product", "Packages", "Recorded by", "Reason")
AUDIT_HEADERS = ("When", "Who", "What happened")


class OrderDetailPane(QFrame):
    """Shows one order (``show_order``) or a hint to pick one (``show_order(None)``)."""

    FIELDS = (("status", "Status"), ("registration", "Registration"), ("supplier", "Supplier"),
              ("supplier_address", "Supplier address"), ("created", "Created"), ("signed", "Signed"),
              ("transmitted", "Sent"), ("lines", "Lines"), ("linked", "Linked orders"),
              ("discrepancies", "Discrepancies"))

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("detailPane")
        self.setStyleSheet(theme.DETAIL_PANE_STYLE)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 8, 2, 2)
        self.title = QLabel(self)
        self.title.setObjectName("detailTitle")
        self.title.setProperty("role", "heading")
        self.title.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.title)

        self.tabs = QTabWidget(self)
        self.tabs.setObjectName("detailTabs")
        self.tabs.setAccessibleName("Order details")
        self.tabs.setDocumentMode(True)
        layout.addWidget(self.tabs, 1)

        # Order tab: header fields beside the lines.
        order_tab = QWidget(self.tabs)
        order_layout = QHBoxLayout(order_tab)
        order_layout.setContentsMargins(4, 6, 4, 4)
        self.fields: dict[str, QLabel] = {}
        form = QFormLayout()
        form.setHorizontalSpacing(10)
        form.setVerticalSpacing(3)
        form.setLabelAlignment(Qt.AlignmentFlag.AlignLeft)
        for key, caption in self.FIELDS:
            value = QLabel(order_tab)
            value.setObjectName(f"detail_{key}")
            value.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse |
                                          Qt.TextInteractionFlag.TextSelectableByKeyboard)
            value.setWordWrap(True)
            value.setAccessibleName(caption)
            caption_label = QLabel(caption + ":", order_tab)
            caption_label.setProperty("role", "caption")
            form.addRow(caption_label, value)
            self.fields[key] = value
        self.form_widget = QWidget(order_tab)
        self.form_widget.setLayout(form)
        em = QFontMetrics(self.font()).horizontalAdvance("M")
        # A value that wraps (a long registration name, the discrepancies) is never cut: the fields scroll
        # vertically when the pane is low, and never sideways.
        self.form_scroll = QScrollArea(order_tab)
        self.form_scroll.setWidget(self.form_widget)
        self.form_scroll.setWidgetResizable(True)
        self.form_scroll.setFrameShape(QFrame.Shape.NoFrame)
        self.form_scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.form_scroll.setMinimumWidth(em * 34)
        self.form_scroll.setMaximumWidth(em * 46)
        order_layout.addWidget(self.form_scroll, 2)
        self.lines_model = RowsTableModel(LINE_HEADERS, numeric_columns=(0, 5, 7), parent=self)
        self.lines_table = make_table(order_tab, self.lines_model, name="detailLines",
                                      accessible_name="Order lines", stretch_column=1)
        order_layout.addWidget(self.lines_table, 5)
        self.tabs.addTab(order_tab, "&Order")

        self.timeline_model = RowsTableModel(TIMELINE_HEADERS, parent=self)
        self.timeline_table = make_table(self.tabs, self.timeline_model, name="detailTimeline",
                                         accessible_name="Timeline of linked records", stretch_column=3)
        self.tabs.addTab(self.timeline_table, "&Timeline")
        self.receipts_model = RowsTableModel(RECEIPT_HEADERS, numeric_columns=(1, 3), parent=self)
        self.receipts_table = make_table(self.tabs, self.receipts_model, name="detailReceipts",
                                         accessible_name="Receipts", stretch_column=2)
        self.tabs.addTab(self.receipts_table, "&Receipts")
        self.audit_model = RowsTableModel(AUDIT_HEADERS, parent=self)
        self.audit_table = make_table(self.tabs, self.audit_model, name="detailAudit",
                                      accessible_name="Audit trail", stretch_column=2)
        self.tabs.addTab(self.audit_table, "&Audit trail")
        self.order: OrderDetails | None = None
        self.show_order(None)

    def show_order(self, order: OrderDetails | None) -> None:
        self.order = order
        if order is None:
            self.title.setText("Select an order to see its details.")
            self.tabs.setVisible(False)
            for model in (self.lines_model, self.timeline_model, self.receipts_model, self.audit_model):
                model.set_rows([])
            return
        from app.services.orders.drafts import schedule_label

        self.title.setText(f"Order {order.order_number}")
        linked = []
        if order.replaces_order_number:
            linked.append(f"issued in place of {order.replaces_order_number}")
        if order.replaced_by_order_numbers:
            linked.append("replaced by " + ", ".join(order.replaced_by_order_numbers))
        supplier = order.supplier_name + (f" (DEA {order.supplier_dea})" if order.supplier_dea else "")
        discrepancies = getattr(order, "discrepancies", ())
        values = {
            "status": getattr(order, "answer_problem", "") or order.status.label,
            "registration": f"{order.registration_dea} — {order.registration_name}",
            "supplier": supplier,
            "supplier_address": order.supplier_address or "to be completed by the supplier",
            "created": format_local(order.created_at),
            "signed": format_local(order.signed_at) or "not signed yet",
            "transmitted": format_local(order.transmitted_at) or "not sent yet",
            "lines": str(len(order.lines)),
            "linked": "; ".join(linked) or "none",
            "discrepancies": "\n".join(f"⚠ {text}" for text in discrepancies)
                             or "none: the supplier's answers match the order",
        }
        for key, value in values.items():
            self.fields[key].setText(value)
        # A supplier's claim that does not match the order, or an answer that could not be read, stands out.
        warn = "font-weight: bold;"
        self.fields["discrepancies"].setStyleSheet(warn if discrepancies else "")
        self.fields["status"].setStyleSheet(warn if getattr(order, "answer_problem", "") else "")
        self.fields["created"].setToolTip(format_local_full(order.created_at))
        self.fields["signed"].setToolTip(format_local_full(order.signed_at))
        self.lines_model.set_rows(
            [(line.line_number, line.description, line.ndc, line.schedule, line.package_quantity, line.packages,
              line.line_status, line.packages_received) for line in order.lines],
            [(None, line.description, None, schedule_label(line.schedule)) for line in order.lines])
        self.timeline_model.set_rows([(format_local(record.at), record.kind, record.direction,
                                       plain_summary(record.summary)) for record in order.timeline],
                                     [(None, None, None, record.summary) for record in order.timeline])
        self.receipts_model.set_rows([(f"{receipt.received_on:%b %d, %Y}", receipt.line_number, receipt.description,
                                       receipt.packages_received, receipt.recorded_by, receipt.reason)
                                      for receipt in order.receipts])
        self.audit_model.set_rows([(format_local(event.at), event.actor, event.what) for event in order.audit],
                                  [(format_local_full(event.at),) for event in order.audit])
        self.tabs.setTabText(1, f"&Timeline ({len(order.timeline)})")
        self.tabs.setTabText(2, f"&Receipts ({len(order.receipts)})")
        self.tabs.setTabText(3, f"&Audit trail ({len(order.audit)})")
        self.tabs.setVisible(True)
        for table in (self.lines_table, self.timeline_table, self.receipts_table, self.audit_table):
            table.resizeColumnsToContents()
            header = table.horizontalHeader()
            for column in range(header.count()):
                header.resizeSection(column, min(header.sectionSize(column), 320))
