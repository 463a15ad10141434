"""The https connector and the outbox against a real HTTPS supplier on loopback that speaks the supplier contract
(docs/sandbox-api.md): verified TLS, idempotent repeats, 409 on a reused number, and every fault switch — slow
answers, 5xx, dropped connections, malformed answers — leaves the order queued with a clear last error and sends it
exactly once when the supplier recovers.

``LoopbackSupplier`` is a deliberately small server (the crash test needs hundreds of cheap sends); the full
training sandbox is exercised in test_lifecycle_sandbox.py.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import ipaddress
import json
import random
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from app.models.states import OrderStatus
from app.models.outbox import OutboxState
from app.services.signing.cms import MEDIA_TYPE, parse_signed_document
from app.services.orders.lifecycle import Lifecycle, read_lost_statement
from app.services.orders.outbox import Outbox, OutboxWorker
from app.services.transport.connectors import HttpsConnector, TransportError, connector_for
from app.services.signing.x12 import Acknowledgement855, AckStatus, parse_850, write_855

SLUG = "acme"


def make_tls_files(directory: Path, *, dns_name: str | None = None) -> tuple[Path, Path, Path]:
    """A throwaway TLS certificate for 127.0.0.1, or for ``dns_name`` only (the client trusts exactly this file)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns_name or "loopback supplier")])
    where = x509.DNSName(dns_name) if dns_name else x509.IPAddress(ipaddress.ip_address("127.0.0.1"))
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([where]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / "tls-cert.pem", directory / "tls-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path, cert_path


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address):  # a killed client mid-answer is expected here
        pass


class LoopbackSupplier:
    """An HTTPS supplier: accepts every order it can read, answers with an 855, logs every body it received."""

    def __init__(self, directory: Path, *, status: str = "accepted",
                 tls_files: tuple[Path, Path, Path] | None = None) -> None:
        cert, key, self.tls_bundle = tls_files or make_tls_files(directory)
        self.status = status
        self.received: list[tuple[str, str]] = []  # (order number, sha256 of the body) for every POST
        self.answers: dict[tuple[str, str], tuple[str, dict]] = {}
        self.records: dict[tuple[str, str], list[dict]] = {}
        self.statements: list[bytes] = []
        self.faults = {"latency_ms": 0, "fail_next": 0, "drop_next": 0, "malformed_next": 0}
        self.on_order: Callable[[], None] | None = None  # called while an order is being taken, before the answer
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # noqa: D102 - quiet
                pass

            def _reply(self, code: int, body: bytes, content_type: str = "application/json") -> None:
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _fault(self) -> bool:
                with outer.lock:
                    latency = outer.faults["latency_ms"]
                    kind = next((k for k in ("drop_next", "fail_next", "malformed_next") if outer.faults[k]), None)
                    if kind:
                        outer.faults[kind] -= 1
                if latency:
                    time.sleep(latency / 1000)
                if kind == "drop_next":
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return True
                if kind == "fail_next":
                    self._reply(503, b'{"error":"unavailable","message":"try later"}')
                    return True
                if kind == "malformed_next":  # like the sandbox: the order IS taken, the answer is garbled
                    if self.command == "POST" and self.path == f"/suppliers/{SLUG}/orders":
                        outer.take_order(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                    self._reply(200, b'{"status": "acc')
                    return True
                return False

            def do_POST(self):  # noqa: N802
                if self._fault():
                    return
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.path == f"/suppliers/{SLUG}/statements":
                    outer.statements.append(body)
                    return self._reply(200, b'{"status": "recorded"}')
                if self.path != f"/suppliers/{SLUG}/orders":
                    return self._reply(404, b'{"error":"not_found","message":"no such path"}')
                if self.headers.get("Content-Type") != MEDIA_TYPE:
                    return self._reply(415, b'{"error":"unsupported_media_type","message":"send a .csos"}')
                self._reply(*outer.take_order(body))

            def do_GET(self):  # noqa: N802
                if self._fault():
                    return
                path, _, query = self.path.partition("?")
                parts = path.strip("/").split("/")
                after = int(query.partition("after=")[2] or 0)
                key = (parts[3], parts[4]) if len(parts) == 6 else None
                if key not in outer.records:
                    return self._reply(404, b'{"error":"unknown_order","message":"never received"}')
                records = [r for r in outer.records[key] if r["seq"] > after]
                self._reply(200, json.dumps({"records": records}).encode())

        self.httpd = _QuietServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.httpd.server_address[1]}/suppliers/{SLUG}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)

    def take_order(self, body: bytes) -> tuple[int, bytes]:
        try:
            order = parse_850(parse_signed_document(body).content)
        except Exception:  # noqa: BLE001 - a test server answers garbage with 400
            return 400, b'{"error":"malformed","message":"not a signed order"}'
        key = (order.purchaser.dea_number, order.order_number)
        digest = hashlib.sha256(body).hexdigest()
        if self.on_order is not None:
            self.on_order()
        with self.lock:
            self.received.append((order.order_number, digest))
            if key in self.answers:
                known_digest, answer = self.answers[key]
                if known_digest != digest:
                    return 409, json.dumps({"error": "order_number_reused",
                                            "message": f"{order.order_number} was used for another order"}).encode()
                return 200, json.dumps(answer).encode()
            status = AckStatus.REJECTED if self.status == "rejected" else AckStatus.ACCEPTED
            ack = write_855(Acknowledgement855(order.order_number, order.date_signed, status, order.date_signed,
                                               reason="Not accepted in this test" if self.status == "rejected"
                                               else None),
                            interchange_control_number=len(self.answers) + 1, group_control_number=1,
                            sender_id="RA1234563", receiver_id=order.purchaser.dea_number,
                            created_at=dt.datetime(2026, 1, 1, 12, 0))
            record = {"seq": 1, "kind": "855", "media_type": "application/edi-x12",
                      "created_at": "2026-01-01T12:00:00+00:00", "data_base64": base64.b64encode(ack).decode()}
            answer = {"order_number": order.order_number, "purchaser_dea": order.purchaser.dea_number,
                      "status": self.status, "reasons": [], "acknowledgement": record}
            self.answers[key] = (digest, answer)
            self.records[key] = [record]
            return 200, json.dumps(answer).encode()

    def distinct_documents(self) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        for number, digest in self.received:
            out.setdefault(number, set()).add(digest)
        return out

    def __enter__(self) -> "LoopbackSupplier":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


# ---------------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def signed_world(tmp_path_factory):
    """A training PKI and a signing service factory (orders are signed for real: CMS + X12 + verifier)."""
    from tests.pki import build_training_pki

    tmp = tmp_path_factory.mktemp("transport")
    pki = build_training_pki(tmp)
    subscriber = pki.issue()
    return pki, subscriber, tmp


def signing_service(book, pki):
    from app.services.certificates.crl_cache import CachedCrl
    from app.services.signing.order_signing import OrderSigningService
    from app.services.certificates.validation import CertificateValidationService
    from app.services.signing.verifier import MappingSchedules, OrderVerifier

    crls = [CachedCrl.from_crl(pki.crl(pki.root)), CachedCrl.from_crl(pki.crl())]
    validation = CertificateValidationService(trust_roots=pki.trust_roots)
    verifier = OrderVerifier(validation=validation, catalog=MappingSchedules.from_database(book.db),
                             crls=[c.der for c in crls], fetch_crls=False)
    return OrderSigningService(book, verifier)


def signed_order(book, pki, subscriber, service=None):
    from tests.factories import draft_order
    from tests.signers import KeySigner

    service = service or signing_service(book, pki)
    order = draft_order(book, lines=2)
    service.sign(order.id, signer=KeySigner(subscriber.key), certificate=subscriber.cert,
                 intermediates=pki.intermediates)
    return book.get_order(order.id)


@pytest.fixture
def supplier(tmp_path):
    with LoopbackSupplier(tmp_path / "tls") as server:
        yield server


@pytest.fixture
def world(book, supplier, signed_world, tmp_path):
    from tests.factories import seed

    seed(book)
    pki, subscriber, _ = signed_world
    with book.db.session() as session, session.begin():
        from app.models.orderbook import Supplier

        row = session.query(Supplier).one()
        row.connector = {"kind": "https", "url": supplier.url, "tls_bundle": str(supplier.tls_bundle),
                         "read_timeout": 0.5, "connect_timeout": 0.5, "max_attempts": 1}
    sleeps: list[float] = []
    outbox = Outbox(book, connector_for=lambda s: connector_for(s, data_dir=tmp_path, sleep=sleeps.append),
                    rng=random.Random(3))
    return book, outbox, pki, subscriber


def test_an_order_is_sent_over_verified_tls_and_the_855_is_linked(world, supplier):
    book, outbox, pki, subscriber = world
    order = signed_order(book, pki, subscriber)
    outbox.enqueue(order.id)
    report = outbox.run_once()
    assert report.sent == [order.order_number]
    stored = book.get_order(order.id)
    assert stored.status is OrderStatus.ACCEPTED and stored.transmitted_at is not None
    assert supplier.distinct_documents() == {order.order_number: {hashlib.sha256(stored.signed_document).hexdigest()}}
    [ack] = stored.linked_records
    assert ack.kind.value == "acknowledgement" and ack.parsed["supplier_seq"] == 1
    entry = outbox.entry_for(order.id)
    assert entry.state is OutboxState.SENT and entry.attempts == 1 and entry.records_after == 1
    # Nothing new to fetch: the 855 is already linked.
    report = Lifecycle(book).sync(lambda s: connector_for(s, data_dir="/nonexistent"))
    assert report.errors == [] and report.applied == []


def test_send_now_queues_sends_and_records_with_the_entry_held_while_it_goes(world, supplier):
    """The screen's "Sign and send": the order is queued and claimed in one transaction, so while it is on its way
    the background worker finds nothing due (it cannot send it too, or report it waiting)."""
    book, outbox, pki, subscriber = world
    order = signed_order(book, pki, subscriber)
    background = Outbox(book, connector_for=lambda s: connector_for(s, data_dir="/nonexistent"))
    due_while_sending: list[list[int]] = []
    supplier.on_order = lambda: due_while_sending.append(background.due_entries())

    assert outbox.send_now(order.id) is OutboxState.SENT

    assert due_while_sending == [[]]
    stored = book.get_order(order.id)
    assert stored.status is OrderStatus.ACCEPTED and stored.transmitted_at is not None
    assert [r.kind.value for r in stored.linked_records] == ["acknowledgement"]
    entry = outbox.entry_for(order.id)
    assert (entry.state, entry.attempts, entry.claimed_until, entry.records_after) == (OutboxState.SENT, 1, None, 1)
    assert supplier.distinct_documents() == {order.order_number: {hashlib.sha256(stored.signed_document).hexdigest()}}
    with book.db.session() as session:
        from sqlalchemy import select

        from app.models.orderbook import AuditEvent

        moves = [(e.details["from"], e.details["to"]) for e in session.scalars(
            select(AuditEvent).where(AuditEvent.order_id == order.id, AuditEvent.action == "order.status")
            .order_by(AuditEvent.id))]
    assert moves == [("draft", "signed"), ("signed", "queued"), ("queued", "transmitted"), ("transmitted", "accepted")]
    # Pressed again on an order already answered: nothing is sent twice.
    assert outbox.send_now(order.id) is OutboxState.SENT
    assert len(supplier.received) == 1


def test_send_now_with_the_supplier_down_leaves_the_order_waiting_and_sends_it_when_pressed_again(world, supplier):
    book, outbox, pki, subscriber = world
    order = signed_order(book, pki, subscriber)
    supplier.faults.update({"fail_next": 1})

    assert outbox.send_now(order.id) is OutboxState.QUEUED

    entry = outbox.entry_for(order.id)
    assert (entry.attempts, entry.last_error_code, entry.claimed_until) == (1, "transport.server_error", None)
    assert book.get_order(order.id).status is OrderStatus.QUEUED
    assert outbox.send_now(order.id) is OutboxState.SENT  # waiting: made due and tried at once
    assert book.get_order(order.id).status is OrderStatus.ACCEPTED
    assert outbox.entry_for(order.id).attempts == 2
    assert len(supplier.distinct_documents()[order.order_number]) == 1


def test_send_now_refuses_a_draft_and_an_order_not_in_the_book(world):
    from app.services.orders.outbox import OutboxError
    from tests.factories import draft_order

    book, outbox, _, _ = world
    draft = draft_order(book, lines=1)
    with pytest.raises(OutboxError) as caught:
        outbox.send_now(draft.id)
    assert caught.value.code == "outbox.not_signed"
    assert outbox.entry_for(draft.id) is None and book.get_order(draft.id).status is OrderStatus.DRAFT
    with pytest.raises(OutboxError) as caught:
        outbox.send_now(987654)
    assert caught.value.code == "order.not_found"


def test_a_rejected_order_becomes_not_accepted_with_the_statement_linked(world, supplier):
    book, outbox, pki, subscriber = world
    supplier.status = "rejected"
    order = signed_order(book, pki, subscriber)
    outbox.enqueue(order.id)
    outbox.run_once()
    stored = book.get_order(order.id)
    assert stored.status is OrderStatus.NOT_ACCEPTED
    assert stored.linked_records[0].kind.value == "non_acceptance"


@pytest.mark.parametrize("fault, code", [
    ({"fail_next": 1}, "transport.server_error"),
    ({"drop_next": 1}, "transport.connection"),
    ({"latency_ms": 900}, "transport.timeout"),
])
def test_a_fault_leaves_the_order_queued_with_a_clear_error_and_it_is_sent_once_on_recovery(
        world, supplier, fault, code):
    book, outbox, pki, subscriber = world
    order = signed_order(book, pki, subscriber)
    outbox.enqueue(order.id)
    supplier.faults.update(fault)
    report = outbox.run_once()
    assert [f["code"] for f in report.failed] == [code]
    entry = outbox.entry_for(order.id)
    assert entry.state is OutboxState.QUEUED and entry.last_error_code == code and entry.last_error
    assert entry.next_attempt_at > entry.last_attempt_at  # waits for its next try
    assert book.get_order(order.id).status is OrderStatus.QUEUED
    assert outbox.run_once().tried == 0  # not due yet
    supplier.faults.update({"latency_ms": 0})
    outbox.retry_now(order.id)
    assert outbox.run_once().sent == [order.order_number]
    assert book.get_order(order.id).status is OrderStatus.ACCEPTED
    entry = outbox.entry_for(order.id)
    assert entry.state is OutboxState.SENT and entry.last_error == "" and entry.attempts == 2
    # One document under the number, however many times the bytes were posted.
    assert len(supplier.distinct_documents()[order.order_number]) == 1


def test_a_garbled_answer_to_a_taken_order_is_never_posted_again_and_sync_links_the_855(world, supplier):
    """Issue 16.2: HTTP 200 with an unreadable body means the supplier HAS the order: sent, with the error and its
    code, never posted again; the supplier's 855 is fetched by sync."""
    book, outbox, pki, subscriber = world
    order = signed_order(book, pki, subscriber)
    outbox.enqueue(order.id)
    supplier.faults.update({"malformed_next": 1})
    report = outbox.run_once()
    assert report.sent == [order.order_number] and report.failed == []
    assert [u["code"] for u in report.unreadable] == ["transport.answer_unreadable"]
    entry = outbox.entry_for(order.id)
    assert entry.state is OutboxState.SENT and entry.last_error_code == "transport.answer_unreadable"
    assert "could not be read" in entry.last_error
    assert book.get_order(order.id).status is OrderStatus.TRANSMITTED
    outbox.retry_now(order.id)
    assert outbox.run_once().tried == 0  # a sent entry is never due again
    assert len(supplier.received) == 1
    sync = Lifecycle(book).sync(outbox.connector_for)
    assert [a.kind for a in sync.applied] == ["855"] and sync.errors == []
    assert book.get_order(order.id).status is OrderStatus.ACCEPTED


def test_a_reused_order_number_is_a_permanent_failure(world, supplier):
    book, outbox, pki, subscriber = world
    order = signed_order(book, pki, subscriber)
    # The supplier already holds a different document under this purchaser DEA and order number.
    stored = book.get_order(order.id)
    content = parse_signed_document(stored.signed_document).content
    supplier.answers[("BJ6125341", order.order_number)] = ("0" * 64, {})
    outbox.enqueue(order.id)
    report = outbox.run_once()
    assert report.failed[0]["code"] == "transport.order_number_reused"
    entry = outbox.entry_for(order.id)
    assert entry.state is OutboxState.FAILED and "new order" in entry.last_error
    assert content  # the stored document was never touched


def test_connector_retries_with_backoff_within_a_send(supplier):
    sleeps: list[float] = []
    connector = HttpsConnector(supplier.url, tls_bundle=supplier.tls_bundle, max_attempts=4, backoff=0.2,
                               sleep=sleeps.append, rng=random.Random(5))
    supplier.faults.update({"fail_next": 2})
    with pytest.raises(TransportError) as caught:
        connector.fetch_records(order_number="26X000001", purchaser_dea="BJ6125341", after=0)
    # Two 503s, then the 404 answer for an unknown order is final (not retried).
    assert caught.value.code == "transport.unknown_order" and not caught.value.retryable
    assert len(sleeps) == 2 and 0 <= sleeps[0] <= 0.2 and 0 <= sleeps[1] <= 0.4


def test_tls_is_verified_against_the_configured_bundle(supplier, tmp_path):
    other_bundle, _, _ = make_tls_files(tmp_path / "other")
    connector = HttpsConnector(supplier.url, tls_bundle=other_bundle, max_attempts=1)
    with pytest.raises(TransportError) as caught:
        connector.send_order(order_number="26X000001", purchaser_dea="BJ6125341", document=b"x")
    assert caught.value.code == "transport.tls"
    assert supplier.received == []


def test_statement_endpoint_and_the_background_worker(world, supplier):
    book, outbox, pki, subscriber = world
    order = signed_order(book, pki, subscriber)
    outbox.enqueue(order.id)
    worker = OutboxWorker(outbox, poll_interval=0.05).start()
    try:
        deadline = time.monotonic() + 10
        while book.get_order(order.id).status is not OrderStatus.ACCEPTED and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        worker.stop()
    assert book.get_order(order.id).status is OrderStatus.ACCEPTED and worker.rounds >= 1
    from tests.signers import KeySigner

    lost = Lifecycle(book).report_lost(order.id, signer=KeySigner(subscriber.key), certificate=subscriber.cert,
                                       intermediates=pki.intermediates)
    assert outbox.run_once().sent == [order.order_number]
    assert len(supplier.statements) == 1
    signed = parse_signed_document(supplier.statements[0]).content
    assert read_lost_statement(signed) == {k: v for k, v in lost.statement.items() if k != "text"}
    assert signed.decode().startswith(lost.statement["text"])
