"""`csos-desk demo --out DIR`: the whole life of an order, headless, in the training sandbox (issue 5/10 item 7).

Each step uses the same services the desktop program uses — the enrollment flow of the wizard, the certificate book,
the signing service, the outbox, the lifecycle and the records export — so the demo is also the proof that they fit.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import requests

PHARMACY_DEA = "BJ6125341"
COORDINATOR = ("casey@mainstreet.example", "Practice-Approvals-2026")  # seeded training account
SUPPLIER = "Acme Drug"
# Training-only secrets: they exist so the demo can run unattended, and are printed as such.
DEMO_PORTAL_PASSWORD = "Lilac-Harbor-Portal-2026"
DEMO_KEY_PASSWORD = "Juniper-Canyon-Key-7391"
LINES = (("00406-0552-01", 2, "Oxycodone 5 mg (C-II)"), ("00009-0055-01", 1, "Xanax 0.5 mg (C-IV)"),
         ("65862-0017-01", 3, "Amoxicillin 500 mg (not controlled)"))


@dataclass
class DemoReport:
    out: Path
    steps: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)


class Step:
    """Prints one numbered step, times it, records it for summary.json."""

    def __init__(self, report: DemoReport, say: Callable[[str], None]) -> None:
        self.report, self.say, self.number = report, say, 0

    def __call__(self, title: str, action: Callable[[], Any], describe: Callable[[Any], str] = lambda _: "") -> Any:
        self.number += 1
        self.say(f"{self.number:>2}. {title} …")
        started = time.perf_counter()
        result = action()
        detail = describe(result)
        seconds = time.perf_counter() - started
        self.say(f"    done in {seconds:.1f} s{': ' + detail if detail else ''}")
        self.report.steps.append({"step": self.number, "title": title, "detail": detail,
                                  "seconds": round(seconds, 2)})
        return result


def _mail(sandbox: Any, email: str, kind: str, channel: str) -> dict[str, Any]:
    response = requests.get(sandbox.mailbox_url, params={"email": email, "channel": channel},
                            verify=str(sandbox.tls_bundle), timeout=10)
    response.raise_for_status()
    messages = [m for m in response.json()["messages"] if m["kind"] == kind]
    if not messages:
        raise RuntimeError(f"no {kind} message for {email} in the training mailbox")
    return messages[-1]["data"]


def run_demo(out: Path, *, say: Callable[[str], None] = print, screenshots: bool = False) -> DemoReport:
    from app.config import load_config
    from app.logging_setup import setup_logging
    from app.models.database import open_database
    from app.models.states import OrderStatus
    from app.services.certificates.book import CertificateBook
    from app.services.signing.clock import check_clock
    from app.services.certificates.crl_cache import CrlCache
    from app.services.enrollment.authority import SandboxAuthority
    from app.services.enrollment.certificate_overview import certificate_id
    from app.services.enrollment.enroll_flow import EnrollmentFlow
    from app.services.orders.lifecycle import Lifecycle
    from app.services.orders.orderbook import OrderBook
    from app.services.orders.outbox import Outbox
    from app.services.orders.records import check_records, export_records
    from app.services.signing.order_signing import OrderSigningService
    from app.services.transport.connectors import connector_for
    from app.services.certificates.trust import configured_trust_roots
    from app.services.certificates.validation import CertificateValidationService
    from app.services.signing.verifier import MappingSchedules, OrderVerifier
    from app.services.enrollment.wizard import WizardStateStore
    from app.training import start_training_environment

    out = Path(out).resolve()
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} is not empty; choose a new folder for the demo.")
    out.mkdir(parents=True, exist_ok=True)
    report = DemoReport(out=out)
    step = Step(report, say)
    say(f"CSOS Desk demo — TRAINING sandbox, nothing leaves this computer. Output: {out}")
    config = load_config(data_dir=out / "data", profile="training")
    setup_logging(config.data_dir)
    db = open_database(config.database_url)
    book = OrderBook(db, actor="demo")
    env = step("Start the training sandbox (CSOS CA, enrollment portal, three suppliers)",
               lambda: start_training_environment(config, book),
               lambda e: f"{e.sandbox.base_url}, {len(e.sandbox.suppliers)} suppliers, "
                         f"{book.summary().products} catalog packages")
    sandbox = env.sandbox
    try:
        certificates = CertificateBook(db, config, environ={})
        authority = SandboxAuthority(sandbox.portal_url, tls_bundle=sandbox.tls_bundle,
                                     trust_bundle=sandbox.trust_bundle)
        email = f"demo-{int(time.time())}@mainstreet.example"
        flow = EnrollmentFlow(authority=authority, certificates=certificates,
                              store=WizardStateStore(config.data_dir / "wizards"))

        def apply_for_certificate() -> Any:
            flow.start()
            flow.next()
            flow.next({"role": "registrant"})
            flow.next({"full_name": "Jordan Demo", "email": email})
            flow.next({"registrations": [PHARMACY_DEA]})
            flow.next({"agreement_accepted": True})
            flow.next({"identity_document_type": "drivers_license", "identity_document_number": "D1234567",
                       "date_of_birth": "1980-04-02"})
            flow.next({"account_choice": "new", "password": DEMO_PORTAL_PASSWORD,
                       "password_confirm": DEMO_PORTAL_PASSWORD})
            flow.next({"sign_in_code": _mail(sandbox, email, "login_code", "email")["code"]})
            flow.next()
            return flow.data["application_id"]

        application_id = step(f"Apply for a CSOS signing certificate as {email} (role: registrant)",
                              apply_for_certificate, lambda a: f"application {a} waits for the coordinator")

        def coordinator_approves() -> str:
            challenge = authority.start_sign_in(email=COORDINATOR[0], password=COORDINATOR[1])
            session = authority.finish_sign_in(challenge_id=challenge.challenge_id,
                                               code=_mail(sandbox, COORDINATOR[0], "login_code", "email")["code"])
            authority.decide(session, application_id, approve=True, reason="Demo: known staff member")
            return COORDINATOR[0]

        step("The CSOS coordinator approves the application", coordinator_approves,
             lambda who: f"approved by {who}")

        def install_certificate() -> Any:
            if not flow.poll():
                raise RuntimeError("the approval did not reach the applicant")
            flow.next({"reference_number": _mail(sandbox, email, "reference_number", "email")["reference_number"],
                       "access_code": _mail(sandbox, email, "access_code", "postal")["access_code"]})
            flow.next({"key_store": "software", "key_password": DEMO_KEY_PASSWORD,
                       "key_password_confirm": DEMO_KEY_PASSWORD})
            flow.next()
            return certificates.signing_certificate_for(PHARMACY_DEA, at=dt.datetime.now(dt.timezone.utc))

        record = step("Reference number (e-mail) + access code (post) → key made here, request signed with it, "
                      "certificate installed and checked", install_certificate,
                      lambda r: f"certificate {certificate_id(r.fingerprint)}, schedules {r.schedules}, "
                                f"valid to {r.not_after:%Y-%m-%d}")

        def new_order() -> Any:
            order = book.new_order(registration_dea=PHARMACY_DEA, supplier_name=SUPPLIER)
            for ndc, packages, _ in LINES:
                book.add_line(order.id, ndc=ndc, packages=packages)
            return book.get_order(order.id)

        order = step("Prepare an order with C-II, C-IV and non-controlled lines", new_order,
                     lambda o: f"{o.order_number}: " + "; ".join(f"{p} × {d}" for _, p, d in LINES))

        trust = configured_trust_roots(config)
        cache = CrlCache(config.cache_dir / "crl", tls_ca_bundle=sandbox.tls_bundle)
        verifier = OrderVerifier(validation=CertificateValidationService(trust_roots=trust, crl_cache=cache),
                                 catalog=MappingSchedules.from_database(db))
        clock_check = (lambda: check_clock("127.0.0.1", port=sandbox.sntp_port, timeout=2)) if sandbox.sntp_port \
            else None
        signing = OrderSigningService(book, verifier, clock_check=clock_check, test_indicator="T")  # training: ISA15 T
        certificate, intermediates = certificates.chain(record)

        def sign() -> Any:
            verdict = signing.check(order.id, certificate=certificate, intermediates=intermediates)
            if not verdict.accepted:
                raise RuntimeError("pre-sign check failed: " + "; ".join(r.message for r in verdict.reasons))
            signer = certificates.open_signer(record, secret=DEMO_KEY_PASSWORD)
            try:
                return signing.sign(order.id, signer=signer, certificate=certificate, intermediates=intermediates)
            finally:
                signer.close()

        signed = step("Pre-sign check (clock, certificate, CRL, DEA number, schedules) and sign", sign,
                      lambda s: f"{len(s.document)} bytes of CMS SignedData over the X12 850")

        def connectors(supplier: Any) -> Any:
            return connector_for(supplier, data_dir=config.data_dir, tls_bundle=sandbox.tls_bundle, test_indicator="T")

        outbox = Outbox(book, connector_for=connectors)
        lifecycle = Lifecycle(book)

        def transmit() -> Any:
            outbox.enqueue(order.id)
            outbox.run_until_idle(order_ids=[order.id])
            return book.get_order(order.id)

        step(f"Transmit to {SUPPLIER} over HTTPS through the outbox; the supplier verifies and answers (855)",
             transmit, lambda o: f"order is {o.status.label.lower()}")
        supplier_url = next(s.url for s in sandbox.suppliers if s.name == SUPPLIER)

        def ship(lines: Any) -> Any:
            response = requests.post(f"{supplier_url}/_training/ship", verify=str(sandbox.tls_bundle), timeout=10,
                                     json={"purchaser_dea": PHARMACY_DEA, "order_number": order.order_number,
                                           "lines": lines})
            response.raise_for_status()
            lifecycle.sync(connectors, order_ids=[order.id])
            received = lifecycle.receive(order.id, recorded_by="demo")
            return received

        step("The supplier ships part of the order (856); receive it: packages and date per line (O4)",
             lambda: ship([{"line_number": 1, "packages": 1}, {"line_number": 3, "packages": 3}]),
             lambda _: f"order is {book.get_order(order.id).status.label.lower()}")
        step("The supplier ships the rest; receive it",
             lambda: ship(None), lambda _: f"order is {book.get_order(order.id).status.label.lower()}")
        if book.get_order(order.id).status is not OrderStatus.RECEIVED:
            raise RuntimeError(f"the order ended {book.get_order(order.id).status.value}, not received")
        supplier_dea = next(s.dea_number for s in sandbox.suppliers if s.name == SUPPLIER)
        flags = step("A second ship notice (856) arrives as a file, claiming more than was ordered; imported and "
                     "checked against the signed order: flagged as a discrepancy, not applied",
                     lambda: _hostile_answer(lifecycle, book.get_order(order.id), supplier_dea, out / "answers"),
                     lambda found: "; ".join(found))
        final = book.get_order(order.id)
        if final.status is not OrderStatus.RECEIVED or not flags:
            raise RuntimeError("the hostile ship notice was not flagged, or it changed the order")

        def export() -> Any:
            renderer = None
            try:
                from app.ui.records_pdf import RecordsPdfProcess

                renderer = RecordsPdfProcess
            except ImportError:  # Qt missing: CSV and archive still written
                renderer = None
            today = dt.date.today()
            return export_records(db, date_from=today - dt.timedelta(days=1), date_to=today + dt.timedelta(days=1),
                                  out_dir=out / "records", render_pdf=renderer)

        exported = step("Export the records for an inspection (PDF, CSV, archive with manifest)", export,
                        lambda s: f"{s.orders} order(s), {s.files} files")
        check = step("Re-check every stored signature and the audit chain",
                     lambda: check_records(db, verifier=verifier),
                     lambda r: "clean" if r.clean else f"{len(r.problems)} problem(s)")

        # Files a person (or openssl) can look at.
        (out / "orders").mkdir(exist_ok=True)
        (out / "linked-records").mkdir(exist_ok=True)
        (out / "orders" / f"{final.order_number}.csos").write_bytes(final.signed_document)
        for linked in final.linked_records:
            suffix = ".x12" if linked.media_type == "application/edi-x12" else ".bin"
            name = f"{final.order_number}-{linked.id:03d}-{linked.kind.value}{suffix}"
            (out / "linked-records" / name).write_bytes(linked.raw)
        shutil.copyfile(sandbox.trust_bundle, out / "csos-trust.pem")
        if screenshots:
            _screenshots(out / "screenshots", config, db, book, say)
        report.summary = {
            "order_number": final.order_number, "status": final.status.value,
            "signed_document": f"orders/{final.order_number}.csos", "signer_fingerprint": final.signer_fingerprint,
            "linked_records": [r.kind.value for r in final.linked_records],
            "receipts": [{"line": line.line_number, "packages": [r.packages_received for r in line.receipts]}
                         for line in final.lines],
            "records_export": "records", "records_check_clean": check.clean, "trust_roots": "csos-trust.pem",
            "verify_with": f"openssl cms -verify -binary -inform DER -in orders/{final.order_number}.csos "
                           "-CAfile csos-trust.pem -purpose any",
            "exported_orders": getattr(exported, "orders", None),
            "discrepancies": flags,
            "certificate_id": certificate_id(record.fingerprint),
            "open_in_window": open_in_window_command(out / "data"),
            "steps": report.steps,
        }
        (out / "summary.json").write_text(json.dumps(report.summary, indent=2, default=str))
        say(f"Done. Signed order: {out / 'orders' / (final.order_number + '.csos')}; summary: {out / 'summary.json'}")
        for line in how_to_open_in_the_window(out / "data", email):
            say(line)
        return report
    finally:
        sandbox.stop()
        db.close()


HOSTILE_EXTRA_PACKAGES = 5  # the second 856 claims this many more packages of line 1 (2 were ordered and shipped)


def _hostile_answer(lifecycle: Any, order: Any, supplier_dea: str, folder: Path) -> list[str]:
    """One answer that does not match the order, so the detail, the timeline and the records export show what a
    discrepancy looks like: a second 856 for line 1 after everything was shipped and received. It arrives as a file
    (as from a supplier that e-mails its notices) and goes through the same import and checks as any answer file.
    Returns the discrepancies recorded, in plain words."""
    from app.services.signing.x12 import Shipment856, ShipmentLine, write_856

    now = dt.datetime.now(dt.timezone.utc).replace(second=0, microsecond=0)
    line = order.lines[0]
    notice = Shipment856(order_number=order.order_number, shipment_id="DEMO-EXTRA-1", ship_date=now.date(),
                         created_at=now, lines=(ShipmentLine(line.line_number, line.ndc, HOSTILE_EXTRA_PACKAGES),))
    data = write_856(notice, interchange_control_number=900_000_001, group_control_number=900_000_001,
                     sender_id=supplier_dea, receiver_id=order.registration.dea_number, created_at=now,
                     usage_indicator="T")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{order.order_number}-second-ship-notice.x12"
    path.write_bytes(data)
    [report] = lifecycle.import_answer_files([path])
    return [flag.message for item in report.linked for flag in item.flags]


def open_in_window_command(data_dir: Path) -> str:
    import shlex

    return f"csos-desk --data-dir {shlex.quote(str(data_dir))} --profile training"


def practice_accounts(email: str) -> list[dict[str, str]]:
    """The practice passwords the demo used (training only: printed so its data can be opened in the window)."""
    return [{"who": "Jordan Demo (portal account)", "email": email, "password": DEMO_PORTAL_PASSWORD},
            {"who": "Jordan Demo's key on this computer", "email": "", "password": DEMO_KEY_PASSWORD},
            {"who": "Casey Coordinator (practice coordinator)", "email": COORDINATOR[0], "password": COORDINATOR[1]}]


def how_to_open_in_the_window(data_dir: Path, email: str) -> list[str]:
    lines = ["", "To look at this data in the window:", f"  {open_in_window_command(data_dir)}",
             "Practice passwords it used (TRAINING ONLY — never use them for anything real):"]
    for account in practice_accounts(email):
        lines.append(f"  {account['who']}: " + (f"{account['email']} / " if account["email"] else "")
                     + account["password"])
    return lines


def _screenshots(folder: Path, config: Any, db: Any, book: Any, say: Callable[[str], None]) -> None:
    """Each screen as a PNG (the UI owns the rendering); skipped with a note when Qt can't start."""
    try:
        from app.ui.screenshots import save_screenshots
    except ImportError as exc:
        say(f"    screenshots skipped ({exc})")
        return
    paths = save_screenshots(folder, config=config, db=db, book=book)
    say(f"    {len(paths)} screenshots in {folder}")
