"""The CA engine: CSR checks (proof of possession, K5), issuing, revocation, CRLs, persistence — checked by openssl."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from datetime import datetime, timedelta, timezone

import pytest
from asn1crypto import csr as asn1_csr
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa, utils

from app.models.values import DeaNumber, Schedule
from app.services.certificates import ca as ca_module
from app.services.certificates.ca import CaError, CertificationAuthority, CsrRejected
from app.services.certificates.profile import CRL_NEXT_UPDATE, CsosCertificate, RegistrationFacts, SubscriberIdentity
from tests.pki import build_training_pki, make_csr, pem, subscriber_key

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=timezone.utc)
needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")

_weak_rsa: list = []


def weak_rsa_key():
    if not _weak_rsa:
        _weak_rsa.append(rsa.generate_private_key(public_exponent=65537, key_size=1024))
    return _weak_rsa[0]


@pytest.fixture
def pki(tmp_path):
    return build_training_pki(tmp_path, now=NOW)


def _subscriber() -> SubscriberIdentity:
    return SubscriberIdentity(full_name="Pat Purchaser", email="pat@example.test", serial="555000111")


def _registration(expires=NOW + timedelta(days=100)) -> RegistrationFacts:
    return RegistrationFacts(dea_number=DeaNumber.parse("BJ6125341"), registrant_name="Main Street Pharmacy",
                             address_lines=("1 Main St", "Town ST 00001"), business_activity="RETAIL PHARMACY",
                             schedules=frozenset({Schedule.II, Schedule.V}), expires=expires)


def _issue(ca: CertificationAuthority, csr, **kwargs):
    return ca.issue_signing_certificate(csr, subscriber=_subscriber(), registration=_registration(), now=NOW,
                                        **kwargs)


def _openssl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["openssl", *args], capture_output=True, text=True)


# -- CSR checks ------------------------------------------------------------------------------------------------------

def test_csr_with_bad_signature_is_rejected(pki):
    der = bytearray(make_csr(subscriber_key()).public_bytes(serialization.Encoding.DER))
    der[-1] ^= 0x01  # last byte of the signature
    with pytest.raises(CsrRejected) as info:
        _issue(pki.sub, bytes(der))
    assert info.value.code == "csr.bad_signature"


def test_csr_signed_by_another_key_is_rejected(pki):
    # Proof of possession: the request carries key A but is signed with key B.
    key_a, key_b = subscriber_key("ec"), ec.generate_private_key(ec.SECP256R1())
    genuine = make_csr(key_a)
    forged = _resigned(genuine, key_b, "sha256_ecdsa", key_b.sign(genuine.tbs_certrequest_bytes,
                                                                  ec.ECDSA(hashes.SHA256())))
    with pytest.raises(CsrRejected) as info:
        _issue(pki.sub, forged)
    assert info.value.code == "csr.bad_signature"


def test_rsa_1024_is_rejected(pki):
    with pytest.raises(CsrRejected) as info:
        _issue(pki.sub, make_csr(weak_rsa_key()))
    assert info.value.code == "csr.weak_key"


def test_p384_is_rejected(pki):
    with pytest.raises(CsrRejected) as info:
        _issue(pki.sub, make_csr(ec.generate_private_key(ec.SECP384R1()), algorithm=hashes.SHA256()))
    assert info.value.code == "csr.unsupported_key"


def _resigned(csr: x509.CertificateSigningRequest, key, algorithm_name: str, signature: bytes) -> bytes:
    request = asn1_csr.CertificationRequest.load(csr.public_bytes(serialization.Encoding.DER))
    request["signature_algorithm"] = {"algorithm": algorithm_name}
    request["signature"] = signature
    return request.dump()


def test_sha1_csr_is_rejected(pki):
    # cryptography no longer makes SHA-1 signatures; sign the request body by hand (a genuine ecdsa-with-SHA1).
    key = subscriber_key("ec")
    csr = make_csr(key)
    digest = hashlib.sha1(csr.tbs_certrequest_bytes).digest()
    der = _resigned(csr, key, "sha1_ecdsa", key.sign(digest, ec.ECDSA(utils.Prehashed(hashes.SHA1()))))
    with pytest.raises(CsrRejected) as info:
        _issue(pki.sub, der)
    assert info.value.code == "csr.unsupported_hash"


def test_garbage_csr_is_rejected(pki):
    with pytest.raises(CsrRejected) as info:
        _issue(pki.sub, b"not a request")
    assert info.value.code == "csr.malformed"


def test_p256_is_accepted_and_signed_with_sha256(pki):
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _issue(pki.sub, make_csr(key).public_bytes(serialization.Encoding.PEM))
    assert cert.public_key().public_numbers() == key.public_key().public_numbers()
    assert isinstance(cert.signature_hash_algorithm, hashes.SHA256)
    assert cert.issuer == pki.sub.certificate.subject


def test_rsa_2048_is_accepted(pki):
    cert = _issue(pki.sub, make_csr(subscriber_key("rsa")))
    assert cert.public_key().key_size == 2048


# -- issuing ---------------------------------------------------------------------------------------------------------

def test_signing_certificate_validity_is_the_registration_expiry(pki):
    cert = _issue(pki.sub, make_csr(subscriber_key()))
    assert cert.not_valid_after_utc == NOW + timedelta(days=100)
    assert cert.not_valid_before_utc == NOW - ca_module.DEFAULT_BACKDATE
    ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert ski.digest == x509.SubjectKeyIdentifier.from_public_key(cert.public_key()).digest
    assert aki.key_identifier == pki.sub.subject_key_identifier.digest
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_expired_registration_gets_no_certificate(pki):
    with pytest.raises(CaError) as info:
        pki.sub.issue_signing_certificate(make_csr(subscriber_key()), subscriber=_subscriber(),
                                          registration=_registration(expires=NOW - timedelta(days=1)), now=NOW)
    assert info.value.code == "ca.validity"


def test_hierarchy_names_and_ca_extensions(pki):
    for ca, name in ((pki.root, "CSOS Training Root CA"), (pki.sub, "CSOS Training Sub CA")):
        assert ca.common_name == name
        constraints = ca.certificate.extensions.get_extension_for_class(x509.BasicConstraints)
        usage = ca.certificate.extensions.get_extension_for_class(x509.KeyUsage)
        assert constraints.critical and constraints.value.ca
        assert usage.critical and usage.value.key_cert_sign and usage.value.crl_sign
    # The sub CA certificate points at the root's CRL; the root has none.
    dps = pki.sub.certificate.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    assert dps[0].full_name[0].value == pki.root.crl_url
    with pytest.raises(x509.ExtensionNotFound):
        pki.root.certificate.extensions.get_extension_for_class(x509.CRLDistributionPoints)


@needs_openssl
@pytest.mark.parametrize("key_type", ["rsa", "ec"])
def test_openssl_verifies_the_chain(tmp_path, key_type):
    pki = build_training_pki(tmp_path, key_type=key_type)  # current time: openssl checks validity against now
    issued = pki.issue()
    (tmp_path / "root.pem").write_bytes(pem(pki.root.certificate))
    (tmp_path / "sub.pem").write_bytes(pem(pki.sub.certificate))
    (tmp_path / "leaf.pem").write_bytes(pem(issued.cert))
    result = _openssl("verify", "-CAfile", str(tmp_path / "root.pem"), "-untrusted", str(tmp_path / "sub.pem"),
                      str(tmp_path / "leaf.pem"))
    assert result.returncode == 0, result.stderr + result.stdout
    wrong = _openssl("verify", "-CAfile", str(tmp_path / "sub.pem"), str(tmp_path / "leaf.pem"))
    assert wrong.returncode != 0  # the sub CA alone is not a trust anchor: the check can fail


# -- revocation and CRLs ---------------------------------------------------------------------------------------------

def test_revoking_an_unknown_serial_fails(pki):
    with pytest.raises(CaError) as info:
        pki.sub.revoke(12345)
    assert info.value.code == "ca.unknown_serial"


def test_crl_lists_revoked_serial_with_reason_and_number(pki):
    keep, gone = pki.issue(), pki.issue()
    pki.sub.revoke(gone.cert, x509.ReasonFlags.key_compromise, at=NOW + timedelta(hours=1))
    first = pki.sub.build_crl(now=NOW + timedelta(hours=2))
    second = pki.sub.build_crl(now=NOW + timedelta(hours=3))
    entry = first.get_revoked_certificate_by_serial_number(gone.cert.serial_number)
    assert entry is not None and entry.revocation_date_utc == NOW + timedelta(hours=1)
    assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason is x509.ReasonFlags.key_compromise
    assert first.get_revoked_certificate_by_serial_number(keep.cert.serial_number) is None
    assert first.last_update_utc == NOW + timedelta(hours=2)
    assert first.next_update_utc == NOW + timedelta(hours=2) + CRL_NEXT_UPDATE
    number = lambda crl: crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number  # noqa: E731
    assert number(second) == number(first) + 1
    aki = first.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == pki.sub.subject_key_identifier.digest
    assert first.is_signature_valid(pki.sub.certificate.public_key())
    assert not first.is_signature_valid(pki.root.certificate.public_key())
    custom = pki.sub.build_crl(now=NOW, next_update=timedelta(hours=6))
    assert custom.next_update_utc == NOW + timedelta(hours=6)


@needs_openssl
def test_openssl_verifies_the_crl(pki, tmp_path):
    gone = pki.issue()
    pki.revoke(gone.cert)
    crl_path = tmp_path / "sub.crl.pem"
    crl_path.write_bytes(pki.sub.build_crl(now=NOW).public_bytes(serialization.Encoding.PEM))
    ca_file = tmp_path / "cas.pem"
    ca_file.write_bytes(pem(pki.root.certificate) + pem(pki.sub.certificate))
    result = _openssl("crl", "-in", str(crl_path), "-CAfile", str(ca_file), "-verify", "-noout", "-text")
    assert result.returncode == 0, result.stderr
    assert "verify OK" in result.stderr + result.stdout
    serial_hex = f"{gone.cert.serial_number:X}"
    serial_hex = serial_hex.zfill(len(serial_hex) + len(serial_hex) % 2)  # openssl prints whole octets
    assert f"Serial Number: {serial_hex}" in result.stdout
    assert "Key Compromise" in result.stdout
    # Against the wrong CA it fails — the check above can fail.
    (tmp_path / "root-only.pem").write_bytes(pem(pki.root.certificate))
    wrong = _openssl("crl", "-in", str(crl_path), "-CAfile", str(tmp_path / "root-only.pem"), "-verify", "-noout")
    assert "verify OK" not in wrong.stderr + wrong.stdout


# -- persistence -----------------------------------------------------------------------------------------------------

def test_state_round_trips_through_json(pki):
    gone = pki.issue()
    pki.sub.revoke(gone.cert, x509.ReasonFlags.cessation_of_operation, at=NOW)
    pki.sub.build_crl(now=NOW)
    data = json.loads(json.dumps(pki.sub.to_dict(password=b"training")))
    restored = CertificationAuthority.from_dict(data, password=b"training")
    assert restored.certificate == pki.sub.certificate
    assert restored.crl_url == pki.sub.crl_url and restored.crl_number == pki.sub.crl_number
    assert restored.revocations == pki.sub.revocations
    crl = restored.build_crl(now=NOW)
    assert crl.get_revoked_certificate_by_serial_number(gone.cert.serial_number) is not None
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == pki.sub.crl_number + 1
    # The restored CA still knows what it issued, and can issue more.
    restored.revoke(pki.issued[0].cert.serial_number)
    assert CsosCertificate.from_certificate(_issue(restored, make_csr(subscriber_key()))).kind == "signing"


def test_state_with_mismatched_key_is_refused(pki):
    data = pki.sub.to_dict()
    data["key_pem"] = pki.root.to_dict()["key_pem"]
    with pytest.raises(CaError) as info:
        CertificationAuthority.from_dict(data)
    assert info.value.code == "ca.state"
