"""ISA15, the test indicator (issue 17, item 5): T for everything made in training (the pharmacy's orders and the
sandbox suppliers' answers), P in production; the verifier notes which; a connector refuses the wrong kind before
any network call."""

from __future__ import annotations

import pytest

from app.config import load_config
from app.services.certificates.crl_cache import CrlCache
from app.services.certificates.validation import CertificateValidationService
from app.services.signing.cms import parse_signed_document
from app.services.signing.order_signing import OrderSigningService
from app.services.signing.usage_indicator import (
    WrongTestIndicator,
    check_before_sending,
    for_profile,
    read_usage_indicator,
)
from app.services.signing.verifier import MappingSchedules, OrderVerifier
from app.services.signing.x12 import parse_interchange
from tests.factories import draft_order, seed
from tests.pki import build_training_pki, serve_directory
from tests.signers import KeySigner


@pytest.fixture
def world(book, tmp_path):
    seed(book)
    with serve_directory(tmp_path / "crl") as server:
        pki = build_training_pki(tmp_path, crl_base_url=server.base_url)
        pki.write_crls()
        validation = CertificateValidationService(trust_roots=pki.trust_roots,
                                                  crl_cache=CrlCache(tmp_path / "crl-cache"))
        yield pki, OrderVerifier(validation=validation, catalog=MappingSchedules.from_database(book.db))


@pytest.mark.parametrize("profile, expected", [("training", "T"), ("production", "P")])
def test_the_profile_decides_isa15_and_the_verifier_notes_it(world, book, tmp_path, profile, expected):
    pki, verifier = world
    config = load_config(data_dir=tmp_path / "data", profile=profile)
    service = OrderSigningService(book, verifier, test_indicator=for_profile(config))
    subscriber = pki.issue()
    signed = service.sign(draft_order(book).id, signer=KeySigner(subscriber.key), certificate=subscriber.cert,
                          intermediates=pki.intermediates)
    content = parse_signed_document(signed.document).content
    assert parse_interchange(content).envelope.usage_indicator == expected
    assert read_usage_indicator(content) == expected
    verdict = verifier.verify(signed.document)
    assert verdict.accepted and verdict.test_indicator == expected  # a note, never a reason
    assert verdict.to_json()["notes"] == [f"test_indicator: {expected}"]
    # A production connector refuses a T interchange, a training one a P interchange; the right one passes.
    check_before_sending(signed.document, expected)
    with pytest.raises(WrongTestIndicator) as refused:
        check_before_sending(signed.document, "P" if expected == "T" else "T", supplier="Acme Drug")
    assert refused.value.code == "transport.test_indicator" and "Acme Drug" in refused.value.message
