"""The import wizard with hostile files (issue 22 "a foreign certificate is called trusted"): a self-made CN=Test,
a foreign CA's CSOS certificate and a key-only file are refused on the first page in plain words; with no trust
roots nothing is imported and nothing is called trusted; the check after a genuine import uses the profile's roots."""

from __future__ import annotations

import pytest

from app.config import load_config
from app.services.certificates.book import CertificateBook
from app.services.enrollment.authority import PortalAuthority
from app.services.enrollment.import_flow import ImportFlow
from app.services.enrollment.wizard import WizardInputError
from tests.fixtures.hostile_certificates import (
    foreign_csos_p12,
    key_only_p12,
    p12,
    self_made_p12,
)
from tests.pki import build_training_pki, new_key

FILE_PASSWORD = "File-pass-2026"
KEY_PASSWORD = "Granite-Willow-Beacon-63"


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return build_training_pki(tmp_path_factory.mktemp("pki"))


def book_with(db, tmp_path, roots):
    config = load_config(data_dir=tmp_path / "data", database_url=db.url, profile="production")
    return CertificateBook(db, config, environ={}, trust_roots=roots)


def first_page(book, path):
    flow = ImportFlow(authority=PortalAuthority(), certificates=book)
    flow.start()
    flow.next({"p12_file": str(path), "p12_password": FILE_PASSWORD})
    return flow


@pytest.mark.parametrize("kind, code, words", [
    ("self_made", "certificate.not_csos", "not a CSOS certificate"),
    ("foreign", "certificate.untrusted", "not a CSOS certification authority this computer trusts"),
    ("key_only", "certificate.key_only", "holds a key but not its certificate"),
])
def test_hostile_files_are_refused_on_the_first_page(db, tmp_path, pki, kind, code, words):
    data = {"self_made": lambda: self_made_p12(FILE_PASSWORD),
            "foreign": lambda: foreign_csos_p12(tmp_path / "impostor", FILE_PASSWORD)[0],
            "key_only": lambda: key_only_p12(FILE_PASSWORD)}[kind]()
    path = tmp_path / "test.p12"
    path.write_bytes(data)
    with book_with(db, tmp_path, pki.trust_roots) as book, pytest.raises(WizardInputError) as caught:
        first_page(book, path)
    assert (caught.value.code, caught.value.field) == (code, "p12_file") and words in caught.value.message
    assert "K2" not in caught.value.message and "docs/" not in caught.value.message
    assert book.list() == [] and not (tmp_path / "data" / "keys").exists()


def test_without_trust_roots_nothing_is_imported_and_the_page_says_how_to_add_them(db, tmp_path, pki):
    key = new_key("rsa")
    path = tmp_path / "mine.p12"
    path.write_bytes(p12(key, pki.issue(key=key).cert, [pki.sub.certificate], FILE_PASSWORD))
    with book_with(db, tmp_path, []) as book, pytest.raises(WizardInputError) as caught:
        first_page(book, path)
    assert caught.value.code == "certificate.no_trust_roots" and "csos-desk trust add" in caught.value.message


def test_a_genuine_import_is_checked_against_the_profile_roots_not_the_authority(db, tmp_path, pki):
    key = new_key("rsa")
    path = tmp_path / "mine.p12"
    path.write_bytes(p12(key, pki.issue(key=key).cert, [pki.sub.certificate], FILE_PASSWORD))
    with book_with(db, tmp_path, pki.trust_roots) as book:
        flow = first_page(book, path)
        flow.next({"key_store": "software", "key_password": KEY_PASSWORD, "key_password_confirm": KEY_PASSWORD,
                   "k2_acknowledged": True})
        assert flow.view == "done" and flow.data["installed"][0]["status"] == "active"
        # The production portal gives no roots; the check still ran, against the profile's (the CRL is unreachable
        # here, so it says so instead of calling the certificate fine).
        problems = flow.data["check_problems"]
        assert problems and "revoked" in " ".join(problems)
