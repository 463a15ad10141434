"""A supplier or registration name with accents ("Éclair Drug") is accepted when entered and can be signed: the 850
carries its ASCII spelling (issue 16 item 6). Real book, real signature."""

from __future__ import annotations

from app.services.certificates.crl_cache import CachedCrl
from app.services.certificates.validation import CertificateValidationService
from app.services.signing.cms import parse_signed_document
from app.services.signing.order_signing import OrderSigningService
from app.services.signing.verifier import MappingSchedules, OrderVerifier
from app.services.signing.x12 import parse_850
from tests.factories import PURCHASER_DEA, PRODUCTS, seed
from tests.pki import build_training_pki
from tests.signers import KeySigner


def test_an_accented_supplier_name_is_found_and_signed_in_ascii(book, tmp_path):
    seed(book)
    book.add_supplier(name="Éclair Drug", dea_number="RA1234563", address_lines=["12 Rue Château"],
                      city="Eau Claire", state="WI", postal_code="54701")
    authority = build_training_pki(tmp_path / "pki")
    subscriber = authority.issue()
    verifier = OrderVerifier(validation=CertificateValidationService(trust_roots=authority.trust_roots),
                             catalog=MappingSchedules.from_database(book.db), fetch_crls=False,
                             crls=[CachedCrl.from_crl(authority.crl(authority.root)).der,
                                   CachedCrl.from_crl(authority.crl()).der])
    order = book.new_order(registration_dea=PURCHASER_DEA, supplier_name="éclair drug")
    book.add_line(order.id, ndc=PRODUCTS[0][0], packages=1)
    OrderSigningService(book, verifier).sign(order.id, signer=KeySigner(subscriber.key), certificate=subscriber.cert,
                                             intermediates=authority.intermediates)
    signed = book.get_order(order.id)
    content = parse_850(parse_signed_document(signed.signed_document).content)
    assert signed.supplier.name == "Éclair Drug"
    assert content.supplier.name == "Eclair Drug" and content.supplier.address_lines == ("12 Rue Chateau",)
