"""Signing and verification benchmark (issues 3/10 and 6/7).

Run: .venv/bin/python -m tests.bench.bench_signing [--orders N] [--json OUT]

Figures, each with a floor measured in the same run:
- sign one order end to end, as the sign screen does it (clock rule K6 against a loopback SNTP server as the training
  sandbox runs one, the signing CRL cache with its freshness limit, pre-sign check, 850 read back, CMS, final check,
  the unusual-quantity notice as shown before the password, store + audit, one commit) with an unlocked software
  key, vs ``floor_with_rows``:
  raw RSA-2048 sign + the rows the duties require written in bare SQL, one commit        target ≤ 2.0×
- the same on a SoftHSM token vs raw token sign (python-pkcs11) + the same rows         target ≤ 2.0×
- verify a signed order with warm caches (certificate + CRL memo), one core             target ≥ 8,000 orders/s

The bare "raw sign + one commit of a tiny row" is still measured and reported (``floor_bare_ms``), not judged.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from sqlalchemy import text

from app.models.database import open_database, sqlite_url
from app.sandbox.sntp import SntpServer
from app.services.certificates.crl_cache import CrlCache, signing_crl_cache
from app.services.signing.clock import ClockRule
from app.services.keys.base import KeyAlgorithm
from app.services.keys.software import SoftwareKeyStore
from app.services.orders.orderbook import OrderBook
from app.services.signing.order_signing import OrderSigningService
from app.services.certificates.validation import CertificateValidationService
from app.services.signing.verifier import MappingSchedules, OrderVerifier
from tests.factories import draft_order, seed
from tests.pki import build_training_pki, make_csr, serve_directory

PASSWORD = "Bench-Tulip-Ledger-2026!"
SIGN_TARGET = 2.0  # × floor_with_rows (issue 6/7)
VERIFY_TARGET = 8_000  # orders/s


def _median(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def _signing_world(folder: Path):
    db = open_database(sqlite_url(folder / "bench.sqlite3"))
    book = OrderBook(db)
    seed(book)
    with db.engine.begin() as connection:
        connection.execute(text("CREATE TABLE floor_rows (id INTEGER PRIMARY KEY, signature BLOB)"))
    return db, book


def _issue(pki, signer):
    from app.models.values import DeaNumber, Schedule
    from app.services.certificates.profile import RegistrationFacts, SubscriberIdentity
    from tests.factories import PURCHASER_DEA

    registration = RegistrationFacts(
        dea_number=DeaNumber.parse(PURCHASER_DEA), registrant_name="Main Street Pharmacy",
        address_lines=("1 Main St",), business_activity="RETAIL PHARMACY",
        schedules=frozenset({Schedule.II, Schedule.IIN, Schedule.III, Schedule.IIIN, Schedule.IV, Schedule.V}),
        expires=pki.now + dt.timedelta(days=365))
    return pki.sub.issue_signing_certificate(make_csr(signer.as_private_key()),
                                             subscriber=SubscriberIdentity("Pat Purchaser", "p@example.org", "42"),
                                             registration=registration)


def bench_sign(folder: Path, signer, raw_sign, orders: int, label: str) -> dict:
    db, book = _signing_world(folder)
    with serve_directory(folder / "crl") as server, SntpServer() as sntp:
        # A certificate and CRLs of some age, as at a real pharmacy (not minted this second).
        now = dt.datetime.now(dt.timezone.utc)
        pki = build_training_pki(folder, crl_base_url=server.base_url, now=now - dt.timedelta(days=3))
        pki.write_crls(now=now - dt.timedelta(hours=1))
        certificate = _issue(pki, signer)
        # As the sign screen builds it (app.ui.facade): the signing CRL cache (refreshed when over an hour old), the
        # K6 clock rule (here the training sandbox's SNTP server on loopback), the unusual-quantity settings, ISA15.
        settings: dict = {"monthly_limits": {}, "time_zones": {}}
        validation = CertificateValidationService(trust_roots=pki.trust_roots,
                                                  crl_cache=signing_crl_cache(folder / "cache", settings))
        verifier = OrderVerifier(validation=validation, catalog=MappingSchedules.from_database(db))
        rule = ClockRule(folder / "clock-check.json", server=sntp.host, port=sntp.port, production=False,
                         os_synchronised=lambda: False)
        service = OrderSigningService(book, verifier, clock_check=rule, usage_settings=settings,
                                      test_indicator="T")
        drafts = [draft_order(book, lines=3).id for _ in range(3 * orders + 3 + PHASE_ORDERS)]
        for order_id in drafts[:3]:  # warm caches (CRL fetch, memo, statement cache)
            service.sign(order_id, signer=signer, certificate=certificate, intermediates=pki.intermediates,
                         shown_notices=service.notices_to_show(order_id))
        # One of each in turn (our signing, the bare floor, floor_with_rows, our signing working the notice out
        # again), so a load that comes and goes on the machine falls on all alike: measured one phase after the
        # other, a burst of other work during one phase only moved the ratio by 2× and more from run to run (2 cores,
        # fsync on every commit).
        ours, floor, floor_with_rows, notice_again = [], [], [], []
        payload = os.urandom(900)
        with db.engine.connect() as connection:
            for order_id, floor_order_id, again_order_id in zip(drafts[3:orders + 3], drafts[orders + 3:2 * orders + 3],
                                                                drafts[2 * orders + 3:3 * orders + 3]):
                # As the sign screen does it: the notices are worked out and shown before the password is asked
                # (issue 21's pre-sign figure), then signing records them (OrderSigningService.ShownNotices).
                shown = service.notices_to_show(order_id)
                started = time.perf_counter()
                signed = service.sign(order_id, signer=signer, certificate=certificate,
                                      intermediates=pki.intermediates, shown_notices=shown)
                ours.append(time.perf_counter() - started)
                started = time.perf_counter()
                service.sign(again_order_id, signer=signer, certificate=certificate, intermediates=pki.intermediates)
                notice_again.append(time.perf_counter() - started)
                started = time.perf_counter()
                signature = raw_sign(payload)
                connection.execute(text("INSERT INTO floor_rows (signature) VALUES (:s)"), {"s": signature})
                connection.commit()
                floor.append(time.perf_counter() - started)
                floor_with_rows.append(_floor_with_rows_once(connection, raw_sign, floor_order_id,
                                                             len(signed.document), payload))
        # Where the time goes, on further drafts after the timed ones (the timed figures carry no timers).
        shown_before = {order_id: service.notices_to_show(order_id) for order_id in drafts[3 * orders + 3:]}
        phases = _phases(service, signer, book, drafts[3 * orders + 3:],
                         lambda order_id: service.sign(order_id, signer=signer, certificate=certificate,
                                                       intermediates=pki.intermediates,
                                                       shown_notices=shown_before[order_id]))
    db.close()
    ours_ms, floor_ms, rows_ms = _median(ours), _median(floor), _median(floor_with_rows)
    again_ms = _median(notice_again)
    # The ratio is judged against the raw sign plus the rows our one transaction must write, in raw SQL: the
    # document into its draft's row with the status change, and one audit row after reading the chain's tip
    # (restated in issue 6/7). The bare raw sign + one commit of a tiny row is reported too.
    return {"figure": f"sign one order ({label})", "value": ours_ms, "unit": "ms", "floor": rows_ms,
            "ratio": ours_ms / rows_ms, "target": f"≤ {SIGN_TARGET}×", "ok": ours_ms / rows_ms <= SIGN_TARGET,
            "floor_with_rows_ms": rows_ms,
            "floor_with_rows_name": "raw sign + raw SQL: document/status UPDATE, tip SELECT, audit INSERT, 1 commit",
            "floor_bare_ms": floor_ms, "ratio_to_bare": ours_ms / floor_ms, "phases_ms": phases,
            # Not judged: the same signing when it works the notice out again after the password (no notices shown,
            # or shown ones that no longer describe the signing), as every signing did before ShownNotices.
            "notice_worked_out_again_ms": again_ms, "notice_worked_out_again_ratio": again_ms / rows_ms}


PHASE_ORDERS = 15
# The parts of a signing, each with the duty it serves (DESIGN.md §1, docs/compliance.md).
_PHASES = (
    ("order_signing", "load_draft", "order read (one statement)"),
    ("verifier", "check_before_signing", "pre-sign check"),
    ("order_signing", "write_850", "850 written"),
    ("order_signing", "check_content", "850 read back"),
    ("order_signing", "prepare_signed_document", "CMS built"),
    ("signer", "sign", "signature"),
    ("order_signing", "check_signed_document", "final check of the stored bytes"),
    ("service", "usage_notices", "notice worked out again (only when the shown ones no longer hold)"),
    ("book", "store_signed", "store + lines check + audit chain + commit"),
)


def _phases(service, signer, book, order_ids, sign) -> dict[str, float]:
    """Median ms per part of a signing, and of the whole (``total``), timed by wrapping each part in turn."""
    import collections

    from app.services.signing import order_signing

    owners = {"order_signing": order_signing, "verifier": service.verifier, "signer": signer, "service": service,
              "book": book}
    spent: dict[str, list[float]] = collections.defaultdict(list)

    def timed(label, function):
        def run(*args, **kwargs):
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                spent[label].append(time.perf_counter() - started)
        return run

    restore = []
    try:
        for owner, name, label in _PHASES:
            target = owners[owner]
            restore.append((target, name, vars(target).get(name, restore)))  # ``restore``: none of its own
            setattr(target, name, timed(label, getattr(target, name)))
        for order_id in order_ids:
            started = time.perf_counter()
            sign(order_id)
            spent["total"].append(time.perf_counter() - started)
    finally:
        for target, name, own in reversed(restore):
            if own is restore:
                delattr(target, name)
            else:
                setattr(target, name, own)
    return {label: round(_median(values), 3) for label, values in spent.items()}


def _floor_with_rows_once(connection, raw_sign, order_id: int, document_size: int, payload: bytes) -> float:
    """Seconds for a raw sign + the writes ``OrderBook.store_signed`` does, as bare SQL on the same tables (same
    indexes, same page layout, same WAL), one commit: no ORM, no state machine, no checks. ``order_id`` is a fresh
    draft, as in the timed run."""
    import hashlib

    started = time.perf_counter()
    signature = raw_sign(payload)
    document = signature + os.urandom(max(0, document_size - len(signature)))
    at = dt.datetime.now(dt.timezone.utc).isoformat()
    connection.execute(text(
        "UPDATE orders SET signed_document = :d, payload_sha256 = :p, signed_at = :t, signer_fingerprint = :f,"
        " status = 'signed', updated_at = :t WHERE id = :i AND status = 'draft'"),
        {"d": document, "p": "a" * 64, "t": at, "f": "b" * 64, "i": order_id})
    tip = connection.execute(text("SELECT event_hash FROM audit_events ORDER BY id DESC LIMIT 1")).scalar()
    event_hash = hashlib.sha256(f"{tip}{order_id}{at}".encode()).hexdigest()
    connection.execute(text(
        "INSERT INTO audit_events (at, actor, action, order_id, details, previous_hash, event_hash) "
        "VALUES (:t, '', 'order.status', :i, :d, :p, :h)"),
        {"t": at, "i": order_id, "d": '{"from":"draft","to":"signed","document_sha256":"' + "c" * 64 + '",'
         '"signer_fingerprint":"' + "b" * 64 + '"}', "p": tip, "h": event_hash})
    connection.commit()
    return time.perf_counter() - started


def bench_verify(folder: Path, seconds: float = 3.0) -> list[dict]:
    from app.services.signing.cms import sign_content
    from tests.integration.test_verifier import CATALOG, make_order, x12
    from tests.signers import KeySigner
    from cryptography.hazmat.primitives.serialization import Encoding

    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    with serve_directory(folder / "crl") as server:
        pki = build_training_pki(folder, now=now - dt.timedelta(days=10), crl_base_url=server.base_url)
        pki.write_crls(now=now - dt.timedelta(minutes=1))
        subscriber = pki.issue(now=now - dt.timedelta(days=5))
        # 120 distinct orders (order numbers, lines, quantities, signing times seconds apart), verified round-robin:
        # nothing per document can be answered from a cache, only what is shared (certificates, CRLs, chains).
        from app.models.values import PackageUnit
        from app.services.signing.x12 import OrderLine850

        products = [("00406055201", "Oxycodone Hydrochloride 5 mg"), ("00555097302", "Methylphenidate 10 mg"),
                    ("00009002901", "Alprazolam 0.5 mg"), ("00093310905", "Amoxicillin 500 mg")]
        intermediates_der = [pki.sub.certificate.public_bytes(Encoding.DER)]
        documents = []
        for number in range(120):
            signed = now - dt.timedelta(seconds=3 * (120 - number))
            lines = tuple(OrderLine850(index + 1, 1 + (number + index) % 9, ndc, description, 100 + number,
                                       PackageUnit.EACH)
                          for index, (ndc, description) in enumerate(products[:1 + number % len(products)]))
            order = make_order(signed, order_number=f"{signed:%y}X{number + 1:06d}", lines=lines)
            documents.append(sign_content(x12(order, signed), signer=KeySigner(subscriber.key),
                                          certificate_der=subscriber.der, intermediates_der=intermediates_der,
                                          signing_time=signed))
        assert len(set(documents)) == len(documents)
        validation = CertificateValidationService(trust_roots=pki.trust_roots, crl_cache=CrlCache(folder / "vc"))
        verifier = OrderVerifier(validation=validation, catalog=CATALOG)
        for document in documents:
            verdict = verifier.verify(document, now=now)
            assert verdict.accepted, verdict.reasons
        data = documents[0]
        count, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            for document in documents:
                verifier.verify(document, now=now)
            count += len(documents)
        rate = count / (time.perf_counter() - started)
        # Floor: the one cryptographic operation a verification cannot avoid (RSA-2048 public-key verify).
        public_key = subscriber.cert.public_key()
        signature = subscriber.key.sign(data[:500], padding.PKCS1v15(), hashes.SHA256())
        floor_count, started = 0, time.perf_counter()
        while time.perf_counter() - started < 1.0:
            public_key.verify(signature, data[:500], padding.PKCS1v15(), hashes.SHA256())
            floor_count += 1
        floor_rate = floor_count / (time.perf_counter() - started)
    return [{"figure": "verify, warm caches", "value": rate, "unit": "orders/s", "floor": floor_rate,
             "ratio": rate / floor_rate, "target": f"≥ {VERIFY_TARGET}/s", "ok": rate >= VERIFY_TARGET}]


def rows(quick: bool = False) -> list[dict]:
    """Rows for ./bench (tests/bench/runner.py)."""
    return collect(orders=15 if quick else 60, verify_seconds=1.5 if quick else 4.0)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--orders", type=int, default=40)
    parser.add_argument("--json")
    args = parser.parse_args()
    rows = collect(orders=args.orders)
    print(f"{'figure':<34}{'value':>12}{'floor':>12}{'ratio':>8}  target")
    for row in rows:
        unit = row["unit"]
        print(f"{row['figure']:<34}{row['value']:>9.2f} {unit:<3}{row['floor']:>9.2f} {unit:<3}"
              f"{row['ratio']:>6.2f}x  {row['target']} {'ok' if row['ok'] else 'MISS'}")
        for label, ms in row.get("phases_ms", {}).items():
            print(f"    {label:<48}{ms:>7.3f} ms")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


def collect(*, orders: int, verify_seconds: float = 3.0) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        base = Path(folder)
        store = SoftwareKeyStore(base / "keys")
        ref = store.generate_key(algorithm=KeyAlgorithm.RSA_2048, label="bench", secret=PASSWORD)
        signer = store.open_signer(ref, secret=PASSWORD)  # unlocked once, as a signing session is
        floor_key = signer._key  # the same unlocked key, signed with directly (no Signer wrapper, no lock)
        rows.append(bench_sign(base / "software", signer,
                               lambda d: floor_key.sign(d, padding.PKCS1v15(), hashes.SHA256()), orders,
                               "software key"))
        rows[-1]["floor_name"] = "raw RSA-2048 sign + the required rows in bare SQL, 1 commit"
        rows.append(_notice_again_row(rows[-1]))
        signer.close()
        token_row = _bench_token(base, orders)
        if token_row:
            token_row["floor_name"] = "raw token sign + the required rows in bare SQL, 1 commit"
            rows += [token_row, _notice_again_row(token_row)]
        verify = bench_verify(base / "verify", seconds=verify_seconds)
        verify[0]["floor_name"] = "RSA-2048 public-key verify alone"
        rows += verify
    return rows


def _notice_again_row(row: dict) -> dict:
    """Not judged: the same signing when it works the notice out again after the password, as every signing did
    before the shown notices were recorded (and as it still does when they no longer describe the signing)."""
    return {"figure": row["figure"].replace("sign one order", "  same, notice worked out again"),
            "value": row["notice_worked_out_again_ms"], "unit": "ms", "floor": row["floor"],
            "ratio": row["notice_worked_out_again_ratio"], "target": "(for comparison)", "ok": True}


def _bench_token(base: Path, orders: int) -> dict | None:
    util = shutil.which("softhsm2-util")
    module = "/usr/lib/softhsm/libsofthsm2.so"
    if not util or not os.path.exists(module):
        print("SoftHSM not installed: token figure skipped")
        return None
    conf = base / "softhsm2.conf"
    (base / "tokens").mkdir()
    conf.write_text(f"directories.tokendir = {base / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    subprocess.run([util, "--init-token", "--free", "--label", "bench", "--so-pin", "0000", "--pin", "123456"],
                   check=True, capture_output=True)
    from app.services.keys.pkcs11_store import Pkcs11KeyStore

    store = Pkcs11KeyStore(module, token_label="bench")
    ref = store.generate_key(algorithm=KeyAlgorithm.RSA_2048, label="bench", secret="123456")
    signer = store.open_signer(ref, secret="123456")
    # Floor: a raw token sign through python-pkcs11 on the same key and worker thread, nothing else.
    from pkcs11 import Mechanism

    def raw(data: bytes) -> bytes:
        return store._run(lambda: signer._key.sign(data, mechanism=Mechanism.SHA256_RSA_PKCS))

    row = bench_sign(base / "token", signer, raw, orders, "SoftHSM token")
    signer.close()
    store.close()
    return row


if __name__ == "__main__":
    main()
