"""`records check` sees what is missing (issue 16 item 5): a signed C-II order, its lines and linked records deleted
straight from the SQLite file with the sqlite3 module (no CSOS Desk code involved) is reported by its order number,
and the command exits non-zero. Real file, really signed order, the real `csos-desk` process."""

from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from app.models.database import open_database, sqlite_url
from app.models.states import OrderStatus
from app.services.certificates.crl_cache import CachedCrl
from app.services.certificates.validation import CertificateValidationService
from app.services.orders.lifecycle import Lifecycle
from app.services.orders.orderbook import OrderBook
from app.services.signing.order_signing import OrderSigningService
from app.services.signing.verifier import MappingSchedules, OrderVerifier
from app.services.signing.x12 import Acknowledgement855, AckStatus, write_855
from app.services.transport.connectors import SupplierRecord
from tests.factories import draft_order, seed
from tests.pki import build_training_pki
from tests.signers import KeySigner

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    authority = build_training_pki(tmp_path_factory.mktemp("missing-pki"))
    return authority, authority.issue()


@pytest.fixture
def signed_book(tmp_path, pki):
    """Three signed orders (C-II first line) with an acknowledgement each; returns the file and the order numbers."""
    path = tmp_path / "orderbook.sqlite3"
    db = open_database(sqlite_url(path))
    book = OrderBook(db, actor="test")
    seed(book)
    authority, subscriber = pki
    verifier = OrderVerifier(validation=CertificateValidationService(trust_roots=authority.trust_roots),
                             catalog=MappingSchedules.from_database(db), fetch_crls=False,
                             crls=[CachedCrl.from_crl(authority.crl(authority.root)).der,
                                   CachedCrl.from_crl(authority.crl()).der])
    signing = OrderSigningService(book, verifier)
    numbers = []
    for _ in range(3):
        order = draft_order(book, lines=2)
        assert order.lines[0].schedule == "II"
        signing.sign(order.id, signer=KeySigner(subscriber.key), certificate=subscriber.cert,
                     intermediates=authority.intermediates)
        book.transition(order.id, OrderStatus.QUEUED)
        book.transition(order.id, OrderStatus.TRANSMITTED)
        signed = book.get_order(order.id)
        ack = write_855(Acknowledgement855(signed.order_number, signed.signed_at.date(), AckStatus.ACCEPTED,
                                           dt.date.today()), interchange_control_number=1, group_control_number=1,
                        sender_id="RA1234563", receiver_id="BJ6125341", created_at=dt.datetime(2026, 1, 1, 9))
        with db.session() as session, session.begin():
            Lifecycle(book).apply_record(session, order.id, SupplierRecord("855", ack, source="test"))
        numbers.append(signed.order_number)
    db.close()
    return path, numbers


def _records_check(path: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CSOS_", "PKCS11_"))}
    env.update(CSOS_DATA_DIR=str(tmp_path / "data"), CSOS_PROFILE="training")
    done = subprocess.run([sys.executable, "-m", "app", "--database-url", sqlite_url(path), "records", "check",
                           "--json"], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert "Traceback" not in done.stderr
    return done


def _delete_order(path: Path, number: str, *, audit_too: bool = False) -> None:
    """What someone with the file and the sqlite3 tool would do: foreign keys off (the tool's default)."""
    connection = sqlite3.connect(path)
    try:
        connection.execute("PRAGMA foreign_keys=OFF")
        (order_id,) = connection.execute("SELECT id FROM orders WHERE order_number = ?", (number,)).fetchone()
        triggers = connection.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall()
        for (name,) in triggers:  # none today; if the schema ever guards deletions, the attacker drops the guard
            connection.execute(f'DROP TRIGGER "{name}"')
        connection.execute("DELETE FROM receipts WHERE order_line_id IN (SELECT id FROM order_lines WHERE order_id = ?)",
                           (order_id,))
        connection.execute("DELETE FROM outbox_entries WHERE order_id = ?", (order_id,))
        connection.execute("DELETE FROM linked_records WHERE order_id = ?", (order_id,))
        connection.execute("DELETE FROM order_lines WHERE order_id = ?", (order_id,))
        connection.execute("DELETE FROM orders WHERE id = ?", (order_id,))
        if audit_too:
            connection.execute("DELETE FROM audit_events WHERE order_id = ?", (order_id,))
        connection.commit()
    finally:
        connection.close()


def test_an_intact_book_checks_clean_through_the_cli(signed_book, tmp_path):
    path, _ = signed_book
    done = _records_check(path, tmp_path)
    assert done.returncode == 0, (done.stdout, done.stderr)
    report = json.loads(done.stdout)
    assert report["clean"] and report["signatures_checked"] == 3 and report["notes"] == []


def test_a_signed_order_deleted_from_the_file_is_reported_by_its_number(signed_book, tmp_path):
    path, numbers = signed_book
    _delete_order(path, numbers[-1])
    done = _records_check(path, tmp_path)
    assert done.returncode == 1, (done.stdout, done.stderr)
    problems = json.loads(done.stdout)["problems"]
    missing = [p for p in problems if p["code"] == "records.order_missing"]
    assert [p["order_number"] for p in missing] == [numbers[-1]]
    assert numbers[-1] in missing[0]["message"] and "signed order" in missing[0]["message"]
    # The plain output names it too.
    env_text = subprocess.run([sys.executable, "-m", "app", "--database-url", sqlite_url(path), "records", "check"],
                              capture_output=True, text=True, cwd=ROOT, timeout=120,
                              env={**os.environ, "CSOS_DATA_DIR": str(tmp_path / "data")})
    assert env_text.returncode == 1 and "Everything is intact" not in env_text.stdout
    assert numbers[-1] in env_text.stdout


def test_a_deleted_order_with_its_audit_events_is_still_found_by_the_number_sequence(signed_book, tmp_path):
    path, numbers = signed_book
    _delete_order(path, numbers[1], audit_too=True)
    done = _records_check(path, tmp_path)
    assert done.returncode == 1, (done.stdout, done.stderr)
    problems = json.loads(done.stdout)["problems"]
    gaps = [p for p in problems if p["code"] == "records.order_number_gap"]
    assert [p["order_number"] for p in gaps] == [numbers[1]]


def test_a_deleted_line_and_a_deleted_linked_record_are_reported(signed_book, tmp_path):
    path, numbers = signed_book
    connection = sqlite3.connect(path)
    (order_id,) = connection.execute("SELECT id FROM orders WHERE order_number = ?", (numbers[0],)).fetchone()
    connection.execute("DELETE FROM linked_records WHERE order_id = ?", (order_id,))
    connection.execute("DELETE FROM order_lines WHERE order_id = ? AND line_number = 2", (order_id,))
    connection.commit()
    connection.close()
    done = _records_check(path, tmp_path)
    assert done.returncode == 1
    codes = {(p["code"], p["order_number"]) for p in json.loads(done.stdout)["problems"]}
    assert {("records.line_missing", numbers[0]), ("records.linked_record_missing", numbers[0])} <= codes
