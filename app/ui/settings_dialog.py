"""Settings: suppliers and how orders reach them, token drivers, where data lives, profile, clock, reminders.

Nothing is written until Save; then every value is checked (by ``app.services.app_settings``) and the first problem
is shown next to its field, on its tab, with the focus on it. Suppliers go to the order book (with an audit event),
everything else to the profile's settings.json.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import QAbstractListModel, QModelIndex, QObject, QPersistentModelIndex, Qt, Slot
from PySide6.QtWidgets import (
    QAbstractItemView,
    QButtonGroup,
    QComboBox,
    QDialog,
    QFileDialog,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QLineEdit,
    QListView,
    QListWidget,
    QPushButton,
    QRadioButton,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from app.errors import CsosError
from app.services import app_settings
from app.services.app_settings import FieldProblem, SupplierForm
from app.ui import messages, theme
from app.ui.trust_roots_panel import TrustRootsPanel
from app.ui.widgets import FieldMessage, fit_on_show

log = logging.getLogger(__name__)

AnyIndex = QModelIndex | QPersistentModelIndex

CONNECTOR_CHOICES = (
    ("https", "Over the internet (the supplier's CSOS web address)"),
    ("folder", "Into a folder that our EDI software sends from"),
    ("manual", "Saved as a file, which I upload to the supplier's website"),
    ("as2", "By AS2 to the supplier's EDI system (the supplier gives you its address, AS2 ID and certificate)"),
)
PRODUCTION_WARNING = (
    "Production sends real, legally binding orders for controlled substances to real suppliers, signed with your "
    "real CSOS certificate. Use it only when your registration, certificate and suppliers are set up. Production "
    "has its own order book; the practice orders stay in training."
)
TRAINING_NOTE = ("Training uses a separate practice order book and practice suppliers on this computer. Nothing "
                 "is sent to a real supplier.")


@dataclass
class SupplierEntry:
    supplier_id: int | None
    form: SupplierForm
    changed: bool = False


class SupplierListModel(QAbstractListModel):
    """The suppliers being edited (saved ones and new ones), in the Settings list."""

    def __init__(self, entries: list[SupplierEntry], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.entries = entries

    def rowCount(self, parent: AnyIndex = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.entries)

    def flags(self, index: AnyIndex) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemNeverHasChildren

    def data(self, index: AnyIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self.entries) or index.column() != 0:
            return None
        entry = self.entries[index.row()]
        name = entry.form.name.strip() or "(new supplier)"
        if role == Qt.ItemDataRole.DisplayRole:
            return name + (" *" if entry.changed else "")
        if role == Qt.ItemDataRole.ToolTipRole:
            kind = dict(CONNECTOR_CHOICES).get(entry.form.kind, entry.form.kind)
            return f"{name}\nOrders go: {kind.lower()}" + ("\nNot saved yet" if entry.changed else "")
        if role == Qt.ItemDataRole.AccessibleTextRole:
            return name + (", changed, not saved yet" if entry.changed else "")
        return None

    def add(self, entry: SupplierEntry) -> int:
        row = len(self.entries)
        self.beginInsertRows(QModelIndex(), row, row)
        self.entries.append(entry)
        self.endInsertRows()
        return row

    def touch(self, row: int) -> None:
        if 0 <= row < len(self.entries):
            self.dataChanged.emit(self.index(row), self.index(row))


class SettingsDialog(QDialog):
    def __init__(self, facade: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.facade = facade
        self.config = facade.config
        self.book = facade.book
        self.setObjectName("settingsDialog")
        self.setWindowTitle("Settings")
        self.setAccessibleName("Settings")
        self.resize(860, 600)
        fit_on_show(self)
        self._loading = False
        self._current_row: int | None = None

        outer = QVBoxLayout(self)
        self.tabs = QTabWidget(self)
        self.tabs.setObjectName("settingsTabs")
        self.tabs.setAccessibleName("Settings sections")
        outer.addWidget(self.tabs, 1)
        self.tabs.addTab(self._build_suppliers_tab(), "&Suppliers")
        self.tabs.addTab(self._build_tokens_tab(), "Signing &devices")
        self.tabs.addTab(self._build_data_tab(), "Data and &profile")
        self.tabs.addTab(self._build_clock_tab(), "&Clock and reminders")
        self.trust_panel = TrustRootsPanel(facade, self)  # applies at once, not on Save
        self.tabs.addTab(self.trust_panel, "CSOS tr&ust roots")

        self.form_message = FieldMessage(None, self, name="settingsMessage")
        outer.addWidget(self.form_message)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        self.save_button = QPushButton("&Save", self)
        self.save_button.setObjectName("saveSettings")
        self.save_button.setAccessibleName("Save settings")
        self.save_button.setAutoDefault(False)
        self.cancel_button = QPushButton("Cancel", self)
        self.cancel_button.setObjectName("cancelSettings")
        self.cancel_button.setAutoDefault(False)
        buttons.addWidget(self.save_button)
        buttons.addWidget(self.cancel_button)
        outer.addLayout(buttons)
        self.save_button.clicked.connect(self.save)
        self.cancel_button.clicked.connect(self.reject)
        if self.supplier_model.rowCount():
            self.supplier_list.setCurrentIndex(self.supplier_model.index(0))
        else:
            self._show_entry(None)

    # -- suppliers -----------------------------------------------------------------------------------------------

    def _line(self, parent: QWidget, name: str, accessible: str, placeholder: str = "") -> QLineEdit:
        edit = QLineEdit(parent)
        edit.setObjectName(name)
        edit.setAccessibleName(accessible)
        edit.setPlaceholderText(placeholder)
        return edit

    def _build_suppliers_tab(self) -> QWidget:
        tab = QWidget(self)
        row = QHBoxLayout(tab)
        left = QVBoxLayout()
        entries = [SupplierEntry(s.id, app_settings.form_of(s)) for s in self.book.list_suppliers()]
        self.supplier_model = SupplierListModel(entries, self)
        self.supplier_list = QListView(tab)
        self.supplier_list.setObjectName("supplierList")
        self.supplier_list.setAccessibleName("Suppliers")
        self.supplier_list.setModel(self.supplier_model)
        self.supplier_list.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.supplier_list.setMaximumWidth(240)
        self.supplier_list.selectionModel().currentChanged.connect(self._on_supplier_selected)
        list_label = QLabel("Suppliers:", tab)
        list_label.setBuddy(self.supplier_list)
        left.addWidget(list_label)
        left.addWidget(self.supplier_list, 1)
        self.new_supplier_button = QPushButton(theme.icon("add"), "&New supplier", tab)
        self.new_supplier_button.setObjectName("newSupplier")
        self.new_supplier_button.setAccessibleName("New supplier")
        self.new_supplier_button.setAutoDefault(False)
        self.new_supplier_button.clicked.connect(self.new_supplier)
        left.addWidget(self.new_supplier_button)
        row.addLayout(left)

        self.supplier_form = QWidget(tab)
        form = QFormLayout(self.supplier_form)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.supplier_fields: dict[str, QLineEdit] = {}
        self.supplier_messages: dict[str, FieldMessage] = {}
        specs = (("name", "&Name", "Supplier name", "e.g. Acme Drug"),
                 ("dea_number", "D&EA number", "Supplier DEA number", "optional: the supplier may complete it"),
                 ("address1", "Address", "Supplier address line 1", "street (optional)"),
                 ("address2", "", "Supplier address line 2", "second line (optional)"),
                 ("city", "City", "Supplier city", ""),
                 ("state", "State", "Supplier state", "two letters, e.g. TN"),
                 ("postal_code", "ZIP code", "Supplier ZIP code", ""))
        for key, caption, accessible, placeholder in specs:
            edit = self._line(self.supplier_form, f"supplier_{key}", accessible, placeholder)
            edit.textEdited.connect(self._on_supplier_edited)
            self.supplier_fields[key] = edit
            message = FieldMessage(edit, self.supplier_form)
            self.supplier_messages[key] = message
            form.addRow(self._label(caption, edit), self._stack(edit, message))
        self.kind_combo = QComboBox(self.supplier_form)
        self.kind_combo.setObjectName("supplier_kind")
        self.kind_combo.setAccessibleName("How orders reach this supplier")
        for value, text in CONNECTOR_CHOICES:
            self.kind_combo.addItem(text, value)
        self.kind_combo.currentIndexChanged.connect(self._on_kind_changed)
        self.supplier_messages["kind"] = FieldMessage(self.kind_combo, self.supplier_form)
        form.addRow(self._label("Orders &go", self.kind_combo),
                    self._stack(self.kind_combo, self.supplier_messages["kind"]))
        self.connector_rows: dict[str, tuple[QLabel, QWidget]] = {}
        for key, caption, accessible, placeholder, browse in (
                ("url", "&Web address", "Supplier web address", "https://…", None),
                ("tls_bundle", "Server certificate", "Supplier server certificate file",
                 "optional: a .pem file the supplier gave you", "file"),
                ("folder", "F&older", "Folder for the EDI software", "", "folder"),
                ("as2_partner_id", "Supplier's AS2 &ID", "Supplier AS2 ID", "the AS2 name the supplier gave you", None),
                ("as2_certificate", "Supplier's AS2 certificate", "Supplier AS2 certificate file",
                 "the .pem or .cer file the supplier gave you", "file")):
            edit = self._line(self.supplier_form, f"supplier_{key}", accessible, placeholder)
            edit.textEdited.connect(self._on_supplier_edited)
            self.supplier_fields[key] = edit
            message = FieldMessage(edit, self.supplier_form)
            self.supplier_messages[key] = message
            holder = self._stack(edit, message, browse=browse)
            label = self._label(caption, edit)
            form.addRow(label, holder)
            self.connector_rows[key] = (label, holder)
        self._add_as2_identity_row(form)
        row.addWidget(self.supplier_form, 1)
        return tab

    def _add_as2_identity_row(self, form: QFormLayout) -> None:
        """What an AS2 supplier needs from the pharmacy: its AS2 ID and certificate (the identity is created once)."""
        holder = QWidget(self.supplier_form)
        layout = QVBoxLayout(holder)
        layout.setContentsMargins(0, 0, 0, 0)
        self.as2_identity_label = QLabel(holder)
        self.as2_identity_label.setObjectName("as2_identity")
        self.as2_identity_label.setWordWrap(True)
        self.as2_identity_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.as2_identity_button = QPushButton(holder)
        self.as2_identity_button.setAutoDefault(False)
        self.as2_identity_button.clicked.connect(self._as2_identity_action)
        layout.addWidget(self.as2_identity_label)
        layout.addWidget(self.as2_identity_button, 0, Qt.AlignmentFlag.AlignLeft)
        label = QLabel("Your AS2 identity:", self.supplier_form)
        form.addRow(label, holder)
        self.connector_rows["as2_identity"] = (label, holder)
        self._show_as2_identity()

    def _show_as2_identity(self) -> None:
        from app.services.transport.as2 import load_identity

        try:
            self._as2_identity: Any = load_identity(self.config.data_dir)
        except CsosError:
            self._as2_identity = None
        if self._as2_identity is None:
            self.as2_identity_label.setText("This pharmacy has no AS2 identity yet. Create it, then give the supplier "
                                            "your AS2 ID and your AS2 certificate.")
            self.as2_identity_button.setText("Create AS2 identity…")
        else:
            self.as2_identity_label.setText(
                f"AS2 ID {self._as2_identity.as2_id}. Give the supplier this AS2 ID and your AS2 certificate, and read "
                f"them its fingerprint to check: SHA-256 {self._as2_identity.fingerprint}")
            self.as2_identity_button.setText("Save my AS2 certificate…")
        self.as2_identity_button.setAccessibleName(self.as2_identity_button.text().rstrip("…"))

    def _as2_identity_action(self) -> None:
        from app.services.transport.as2 import create_identity

        try:
            if self._as2_identity is None:
                as2_id, ok = QInputDialog.getText(self, "Create AS2 identity", "Your AS2 ID — the name your suppliers "
                                                  "will know you by (letters, digits, - _ . @; ask the supplier if "
                                                  "it expects a particular form):")
                if ok and as2_id.strip():
                    create_identity(self.config.data_dir, as2_id.strip())
                    self._show_as2_identity()
                return
            path, _ = QFileDialog.getSaveFileName(self, "Save my AS2 certificate",
                                                  str(Path.home() / f"{self._as2_identity.as2_id}-as2.pem"),
                                                  "Certificate (*.pem)")
            if path:
                Path(path).write_bytes(self._as2_identity.certificate_pem)
        except CsosError as exc:
            messages.alert(self, "AS2 identity", exc.message)
        except OSError as exc:
            messages.alert(self, "AS2 certificate not saved", f"The file could not be written ({exc.strerror}). "
                                                              "Choose another folder.")

    def _label(self, caption: str, buddy: QWidget) -> QLabel:
        label = QLabel(caption + (":" if caption else ""), buddy.parentWidget())
        label.setBuddy(buddy)
        return label

    def _stack(self, field: QWidget, message: FieldMessage, *, browse: str | None = None) -> QWidget:
        holder = QWidget(field.parentWidget())
        layout = QVBoxLayout(holder)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        if browse is None:
            layout.addWidget(field)
        else:
            line = QHBoxLayout()
            line.addWidget(field, 1)
            button = QPushButton(theme.icon("folder"), "Choose…", holder)
            button.setAccessibleName(f"Choose {field.accessibleName().lower()}")
            button.setAutoDefault(False)
            button.clicked.connect(lambda: self._browse(field, browse))
            line.addWidget(button)
            layout.addLayout(line)
        layout.addWidget(message)
        return holder

    def _browse(self, field: QLineEdit, what: str) -> None:
        start = field.text() or str(Path.home())
        if what == "folder":
            chosen = QFileDialog.getExistingDirectory(self, field.accessibleName(), start)
        else:
            chosen, _ = QFileDialog.getOpenFileName(self, field.accessibleName(), start)
        if chosen:
            field.setText(chosen)
            field.textEdited.emit(chosen)

    def _form_from_fields(self) -> SupplierForm:
        text = {key: edit.text() for key, edit in self.supplier_fields.items()}
        return SupplierForm(name=text["name"], dea_number=text["dea_number"],
                            address_lines=tuple(line for line in (text["address1"], text["address2"]) if line.strip()),
                            city=text["city"], state=text["state"], postal_code=text["postal_code"],
                            kind=self.kind_combo.currentData() or "manual", url=text["url"], folder=text["folder"],
                            tls_bundle=text["tls_bundle"], as2_partner_id=text["as2_partner_id"],
                            as2_certificate=self._as2_certificate_value(text["as2_certificate"]))

    def _as2_certificate_value(self, text: str) -> str:
        """The field shows the certificate on file by its fingerprint; unchanged, the PEM on file is kept."""
        on_file = self.supplier_model.entries[self._current_row].form.as2_certificate \
            if self._current_row is not None else ""
        return on_file if on_file and text == _certificate_caption(on_file) else text

    def _show_entry(self, entry: SupplierEntry | None) -> None:
        self._loading = True
        form = entry.form if entry else SupplierForm(name="")
        lines = list(form.address_lines) + ["", ""]
        values = {"name": form.name, "dea_number": form.dea_number, "address1": lines[0], "address2": lines[1],
                  "city": form.city, "state": form.state, "postal_code": form.postal_code, "url": form.url,
                  "folder": form.folder, "tls_bundle": form.tls_bundle, "as2_partner_id": form.as2_partner_id or "",
                  "as2_certificate": _certificate_caption(form.as2_certificate or "")}
        for key, edit in self.supplier_fields.items():
            edit.setText(values[key])
        self.kind_combo.setCurrentIndex(max(self.kind_combo.findData(form.kind), 0))
        for message in self.supplier_messages.values():
            message.clear()
        self.supplier_form.setEnabled(entry is not None)
        self._update_connector_rows()
        self._loading = False

    @Slot(QModelIndex, QModelIndex)
    def _on_supplier_selected(self, current: QModelIndex, _previous: QModelIndex) -> None:
        self._current_row = current.row() if current.isValid() else None
        self._show_entry(self.supplier_model.entries[current.row()] if current.isValid() else None)

    def _on_supplier_edited(self, _text: str = "") -> None:
        if self._loading or self._current_row is None:
            return
        entry = self.supplier_model.entries[self._current_row]
        entry.form = self._form_from_fields()
        entry.changed = True
        self.supplier_model.touch(self._current_row)

    def _on_kind_changed(self, _index: int) -> None:
        self._update_connector_rows()
        self._on_supplier_edited()

    def _update_connector_rows(self) -> None:
        kind = self.kind_combo.currentData()
        visible = {"url": kind in ("https", "as2"), "tls_bundle": kind == "https", "folder": kind == "folder",
                   "as2_partner_id": kind == "as2", "as2_certificate": kind == "as2", "as2_identity": kind == "as2"}
        for key, (label, holder) in self.connector_rows.items():
            label.setVisible(visible[key])
            holder.setVisible(visible[key])

    @Slot()
    def new_supplier(self) -> None:
        row = self.supplier_model.add(SupplierEntry(None, SupplierForm(name="", kind="https"), changed=True))
        self.supplier_list.setCurrentIndex(self.supplier_model.index(row))
        self.supplier_fields["name"].setFocus()

    # -- signing devices -----------------------------------------------------------------------------------------

    def _build_tokens_tab(self) -> QWidget:
        tab = QWidget(self)
        layout = QVBoxLayout(tab)
        intro = QLabel("A USB token or smart card needs the PKCS#11 driver file that came with it. Add the driver "
                       "here so CSOS Desk can find your token. Keys kept in a file on this computer need nothing "
                       "here.\n\nDEA asks for a FIPS 140-2 validated module: a validated token meets that; a key "
                       "file on this computer does not.", tab)
        intro.setWordWrap(True)
        layout.addWidget(intro)
        row = QHBoxLayout()
        self.module_edit = self._line(tab, "moduleEdit", "Token driver file",
                                      "e.g. /usr/lib/softhsm/libsofthsm2.so")
        module_label = QLabel("Dri&ver file:", tab)
        module_label.setBuddy(self.module_edit)
        browse = QPushButton(theme.icon("folder"), "Choose…", tab)
        browse.setAccessibleName("Choose the token driver file")
        browse.setAutoDefault(False)
        browse.clicked.connect(lambda: self._browse(self.module_edit, "file"))
        self.add_module_button = QPushButton(theme.icon("add"), "&Add", tab)
        self.add_module_button.setObjectName("addModule")
        self.add_module_button.setAccessibleName("Add token driver")
        self.add_module_button.setAutoDefault(False)
        self.add_module_button.clicked.connect(self.add_module)
        self.module_edit.returnPressed.connect(self.add_module)
        row.addWidget(module_label)
        row.addWidget(self.module_edit, 1)
        row.addWidget(browse)
        row.addWidget(self.add_module_button)
        layout.addLayout(row)
        self.module_message = FieldMessage(self.module_edit, tab)
        layout.addWidget(self.module_message)
        self.module_list = QListWidget(tab)
        self.module_list.setObjectName("moduleList")
        self.module_list.setAccessibleName("Token drivers")
        for path in self.facade.settings.get("pkcs11_modules") or []:
            self.module_list.addItem(str(path))
        layout.addWidget(self.module_list, 1)
        self.remove_module_button = QPushButton(theme.icon("remove"), "&Remove driver", tab)
        self.remove_module_button.setObjectName("removeModule")
        self.remove_module_button.setAutoDefault(False)
        self.remove_module_button.clicked.connect(self.remove_module)
        layout.addWidget(self.remove_module_button, 0, Qt.AlignmentFlag.AlignLeft)
        return tab

    @Slot()
    def add_module(self) -> None:
        try:
            paths = app_settings.check_module_paths([self.module_edit.text()])
        except CsosError as exc:
            self.module_message.show_problem(exc.message)
            return
        if not paths:
            self.module_message.show_problem("Type or choose the driver file first.")
            return
        if not self.module_list.findItems(paths[0], Qt.MatchFlag.MatchExactly):
            self.module_list.addItem(paths[0])
        self.module_edit.clear()
        self.module_message.clear()

    @Slot()
    def remove_module(self) -> None:
        row = self.module_list.currentRow()
        if row >= 0:
            self.module_list.takeItem(row)

    def module_paths(self) -> list[str]:
        return [self.module_list.item(i).text() for i in range(self.module_list.count())]

    # -- data and profile ----------------------------------------------------------------------------------------

    def _build_data_tab(self) -> QWidget:
        tab = QWidget(self)
        layout = QVBoxLayout(tab)
        folder_label = QLabel("Data folder:", tab)
        folder = QLabel(str(self.config.data_dir), tab)
        folder.setObjectName("dataFolder")
        folder.setAccessibleName("Data folder")
        folder.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse |
                                       Qt.TextInteractionFlag.TextSelectableByKeyboard)
        row = QHBoxLayout()
        row.addWidget(folder_label)
        row.addWidget(folder, 1)
        layout.addLayout(row)
        self.database_edit = self._line(tab, "databaseUrl", "Order book database address",
                                        "empty: the order book file in the data folder")
        self.database_edit.setText(str(self.facade.settings.get("database_url") or ""))
        self.database_message = FieldMessage(self.database_edit, tab)
        layout.addSpacing(6)
        layout.addWidget(self._label("Order book &database", self.database_edit))
        layout.addWidget(self.database_edit)
        layout.addWidget(self.database_message)
        hint = QLabel("Leave empty to keep the order book in the data folder. Several workstations can share one "
                      "PostgreSQL database (postgresql://user@server/csos). A change takes effect the next time "
                      "CSOS Desk starts.", tab)
        hint.setWordWrap(True)
        layout.addWidget(hint)

        profile_box = QFrame(tab)
        profile_box.setObjectName("profileBox")
        profile_layout = QVBoxLayout(profile_box)
        profile_layout.setContentsMargins(0, 12, 0, 0)
        heading = QLabel("<b>Profile</b>", profile_box)
        profile_layout.addWidget(heading)
        self.training_radio = QRadioButton("&Training — practice orders with practice suppliers", profile_box)
        self.training_radio.setObjectName("profileTraining")
        self.production_radio = QRadioButton("P&roduction — real orders to real suppliers", profile_box)
        self.production_radio.setObjectName("profileProduction")
        self.profile_group = QButtonGroup(self)
        self.profile_group.addButton(self.training_radio)
        self.profile_group.addButton(self.production_radio)
        (self.training_radio if self.config.is_training else self.production_radio).setChecked(True)
        profile_layout.addWidget(self.training_radio)
        profile_layout.addWidget(self.production_radio)
        self.profile_warning = self._profile_text(profile_box, "profileWarning", "Profile warning",
                                                  "Warning: " + PRODUCTION_WARNING, "#fde2df", "#c0392b")
        self.profile_note = self._profile_text(profile_box, "profileNote", "Profile note", TRAINING_NOTE,
                                               "#eef4fb", "#9cbbe0")
        profile_layout.addWidget(self.profile_warning)
        profile_layout.addWidget(self.profile_note)
        layout.addWidget(profile_box)
        layout.addStretch(1)
        self.training_radio.toggled.connect(lambda _checked: self._update_profile_warning())
        self._update_profile_warning()
        return tab

    def chosen_profile(self) -> str:
        return "production" if self.production_radio.isChecked() else "training"

    def _profile_text(self, parent: QWidget, name: str, accessible: str, text: str, background: str,
                      border: str) -> QLabel:
        label = QLabel(text, parent)
        label.setObjectName(name)
        label.setWordWrap(True)
        label.setTextFormat(Qt.TextFormat.PlainText)
        label.setAccessibleName(accessible)
        label.setAccessibleDescription(text)
        label.setStyleSheet(f"QLabel#{name} {{ background: {background}; border: 1px solid {border};"
                            " color: #1f1f1f; padding: 8px; border-radius: 3px; }")
        return label

    def _update_profile_warning(self) -> None:
        production = self.production_radio.isChecked()
        self.profile_warning.setVisible(production)
        self.profile_note.setVisible(not production)

    # -- clock and reminders -------------------------------------------------------------------------------------

    def _build_clock_tab(self) -> QWidget:
        tab = QWidget(self)
        layout = QVBoxLayout(tab)
        form = QFormLayout()
        self.sntp_edit = self._line(tab, "sntpServer", "Time server", "time.nist.gov")
        self.sntp_edit.setText(str(self.facade.settings.get("sntp_server") or ""))
        self.sntp_message = FieldMessage(self.sntp_edit, tab)
        form.addRow(self._label("&Time server", self.sntp_edit), self._stack(self.sntp_edit, self.sntp_message))
        clock_hint = QLabel("DEA rules require this computer's clock to be within 5 minutes of official time "
                            "before an order is signed. CSOS Desk asks this server (NIST's time.nist.gov when left "
                            "empty; in training, the practice server when it is running).", tab)
        clock_hint.setWordWrap(True)
        form.addRow("", clock_hint)
        self.reminder_edit = self._line(tab, "reminderDays", "Reminder days", "45, 30, 14, 7, 1")
        self.reminder_edit.setText(", ".join(str(d) for d in app_settings.reminder_days(self.facade.settings)))
        self.reminder_message = FieldMessage(self.reminder_edit, tab)
        form.addRow(self._label("&Remind me", self.reminder_edit),
                    self._stack(self.reminder_edit, self.reminder_message))
        reminder_hint = QLabel("Days before a DEA registration or a CSOS certificate expires on which CSOS Desk "
                               "reminds you (DEA mails its own notice 45 days before).", tab)
        reminder_hint.setWordWrap(True)
        form.addRow("", reminder_hint)
        layout.addLayout(form)
        layout.addStretch(1)
        return tab

    # -- saving --------------------------------------------------------------------------------------------------

    def _show_supplier_problem(self, row: int, problem: FieldProblem) -> None:
        self.tabs.setCurrentIndex(0)
        self.supplier_list.setCurrentIndex(self.supplier_model.index(row))
        self.supplier_messages[problem.field].show_problem(problem.message)
        self.supplier_fields.get(problem.field, self.kind_combo).setFocus()

    def _fail(self, tab: int, message: FieldMessage, field: QWidget, text: str) -> None:
        self.tabs.setCurrentIndex(tab)
        message.show_problem(text)
        field.setFocus()

    @Slot()
    def save(self) -> bool:
        """Check everything, then write; on a problem, show it at its field and write nothing."""
        self.form_message.clear()
        for message in (self.database_message, self.sntp_message, self.reminder_message, self.module_message):
            message.clear()
        for row, entry in enumerate(self.supplier_model.entries):
            problems = app_settings.check_supplier(entry.form) if entry.changed else []
            if problems:
                self._show_supplier_problem(row, problems[0])
                for problem in problems[1:]:
                    self.supplier_messages[problem.field].show_problem(problem.message)
                return False
        try:
            database_url = app_settings.check_database_url(self.database_edit.text())
        except CsosError as exc:
            self._fail(2, self.database_message, self.database_edit, exc.message)
            return False
        try:
            sntp = app_settings.parse_sntp_server(self.sntp_edit.text()) if self.sntp_edit.text().strip() else ""
        except CsosError as exc:
            self._fail(3, self.sntp_message, self.sntp_edit, exc.message)
            return False
        try:
            days = app_settings.parse_reminder_days(self.reminder_edit.text())
        except CsosError as exc:
            self._fail(3, self.reminder_message, self.reminder_edit, exc.message)
            return False
        try:
            modules = app_settings.check_module_paths(self.module_paths())
        except CsosError as exc:
            self._fail(1, self.module_message, self.module_list, exc.message)
            return False
        profile = self.chosen_profile()
        switching = profile != self.config.profile.value
        if switching and profile == "production" and not messages.confirm(
                self, "Switch to production?", PRODUCTION_WARNING + "\n\nCSOS Desk will reopen in production.",
                yes_text="Switch to production", no_text="Stay in training", warning=True):
            return False

        suppliers_changed = False
        for row, entry in enumerate(self.supplier_model.entries):
            if not entry.changed:
                continue
            try:
                if entry.supplier_id is None:
                    entry.supplier_id = app_settings.add_supplier(self.book, entry.form)
                else:
                    app_settings.update_supplier(self.book, entry.supplier_id, entry.form)
            except CsosError as exc:
                self._show_supplier_problem(row, FieldProblem(_field_of(exc.code), exc.code, exc.message))
                if suppliers_changed:
                    self.facade.parties_changed.emit()
                return False
            entry.changed = False
            suppliers_changed = True
            self.supplier_model.touch(row)
        if suppliers_changed:
            self.facade.parties_changed.emit()

        updates: dict[str, Any] = {"reminder_days": days, "pkcs11_modules": modules}
        remove = []
        for key, value in (("database_url", database_url), ("sntp_server", sntp)):
            if value:
                updates[key] = value
            else:
                remove.append(key)
        try:
            self.facade.save_settings(updates, remove=remove)
            if switching:
                app_settings.remember_profile(self.config.data_dir.parent, profile)
        except (CsosError, OSError) as exc:
            text = exc.message if isinstance(exc, CsosError) else f"The settings could not be saved ({exc})."
            self.form_message.show_problem(text)
            return False
        self.accept()
        if switching:
            log.info("profile switch requested: %s", profile)
            self.facade.profile_switch_requested.emit(profile)
        return True


def _certificate_caption(value: str) -> str:
    """A certificate on file, shown by what a person compares on the phone (a file path is shown as it is)."""
    if "-----BEGIN" not in value:
        return value
    from app.errors import CsosError
    from app.services.transport.as2 import load_partner_certificate
    from app.services.transport.as2_mime import fingerprint

    try:
        return "On file: SHA-256 " + fingerprint(load_partner_certificate(value))[:23] + "…"
    except CsosError:
        return "On file (unreadable: choose the file again)"


def _field_of(code: str) -> str:
    """The field a refusal from the order book belongs to (the codes of app.services.orders.parties)."""
    fields = {"supplier.duplicate": "name", "address.state": "state", "address.zip": "postal_code",
              "connector.url": "url", "connector.folder": "folder", "connector.tls_bundle": "tls_bundle",
              "connector.kind": "kind", "connector.as2_partner_id": "as2_partner_id",
              "connector.as2_partner_certificate": "as2_certificate"}
    if code in fields:
        return fields[code]
    if code.startswith("address.city"):
        return "city"
    if code.startswith("address."):
        return "address1"
    return "dea_number" if code.startswith("dea.") else "name"

