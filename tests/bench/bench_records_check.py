"""Records check of 20,000 orders (issue 6/7): every stored signature re-verified, every linked record's digest,
the audit chain walked and compared with the order book (``check_records``, what ``csos-desk records check`` and
the Records window run while an inspector waits).

Run: .venv/bin/python -m tests.bench.bench_records_check [--orders N]

The order book holds ``N`` distinct signed orders (each its own 850 and CMS signature, signed seconds apart by a
training-PKI certificate whose CRLs are served on loopback), their lines, two linked records each, and an audit
chain of four events per order (created, two lines added, signed). Floor, measured in the same run: the RSA-2048
public-key verify alone, ``N`` times (the one operation a re-verification cannot avoid), as in the verify row.
The check's own rate (orders/s) is reported too. A figure: the issue gives no target.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import tempfile
import time
from pathlib import Path


def _fill(folder: Path, orders: int):
    from cryptography.hazmat.primitives.serialization import Encoding
    from sqlalchemy import insert

    from app.models.database import open_database, sqlite_url
    from app.models.integrity import append_audit_row
    from app.models.orderbook import LinkedRecord, Order, OrderLine
    from app.services.orders.orderbook import OrderBook
    from app.services.signing.cms import sign_content
    from app.services.signing.x12 import write_850
    from tests.factories import PURCHASER_DEA, seed
    from tests.integration.test_verifier import make_order
    from tests.pki import build_training_pki
    from tests.signers import KeySigner

    db = open_database(sqlite_url(folder / "book.sqlite3"))
    book = OrderBook(db)
    seed(book)
    registration_id, supplier_id = book.registration(PURCHASER_DEA).id, book.supplier("Acme Drug").id
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    pki = build_training_pki(folder / "pki", now=now - dt.timedelta(days=30), crl_base_url=_fill.crl_url)
    pki.write_crls(now=now - dt.timedelta(minutes=1))
    subscriber = pki.issue(now=now - dt.timedelta(days=20))
    signer = KeySigner(subscriber.key)
    intermediates = [pki.sub.certificate.public_bytes(Encoding.DER)]
    fingerprint = hashlib.sha256(subscriber.der).hexdigest()
    records = [b"ISA*...855 acknowledgement...~" * 8, b"ISA*...856 shipment...~" * 10]
    first = now - dt.timedelta(seconds=orders + 60)
    with db.engine.begin() as connection:
        rows, lines, linked = [], [], []
        for i in range(1, orders + 1):
            signed = first + dt.timedelta(seconds=i)
            number = f"{signed:%y}X{i:06d}"
            order = make_order(signed, order_number=number)
            content = write_850(order, interchange_control_number=i, group_control_number=i,
                                sender_id=PURCHASER_DEA, receiver_id="RA1234563", created_at=signed)
            document = sign_content(content, signer=signer, certificate_der=subscriber.der,
                                    intermediates_der=intermediates, signing_time=signed)
            rows.append({"id": i, "order_number": number, "registration_id": registration_id,
                         "supplier_id": supplier_id, "status": "accepted", "created_at": signed,
                         "updated_at": signed, "signed_at": signed, "signer_fingerprint": fingerprint,
                         "signed_document": document, "payload_sha256": hashlib.sha256(content).hexdigest(),
                         "note": ""})
            lines += [{"id": i * 2 + k, "order_id": i, "line_number": line.line_number, "ndc": line.ndc,
                       "description": line.description, "schedule": "II" if k == 0 else "IV",
                       "packages": line.packages, "package_quantity": line.package_quantity, "unit": "EA",
                       "line_status": "accepted", "packages_confirmed": line.packages}
                      for k, line in enumerate(order.lines)]
            linked += [{"order_id": i, "kind": kind, "direction": "in", "created_at": signed,
                        "media_type": "application/edi-x12", "raw": raw, "raw_sha256": hashlib.sha256(raw).hexdigest(),
                        "parsed": {}} for kind, raw in (("acknowledgement", records[0]), ("shipment", records[1]))]
        connection.execute(insert(Order), rows)
        connection.execute(insert(OrderLine), lines)
        connection.execute(insert(LinkedRecord), linked)
        for row in rows:
            order_id, at = row["id"], row["signed_at"]
            append_audit_row(connection, action="order.created", order_id=order_id, at=at,
                             details={"order_number": row["order_number"], "registration": PURCHASER_DEA})
            for line in (1, 2):
                append_audit_row(connection, action="order.line_added", order_id=order_id, at=at,
                                 details={"line": line})
            append_audit_row(connection, action="order.status", order_id=order_id, at=at,
                             details={"from": "draft", "to": "signed", "signer_fingerprint": fingerprint})
    return db, pki, subscriber


def collect(*, orders: int) -> list[dict]:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    from app.services.certificates.crl_cache import CrlCache
    from app.services.certificates.validation import CertificateValidationService
    from app.services.orders.records_check import check_records
    from app.services.signing.verifier import MappingSchedules, OrderVerifier
    from tests.pki import serve_directory

    with tempfile.TemporaryDirectory(prefix="csos-records-check-") as tmp:
        folder = Path(tmp)
        with serve_directory(folder / "pki" / "crl") as server:
            _fill.crl_url = server.base_url
            db, pki, subscriber = _fill(folder, orders)
            try:
                # As the Records window and `records check` build it: the profile's roots, a CRL cache, the catalog.
                validation = CertificateValidationService(trust_roots=pki.trust_roots,
                                                          crl_cache=CrlCache(folder / "crl-cache"))
                verifier = OrderVerifier(validation=validation, catalog=MappingSchedules.from_database(db))
                started = time.perf_counter()
                report = check_records(db, verifier=verifier)
                seconds = time.perf_counter() - started
            finally:
                db.close()
        if not report.clean or report.signatures_checked != orders:
            raise RuntimeError(f"records check of the bench book is not clean: {report.signatures_checked} checked, "
                               f"{report.problems[:3]}")
        data = b"x" * 500
        public_key = subscriber.cert.public_key()
        signature = subscriber.key.sign(data, padding.PKCS1v15(), hashes.SHA256())
        count, began = 0, time.perf_counter()
        while time.perf_counter() - began < 1.0:
            public_key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
            count += 1
        floor = orders * (time.perf_counter() - began) / count
    return [{"figure": f"records check, {orders:,} orders (all signatures, audit chain)", "value": seconds,
             "unit": "s", "floor": floor, "floor_name": "RSA-2048 public-key verify alone, once per order",
             "ratio": seconds / floor, "target": "figure", "ok": True, "orders_per_s": round(orders / seconds),
             "audit_events": orders * 4}]


def rows(quick: bool = False) -> list[dict]:
    """Rows for ./bench (tests/bench/runner.py)."""
    return collect(orders=2_000 if quick else 20_000)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--orders", type=int, default=20_000)
    args = parser.parse_args()
    for row in collect(orders=args.orders):
        print(f"{row['figure']}: {row['value']:.1f} s ({row['orders_per_s']:,} orders/s), floor {row['floor']:.2f} s, "
              f"{row['ratio']:.1f}x")


if __name__ == "__main__":
    main()
