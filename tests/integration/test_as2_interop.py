"""AS2 messages and MDNs against an independent S/MIME implementation: the OpenSSL command line. What we send
decrypts and verifies there with the payload byte for byte and the same MIC; what OpenSSL signs and encrypts is read
by the receiver side; our MDN verifies there. (A one-off check against pyas2lib 1.4.4, both directions, is described
in README "AS2".)"""

from __future__ import annotations

import base64
import datetime as dt
import shutil
import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from app.services.transport import as2_mime

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
PAYLOAD = bytes(range(256)) * 3 + b"LF\nCRLF\r\nCR\rend"  # a DER .csos can hold any byte: none may change


def _party(tmp_path, name: str):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.timezone.utc)
    certificate = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
                   .not_valid_after(now + dt.timedelta(days=2))
                   .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                   .sign(key, hashes.SHA256()))
    key_file, cert_file = tmp_path / f"{name}-key.pem", tmp_path / f"{name}-cert.pem"
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return key, certificate, str(key_file), str(cert_file)


def _openssl(*args: str, data: bytes = b"") -> bytes:
    result = subprocess.run(["openssl", *args], input=data, capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    return result.stdout


def test_openssl_decrypts_and_verifies_what_we_send_with_the_same_payload_and_mic(tmp_path):
    our_key, ours, _, our_cert_file = _party(tmp_path, "pharmacy")
    _, theirs, their_key_file, their_cert_file = _party(tmp_path, "supplier")
    message = as2_mime.build_message(PAYLOAD, message_id="<interop@pharmacy.as2>", as2_from="PHARMACY",
                                     as2_to="SUPPLIER", media_type="application/x-csos-signed-order",
                                     filename="26X000001.csos", key=our_key, certificate=ours,
                                     partner_certificate=theirs)
    signed = _openssl("cms", "-decrypt", "-inform", "DER", "-inkey", their_key_file, "-recip", their_cert_file,
                      "-binary", data=message.body)
    assert signed.startswith(b"Content-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; "
                             b"micalg=sha-256;")
    content = _openssl("cms", "-verify", "-CAfile", our_cert_file, data=signed)  # S/MIME in, the signed entity out
    assert as2_mime.mic_of(content) == message.mic  # the MIC is over exactly the entity OpenSSL verified
    headers, body = as2_mime.split_entity(content)
    assert headers["Content-Type"] == "application/x-csos-signed-order"
    assert base64.b64decode(body) == PAYLOAD


def test_we_read_what_openssl_signs_and_encrypts_and_openssl_verifies_our_mdn(tmp_path):
    their_key, theirs, their_key_file, their_cert_file = _party(tmp_path, "pharmacy")
    our_key, ours, _, our_cert_file = _party(tmp_path, "supplier")
    inner = as2_mime.entity([("Content-Type", "application/edi-x12"), ("Content-Transfer-Encoding", "base64")],
                            base64.encodebytes(PAYLOAD).replace(b"\n", b"\r\n"))
    (tmp_path / "inner.eml").write_bytes(inner)
    signed = _openssl("cms", "-sign", "-in", str(tmp_path / "inner.eml"), "-signer", their_cert_file, "-inkey",
                      their_key_file, "-md", "sha256", "-binary")
    (tmp_path / "signed.eml").write_bytes(signed)
    envelope = _openssl("cms", "-encrypt", "-aes256", "-binary", "-in", str(tmp_path / "signed.eml"), "-outform",
                        "DER", our_cert_file)
    headers = {"AS2-Version": "1.2", "AS2-From": "PHARMACY", "AS2-To": "SUPPLIER", "Message-ID": "<o@openssl>",
               "Content-Type": 'application/pkcs7-mime; smime-type=enveloped-data; name="smime.p7m"',
               "Disposition-Notification-To": "PHARMACY",
               "Disposition-Notification-Options": as2_mime.DISPOSITION_OPTIONS}
    incoming = as2_mime.open_message(headers, envelope, key=our_key, certificate=ours, partner_certificate=theirs)
    assert incoming.payload == PAYLOAD and incoming.encryption == "aes256_cbc"
    assert incoming.payload_type == "application/edi-x12"
    mdn = as2_mime.build_mdn(incoming, as2_id="SUPPLIER", key=our_key, certificate=ours)
    report = _openssl("cms", "-verify", "-CAfile", our_cert_file,
                      data=as2_mime.entity([("Content-Type", mdn.headers["Content-Type"])], mdn.body))
    assert b"Original-Message-ID: <o@openssl>" in report
    assert f"Received-Content-MIC: {incoming.mic}, sha-256".encode() in report
    # ...and the sender's side accepts it only with the right certificate.
    assert as2_mime.read_mdn(mdn.headers, mdn.body, partner_certificate=ours, partner="x").processed
    with pytest.raises(as2_mime.As2FormatError) as refused:
        as2_mime.read_mdn(mdn.headers, mdn.body, partner_certificate=theirs, partner="x")
    assert refused.value.code == "as2.wrong_signer"


def test_a_receipt_for_other_bytes_does_not_confirm_ours(tmp_path):
    our_key, ours, _, _ = _party(tmp_path, "pharmacy")
    their_key, theirs, _, _ = _party(tmp_path, "supplier")
    message = as2_mime.build_message(PAYLOAD, message_id="<m@p.as2>", as2_from="P", as2_to="S",
                                     media_type="application/x-csos-signed-order", filename="o.csos", key=our_key,
                                     certificate=ours, partner_certificate=theirs)
    incoming = as2_mime.open_message(message.headers, message.body, key=their_key, certificate=theirs,
                                     partner_certificate=ours)
    incoming.mic = as2_mime.mic_of(b"something else")
    mdn = as2_mime.build_mdn(incoming, as2_id="S", key=their_key, certificate=theirs)
    received = as2_mime.read_mdn(mdn.headers, mdn.body, partner_certificate=theirs, partner="S")
    assert received.processed and not as2_mime.mic_matches(received, message.mic)
