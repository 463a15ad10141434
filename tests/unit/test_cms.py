"""CMS SignedData: our structure checked by openssl, openssl's checked by us, every tamper noticed."""

from __future__ import annotations

import datetime as dt
import hashlib
import subprocess

import pytest
from asn1crypto import cms as asn1_cms
from cryptography.hazmat.primitives import serialization

from app.services.cms import CmsError, check_signature, parse_signed_document, sign_content
from tests.pki import build_training_pki
from tests.signers import KeySigner

CONTENT = b"ISA*00*          *00*          *ZZ*BJ6125341      *ZZ*RA1234563      *261130*1200*U*00401*000000001*0*P*>~"


@pytest.fixture(params=["rsa", "ec"])
def pki_and_subscriber(request, tmp_path):
    pki = build_training_pki(tmp_path, key_type=request.param)
    return pki, pki.issue()


def _sign(pki, subscriber, content=CONTENT, when=None):
    return sign_content(content, signer=KeySigner(subscriber.key), certificate_der=subscriber.der,
                        intermediates_der=[pki.sub.certificate.public_bytes(serialization.Encoding.DER)],
                        signing_time=when or dt.datetime.now(dt.timezone.utc))


def test_openssl_verifies_our_signed_order(pki_and_subscriber, tmp_path):
    pki, subscriber = pki_and_subscriber
    signed = tmp_path / "order.csos"
    signed.write_bytes(_sign(pki, subscriber))
    out = tmp_path / "content.x12"
    done = subprocess.run(["openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in", str(signed),
                           "-CAfile", str(pki.trust_bundle), "-purpose", "any", "-out", str(out)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "Verification successful" in done.stderr
    assert out.read_bytes() == CONTENT


def test_structure_has_the_required_signed_attributes(pki_and_subscriber):
    pki, subscriber = pki_and_subscriber
    info = asn1_cms.ContentInfo.load(_sign(pki, subscriber))
    signed = info["content"]
    assert info["content_type"].native == "signed_data"
    assert signed["encap_content_info"]["content"].native == CONTENT
    assert [d["algorithm"].native for d in signed["digest_algorithms"]] == ["sha256"]
    assert len(signed["certificates"]) == 2  # signer + sub CA
    attributes = {a["type"].native: a["values"][0] for a in signed["signer_infos"][0]["signed_attrs"]}
    assert set(attributes) == {"content_type", "message_digest", "signing_time", "signing_certificate_v2"}
    assert attributes["message_digest"].native == hashlib.sha256(CONTENT).digest()
    v2 = attributes["signing_certificate_v2"]["certs"][0]
    assert v2["cert_hash"].native == hashlib.sha256(subscriber.der).digest()
    assert v2["issuer_serial"]["serial_number"].native == subscriber.cert.serial_number


def test_we_read_back_what_we_signed(pki_and_subscriber):
    pki, subscriber = pki_and_subscriber
    when = dt.datetime(2026, 11, 30, 12, 0, 5, tzinfo=dt.timezone.utc)
    document = parse_signed_document(_sign(pki, subscriber, when=when))
    assert document.content == CONTENT
    assert document.signer_certificate == subscriber.cert
    assert document.signing_time == when
    assert document.intermediates == [pki.sub.certificate]
    assert check_signature(document) == []


def test_we_verify_a_signature_made_by_openssl(tmp_path):
    pki = build_training_pki(tmp_path)
    subscriber = pki.issue()
    (tmp_path / "signer.pem").write_bytes(subscriber.cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(subscriber.key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    (tmp_path / "order.x12").write_bytes(CONTENT)
    subprocess.run(["openssl", "cms", "-sign", "-binary", "-nodetach", "-outform", "DER", "-md", "sha256",
                    "-in", str(tmp_path / "order.x12"), "-signer", str(tmp_path / "signer.pem"),
                    "-inkey", str(tmp_path / "key.pem"), "-out", str(tmp_path / "order.csos")],
                   check=True, capture_output=True)
    document = parse_signed_document((tmp_path / "order.csos").read_bytes())
    assert document.content == CONTENT
    # OpenSSL 3 adds signingCertificateV2 (ESS) by default for CMS; everything else must verify either way.
    problems = check_signature(document)
    assert all(code == "signature_invalid" and "signingCertificateV2" in message for code, message in problems)


def test_changed_content_is_reported_as_altered(pki_and_subscriber):
    pki, subscriber = pki_and_subscriber
    signed = _sign(pki, subscriber)
    tampered = signed.replace(b"BJ6125341", b"BJ6125342")
    codes = [code for code, _ in check_signature(parse_signed_document(tampered))]
    assert codes == ["content_altered"]


def test_a_broken_signature_is_reported(pki_and_subscriber):
    pki, subscriber = pki_and_subscriber
    info = asn1_cms.ContentInfo.load(_sign(pki, subscriber))
    signer_info = info["content"]["signer_infos"][0]
    signature = bytearray(signer_info["signature"].native)
    signature[-1] ^= 0x01
    signer_info["signature"] = bytes(signature)
    codes = [code for code, _ in check_signature(parse_signed_document(info.dump(force=True)))]
    assert codes == ["signature_invalid"]


def test_a_signing_certificate_v2_naming_another_certificate_is_reported(pki_and_subscriber, tmp_path):
    pki, subscriber = pki_and_subscriber
    other = pki.issue(full_name="Someone Else")
    document = parse_signed_document(_sign(pki, subscriber))
    document.signing_certificate_v2_hash = hashlib.sha256(other.der).digest()
    assert ("signature_invalid" in [code for code, _ in check_signature(document)])


@pytest.mark.parametrize("data", [b"", b"\x30\x03\x02\x01\x01", b"not der at all", b"\x30" * 50,
                                  CONTENT])
def test_malformed_input_raises_cms_error(data):
    with pytest.raises(CmsError) as caught:
        parse_signed_document(data)
    assert caught.value.code == "malformed"


def test_truncations_only_raise_cms_error(pki_and_subscriber):
    pki, subscriber = pki_and_subscriber
    signed = _sign(pki, subscriber)
    for cut in range(1, len(signed), max(1, len(signed) // 60)):
        with pytest.raises(CmsError):
            parse_signed_document(signed[:cut])
