"""CMS SignedData: our structure checked by openssl, openssl's checked by us, every tamper noticed."""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import os
import subprocess

import pytest
from asn1crypto import cms as asn1_cms
from cryptography.hazmat.primitives import serialization
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.services.signing import cms as cms_module
from app.services.signing.cms import CmsError, check_signature, parse_signed_document, sign_content
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


def _openssl_signed(tmp_path, subscriber, *extra: str) -> bytes:
    """CONTENT signed by ``openssl cms -sign`` with the subscriber's key (``extra``: more openssl options)."""
    (tmp_path / "signer.pem").write_bytes(subscriber.cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(subscriber.key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    (tmp_path / "order.x12").write_bytes(CONTENT)
    subprocess.run(["openssl", "cms", "-sign", "-binary", "-nodetach", "-outform", "DER", "-md", "sha256",
                    "-in", str(tmp_path / "order.x12"), "-signer", str(tmp_path / "signer.pem"),
                    "-inkey", str(tmp_path / "key.pem"), "-out", str(tmp_path / "order.csos"), *extra],
                   check=True, capture_output=True)
    return (tmp_path / "order.csos").read_bytes()


def test_we_verify_a_signature_made_by_openssl(tmp_path):
    pki = build_training_pki(tmp_path)
    subscriber = pki.issue()
    document = parse_signed_document(_openssl_signed(tmp_path, subscriber))
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


# -- the plain-DER reader (fast path) agrees with the general reader (asn1crypto) ----------------------------------
#
# parse_signed_document tries cms._read_der first and falls back to cms._parse_general (the reader as it was before
# the fast path). The fast reader may only ever hand back what the general reader would: same document, same
# signature findings; everything it does not accept, the general reader decides, with its own error message.


def _outcome(parse, data):
    try:
        document = parse(data)
    except CmsError as exc:
        return ("error", exc.code, exc.message)
    return ("ok", document, check_signature(document), document.intermediates)


def _same(data):
    assert _outcome(parse_signed_document, data) == _outcome(cms_module._parse_general, data)


def _headers(data: bytes, start: int = 0, end: int | None = None, depth: int = 0) -> list[int]:
    """Offsets of the DER headers in ``data`` (constructed elements walked into), for targeted mutations."""
    end = len(data) if end is None else end
    found, pos = [], start
    while pos < end and depth < 12:
        found.append(pos)
        tag, length = data[pos], data[pos + 1]
        head = 2
        if length & 0x80:
            count = length & 0x7F
            length = int.from_bytes(data[pos + 2:pos + 2 + count], "big")
            head += count
        if tag & 0x20:
            found += _headers(data, pos + head, pos + head + length, depth + 1)
        pos += head + length
    return found


@functools.cache
def _reference_documents() -> tuple[bytes, ...]:
    import tempfile
    from pathlib import Path

    documents = []
    for key_type in ("rsa", "ec"):
        pki = build_training_pki(Path(tempfile.mkdtemp()), key_type=key_type)
        documents.append(_sign(pki, pki.issue(), when=dt.datetime(2026, 11, 30, 12, 0, 5, tzinfo=dt.timezone.utc)))
    return tuple(documents)


def test_the_fast_reader_reads_our_documents_exactly_as_the_general_reader(pki_and_subscriber):
    pki, subscriber = pki_and_subscriber
    data = _sign(pki, subscriber)
    fast = cms_module._read_der(data)
    general = cms_module._parse_general(data)
    assert fast == general
    assert fast.signing_time.tzinfo is general.signing_time.tzinfo
    # the per-certificate facts it carries are the signer's
    certificate, certificate_hash, public_key = fast.signer_facts
    assert certificate is fast.signer_certificate
    assert certificate_hash == hashlib.sha256(subscriber.der).digest()
    assert public_key == subscriber.cert.public_key()
    assert check_signature(fast) == check_signature(general) == []


def test_signer_facts_are_not_used_for_another_certificate(pki_and_subscriber):
    pki, subscriber = pki_and_subscriber
    document = parse_signed_document(_sign(pki, subscriber))
    assert document.signer_facts is not None
    document.signer_certificate = pki.issue(full_name="Someone Else").cert
    codes = [code for code, _ in check_signature(document)]
    assert codes.count("signature_invalid") == 2  # signingCertificateV2 and the signature both name someone else


def test_shapes_the_fast_reader_leaves_to_the_general_reader(tmp_path):
    from asn1crypto import cms as asn1_cms_module

    pki = build_training_pki(tmp_path)
    subscriber = pki.issue()
    data = _sign(pki, subscriber)
    info = asn1_cms_module.ContentInfo.load(data)
    signer_info = info["content"]["signer_infos"][0]
    signer_info["unsigned_attrs"] = [{"type": "signing_time", "values": [asn1_cms_module.Time(
        {"utc_time": dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)})]}]
    with_unsigned = info.dump(force=True)
    long_length = b"\x30\x84" + len(data[4:]).to_bytes(4, "big") + data[4:]  # not the minimal length
    indefinite = b"\x30\x80" + data[4:] + b"\x00\x00"  # BER
    for variant in (with_unsigned, long_length, indefinite, data + b"\x00", data[:-1]):
        with pytest.raises(Exception):
            cms_module._read_der(variant)
        _same(variant)


def test_openssl_documents_read_the_same_either_way(tmp_path):
    pki = build_training_pki(tmp_path)
    subscriber = pki.issue()
    for extra in ([], ["-nosmimecap"], ["-nosmimecap", "-keyid"]):
        _same(_openssl_signed(tmp_path, subscriber, *extra))


@settings(max_examples=int(os.environ.get("CMS_FUZZ_EXAMPLES", "400")), deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_documents_get_the_same_outcome_from_both_readers(data):
    original = data.draw(st.sampled_from(_reference_documents()))
    mutated = bytearray(original)
    for _ in range(data.draw(st.integers(1, 3))):
        kind = data.draw(st.sampled_from(["header", "header", "byte", "delete", "insert", "truncate", "length"]))
        if kind in ("header", "length"):
            position = data.draw(st.sampled_from(_headers(original))) + (1 if kind == "length" else 0)
        else:
            position = data.draw(st.integers(0, len(mutated) - 1))
        position = min(position, len(mutated) - 1)
        if kind in ("header", "byte", "length"):
            mutated[position] = data.draw(st.integers(0, 255))
        elif kind == "delete":
            del mutated[position:position + data.draw(st.integers(1, 8))]
        elif kind == "insert":
            mutated[position:position] = data.draw(st.binary(min_size=1, max_size=4))
        else:
            del mutated[position:]
        if not mutated:
            return  # "The file is empty." is parse_signed_document's own check, before either reader
    _same(bytes(mutated))


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(range(2)), st.data())
def test_every_header_byte_changed_gets_the_same_outcome_from_both_readers(which, data):
    original = _reference_documents()[which]
    mutated = bytearray(original)
    position = data.draw(st.sampled_from(_headers(original)))
    for offset in range(data.draw(st.integers(1, 3))):
        if position + offset < len(mutated):
            mutated[position + offset] = data.draw(st.integers(0, 255))
    _same(bytes(mutated))
