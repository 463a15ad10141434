"""Settings → CSOS trust roots: add after seeing the fingerprint, refuse what is not a CA, remove (issue 17 item 3)."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs7

from app.services.certificates.trust import TrustCandidate, TrustStore, configured_trust_roots, group_fingerprint
from app.ui.settings_dialog import SettingsDialog
from tests.pki import build_training_pki

pytestmark = pytest.mark.ui


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return build_training_pki(tmp_path_factory.mktemp("pki"))


def test_trust_roots_section_adds_with_the_fingerprint_shown_and_removes(qtbot, facade, training_config, pki,
                                                                         modal_boxes, tmp_path):
    dialog = SettingsDialog(facade)
    qtbot.addWidget(dialog)
    titles = [dialog.tabs.tabText(i).replace("&", "") for i in range(dialog.tabs.count())]
    assert "CSOS trust roots" in titles
    dialog.tabs.setCurrentIndex(titles.index("CSOS trust roots"))
    panel = dialog.trust_panel
    assert panel.root_list.count() == 0 and not panel.empty_label.isHidden()
    assert "Add CSOS trust roots" in panel.empty_label.text()

    # A .p7b chain as downloaded: only its root is offered, with its fingerprint.
    leaf = pki.issue().cert
    chain = tmp_path / "chain.p7b"
    chain.write_bytes(pkcs7.serialize_certificates([leaf, pki.sub.certificate, pki.root.certificate],
                                                   serialization.Encoding.DER))
    root = TrustCandidate.of(pki.root.certificate)
    sub = TrustCandidate.of(pki.sub.certificate)
    modal_boxes.answers = [True]
    assert panel.add_file(chain)
    asked = [message for _title, message in modal_boxes.questions]
    assert len(asked) == 1
    assert group_fingerprint(root.fingerprint) in asked[0] and "a root certificate" in asked[0]
    assert "DEA publishes" in asked[0]
    # A file with only an intermediate CA: offered, said plainly not to be a root; declined, nothing added.
    sub_file = tmp_path / "sub.pem"
    sub_file.write_bytes(pki.sub.certificate.public_bytes(serialization.Encoding.PEM))
    modal_boxes.questions.clear()
    modal_boxes.answers = [False]
    assert not panel.add_file(sub_file)
    assert group_fingerprint(sub.fingerprint) in modal_boxes.questions[0][1]
    assert "NOT a root" in modal_boxes.questions[0][1]
    assert [TrustCandidate.of(c).fingerprint for c in configured_trust_roots(training_config)
            if TrustCandidate.of(c).fingerprint == root.fingerprint] == [root.fingerprint]
    assert [r.fingerprint for r in TrustStore(training_config.data_dir).roots()] == [root.fingerprint]
    assert panel.root_list.count() == 1 and panel.empty_label.isHidden()
    shown = panel.root_list.item(0).text()
    assert "CSOS Training Root CA" in shown and group_fingerprint(root.fingerprint) in shown

    # A person's certificate is refused in plain words, nothing asked.
    leaf_file = tmp_path / "leaf.pem"
    leaf_file.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    modal_boxes.questions.clear()
    assert not panel.add_file(leaf_file)
    assert modal_boxes.questions == []
    assert "no CA certificate" in modal_boxes.alerts[-1][1] and "from DEA" in modal_boxes.alerts[-1][1]

    panel.root_list.setCurrentRow(0)
    assert panel.remove_button.isEnabled()
    modal_boxes.answers = [True]
    assert panel.remove_selected()
    assert panel.root_list.count() == 0 and TrustStore(training_config.data_dir).roots() == []
