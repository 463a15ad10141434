"""Sign and send until the supplier's answer is on screen (issue 6/7), over loopback HTTPS and over AS2.

Run: .venv/bin/python -m tests.bench.bench_sign_send [--orders N]

The training sandbox runs on loopback (its suppliers, CA, CRLs and SNTP server); a purchaser is enrolled with it.
Each timed order is what the sign screen's "Sign and send" does after the password (``app.ui.sign_dialog``): a
new signing service with the profile's clock rule, CRL cache, usage settings and ISA15 T signs the draft (with the
clock check and the unusual-quantity notices the screen made when it opened, before the password, untimed); a new
outbox queues it and sends it now, as the screen's ``send_order`` (``Outbox.send_now``: a new connector, so a new TLS
connection; over AS2 signed + encrypted, MDN verified), and the supplier's answer is recorded; the order's details
are read as the screen shows them (``order_details``).

Floor, measured in the same run: a bare ``requests.post`` of an already signed order's bytes (same size, a
different order each time so the supplier does its full work) to the same supplier over a new verified TLS
connection, until its answer is read: the network and the supplier's own work, nothing of ours. Target ≤ 3×.

Over AS2 the supplier receives another payload: the order signed and encrypted as an AS2 message, which it decrypts
and checks, and it answers with a signed receipt (MDN). The AS2 row is judged against the same bare POST with that
payload: an AS2 message of an already signed order (built before, untimed; a different order each time) to the
supplier's AS2 address over a new verified TLS connection, until its receipt is read (not checked). It also shows
its ratio against the HTTPS floor above, not judged: that one charges the supplier's own AS2 work to us.

Phase figures (in the JSON rows, and printed by ``main``; they change neither the rows' values nor the floor):
the median of each step of the timed order (sign; queue + send + record in the outbox; read the details) and,
for reference, a bare ``requests.get`` of an order's records over a new connection (the second request an AS2
send makes: the MDN does not carry the supplier's answer, which comes from its records API).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

TARGET = 3.0


def _median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def collect(*, orders: int) -> list[dict]:
    import requests
    from sqlalchemy import select

    from app.config import load_config
    from app.models.database import open_database
    from app.models.orderbook import Supplier
    from app.models.states import OrderStatus
    from app.services.certificates.crl_cache import signing_crl_cache
    from app.services.certificates.validation import CertificateValidationService, load_trust_bundle
    from app.services.orders.details import order_details
    from app.services.orders.lifecycle import Lifecycle
    from app.services.orders.orderbook import OrderBook
    from app.services.orders.outbox import Outbox
    from app.services.signing.clock import STATE_FILE, ClockRule
    from app.services.signing.order_signing import OrderSigningService
    from app.services.signing.verifier import MappingSchedules, OrderVerifier
    from app.services.transport import as2_mime
    from app.services.transport.as2 import message_id_for
    from app.services.transport.connectors import MEDIA_TYPE, connector_for
    from app.training import AS2_SUPPLIER, start_training_environment
    from tests.integration.conftest import PHARMACY, SandboxClient, new_order_number
    from tests.signers import KeySigner

    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="csos-sign-send-") as folder:
        base = Path(folder)
        config = load_config(data_dir=base / "data", profile="training")
        db = open_database(config.database_url)
        book = OrderBook(db, actor="bench")
        environment = start_training_environment(config, book, sandbox_dir=base / "sandbox")
        try:
            sandbox = environment.sandbox
            purchaser = SandboxClient(sandbox).enroll(PHARMACY, full_name="Bench Purchaser")
            signer = KeySigner(purchaser.key)
            intermediates = purchaser.chain[:1]
            validation = CertificateValidationService(
                trust_roots=load_trust_bundle(sandbox.trust_bundle),
                crl_cache=signing_crl_cache(config.cache_dir / "crl", config.settings))
            verifier = OrderVerifier(validation=validation, catalog=MappingSchedules.from_database(db))
            with db.session() as session:
                https_supplier = session.scalar(select(Supplier).where(Supplier.connector["kind"].as_string()
                                                                       == "https").order_by(Supplier.id))
                https_name, https_url = https_supplier.name, https_supplier.connector["url"]
            host, _, port = str(config.settings.get("sntp_server") or "").partition(":")

            def draft(supplier: str) -> int:
                order = book.new_order(registration_dea=PHARMACY["dea_number"], supplier_name=supplier,
                                       order_number=new_order_number())
                book.add_line(order.id, ndc="00406055201", packages=1)
                return order.id

            # The profile's one clock rule, as the screens share it (AppFacade.clock_check).
            rule = ClockRule(config.data_dir / STATE_FILE, server=host or None, port=int(port or 123),
                             production=False)

            def service() -> OrderSigningService:  # as the sign screen builds one per signing
                return OrderSigningService(book, verifier, clock_check=rule, usage_settings=config.settings,
                                           test_indicator="T")

            def sign_and_send(order_id: int, phases: dict[str, list[float]] | None = None) -> None:
                # What the sign screen does when it opens, before the password (not timed here): the clock check,
                # which the signing reuses for a minute (ClockRule.check), and the unusual-quantity notices, which
                # it hands to the signing that records them (order_signing.ShownNotices).
                rule()
                shown_notices = service().notices_to_show(order_id)
                started = time.perf_counter()
                service().sign(order_id, signer=signer, certificate=purchaser.certificate,
                               intermediates=intermediates, shown_notices=shown_notices)
                signed = time.perf_counter()
                outbox = Outbox(book, connector_for=lambda s: connector_for(
                    s, data_dir=config.data_dir, tls_bundle=config.settings.get("tls_bundle"),
                    test_indicator="T"), lifecycle=Lifecycle(book))
                outbox.send_now(order_id)  # as the screen's send_order
                sent = time.perf_counter()
                shown = order_details(db, order_id)
                if phases is not None:
                    for name, seconds in (("sign", signed - started), ("queue, send, record", sent - signed),
                                          ("show details", time.perf_counter() - sent)):
                        phases.setdefault(name, []).append(seconds)
                if shown.status is not OrderStatus.ACCEPTED:
                    raise RuntimeError(f"order {shown.order_number} ended {shown.status.value}, not accepted")

            def signed_document(supplier: str) -> tuple[str, bytes]:
                order_id = draft(supplier)
                signing = service().sign(order_id, signer=signer, certificate=purchaser.certificate,
                                         intermediates=intermediates)
                return signing.order.order_number, signing.document

            # Floor documents: signed (not timed), never sent by us; each POSTed once, bare.
            floor_documents = [signed_document(https_name)[1] for _ in range(orders + 1)]
            wanted = [("loopback HTTPS", https_name)]
            as2_messages: list[as2_mime.OutgoingMessage] = []
            as2_url = ""
            if any(kind == "as2" for kind in _connector_kinds(db)):
                wanted.append(("AS2", AS2_SUPPLIER))
                with db.session() as session:
                    as2_connector = connector_for(session.scalar(select(Supplier).where(Supplier.name == AS2_SUPPLIER)),
                                                  data_dir=config.data_dir,
                                                  tls_bundle=config.settings.get("tls_bundle"), test_indicator="T")
                identity, as2_settings = as2_connector.identity, as2_connector.settings
                as2_connector.close()
                as2_url = as2_settings.url
                for _ in range(orders + 1):  # AS2 floor messages: built here, as the connector builds them
                    number, document = signed_document(AS2_SUPPLIER)
                    as2_messages.append(as2_mime.build_message(
                        document, message_id=message_id_for("order", order_number=number,
                                                            purchaser_dea=PHARMACY["dea_number"], document=document,
                                                            as2_id=identity.as2_id),
                        as2_from=identity.as2_id, as2_to=as2_settings.partner_as2_id,
                        media_type=as2_settings.content_type, filename=f"{number}.csos", key=identity.key,
                        certificate=identity.certificate, partner_certificate=as2_settings.partner_certificate,
                        encryption=as2_settings.encryption, subject=f"CSOS order {number}"))
            drafts = {label: [draft(name) for _ in range(orders + 1)] for label, name in wanted}
            timings: dict[str, list[float]] = {label: [] for label, _ in wanted}
            floor: list[float] = []
            as2_floor: list[float] = []
            bundle = str(sandbox.tls_bundle)

            def bare_post(document: bytes) -> None:
                with requests.Session() as http:  # a new connection each time, as a new connector has
                    http.trust_env = False
                    answer = http.post(f"{https_url.rstrip('/')}/orders", data=document, verify=bundle,
                                       headers={"Content-Type": MEDIA_TYPE}, timeout=(5, 30))
                    answer.raise_for_status()
                    answer.json()

            def bare_as2_post(message: as2_mime.OutgoingMessage) -> None:
                with requests.Session() as http:  # a new connection each time, as a new connector has
                    http.trust_env = False
                    answer = http.post(as2_url, data=message.body, headers=message.headers, verify=bundle,
                                       timeout=(5, 30))
                    answer.raise_for_status()
                    if not answer.content:
                        raise RuntimeError("the AS2 supplier answered without a receipt")

            def bare_records_get(document: bytes, bundle: str = bundle) -> None:  # a figure, never the floor
                from app.services.signing.cms import parse_signed_document
                from app.services.signing.x12 import parse_850

                order = parse_850(parse_signed_document(document).content)
                with requests.Session() as http:
                    http.trust_env = False
                    answer = http.get(f"{https_url.rstrip('/')}/orders/{order.purchaser.dea_number}/"
                                      f"{order.order_number}/records", params={"after": "0"}, verify=bundle,
                                      timeout=(5, 30))
                    answer.raise_for_status()
                    answer.json()

            bare_post(floor_documents[0])  # warm up every path once (imports, first TLS context)
            if as2_messages:
                bare_as2_post(as2_messages[0])
            for label, _name in wanted:
                sign_and_send(drafts[label][0])
            phases: dict[str, dict[str, list[float]]] = {label: {} for label, _ in wanted}
            records_get: list[float] = []
            for index in range(1, orders + 1):  # interleaved, so a busy moment hurts all alike
                started = time.perf_counter()
                bare_post(floor_documents[index])
                floor.append(time.perf_counter() - started)
                if as2_messages:
                    started = time.perf_counter()
                    bare_as2_post(as2_messages[index])
                    as2_floor.append(time.perf_counter() - started)
                for label, _name in wanted:
                    started = time.perf_counter()
                    sign_and_send(drafts[label][index], phases[label])
                    timings[label].append(time.perf_counter() - started)
            for index in range(1, orders + 1):  # after the timed loop, so the rows are measured as before
                started = time.perf_counter()
                bare_records_get(floor_documents[index])
                records_get.append(time.perf_counter() - started)
            public_roots = _public_roots_figures(https_url, bundle, base, floor_documents[1:], bare_records_get)
            floor_ms = _median_ms(floor)
            for label, _name in wanted:
                value = _median_ms(timings[label])
                row = {"figure": f"sign and send until the answer shows ({label})", "value": value,
                       "unit": "ms", "floor": floor_ms,
                       "floor_name": "bare HTTPS POST of a signed order to the same supplier, new connection",
                       "ratio": value / floor_ms, "target": f"≤ {TARGET}×", "ok": value / floor_ms <= TARGET,
                       "phases_ms": {name: _median_ms(samples) for name, samples in phases[label].items()},
                       "bare_records_get_ms": _median_ms(records_get)}
                if label == "AS2":
                    as2_floor_ms = _median_ms(as2_floor)
                    row.update(floor=as2_floor_ms, ratio=value / as2_floor_ms, ok=value / as2_floor_ms <= TARGET,
                               floor_name="bare HTTPS POST of an AS2 message (a signed order, signed and encrypted) "
                                          "to the same supplier, receipt read, new connection",
                               https_floor_ms=floor_ms, ratio_against_https_floor=value / floor_ms)
                rows.append(row)
                if label == "loopback HTTPS":  # not judged: what a public-roots bundle costs a new connection
                    row["public_roots_bundle_ms"] = public_roots
                    rows.append({"figure": "  records GET, new connection, public-roots bundle", "unit": "ms",
                                 "value": public_roots["csos_desk_connector"], "floor": public_roots["bare_requests"],
                                 "ratio": public_roots["csos_desk_connector"] / public_roots["bare_requests"],
                                 "floor_name": "bare requests GET, the bundle read for the connection",
                                 "target": "(for comparison)", "ok": True})
                if label == "AS2":  # shown, not judged: the same figure against the HTTPS floor
                    rows.append({"figure": "  same, against the bare HTTPS order POST", "value": value, "unit": "ms",
                                 "floor": floor_ms, "ratio": value / floor_ms, "target": "(for comparison)",
                                 "ok": True})
        finally:
            environment.stop()
            db.close()
    return rows


def _public_roots_figures(url: str, bundle: str, base: Path, documents: list[bytes], bare_records_get) -> dict:
    """A supplier with a public certificate is checked against a bundle of public roots. With one that size (certifi's
    roots plus the sandbox's), the median ms of a records GET over a new connection: bare ``requests`` (which reads
    the bundle for every connection) and our connector (``transport.tls``: read once per process)."""
    import certifi

    from app.services.signing.cms import parse_signed_document
    from app.services.signing.x12 import parse_850
    from app.services.transport.connectors import HttpsConnector, TransportError

    roots = base / "public-roots-and-sandbox.pem"
    roots.write_bytes(Path(certifi.where()).read_bytes() + b"\n" + Path(bundle).read_bytes())
    bare: list[float] = []
    ours: list[float] = []
    for document in documents:
        order = parse_850(parse_signed_document(document).content)
        started = time.perf_counter()
        bare_records_get(document, bundle=str(roots))
        bare.append(time.perf_counter() - started)
        started = time.perf_counter()
        connector = HttpsConnector(url, tls_bundle=roots, max_attempts=1)
        try:
            connector.fetch_records(order_number=order.order_number, purchaser_dea=order.purchaser.dea_number, after=0)
        except TransportError as exc:
            if exc.code != "transport.unknown_order":  # never sent: the supplier says so, after the handshake
                raise
        finally:
            connector.close()
        ours.append(time.perf_counter() - started)
    return {"bare_requests": _median_ms(bare), "csos_desk_connector": _median_ms(ours),
            "bundle_certificates": roots.read_bytes().count(b"BEGIN CERTIFICATE")}


def _connector_kinds(db) -> set[str]:
    from sqlalchemy import select

    from app.models.orderbook import Supplier

    with db.session() as session:
        return {(connector or {}).get("kind") for connector in session.scalars(select(Supplier.connector))}


def rows(quick: bool = False) -> list[dict]:
    """Rows for ./bench (tests/bench/runner.py)."""
    return collect(orders=8 if quick else 30)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--orders", type=int, default=20)
    args = parser.parse_args()
    for row in collect(orders=args.orders):
        if "phases_ms" not in row:
            continue  # a comparison row; its figure is printed below the row it belongs to
        print(f"{row['figure']}: {row['value']:.1f} ms, floor {row['floor']:.1f} ms, {row['ratio']:.2f}x "
              f"(target {row['target']}) {'ok' if row['ok'] else 'MISS'}")
        print("    phases (median ms): " + ", ".join(f"{name} {ms:.1f}" for name, ms in row["phases_ms"].items())
              + f"; bare records GET, new connection: {row['bare_records_get_ms']:.1f}")
        if "public_roots_bundle_ms" in row:
            figures = row["public_roots_bundle_ms"]
            print(f"    records GET over a new connection, {figures['bundle_certificates']}-certificate public-roots "
                  f"bundle: bare requests {figures['bare_requests']:.1f} ms, our connector "
                  f"{figures['csos_desk_connector']:.1f} ms")
        if "https_floor_ms" in row:
            print(f"    against the bare HTTPS order POST ({row['https_floor_ms']:.1f} ms), not judged: "
                  f"{row['ratio_against_https_floor']:.2f}x")


if __name__ == "__main__":
    main()
