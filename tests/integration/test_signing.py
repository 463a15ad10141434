"""Signing service: the pre-sign check and the clock rule stop a bad signature before it exists (S1, K6)."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from app.models.integrity import verify_audit_chain
from app.models.orderbook import AuditEvent
from app.models.states import OrderStatus
from app.models.values import Schedule
from app.sandbox.sntp import SntpServer
from app.services.signing.clock import ClockNotVerified, ClockOff, ClockRule, check_clock
from app.services.certificates.crl_cache import CrlCache
from app.services.signing.order_signing import NotDraft, OrderSigningService, PreSignCheckFailed
from app.services.certificates.validation import CertificateValidationService
from app.services.signing.verifier import MappingSchedules, OrderVerifier
from tests.factories import draft_order, seed
from tests.pki import OTHER_DEA, build_training_pki, serve_directory
from tests.signers import KeySigner


@pytest.fixture
def world(book, tmp_path):
    seed(book)
    with serve_directory(tmp_path / "crl") as server:
        pki = build_training_pki(tmp_path, crl_base_url=server.base_url)
        pki.write_crls()
        validation = CertificateValidationService(trust_roots=pki.trust_roots,
                                                  crl_cache=CrlCache(tmp_path / "crl-cache"))
        verifier = OrderVerifier(validation=validation, catalog=MappingSchedules.from_database(book.db))
        yield pki, verifier


def _sign(book, service, pki, subscriber, order):
    return service.sign(order.id, signer=KeySigner(subscriber.key), certificate=subscriber.cert,
                        intermediates=pki.intermediates)


def test_signing_stores_the_document_and_audits_it(world, book):
    pki, verifier = world
    service = OrderSigningService(book, verifier)
    order = draft_order(book)
    signed = _sign(book, service, pki, pki.issue(), order)
    stored = book.get_order(order.id)
    assert stored.status is OrderStatus.SIGNED and stored.signed_document == signed.document
    assert stored.payload_sha256 and stored.signer_fingerprint and stored.signed_at
    with book.db.session() as session:
        event = session.scalars(select(AuditEvent).where(AuditEvent.order_id == order.id)
                                .order_by(AuditEvent.id.desc())).first()
        assert event.details["to"] == "signed" and "document_sha256" in event.details
        assert verify_audit_chain(session) == []
    with pytest.raises(NotDraft):
        _sign(book, service, pki, pki.issue(), order)


@pytest.mark.parametrize("issue_kwargs, code", [
    ({"dea": OTHER_DEA}, "dea_number_mismatch"),
    ({"schedules": {Schedule.IV, Schedule.V}}, "schedule_not_authorized"),
])
def test_the_pre_sign_check_refuses_and_nothing_is_signed(world, book, issue_kwargs, code):
    pki, verifier = world
    service = OrderSigningService(book, verifier)
    order = draft_order(book)
    subscriber = pki.issue(**issue_kwargs)
    verdict = service.check(order.id, certificate=subscriber.cert, intermediates=pki.intermediates)
    assert code in verdict.codes
    with pytest.raises(PreSignCheckFailed) as caught:
        _sign(book, service, pki, subscriber, order)
    assert code in [reason.code for reason in caught.value.reasons]
    assert book.get_order(order.id).status is OrderStatus.DRAFT
    assert book.get_order(order.id).signed_document is None


def test_an_administrative_certificate_cannot_sign(world, book):
    pki, verifier = world
    service = OrderSigningService(book, verifier)
    with pytest.raises(PreSignCheckFailed) as caught:
        _sign(book, service, pki, pki.issue_admin(), draft_order(book))
    assert "not_signing_certificate" in [reason.code for reason in caught.value.reasons]


def test_an_order_without_lines_is_refused(world, book):
    pki, verifier = world
    service = OrderSigningService(book, verifier)
    with pytest.raises(PreSignCheckFailed) as caught:
        _sign(book, service, pki, pki.issue(), draft_order(book, lines=0))
    assert "missing_field:lines" in [reason.code for reason in caught.value.reasons]


@pytest.mark.parametrize("offset, blocked", [(30.0, False), (600.0, True), (-600.0, True)])
def test_a_clock_more_than_five_minutes_off_blocks_signing(world, book, offset, blocked):
    pki, verifier = world
    with SntpServer(offset=offset) as sntp:
        service = OrderSigningService(book, verifier,
                                      clock_check=lambda: check_clock(sntp.host, port=sntp.port, timeout=1))
        order = draft_order(book)
        if blocked:
            with pytest.raises(ClockOff) as caught:
                _sign(book, service, pki, pki.issue(), order)
            assert "5 minutes" in caught.value.message
            assert book.get_order(order.id).status is OrderStatus.DRAFT
        else:
            assert _sign(book, service, pki, pki.issue(), order).order.status is OrderStatus.SIGNED


@pytest.mark.parametrize("production", [True, False])
def test_an_unverified_clock_refuses_in_production_and_is_audited_in_training(world, book, tmp_path, production):
    """K6 rule end to end: the time server does not answer, no earlier check, the OS does not vouch."""
    pki, verifier = world
    with SntpServer() as sntp:
        sntp.answer = False
        rule = ClockRule(tmp_path / "clock-check.json", server=sntp.host, port=sntp.port, production=production,
                         timeout=0.3, os_synchronised=lambda: False)
        service = OrderSigningService(book, verifier, clock_check=rule)
        order = draft_order(book)
        if production:
            with pytest.raises(ClockNotVerified) as caught:
                _sign(book, service, pki, pki.issue(), order)
            assert "not signed" in caught.value.message
            assert book.get_order(order.id).status is OrderStatus.DRAFT
            return
        assert _sign(book, service, pki, pki.issue(), order).order.status is OrderStatus.SIGNED
    with book.db.session() as session:
        event = session.scalars(select(AuditEvent).where(AuditEvent.order_id == order.id)
                                .order_by(AuditEvent.id.desc())).first()
        assert event.details["to"] == "signed" and event.details["clock"] == "clock not verified"


def test_a_verified_clock_is_recorded_with_how(world, book, tmp_path):
    pki, verifier = world
    with SntpServer() as sntp:
        rule = ClockRule(tmp_path / "clock-check.json", server=sntp.host, port=sntp.port, production=True,
                         os_synchronised=lambda: False)
        order = draft_order(book)
        _sign(book, OrderSigningService(book, verifier, clock_check=rule), pki, pki.issue(), order)
    with book.db.session() as session:
        event = session.scalars(select(AuditEvent).where(AuditEvent.order_id == order.id)
                                .order_by(AuditEvent.id.desc())).first()
        assert event.details["clock"] == "time server now"


# -- the final check of the exact bytes (check_signed_document) and the hand-written CMS encoder -------------------

class _FlippingSigner(KeySigner):
    """A test double of the key only: signs correctly, then damages the signature's last byte."""

    def sign(self, data: bytes) -> bytes:
        signature = bytearray(super().sign(data))
        signature[-1] ^= 0x01
        return bytes(signature)


def _audit_count(book) -> int:
    with book.db.session() as session:
        return len(session.scalars(select(AuditEvent)).all())


@pytest.mark.parametrize("wrong", ["key_of_another_certificate", "corrupted_signature"])
def test_the_final_check_refuses_a_signature_that_does_not_verify_and_nothing_is_stored(world, book, wrong):
    pki, verifier = world
    service = OrderSigningService(book, verifier)
    order, subscriber = draft_order(book), pki.issue()
    if wrong == "key_of_another_certificate":
        signer = KeySigner(pki.issue(full_name="Someone Else").key)  # a key that does not match the certificate
    else:
        signer = _FlippingSigner(subscriber.key)
    events = _audit_count(book)
    with pytest.raises(PreSignCheckFailed) as caught:
        service.sign(order.id, signer=signer, certificate=subscriber.cert, intermediates=pki.intermediates)
    assert [reason.code for reason in caught.value.reasons] == ["signature_invalid"]
    after = book.get_order(order.id)
    assert after.status is OrderStatus.DRAFT and after.signed_document is None and after.signed_at is None
    assert _audit_count(book) == events


def _built(pki, subscriber, content=b"ISA*00*TEST~", when=dt.datetime(2026, 5, 6, 7, 8, 9, tzinfo=dt.timezone.utc)):
    from cryptography.hazmat.primitives.serialization import Encoding

    from app.services.signing.cms import sign_content

    intermediates = [c.public_bytes(Encoding.DER) for c in pki.intermediates]
    document = sign_content(content, signer=KeySigner(subscriber.key), certificate_der=subscriber.der,
                            intermediates_der=intermediates, signing_time=when)
    return document, dict(content=content, certificate_der=subscriber.der, intermediates_der=intermediates,
                          signing_time=when)


def test_the_final_check_passes_the_document_as_built(world):
    from app.services.signing.order_signing import check_signed_document

    pki, _ = world
    document, facts = _built(pki, pki.issue())
    assert check_signed_document(document, **facts) == []


def test_the_final_check_catches_changed_content_and_a_broken_structure(world):
    from app.services.signing.order_signing import check_signed_document

    pki, _ = world
    content = b"ISA*00*CONTENT-TO-CHANGE~"
    document, facts = _built(pki, pki.issue(), content=content)
    altered = document.replace(content, content.replace(b"CHANGE", b"CHANGf"))
    assert altered != document
    assert "content_altered" in [r.code for r in check_signed_document(altered, **facts)]
    # The embedded content is intact but is not the 850 that was checked.
    assert [r.code for r in check_signed_document(document, **{**facts, "content": b"ISA*00*OTHER~"})] \
        == ["content_altered"]
    assert [r.code for r in check_signed_document(document[:-7], **facts)] == ["malformed"]


def test_the_final_check_pins_the_certificates_and_the_time_that_were_checked(world):
    from app.services.signing.order_signing import check_signed_document

    pki, _ = world
    document, facts = _built(pki, pki.issue())
    other = pki.issue(full_name="Someone Else")
    codes = [r.code for r in check_signed_document(document, **{**facts, "certificate_der": other.der})]
    assert "signature_invalid" in codes and "untrusted_chain" in codes
    assert [r.code for r in check_signed_document(document, **{**facts, "intermediates_der": []})] \
        == ["untrusted_chain"]
    later = facts["signing_time"] + dt.timedelta(seconds=1)
    assert [r.code for r in check_signed_document(document, **{**facts, "signing_time": later})] \
        == ["signature_invalid"]


def _asn1crypto_reference(content, *, signer, certificate_der, intermediates_der, signing_time):
    """The structure built the general way with asn1crypto (as sign_content did before it wrote DER itself)."""
    import hashlib

    from asn1crypto import cms, tsp
    from asn1crypto import x509 as asn1_x509

    certificate = asn1_x509.Certificate.load(certificate_der)
    tbs = certificate["tbs_certificate"]
    v2 = tsp.SigningCertificateV2({"certs": [{
        "hash_algorithm": {"algorithm": "sha256"}, "cert_hash": hashlib.sha256(certificate_der).digest(),
        "issuer_serial": {"issuer": [asn1_x509.GeneralName({"directory_name": tbs["issuer"]})],
                          "serial_number": tbs["serial_number"].native}}]})
    time = cms.Time({"utc_time": signing_time} if 1950 <= signing_time.year < 2050
                    else {"generalized_time": signing_time})
    attributes = cms.CMSAttributes([
        cms.CMSAttribute({"type": "content_type", "values": ["data"]}),
        cms.CMSAttribute({"type": "message_digest", "values": [hashlib.sha256(content).digest()]}),
        cms.CMSAttribute({"type": "signing_time", "values": [time]}),
        cms.CMSAttribute({"type": "signing_certificate_v2", "values": [v2]}),
    ])
    signer_info = cms.SignerInfo({
        "version": "v1", "sid": cms.SignerIdentifier({"issuer_and_serial_number": {
            "issuer": tbs["issuer"], "serial_number": tbs["serial_number"].native}}),
        "digest_algorithm": {"algorithm": "sha256"}, "signed_attrs": attributes,
        "signature_algorithm": {"algorithm": signer.signature_algorithm},
        "signature": signer.sign(attributes.dump()),
    })
    return cms.ContentInfo({"content_type": "signed_data", "content": cms.SignedData({
        "version": "v1", "digest_algorithms": [{"algorithm": "sha256"}],
        "encap_content_info": {"content_type": "data", "content": content},
        "certificates": [asn1_x509.Certificate.load(der) for der in (certificate_der, *intermediates_der)],
        "signer_infos": [signer_info],
    })}).dump()


@pytest.mark.parametrize("content_size, when", [
    (1, dt.datetime(2026, 3, 4, 5, 6, 7, tzinfo=dt.timezone.utc)),
    (1200, dt.datetime(2049, 12, 31, 23, 59, 59, tzinfo=dt.timezone.utc)),
    (70_000, dt.datetime(2051, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)),  # GeneralizedTime, long lengths
])
def test_the_der_written_by_hand_is_byte_for_byte_asn1cryptos(world, content_size, when):
    """RSA PKCS#1 v1.5 is deterministic, so the same key, content and time must give the very same bytes."""
    from cryptography.hazmat.primitives.serialization import Encoding

    from app.services.signing.cms import sign_content

    pki, _ = world
    subscriber = pki.issue()
    content = (b"ISA*00*" * content_size)[:content_size]
    for intermediates in ([c.public_bytes(Encoding.DER) for c in pki.intermediates], []):
        kwargs = dict(certificate_der=subscriber.der, intermediates_der=intermediates, signing_time=when)
        assert sign_content(content, signer=KeySigner(subscriber.key), **kwargs) == \
            _asn1crypto_reference(content, signer=KeySigner(subscriber.key), **kwargs)


def test_an_order_changed_while_it_is_being_signed_is_not_stored(world, book):
    """Another window cancels the draft while the key is signing: the conditional store writes nothing."""
    pki, verifier = world
    service = OrderSigningService(book, verifier)
    order, subscriber = draft_order(book), pki.issue()

    class CancelsMeanwhile(KeySigner):  # a test double of the key: signs, while someone else cancels the order
        def sign(self, data: bytes) -> bytes:
            book.transition(order.id, OrderStatus.CANCELLED)
            return super().sign(data)

    events = _audit_count(book)
    with pytest.raises(NotDraft) as caught:
        service.sign(order.id, signer=CancelsMeanwhile(subscriber.key), certificate=subscriber.cert,
                     intermediates=pki.intermediates)
    assert "changed while it was being signed" in caught.value.message
    after = book.get_order(order.id)
    assert after.status is OrderStatus.CANCELLED and after.signed_document is None
    assert _audit_count(book) == events + 1  # the cancellation's event only


class _EditsWhileSigning(KeySigner):
    """Signs as KeySigner, but first does what another window could do in that moment: ``edit(book, order_id)``."""

    def __init__(self, key, book, order_id, edit):
        super().__init__(key)
        self.book, self.order_id, self.edit = book, order_id, edit

    def sign(self, data: bytes) -> bytes:
        self.edit(self.book, self.order_id)
        return super().sign(data)


def _more_packages(book, order_id):
    from app.models.orderbook import OrderLine

    with book.db.session() as session, session.begin():
        line = session.scalars(select(OrderLine).where(OrderLine.order_id == order_id)).first()
        line.packages += 5


def _another_line(book, order_id):
    from tests.factories import PRODUCTS

    book.add_line(order_id, ndc=PRODUCTS[2][0], packages=3)


def _one_line_less(book, order_id):
    book.remove_line(order_id, 1)


@pytest.mark.parametrize("edit", [_more_packages, _another_line, _one_line_less])
def test_a_line_changed_in_another_window_while_signing_is_never_stored_under_the_old_signature(world, book, edit):
    """The document carries the lines as read at the start; if the book's lines differ by the time it is stored,
    nothing is stored (the order stays a draft with the new lines) and signing again signs the new lines."""
    from app.services.signing.x12 import parse_interchange
    from app.services.signing.cms import parse_signed_document

    pki, verifier = world
    service = OrderSigningService(book, verifier)
    order = draft_order(book)
    subscriber = pki.issue()
    with pytest.raises(NotDraft, match="changed while it was being signed; nothing was stored"):
        service.sign(order.id, signer=_EditsWhileSigning(subscriber.key, book, order.id, edit),
                     certificate=subscriber.cert, intermediates=pki.intermediates)
    changed = book.get_order(order.id)
    assert changed.status is OrderStatus.DRAFT and changed.signed_document is None
    signed = _sign(book, service, pki, subscriber, changed)
    stored = book.get_order(order.id)
    assert stored.status is OrderStatus.SIGNED
    lines = parse_interchange(parse_signed_document(signed.document).content).document.lines
    assert [(line.ndc, line.packages) for line in lines] == [(line.ndc, line.packages) for line in stored.lines]
