"""Settings → CSOS trust roots: the certificates this profile trusts for CSOS orders (issue 17 item 3, issue 22).

A list (name, fingerprint), Add… (a certificate file; each certificate is shown with its SHA-256 fingerprint to
compare with the one DEA publishes before anything is trusted) and Remove. Changes apply at once, not on Save: they
are confirmed one by one. The store is ``app.services.certificates.trust.TrustStore`` (the same as
`csos-desk trust`), never the operating system's.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFileDialog, QHBoxLayout, QLabel, QListWidget, QListWidgetItem, QPushButton, \
    QVBoxLayout, QWidget

from app.errors import CsosError
from app.services.certificates.trust import TrustCandidate, TrustStore, group_fingerprint, inspect
from app.ui import messages

log = logging.getLogger(__name__)

CERTIFICATE_FILES = "Certificate files (*.pem *.crt *.cer *.der *.p7b *.p7c);;All files (*)"


def describe(candidate: TrustCandidate) -> str:
    """What the pharmacist compares before trusting a certificate (plain text)."""
    return (f"{candidate.name}\n"
            f"Subject: {candidate.subject}\n"
            f"Valid from {candidate.not_before:%B %d, %Y} to {candidate.not_after:%B %d, %Y}\n"
            f"SHA-256 fingerprint:\n{group_fingerprint(candidate.fingerprint)}\n"
            f"This is {candidate.plain_kind()}.")


class TrustRootsPanel(QWidget):
    """The "CSOS trust roots" section of Settings."""

    def __init__(self, facade: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.facade = facade
        self.store = TrustStore(facade.config.data_dir)
        self.setObjectName("trustRootsPanel")
        layout = QVBoxLayout(self)
        intro = QLabel(
            "CSOS Desk trusts an order's signer only when the certificate chains to one of these roots. Add DEA's "
            "CSOS root certificate here, after comparing its fingerprint with the one DEA publishes. Nothing else "
            "is trusted, not even the certificates your computer trusts for websites. Changes apply at once.", self)
        intro.setWordWrap(True)
        layout.addWidget(intro)
        self.root_list = QListWidget(self)
        self.root_list.setObjectName("trustRootList")
        self.root_list.setAccessibleName("CSOS trust roots")
        self.root_list.setWordWrap(True)
        layout.addWidget(self.root_list, 1)
        self.empty_label = QLabel("No CSOS trust roots yet, so no certificate can be called trusted. Add CSOS "
                                  "trust roots… with the root certificate file from DEA.", self)
        self.empty_label.setObjectName("trustRootsEmpty")
        self.empty_label.setWordWrap(True)
        layout.addWidget(self.empty_label)
        self.legacy_label = QLabel(self)
        self.legacy_label.setObjectName("trustRootsLegacy")
        self.legacy_label.setWordWrap(True)
        layout.addWidget(self.legacy_label)
        row = QHBoxLayout()
        self.add_button = QPushButton("&Add CSOS trust roots…", self)
        self.add_button.setObjectName("addTrustRoot")
        self.add_button.setAutoDefault(False)
        self.remove_button = QPushButton("&Remove", self)
        self.remove_button.setObjectName("removeTrustRoot")
        self.remove_button.setAutoDefault(False)
        row.addWidget(self.add_button)
        row.addWidget(self.remove_button)
        row.addStretch(1)
        layout.addLayout(row)
        self.add_button.clicked.connect(self.choose_file)
        self.remove_button.clicked.connect(self.remove_selected)
        self.root_list.currentRowChanged.connect(lambda _row: self._update_buttons())
        self.refresh()

    def roots(self) -> list[TrustCandidate]:
        try:
            return self.store.roots()
        except CsosError as exc:
            messages.alert(self, "CSOS trust roots", exc.message)
            return []

    def refresh(self) -> None:
        self.root_list.clear()
        for root in self.roots():
            item = QListWidgetItem(f"{root.name}\nSHA-256 {group_fingerprint(root.fingerprint)}")
            item.setData(Qt.ItemDataRole.UserRole, root.fingerprint)
            item.setToolTip(describe(root))
            self.root_list.addItem(item)
        self.empty_label.setVisible(self.root_list.count() == 0)
        legacy = self.facade.config.settings.get("csos_trust_bundle")
        self.legacy_label.setText(f"Also trusted through an older setting: {legacy}" if legacy else "")
        self.legacy_label.setVisible(bool(legacy))
        self._update_buttons()

    def _update_buttons(self) -> None:
        self.remove_button.setEnabled(self.root_list.currentRow() >= 0)

    def choose_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Add CSOS trust roots", str(Path.home()), CERTIFICATE_FILES)
        if path:
            self.add_file(Path(path))

    def add_file(self, path: Path) -> bool:
        """Show each CA certificate of ``path`` with its fingerprint; add the ones the person confirms."""
        try:
            candidates = inspect(path.read_bytes(), source=path.name)
        except OSError as exc:
            messages.alert(self, "Add CSOS trust roots", f"{path.name} cannot be read ({exc.strerror}). Choose the "
                                                         "certificate file again.")
            return False
        except CsosError as exc:
            messages.alert(self, "Add CSOS trust roots", f"{exc.message} Choose the root certificate file you "
                                                         "received from DEA.")
            return False
        # Its roots (self-signed); only when it has none, its other CA certificates (said not to be roots).
        roots = [c for c in candidates if c.kind == "root"] or [c for c in candidates if c.is_ca]
        if not roots:
            messages.alert(self, "Add CSOS trust roots", f"{path.name} holds no CA certificate, so nothing in it can "
                                                         "be a CSOS trust root. "
                                                         + describe(candidates[0]).split("\n")[-1]
                                                         + " Choose the root certificate file you received from DEA.")
            return False
        added_any = False
        for candidate in roots:
            question = ("Compare this fingerprint with the one DEA publishes. Trust this certificate for CSOS "
                        f"orders?\n\n{describe(candidate)}")
            if not messages.confirm(self, "Trust this certificate?", question, yes_text="Trust it",
                                    no_text="Do not trust"):
                continue
            try:
                added, _already = self.store.add([candidate], fingerprints=[candidate.fingerprint])
            except CsosError as exc:
                messages.alert(self, "Add CSOS trust roots", exc.message)
                continue
            added_any = added_any or bool(added)
            if added:
                log.info("CSOS trust root added: %s", candidate.short_id)
        self.refresh()
        return added_any

    def remove_selected(self) -> bool:
        item = self.root_list.currentItem()
        if item is None:
            return False
        fingerprint = str(item.data(Qt.ItemDataRole.UserRole))
        name = item.text().split("\n", 1)[0]
        if not messages.confirm(self, "Stop trusting this root?",
                                f"Orders and certificates issued under {name} will no longer be "
                                "called trusted. You can add it again from its file.", yes_text="Remove",
                                warning=True):
            return False
        try:
            removed = self.store.remove(fingerprint)
        except CsosError as exc:
            messages.alert(self, "CSOS trust roots", exc.message)
            return False
        log.info("CSOS trust root removed: %s", removed.short_id)
        self.refresh()
        return True
