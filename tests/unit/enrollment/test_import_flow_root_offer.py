"""The import wizard in production offers the root found in the file's chain (issue 17.3): its name and SHA-256
fingerprint are shown on a page of their own to compare with DEA's; only once the person confirms does the root join
this profile's CSOS trust roots (trust/roots.pem, the store `csos-desk trust` manages), and then the certificate is
imported. Without the confirmation nothing is trusted or imported; training and files without a root never ask."""

from __future__ import annotations

import pytest

from app.config import load_config
from app.services.certificates.book import CertificateBook
from app.services.certificates.trust import TrustCandidate, TrustStore, group_fingerprint
from app.services.enrollment.authority import PortalAuthority
from app.services.enrollment.import_flow import ImportFlow
from app.services.enrollment.wizard import WizardInputError
from tests.fixtures.hostile_certificates import p12
from tests.pki import build_training_pki, new_key

FILE_PASSWORD = "File-pass-2026"
KEY_PASSWORD = "Granite-Willow-Beacon-63"


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return build_training_pki(tmp_path_factory.mktemp("pki"))


def setup(db, tmp_path, pki, *, profile="production", with_root=True):
    config = load_config(data_dir=tmp_path / "data", database_url=db.url, profile=profile)
    key = new_key("rsa")
    chain = [pki.sub.certificate] + ([pki.root.certificate] if with_root else [])
    path = tmp_path / "mine.p12"
    path.write_bytes(p12(key, pki.issue(key=key).cert, chain, FILE_PASSWORD))
    book = CertificateBook(db, config, environ={})  # the profile's own roots: none yet
    flow = ImportFlow(authority=PortalAuthority(), certificates=book)
    flow.start()
    return config, book, flow, path


def test_the_root_in_the_file_is_offered_with_its_fingerprint_and_trusted_only_when_confirmed(db, tmp_path, pki):
    config, book, flow, path = setup(db, tmp_path, pki)
    with book:
        assert flow.next({"p12_file": str(path), "p12_password": FILE_PASSWORD}) == "trust_root"
        offer = flow.data["root_offer"]
        expected = TrustCandidate.of(pki.root.certificate)
        assert offer["fingerprint"] == expected.fingerprint
        assert offer["fingerprint_grouped"] == group_fingerprint(expected.fingerprint)
        assert offer["name"] == expected.name and TrustStore(config.data_dir).roots() == []
        with pytest.raises(WizardInputError) as caught:  # not confirmed: nothing trusted
            flow.next({"trust_root_confirmed": False})
        assert caught.value.field == "trust_root_confirmed" and "DEA publishes" in caught.value.message
        assert TrustStore(config.data_dir).roots() == [] and book.list() == []
        assert flow.next({"trust_root_confirmed": True}) == "destination"
        assert [r.fingerprint for r in TrustStore(config.data_dir).roots()] == [expected.fingerprint]
        assert (config.data_dir / "trust" / "roots.pem").is_file() and flow.data["p12_summary"]["subject"]
        flow.next({"key_store": "software", "key_password": KEY_PASSWORD, "key_password_confirm": KEY_PASSWORD,
                   "k2_acknowledged": True})
        assert flow.view == "done" and flow.data["installed"][0]["status"] == "active"


def test_a_file_without_its_root_is_refused_as_before(db, tmp_path, pki):
    _, book, flow, path = setup(db, tmp_path, pki, with_root=False)
    with book, pytest.raises(WizardInputError) as caught:
        flow.next({"p12_file": str(path), "p12_password": FILE_PASSWORD})
    assert caught.value.code == "certificate.no_trust_roots" and "root_offer" not in flow.data


def test_a_root_already_trusted_is_not_offered_again(db, tmp_path, pki):
    config, book, flow, path = setup(db, tmp_path, pki)
    TrustStore(config.data_dir).add([TrustCandidate.of(pki.root.certificate)])
    with book:
        assert flow.next({"p12_file": str(path), "p12_password": FILE_PASSWORD}) == "destination"
        assert "root_offer" not in flow.data


def test_a_foreign_root_is_never_offered_beside_the_trusted_one(db, tmp_path, pki):
    """With DEA's root already trusted, a file chaining to another root (an impostor copying the names) is refused,
    not offered."""
    from tests.fixtures.hostile_certificates import foreign_csos_p12

    config, book, flow, _ = setup(db, tmp_path, pki)
    TrustStore(config.data_dir).add([TrustCandidate.of(pki.root.certificate)])
    path = tmp_path / "foreign.p12"
    path.write_bytes(foreign_csos_p12(tmp_path / "impostor", FILE_PASSWORD)[0])
    with book, pytest.raises(WizardInputError) as caught:
        flow.next({"p12_file": str(path), "p12_password": FILE_PASSWORD})
    assert caught.value.code == "certificate.untrusted" and "root_offer" not in flow.data
    assert len(TrustStore(config.data_dir).roots()) == 1


def test_training_never_offers_a_root(db, tmp_path, pki):
    _, book, flow, path = setup(db, tmp_path, pki, profile="training")
    with book, pytest.raises(WizardInputError) as caught:
        flow.next({"p12_file": str(path), "p12_password": FILE_PASSWORD})
    assert caught.value.code == "certificate.no_trust_roots" and "root_offer" not in flow.data
