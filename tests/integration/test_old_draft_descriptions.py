"""Old drafts (issue 16.4): a line saved before the X12-safe description rule keeps its raw text ("Xanax® * 1 mg")
and failed at signing. Migration 0004 rewrites the descriptions of DRAFT orders' lines with the rule, never those
of signed orders. Real SQLite file written with sqlite3 as an older program left it, real upgrade, real signature."""

from __future__ import annotations

import sqlite3

import pytest
from sqlalchemy.orm import sessionmaker

from app.errors import CsosError
from app.models.database import Database, _alembic_config, make_engine, open_database, sqlite_url
from app.models.integrity import install_integrity_rules
from app.services.certificates.crl_cache import CachedCrl
from app.services.certificates.validation import CertificateValidationService
from app.services.orders.orderbook import OrderBook
from app.services.signing.cms import parse_signed_document
from app.services.signing.order_signing import OrderSigningService, purchase_order_from
from app.services.signing.verifier import MappingSchedules, OrderVerifier
from app.services.signing.x12 import parse_850
from tests.factories import PRODUCTS, PURCHASER_DEA, seed, sign_for_test
from tests.pki import build_training_pki
from tests.signers import KeySigner

RAW = "Xanax\u00ae * 1 mg"


def _older_book(path) -> tuple[str, int, int]:
    """An order book at 0003 holding a draft and a signed order whose lines carry ``RAW`` (written with sqlite3)."""
    from alembic import command

    url = sqlite_url(path)
    engine = make_engine(url)
    with engine.begin() as connection:
        config = _alembic_config(engine)
        config.attributes["connection"] = connection
        command.upgrade(config, "0003_history_days")
    db = Database(url=url, engine=engine, session_factory=sessionmaker(engine, expire_on_commit=False))
    install_integrity_rules(db.session_factory)
    book = OrderBook(db, actor="test")
    seed(book)
    draft = book.new_order(registration_dea=PURCHASER_DEA, supplier_name="Acme Drug")
    book.add_line(draft.id, ndc=PRODUCTS[2][0], packages=1)
    signed = book.new_order(registration_dea=PURCHASER_DEA, supplier_name="Acme Drug")
    book.add_line(signed.id, ndc=PRODUCTS[2][0], packages=1)
    db.close()
    with sqlite3.connect(path) as raw:
        raw.execute("UPDATE order_lines SET description = ? WHERE order_id IN (?, ?)", (RAW, draft.id, signed.id))
    engine = make_engine(url)
    db = Database(url=url, engine=engine, session_factory=sessionmaker(engine, expire_on_commit=False))
    book = OrderBook(db, actor="test")
    sign_for_test(book, signed.id)  # signed as it was (a placeholder document): its lines must stay as they are
    db.engine.dispose()
    return url, draft.id, signed.id


def _signing(book, tmp_path):
    authority = build_training_pki(tmp_path / "pki")
    subscriber = authority.issue()
    verifier = OrderVerifier(validation=CertificateValidationService(trust_roots=authority.trust_roots),
                             catalog=MappingSchedules.from_database(book.db), fetch_crls=False,
                             crls=[CachedCrl.from_crl(authority.crl(authority.root)).der,
                                   CachedCrl.from_crl(authority.crl()).der])
    return OrderSigningService(book, verifier), subscriber, authority


def test_the_raw_description_fails_at_signing_before_the_upgrade(tmp_path):
    """The finding itself, on the older book (positive control for the test below)."""
    url, draft_id, _ = _older_book(tmp_path / "old.sqlite3")
    engine = make_engine(url)
    db = Database(url=url, engine=engine, session_factory=sessionmaker(engine, expire_on_commit=False))
    book = OrderBook(db, actor="test")
    service, subscriber, authority = _signing(book, tmp_path)
    assert book.get_order(draft_id).lines[0].description == RAW
    with pytest.raises(CsosError) as failure:
        service.sign(draft_id, signer=KeySigner(subscriber.key), certificate=subscriber.cert,
                     intermediates=authority.intermediates)
    assert failure.value.code == "x12.charset"
    engine.dispose()


def test_the_upgrade_makes_old_drafts_signable_and_leaves_signed_orders_alone(tmp_path):
    url, draft_id, signed_id = _older_book(tmp_path / "old.sqlite3")
    db = open_database(url)  # upgrades the file to the head (0004 included)
    try:
        book = OrderBook(db, actor="test")
        assert book.get_order(draft_id).lines[0].description == "Xanax 1 mg"
        assert book.get_order(signed_id).lines[0].description == RAW  # signed content is never rewritten
        service, subscriber, authority = _signing(book, tmp_path)
        service.sign(draft_id, signer=KeySigner(subscriber.key), certificate=subscriber.cert,
                     intermediates=authority.intermediates)
        signed = book.get_order(draft_id)
        content = parse_850(parse_signed_document(signed.signed_document).content)
        assert [line.description for line in content.lines] == ["Xanax 1 mg"]
        assert purchase_order_from(signed, signed_on=signed.signed_at.date()).lines[0].description == "Xanax 1 mg"
    finally:
        db.close()
