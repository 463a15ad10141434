"""Fuzzing (quick profile; the benchmark run does 100k cases): hostile bytes reach every parser that takes outside
input and must come back as a typed CsosError — never another exception, never a crash.

Inputs are valid documents mutated by hypothesis (flip, cut, splice) plus arbitrary bytes, so the fuzzer gets past
the first length check and deep into each format.
"""

from __future__ import annotations

import datetime as dt
import os

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.errors import CsosError
from app.services.certificates import ca
from app.services.signing.cms import parse_signed_document, sign_content
from app.services.certificates.profile import CsosCertificate
from app.services.keys.p12 import load_certificates, read_p12
from app.services.certificates.validation import CertificateValidationService
from app.services.signing.verifier import MappingSchedules, OrderVerifier
from tests.integration.test_verifier import make_order, x12
from tests.pki import build_training_pki, make_csr
from tests.signers import KeySigner

EXAMPLES = int(os.environ.get("CSOS_FUZZ_EXAMPLES", "150"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                               HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fuzz")
    pki = build_training_pki(tmp)
    subscriber = pki.issue()
    signed = sign_content(x12(make_order()), signer=KeySigner(subscriber.key), certificate_der=subscriber.der,
                          intermediates_der=[pki.sub.certificate.public_bytes(serialization.Encoding.DER)],
                          signing_time=dt.datetime.now(dt.timezone.utc))
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    p12 = pkcs12.serialize_key_and_certificates(b"x", key, None, None,
                                                serialization.BestAvailableEncryption(b"Fuzz-Pass-1234"))
    csr = make_csr(key).public_bytes(serialization.Encoding.DER)
    verifier = OrderVerifier(validation=CertificateValidationService(trust_roots=pki.trust_roots),
                             catalog=MappingSchedules({}), crls=[], fetch_crls=False)
    return Samples({"cms": signed, "cert": subscriber.der, "p12": p12, "csr": csr, "verifier": verifier,
            "pem": subscriber.cert.public_bytes(serialization.Encoding.PEM)})


class Samples(dict):
    """Sample documents; a short repr keeps hypothesis' failure reports readable."""

    def __repr__(self) -> str:
        return f"<samples {', '.join(self)}>"


@st.composite
def mutated(draw, name: str):
    """A sample document (looked up at run time) with a few random edits, or plain random bytes."""
    choice = draw(st.integers(0, 9))
    if choice == 0:
        return name, draw(st.binary(max_size=400))
    edits = draw(st.lists(st.tuples(st.sampled_from(["flip", "cut", "insert", "truncate"]),
                                    st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=4))
    return name, edits


def apply(data: bytes, edits) -> bytes:
    if isinstance(edits, bytes):
        return edits
    buffer = bytearray(data)
    for kind, position, value in edits:
        if not buffer:
            break
        at = position % len(buffer)
        if kind == "flip":
            buffer[at] ^= value or 1
        elif kind == "cut":
            del buffer[at:at + 1 + value % 16]
        elif kind == "insert":
            buffer[at:at] = bytes([value]) * (1 + value % 4)
        else:
            del buffer[at:]
    return bytes(buffer)


def only_typed_errors(function, data: bytes) -> None:
    try:
        function(data)
    except CsosError:
        pass


@FUZZ
@given(case=mutated("cms"))
def test_cms_parser(samples, case):
    only_typed_errors(parse_signed_document, apply(samples["cms"], case[1]))


@FUZZ
@given(case=mutated("cms"))
def test_verifier_never_raises(samples, case):
    verdict = samples["verifier"].verify(apply(samples["cms"], case[1]))
    assert verdict.accepted is False or verdict.reasons == []
    assert all(reason.code and reason.message for reason in verdict.reasons)


@FUZZ
@given(case=mutated("p12"))
def test_p12_reader(samples, case):
    only_typed_errors(lambda data: read_p12(data, password="Fuzz-Pass-1234"), apply(samples["p12"], case[1]))


@FUZZ
@given(case=mutated("cert"))
def test_certificate_parsing(samples, case):
    data = apply(samples["cert"], case[1])
    only_typed_errors(CsosCertificate.from_der, data)
    only_typed_errors(load_certificates, data)


@FUZZ
@given(case=mutated("pem"))
def test_pem_certificate_loading(samples, case):
    only_typed_errors(load_certificates, apply(samples["pem"], case[1]))


@FUZZ
@given(case=mutated("csr"))
def test_csr_parsing_and_checks(samples, case):
    def parse_and_check(data: bytes) -> None:
        ca.check_csr(ca.load_csr(data))

    only_typed_errors(parse_and_check, apply(samples["csr"], case[1]))


def test_the_fuzzer_really_mutates(samples):
    """Guard against a harness that feeds back the sample unchanged (a fuzz test that cannot fail)."""
    assert apply(samples["cms"], [("flip", 10, 255)]) != samples["cms"]
    assert apply(samples["cms"], [("truncate", 100, 0)]) == samples["cms"][:100]


# -- what the 100k-case benchmark run found (kept as fixed examples) ---------------------------------------------------
# cryptography raises x509.InvalidVersion -- not a ValueError -- for a certificate or CSR whose version field holds a
# value it does not know. One flipped bit there escaped as an untyped error from every certificate and CSR reader.

def _bad_version(der: bytes, *, at: int, value: int) -> bytes:
    """``der`` with the INTEGER byte at ``at`` (the version) set to ``value``."""
    assert der[at - 2:at] == b"\x02\x01", "not the version INTEGER"
    return der[:at] + bytes([value]) + der[at + 1:]


def test_a_certificate_with_an_unknown_version_is_a_typed_error(samples):
    bad = _bad_version(samples["cert"], at=12, value=3)  # SEQ, SEQ tbs, [0] { INTEGER version }
    with pytest.raises(CsosError):
        CsosCertificate.from_der(bad)
    with pytest.raises(CsosError):
        load_certificates(bad)
    pem = b"-----BEGIN CERTIFICATE-----\n" + __import__("base64").encodebytes(bad) + b"-----END CERTIFICATE-----\n"
    with pytest.raises(CsosError):
        load_certificates(pem)
    with pytest.raises(CsosError):
        CsosCertificate.from_pem(pem)


def test_a_csr_with_an_unknown_version_is_a_typed_error(samples):
    with pytest.raises(ca.CsrRejected):
        ca.load_csr(_bad_version(samples["csr"], at=10, value=1))  # SEQ, SEQ info, INTEGER version (must be 0)


def test_a_signed_order_carrying_a_certificate_with_an_unknown_version_is_malformed(samples):
    at = samples["cms"].index(samples["cert"]) + 12
    bad = _bad_version(samples["cms"], at=at, value=3)
    with pytest.raises(CsosError):
        parse_signed_document(bad)
    verdict = samples["verifier"].verify(bad)
    assert not verdict.accepted and [r.code for r in verdict.reasons] == ["malformed"]
