"""The verifier, one test per reason code: each signed order broken in exactly one way (DESIGN.md §6).

Real parts: a training PKI, CRLs served over HTTP on loopback, real CMS, real X12.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re

import pytest
from cryptography.hazmat.primitives import serialization

from app.models.values import PackageUnit, Schedule
from app.services.signing.cms import sign_content
from app.services.certificates.crl_cache import CrlCache
from app.services.certificates.validation import CertificateValidationService
from app.services.signing.verifier import REASON_CODES, MappingSchedules, OrderVerifier
from app.services.signing.x12 import OrderLine850, Party, PurchaseOrder, write_850
from tests.pki import OTHER_DEA, build_training_pki, serve_directory
from tests.signers import KeySigner

NOW = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
CATALOG = MappingSchedules({"00406055201": Schedule.II, "00555097302": Schedule.IIN, "00009002901": Schedule.IV,
                            "00093310905": Schedule.NON_CONTROLLED})


def make_order(signed: dt.datetime = NOW, **changes) -> PurchaseOrder:
    order = PurchaseOrder(
        order_number=f"{signed:%y}X000001", date_signed=signed.date(),
        purchaser=Party(name="Main Street Pharmacy", dea_number="BJ6125341", address_lines=("100 Main Street",),
                        city="Springfield", state="IL", postal_code="62701"),
        supplier=Party(name="Acme Drug", dea_number="RA1234563"),
        lines=(OrderLine850(1, 2, "00406055201", "Oxycodone Hydrochloride 5 mg", 100, PackageUnit.EACH),
               OrderLine850(2, 1, "00009002901", "Alprazolam 0.5 mg", 100, PackageUnit.EACH)),
    )
    return dataclasses.replace(order, **changes)


def x12(order: PurchaseOrder, signed: dt.datetime = NOW) -> bytes:
    return write_850(order, interchange_control_number=1, group_control_number=1, sender_id="BJ6125341",
                     receiver_id="RA1234563", created_at=signed)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("verifier")
    with serve_directory(tmp / "crl") as server:
        pki = build_training_pki(tmp, now=NOW - dt.timedelta(days=120), crl_base_url=server.base_url)
        yield pki, tmp


@pytest.fixture
def verifier(world, tmp_path):
    pki, _ = world
    pki.write_crls(now=NOW - dt.timedelta(minutes=1))
    service = CertificateValidationService(trust_roots=pki.trust_roots, crl_cache=CrlCache(tmp_path / "crl-cache"))
    return OrderVerifier(validation=service, catalog=CATALOG, clock=lambda: NOW)


def sign(pki, subscriber, content: bytes, signed: dt.datetime = NOW) -> bytes:
    return sign_content(content, signer=KeySigner(subscriber.key), certificate_der=subscriber.der,
                        intermediates_der=[pki.sub.certificate.public_bytes(serialization.Encoding.DER)],
                        signing_time=signed)


def subscriber_for(pki, **kwargs):
    kwargs.setdefault("now", NOW - dt.timedelta(days=100))
    return pki.issue(**kwargs)


def test_a_good_order_is_accepted_with_its_parsed_content(world, verifier):
    pki, _ = world
    subscriber = subscriber_for(pki)
    verdict = verifier.verify(sign(pki, subscriber, x12(make_order())))
    assert verdict.reasons == [] and verdict.accepted
    data = verdict.to_json()
    assert data["order"]["order_number"] == f"{NOW:%y}X000001"
    assert data["order"]["purchaser_dea"] == "BJ6125341"
    assert [line["schedule"] for line in data["order"]["lines"]] == ["II", "IV"]
    assert data["signer"]["serial"] == subscriber.cert.serial_number


def codes(verdict) -> list[str]:
    return sorted(set(verdict.codes))


def test_malformed(verifier):
    assert codes(verifier.verify(b"\x30\x82\x01\x00garbage")) == ["malformed"]


def test_malformed_content_inside_a_good_signature(world, verifier):
    pki, _ = world
    verdict = verifier.verify(sign(pki, subscriber_for(pki), b"this is not an X12 order"))
    assert codes(verdict) == ["malformed"]


def test_signature_invalid(world, verifier):
    pki, _ = world
    subscriber = subscriber_for(pki)
    from asn1crypto import cms

    info = cms.ContentInfo.load(sign(pki, subscriber, x12(make_order())))
    signer_info = info["content"]["signer_infos"][0]
    signature = bytearray(signer_info["signature"].native)
    signature[10] ^= 0xFF
    signer_info["signature"] = bytes(signature)
    assert codes(verifier.verify(info.dump(force=True))) == ["signature_invalid"]


def test_content_altered(world, verifier):
    pki, _ = world
    signed = sign(pki, subscriber_for(pki), x12(make_order()))
    tampered = signed.replace(b"PO1*1*2*EA", b"PO1*1*9*EA")
    assert tampered != signed
    assert codes(verifier.verify(tampered)) == ["content_altered"]


def test_untrusted_chain(world, verifier, tmp_path):
    pki, _ = world
    impostor = build_training_pki(tmp_path / "impostor", now=NOW - dt.timedelta(days=120), fresh_keys=True)
    subscriber = impostor.issue(now=NOW - dt.timedelta(days=100))
    signed = sign_content(x12(make_order()), signer=KeySigner(subscriber.key), certificate_der=subscriber.der,
                          intermediates_der=[impostor.sub.certificate.public_bytes(serialization.Encoding.DER)],
                          signing_time=NOW)
    assert "untrusted_chain" in codes(verifier.verify(signed))
    assert set(codes(verifier.verify(signed))) <= {"untrusted_chain", "revocation_unknown"}


def test_certificate_expired_at_signing_time(world, verifier):
    pki, _ = world
    signed_at = NOW - dt.timedelta(days=10)
    subscriber = subscriber_for(pki, not_after=signed_at - dt.timedelta(days=1))
    verdict = verifier.verify(sign(pki, subscriber, x12(make_order(signed_at), signed_at), signed_at))
    assert codes(verdict) == ["certificate_expired"]


def test_certificate_not_yet_valid_at_signing_time(world, verifier):
    pki, _ = world
    signed_at = NOW - dt.timedelta(days=10)
    subscriber = subscriber_for(pki, now=NOW - dt.timedelta(days=2))
    verdict = verifier.verify(sign(pki, subscriber, x12(make_order(signed_at), signed_at), signed_at))
    assert codes(verdict) == ["certificate_not_yet_valid"]


def test_certificate_revoked(world, verifier):
    pki, _ = world
    subscriber = subscriber_for(pki)
    pki.revoke(subscriber.cert, at=NOW - dt.timedelta(hours=2))
    pki.write_crls(now=NOW - dt.timedelta(minutes=1))
    assert codes(verifier.verify(sign(pki, subscriber, x12(make_order())))) == ["certificate_revoked"]


def test_revocation_unknown_when_the_crl_cannot_be_had(world, tmp_path):
    pki, _ = world
    subscriber = subscriber_for(pki)
    (pki.directory / "sub.crl").unlink(missing_ok=True)
    service = CertificateValidationService(trust_roots=pki.trust_roots, crl_cache=CrlCache(tmp_path / "empty"))
    verifier = OrderVerifier(validation=service, catalog=CATALOG, clock=lambda: NOW)
    assert codes(verifier.verify(sign(pki, subscriber, x12(make_order())))) == ["revocation_unknown"]


def test_not_signing_certificate(world, verifier):
    pki, _ = world
    coordinator = pki.issue_admin(now=NOW - dt.timedelta(days=100))
    assert codes(verifier.verify(sign(pki, coordinator, x12(make_order())))) == ["not_signing_certificate"]


def test_dea_number_mismatch(world, verifier):
    pki, _ = world
    subscriber = subscriber_for(pki, dea=OTHER_DEA)
    assert codes(verifier.verify(sign(pki, subscriber, x12(make_order())))) == ["dea_number_mismatch"]


def test_schedule_not_authorized(world, verifier):
    pki, _ = world
    subscriber = subscriber_for(pki, schedules={Schedule.III, Schedule.IV, Schedule.V})
    verdict = verifier.verify(sign(pki, subscriber, x12(make_order())))
    assert codes(verdict) == ["schedule_not_authorized"]
    assert "Line 1" in verdict.reasons[0].message


def test_the_schedule_comes_from_the_catalog_not_the_order(world, verifier):
    """A line describing itself harmlessly is still judged by its NDC in the catalog."""
    pki, _ = world
    subscriber = subscriber_for(pki, schedules={Schedule.IV, Schedule.V})
    order = make_order(lines=(OrderLine850(1, 1, "00406055201", "Vitamin C 500 mg non-controlled", 100,
                                           PackageUnit.EACH),))
    assert codes(verifier.verify(sign(pki, subscriber, x12(order)))) == ["schedule_not_authorized"]


def test_missing_field(world, verifier):
    pki, _ = world
    content = x12(make_order())
    # Remove the product description of line 2 and keep the X12 counts consistent.
    content = re.sub(rb"PID\*F\*\*\*\*Alprazolam 0\.5 mg~", b"", content)
    content = content.replace(b"SE*14*0001", b"SE*13*0001")
    verdict = verifier.verify(sign(pki, subscriber_for(pki), content))
    assert [c.split(":")[0] for c in codes(verdict)] == ["missing_field"]
    assert codes(verdict)[0].startswith("missing_field:")


def test_order_number_invalid(world, verifier):
    pki, _ = world
    order = make_order(order_number=f"{(NOW.year - 1) % 100:02d}X000001")  # last year's number
    verdict = verifier.verify(sign(pki, subscriber_for(pki), x12(order)))
    assert codes(verdict) == ["order_number_invalid"]


def test_signed_in_future(world, verifier):
    pki, _ = world
    signed_at = NOW + dt.timedelta(days=2)
    order = make_order(signed_at)
    verdict = verifier.verify(sign(pki, subscriber_for(pki), x12(order, signed_at), signed_at))
    assert codes(verdict) == ["signed_in_future"]


def test_order_expired(world, verifier):
    pki, _ = world
    signed_at = NOW - dt.timedelta(days=61)
    verdict = verifier.verify(sign(pki, subscriber_for(pki), x12(make_order(signed_at), signed_at), signed_at))
    assert codes(verdict) == ["order_expired"]


def test_unknown_product(world, verifier):
    pki, _ = world
    order = make_order(lines=(OrderLine850(1, 1, "12345678901", "Mystery 5 mg", 100, PackageUnit.EACH),))
    assert codes(verifier.verify(sign(pki, subscriber_for(pki), x12(order)))) == ["unknown_product"]


def test_every_failed_rule_is_reported_not_just_the_first(world, verifier):
    pki, _ = world
    signed_at = NOW - dt.timedelta(days=61)
    subscriber = subscriber_for(pki, dea=OTHER_DEA, schedules={Schedule.V})
    order = make_order(signed_at, lines=(
        OrderLine850(1, 1, "00406055201", "Oxycodone 5 mg", 100, PackageUnit.EACH),
        OrderLine850(2, 1, "12345678901", "Mystery", 100, PackageUnit.EACH)))
    verdict = verifier.verify(sign(pki, subscriber, x12(order, signed_at), signed_at))
    assert codes(verdict) == ["dea_number_mismatch", "order_expired", "schedule_not_authorized", "unknown_product"]


def test_every_documented_code_has_a_test_here():
    source = open(__file__, encoding="utf-8").read()
    for code in REASON_CODES:
        assert f"def test_{code}" in source, code
