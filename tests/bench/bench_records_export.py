"""Records export benchmark: 20,000 signed orders with their linked records → PDF + CSV + archive + zip (O9).

Run: .venv/bin/python -m tests.bench.bench_records_export [--orders N]
The order book is filled with Core bulk inserts (one real signed document and real 855/856 bytes, reused), then
exported twice: without and with the person-readable PDF. The floor, measured in the same run, writes the same
signed documents and linked records as plain files and zips them — the I/O an export cannot avoid. Floor and export
take turns, two rounds each; an export's figure is the quicker of its two, and both rows are judged against the
quickest floor of the run (this machine's disk moves the same work by 4×).
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def _fill(path: Path, orders: int) -> tuple[bytes, list[bytes]]:
    from cryptography.hazmat.primitives.serialization import Encoding
    from sqlalchemy import insert

    from app.models.database import open_database, sqlite_url
    from app.models.orderbook import LinkedRecord, Order, OrderLine, Receipt
    from app.services.signing.cms import sign_content
    from app.services.orders.orderbook import OrderBook
    from tests.factories import seed
    from tests.integration.test_verifier import make_order, x12
    from tests.pki import build_training_pki
    from tests.signers import KeySigner

    db = open_database(sqlite_url(path))
    seed(OrderBook(db))
    pki = build_training_pki(path.parent / "pki")
    subscriber = pki.issue()
    now = dt.datetime.now(dt.timezone.utc)
    document = sign_content(x12(make_order()), signer=KeySigner(subscriber.key), certificate_der=subscriber.der,
                            intermediates_der=[pki.sub.certificate.public_bytes(Encoding.DER)], signing_time=now)
    records = [b"ISA*...855 acknowledgement...~" * 8, b"ISA*...856 shipment...~" * 10]
    with db.engine.begin() as connection:
        batch = 5000
        for start in range(1, orders + 1, batch):
            ids = range(start, min(start + batch, orders + 1))
            connection.execute(insert(Order), [{
                "id": i, "order_number": f"{now:%y}X{i:06d}", "registration_id": 1, "supplier_id": 1,
                "status": "received", "created_at": now, "updated_at": now, "signed_at": now,
                "signer_fingerprint": "ab" * 32, "signed_document": document,
                "payload_sha256": hashlib.sha256(document).hexdigest(), "note": ""} for i in ids])
            connection.execute(insert(OrderLine), [{
                "id": i * 2 + k, "order_id": i, "line_number": k + 1, "ndc": "00406055262",
                "description": "Oxycodone Hydrochloride 5 mg", "schedule": "II", "packages": 2,
                "package_quantity": 100, "unit": "EA", "line_status": "accepted", "packages_confirmed": 2}
                for i in ids for k in range(2)])
            connection.execute(insert(LinkedRecord), [{
                "order_id": i, "kind": kind, "direction": "in", "created_at": now, "media_type": "application/edi-x12",
                "raw": raw, "raw_sha256": hashlib.sha256(raw).hexdigest(), "parsed": {}}
                for i in ids for kind, raw in (("acknowledgement", records[0]), ("shipment", records[1]))])
            connection.execute(insert(Receipt), [{
                "order_line_id": i * 2 + k, "packages_received": 2, "received_on": now.date(), "recorded_at": now,
                "recorded_by": "bench", "reason": ""} for i in ids for k in range(2)])
    db.close()
    return document, records


def _floor(folder: Path, orders: int, document: bytes, records: list[bytes]) -> float:
    started = time.perf_counter()
    for i in range(1, orders + 1):
        order = folder / f"{i:06d}"
        (order / "records").mkdir(parents=True)
        (order / "order.csos").write_bytes(document)
        for n, raw in enumerate(records):
            (order / "records" / f"{n}.x12").write_bytes(raw)
    with zipfile.ZipFile(folder.with_suffix(".zip"), "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(folder))
    return time.perf_counter() - started


ROUNDS = 2  # floor, export, floor, export: each figure is the quicker of its two


def measure(orders: int, *, pdf: bool, rounds: int = ROUNDS) -> dict:
    from app.models.database import open_database, sqlite_url
    from app.services.orders.records import export_records

    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        document, records = _fill(base / "book.sqlite3", orders)
        renderer = None
        if pdf:
            from app.ui.records_pdf import RecordsPdfProcess

            renderer = RecordsPdfProcess
        today = dt.date.today()
        floors: list[float] = []
        exports: list[float] = []
        pdf_mb = 0.0
        for round_number in range(1, rounds + 1):
            # Each timed phase starts with nothing of the one before still to be written to disk: without this the
            # floor paid for the book just filled, and the export for the floor's 20,000 files, whenever the kernel
            # chose to write them (floors of 11.6–36.5 s for the same work in three runs; ratios 0.66–2.79×). Even
            # so this machine's disk took 14, 55 and 30 s for the same export in three runs, so floor and export
            # take turns and each figure is the quicker of its rounds: what the work costs, not the disk's worst.
            os.sync()
            floors.append(_floor(base / f"floor-{round_number}", orders, document, records))
            db = open_database(sqlite_url(base / "book.sqlite3"))
            os.sync()
            out_dir = base / f"export-{round_number}"
            started = time.perf_counter()
            summary = export_records(db, date_from=today - dt.timedelta(days=1),
                                     date_to=today + dt.timedelta(days=1), out_dir=out_dir, render_pdf=renderer)
            exports.append(time.perf_counter() - started)
            assert summary.orders == orders, summary
            pdf_mb = (out_dir / "records.pdf").stat().st_size / 1e6 if pdf else 0.0
            db.close()
    return {"seconds": min(exports), "floor": min(floors), "pdf_mb": pdf_mb,
            "export_rounds": [round(x, 2) for x in exports], "floor_rounds": [round(x, 2) for x in floors],
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


TARGETS = {False: 2.5, True: 4.0}  # × the floor, without / with the PDF (issue 6/7)


def rows(quick: bool = False) -> list[dict]:
    """Both rows against one floor: the quickest floor round of the run. Each export runs in a process of its own, and
    the second process's floor was usually the slower (21.6 and 24.4 s against 8.4 and 8.7 s for the same files in
    one run): judged against its own floor, the PDF row looked met when its export was 6.6× the floor's work."""
    orders = 2_000 if quick else 20_000
    results = {}
    for pdf in (False, True):
        done = subprocess.run([sys.executable, "-m", "tests.bench.bench_records_export", "--orders", str(orders),
                               "--pdf" if pdf else "--no-pdf", "--emit"], capture_output=True, text=True, check=True)
        results[pdf] = json.loads(done.stdout.strip().splitlines()[-1])
    floor = min(seconds for result in results.values() for seconds in result["floor_rounds"])
    out = []
    for pdf, result in results.items():
        out.append({"figure": f"records export, {orders:,} orders" + (" incl. PDF" if pdf else " (CSV+archive+zip)"),
                    "value": result["seconds"], "unit": "s", "floor": floor,
                    "floor_name": "write the same files + zip them (quickest of the run's four tries)",
                    "ratio": result["seconds"] / floor, "target": f"≤ {TARGETS[pdf]}×",
                    "ok": result["seconds"] / floor <= TARGETS[pdf],
                    "peak_rss_mb": round(result["peak_rss_mb"]),
                    "export_rounds_s": result["export_rounds"], "floor_rounds_s": result["floor_rounds"],
                    "pdf_mb": round(result["pdf_mb"], 1)})
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--orders", type=int, default=20_000)
    parser.add_argument("--pdf", dest="pdf", action="store_true", default=True)
    parser.add_argument("--no-pdf", dest="pdf", action="store_false")
    parser.add_argument("--emit", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    result = measure(args.orders, pdf=args.pdf)
    if args.emit:
        print(json.dumps(result))
        return
    print(f"records export of {args.orders:,} orders{' with PDF' if args.pdf else ''}: {result['seconds']:.1f} s "
          f"(floor {result['floor']:.1f} s, ratio {result['seconds'] / result['floor']:.1f}x), "
          f"PDF {result['pdf_mb']:.1f} MB, peak RSS {result['peak_rss_mb']:.0f} MB; rounds: export "
          f"{result['export_rounds']} s, floor {result['floor_rounds']} s")


if __name__ == "__main__":
    main()
