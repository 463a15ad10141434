"""The CSOS certificate profile: extension encodings, the DEA-number hash, and the parsed certificate view."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from datetime import datetime, timedelta, timezone

import pytest
from asn1crypto import core
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID
from hypothesis import given
from hypothesis import strategies as st

from app.models.values import CERTIFICATE_SCHEDULE_BITS, DeaNumber, Schedule
from app.services.certificates import profile
from app.services.certificates.profile import CertificateProfileError, CsosCertificate
from tests.pki import OTHER_DEA, build_training_pki, subscriber_key

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return build_training_pki(tmp_path_factory.mktemp("pki"), now=NOW)


# -- deaNumberHash ---------------------------------------------------------------------------------------------------

def test_dea_number_hash_known_answer():
    # Expected values computed outside Python: printf 'BJ6125341123456789012' | openssl sha1
    assert profile.dea_number_hash("BJ6125341", "123456789012").hex() == "9d8f9053cabef6785449c8a29cd59344a6dfbe1e"
    assert profile.dea_number_hash("AB1234563", "000000000042").hex() == "b089568f21f82f87a983459ab1907721590cbb62"


def test_dea_number_hash_upper_cases_the_dea_number_only():
    expected = hashlib.sha1(b"BJ6125341" + b"123456789012").digest()
    assert profile.dea_number_hash(" bj6125341 ", "123456789012") == expected
    assert profile.dea_number_hash(DeaNumber.parse("bj6125341"), "123456789012") == expected
    assert profile.dea_number_hash("BJ6125341", "123456789013") != expected


# -- authorizedSchedules ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("schedules", "der_hex"), [
    ({Schedule.II, Schedule.IIN, Schedule.III, Schedule.IIIN, Schedule.IV, Schedule.V}, "0302017e"),
    (set(CERTIFICATE_SCHEDULE_BITS), "030201fe"),
    ({Schedule.I}, "03020780"),
    ({Schedule.II}, "03020640"),
    ({Schedule.III, Schedule.IV}, "03020214"),
    (set(), "030100"),
    ({Schedule.NON_CONTROLLED}, "030100"),
])
def test_schedules_known_der(schedules, der_hex):
    assert profile.encode_schedules(schedules).hex() == der_hex
    assert profile.decode_schedules(bytes.fromhex(der_hex)) == frozenset(schedules) - {Schedule.NON_CONTROLLED}


@given(st.sets(st.sampled_from(CERTIFICATE_SCHEDULE_BITS)))
def test_schedules_round_trip_and_der_named_bit_rule(schedules):
    der = profile.encode_schedules(schedules)
    assert profile.decode_schedules(der) == frozenset(schedules)
    # BIT STRING: tag 03, length, unused-bit count, content. DER named bits: no trailing zero bits.
    assert der[0] == 0x03 and der[1] == len(der) - 2
    unused, content = der[2], der[3:]
    if not schedules:
        assert content == b"" and unused == 0
        return
    bits = "".join(f"{octet:08b}" for octet in content)
    used = bits[: len(bits) - unused]
    assert used.endswith("1"), "trailing zero bits must be removed"
    assert bits[len(bits) - unused:] == "0" * unused
    for index, schedule in enumerate(CERTIFICATE_SCHEDULE_BITS):  # bit 0 = MSB of the first octet = Schedule I
        assert (index < len(used) and used[index] == "1") == (schedule in schedules)


def test_schedule_bit_beyond_v_is_rejected():
    with pytest.raises(CertificateProfileError) as info:
        profile.decode_schedules(bytes.fromhex("030200ff"))  # 8 bits set: bit 7 names no schedule
    assert info.value.code == "certificate.extension"


def test_schedules_that_are_not_a_bit_string_are_rejected():
    with pytest.raises(CertificateProfileError):
        profile.decode_schedules(core.Integer(5).dump())


# -- parsing certificates from ca.py ---------------------------------------------------------------------------------

def test_parse_signing_certificate_made_by_ca(pki):
    issued = pki.issue(dea="BJ6125341", schedules={Schedule.II, Schedule.IV}, full_name="Pat Purchaser",
                       email="pat@mainstreet.example", serial="123456789012",
                       not_after=NOW + timedelta(days=200))
    view = CsosCertificate.from_der(issued.der)
    assert view.kind == "signing" and view.can_sign_orders
    assert view.subscriber_name == "Pat Purchaser"
    assert view.email == "pat@mainstreet.example"
    assert view.subject_serial == "123456789012"
    assert view.organization == view.registrant_name == "Main Street Pharmacy"
    assert view.registrant_address == ("100 Main Street", "Springfield IL 62701")
    assert view.business_activity == "RETAIL PHARMACY"
    assert view.csos_version == 1
    assert view.dea_number_hash == bytes.fromhex("9d8f9053cabef6785449c8a29cd59344a6dfbe1e")
    assert view.schedules == frozenset({Schedule.II, Schedule.IV})
    assert view.not_after == NOW + timedelta(days=200)  # notAfter = registration expiry
    assert view.not_before <= NOW
    assert view.crl_urls == (pki.sub.crl_url,)
    assert view.fingerprint == issued.cert.fingerprint(hashes.SHA256()).hex()
    assert view.is_valid_at(NOW) and not view.is_valid_at(NOW + timedelta(days=201))
    # Subject in profile order: C, O, CN, serialNumber.
    assert [a.oid for a in issued.cert.subject] == [NameOID.COUNTRY_NAME, NameOID.ORGANIZATION_NAME,
                                                    NameOID.COMMON_NAME, NameOID.SERIAL_NUMBER]
    key_usage = issued.cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert key_usage.critical and key_usage.value.digital_signature and key_usage.value.content_commitment
    assert not key_usage.value.key_cert_sign
    for oid in profile.CSOS_EXTENSION_OIDS:
        assert issued.cert.extensions.get_extension_for_oid(oid).critical is False


def test_matches_dea(pki):
    view = pki.issue(dea="BJ6125341").csos
    assert view.matches_dea("BJ6125341")
    assert view.matches_dea("bj6125341")
    assert view.matches_dea(DeaNumber.parse("BJ6125341"))
    assert not view.matches_dea(OTHER_DEA)
    assert not view.matches_dea("BJ6125342")
    assert not view.matches_dea("BJ6125341 with junk \u00e9")


def test_authorizes(pki):
    view = pki.issue(schedules={Schedule.II, Schedule.IV}).csos
    assert view.authorizes(Schedule.II)
    assert view.authorizes("IV")
    assert not view.authorizes(Schedule.III)
    assert not view.authorizes(Schedule.IIN)
    assert view.authorizes(Schedule.NON_CONTROLLED)


def test_administrative_certificate_cannot_sign(pki):
    admin = pki.issue_admin(full_name="Casey Coordinator")
    view = admin.csos
    assert view.kind == "administrative" and not view.can_sign_orders
    assert view.subscriber_name == "Casey Coordinator"
    assert view.dea_number_hash is None and view.schedules == frozenset()
    assert not view.matches_dea("BJ6125341")
    assert not view.authorizes(Schedule.NON_CONTROLLED)
    assert not view.authorizes(Schedule.V)
    assert view.not_after - view.not_before == profile.ADMINISTRATIVE_VALIDITY + pki.sub.backdate
    assert not any(ext.oid in profile.CSOS_EXTENSION_OIDS for ext in admin.cert.extensions)


# -- malformed certificates ------------------------------------------------------------------------------------------

def _cert_with(extensions: list[x509.UnrecognizedExtension]) -> x509.Certificate:
    key = subscriber_key("ec")
    name = profile.build_subject(registrant_name="Main Street Pharmacy", full_name="Pat", serial="1234")
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
               .serial_number(1).not_valid_before(NOW).not_valid_after(NOW + timedelta(days=1)))
    for ext in extensions:
        builder = builder.add_extension(ext, critical=False)
    return builder.sign(key, hashes.SHA256())


def _good_extensions() -> list[x509.UnrecognizedExtension]:
    registration = profile.RegistrationFacts(
        dea_number=DeaNumber.parse("BJ6125341"), registrant_name="Main Street Pharmacy",
        address_lines=("1 Main St",), business_activity="RETAIL PHARMACY",
        schedules=frozenset({Schedule.II}), expires=NOW + timedelta(days=1))
    return profile.build_csos_extensions(registration, "1234")


def _replace(extensions, oid, value: bytes):
    return [x509.UnrecognizedExtension(oid, value) if e.oid == oid else e for e in extensions]


def test_well_formed_handmade_certificate_parses():
    view = CsosCertificate.from_certificate(_cert_with(_good_extensions()))
    assert view.kind == "signing" and view.matches_dea("BJ6125341") and view.schedules == {Schedule.II}


@pytest.mark.parametrize("broken", [
    pytest.param(lambda exts: _replace(exts, profile.OID_DEA_NUMBER_HASH, core.OctetString(b"\x00" * 19).dump()),
                 id="hash-19-bytes"),
    pytest.param(lambda exts: _replace(exts, profile.OID_DEA_NUMBER_HASH, core.Integer(7).dump()),
                 id="hash-not-octet-string"),
    pytest.param(lambda exts: _replace(exts, profile.OID_AUTHORIZED_SCHEDULES, core.UTF8String("II").dump()),
                 id="schedules-not-bit-string"),
    pytest.param(lambda exts: _replace(exts, profile.OID_CSOS_VERSION, b"\x02\x01"), id="version-truncated"),
    pytest.param(lambda exts: _replace(exts, profile.OID_REGISTRANT_NAME, core.UTF8String("x").dump() + b"\x00"),
                 id="trailing-bytes"),
    pytest.param(lambda exts: [e for e in exts if e.oid != profile.OID_AUTHORIZED_SCHEDULES],
                 id="schedules-missing"),
    pytest.param(lambda exts: [e for e in exts if e.oid == profile.OID_REGISTRANT_NAME], id="only-registrant"),
])
def test_malformed_csos_extension_is_a_typed_error(broken):
    cert = _cert_with(broken(_good_extensions()))
    with pytest.raises(CertificateProfileError) as info:
        CsosCertificate.from_certificate(cert)
    assert info.value.code == "certificate.extension"
    assert info.value.message


def test_not_a_certificate():
    with pytest.raises(CertificateProfileError) as info:
        CsosCertificate.from_der(b"\x30\x03\x02\x01\x01")
    assert info.value.code == "certificate.malformed"


@pytest.mark.parametrize(("kwargs", "fragment"), [
    ({"serial": "12AB"}, "digits"),
    ({"full_name": "  "}, "empty"),
    ({"registrant_name": "X" * 65}, "at most 64"),
])
def test_subject_builder_rules(kwargs, fragment):
    args = {"registrant_name": "Main Street Pharmacy", "full_name": "Pat", "serial": "1234", **kwargs}
    with pytest.raises(CertificateProfileError, match=fragment):
        profile.build_subject(**args)


def test_address_line_may_not_contain_the_separator():
    registration = profile.RegistrationFacts(
        dea_number=DeaNumber.parse("BJ6125341"), registrant_name="R", address_lines=("Suite $5",),
        business_activity="RETAIL PHARMACY", schedules=frozenset(), expires=NOW)
    with pytest.raises(CertificateProfileError, match=r"\$"):
        profile.build_csos_extensions(registration, "1")


# -- openssl's view --------------------------------------------------------------------------------------------------

@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")
def test_openssl_shows_key_usage_critical_and_csos_oids(pki, tmp_path):
    issued = pki.issue(schedules={Schedule.II})
    path = tmp_path / "cert.pem"
    path.write_bytes(issued.cert.public_bytes(serialization.Encoding.PEM))
    text = subprocess.run(["openssl", "x509", "-in", str(path), "-noout", "-text"], check=True,
                          capture_output=True, text=True).stdout
    lines = [line.strip() for line in text.splitlines()]
    ku = lines.index("X509v3 Key Usage: critical")
    assert lines[ku + 1] == "Digital Signature, Non Repudiation"
    for arc in range(1, 7):
        assert f"2.16.840.1.101.3.5.{arc}:" in lines, arc
    assert "email:pat@mainstreet.example" in text
    assert "X509v3 Subject Key Identifier:" in lines and "X509v3 Authority Key Identifier:" in lines
    assert f"URI:{pki.sub.crl_url}" in text
    assert "Subject: C = US, O = Main Street Pharmacy, CN = Pat Purchaser, serialNumber = " in text
