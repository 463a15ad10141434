"""Training mode: start the local sandbox and point this profile's order book and settings at it.

The only module besides the CLI and tests that imports ``app.sandbox`` (DESIGN.md §2). Everything it configures is
ordinary configuration — suppliers with https connectors, trust bundles, the SNTP server — so the rest of the program
runs exactly as it would against production endpoints.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.errors import ConfigError
from app.services.orders.orderbook import DuplicateRecord, OrderBook

log = logging.getLogger(__name__)


@dataclass
class TrainingEnvironment:
    sandbox: Any  # app.sandbox.SandboxHandle
    settings_changed: bool

    def stop(self) -> None:
        self.sandbox.stop()


def start_training_environment(config: Any, book: OrderBook, *, sandbox_dir: Path | None = None
                               ) -> TrainingEnvironment:
    """Start the sandbox in ``<data dir>/sandbox`` and make sure the order book knows its registrations, suppliers
    and catalog. Idempotent: a second start finds everything in place."""
    if not config.is_training:
        raise ConfigError("The training sandbox only runs in the training profile.", code="config.not_training")
    from app.sandbox import start_sandbox
    from app.services.catalog import bundled_catalog_paths, import_fda_catalog

    directory = Path(sandbox_dir or Path(config.data_dir) / "sandbox")
    sandbox = start_sandbox(directory)
    wanted = {
        "sandbox_dir": str(directory),
        "sandbox_portal_url": sandbox.portal_url,
        "sandbox_tls_bundle": str(sandbox.tls_bundle),
        "csos_trust_bundle": str(sandbox.trust_bundle),
        "tls_bundle": str(sandbox.tls_bundle),
    }
    if sandbox.sntp_port:
        wanted["sntp_server"] = f"127.0.0.1:{sandbox.sntp_port}"
    changed = any(config.settings.get(key) != value for key, value in wanted.items())
    if changed:
        config.settings.update(wanted)
        config.save_settings()
    for registration in sandbox.registrations:
        try:
            book.add_registration(
                dea_number=registration.dea_number, name=registration.name,
                address_lines=registration.address_lines, city=registration.city, state=registration.state,
                postal_code=registration.postal_code, schedules=registration.schedules,
                expires_on=registration.expires_at.date(), business_activity=registration.business_activity)
        except DuplicateRecord:
            pass
    for supplier in sandbox.suppliers:
        try:
            book.add_supplier(name=supplier.name, dea_number=supplier.dea_number,
                              address_lines=supplier.address_lines, city=supplier.city, state=supplier.state,
                              postal_code=supplier.postal_code,
                              connector={"kind": "https", "url": supplier.url,
                                         "tls_bundle": str(sandbox.tls_bundle)})
        except DuplicateRecord:
            _update_supplier_url(book, supplier.name, supplier.url, str(sandbox.tls_bundle))
    _add_as2_supplier(config, book, sandbox)
    teach_portal_registrations(book, sandbox.portal_url, str(sandbox.tls_bundle),
                               known={r.dea_number for r in sandbox.registrations})
    if book.summary().products == 0:
        product_txt, package_txt = bundled_catalog_paths()
        import_fda_catalog(book.db, product_txt, package_txt, source="training sample")
    log.info("training sandbox running at %s", sandbox.base_url)
    return TrainingEnvironment(sandbox=sandbox, settings_changed=changed)


def teach_portal_registrations(book: OrderBook, portal_url: str, tls_bundle: str, *,
                               known: set[str] | None = None) -> list[str]:
    """The practice portal learns the registrations added on this computer (a second store or clinic), so enrolling
    for them works as for the seeded ones (issue 22). Returns the DEA numbers it learned; failures are logged only:
    the enrollment then says what the portal answered."""
    import requests

    learned = []
    for registration in book.list_registrations():
        if known is not None and registration.dea_number in known:
            continue
        body = {"dea_number": registration.dea_number, "name": registration.name,
                "address_lines": list(registration.address_lines or []), "city": registration.city,
                "state": registration.state, "postal_code": registration.postal_code,
                "schedules": [s for s in (registration.schedules or "").split(",") if s],
                "expires_on": registration.expires_on.isoformat() if registration.expires_on else None,
                "business_activity": registration.business_activity}
        try:
            answer = requests.post(f"{portal_url}/_training/registrations", json=body, verify=tls_bundle, timeout=10)
        except requests.RequestException as exc:
            log.warning("practice portal not told about registration %s: %s", registration.dea_number, exc)
            continue
        if answer.status_code == 201:
            learned.append(registration.dea_number)
        elif answer.status_code != 200:
            log.warning("practice portal refused registration %s: HTTP %s", registration.dea_number,
                        answer.status_code)
    return learned


def _update_supplier_url(book: OrderBook, name: str, url: str, tls_bundle: str) -> None:
    """The sandbox may come back on another port; keep the training suppliers pointing at it."""
    from sqlalchemy import select

    from app.models.orderbook import Supplier

    with book.db.session() as session, session.begin():
        supplier = session.scalar(select(Supplier).where(Supplier.name == name))
        if supplier is not None and (supplier.connector or {}).get("kind") == "https":
            if supplier.connector.get("url") != url or supplier.connector.get("tls_bundle") != tls_bundle:
                supplier.connector = {**supplier.connector, "url": url, "tls_bundle": tls_bundle}


AS2_SUPPLIER = "Acme Drug via AS2"  # the same training supplier, reached over AS2 (RFC 4130) instead of https


def _add_as2_supplier(config: Any, book: OrderBook, sandbox: Any) -> None:
    """Let the whole AS2 path be practised: this profile's AS2 identity (created once) is a trading partner of the
    sandbox's Acme Drug, and a supplier record reaches Acme over AS2. Training goes on without it if it fails."""
    from app.errors import CsosError
    from app.sandbox.as2_receiver import training_connector
    from app.services.transport.as2 import create_identity, identity_folder, load_identity

    try:
        exists = (identity_folder(config.data_dir) / "identity.json").exists()
        identity = load_identity(config.data_dir) if exists else create_identity(config.data_dir, "CSOS-DESK-TRAINING")
        acme = sandbox.supplier("acme")
        connector = training_connector(sandbox, "acme", identity.as2_id, identity.certificate_pem.decode("ascii"))
        try:
            book.add_supplier(name=AS2_SUPPLIER, dea_number=acme.dea_number, address_lines=acme.address_lines,
                              city=acme.city, state=acme.state, postal_code=acme.postal_code, connector=connector)
        except DuplicateRecord:
            from sqlalchemy import select

            from app.models.orderbook import Supplier

            with book.db.session() as session, session.begin():
                supplier = session.scalar(select(Supplier).where(Supplier.name == AS2_SUPPLIER))
                if supplier is not None and (supplier.connector or {}).get("kind") == "as2" and \
                        supplier.connector != connector:
                    supplier.connector = connector  # the sandbox may come back on another port
    except (CsosError, KeyError, OSError) as exc:
        log.warning("training AS2 supplier not set up (%s)", getattr(exc, "code", type(exc).__name__))


# -- what a trainee needs to know about the practice world (read from the sandbox seed, never typed in here) ---------

SEED_FILE = Path(__file__).resolve().parents[1] / "resources" / "sandbox" / "seed.json"


@dataclass(frozen=True)
class PracticeAccount:
    """A practice coordinator's portal sign-in (training only: these are the sandbox's documented practice
    passwords, shown on screen so the trainee can play the coordinator)."""

    registration: str
    registration_name: str
    full_name: str
    email: str
    password: str


def practice_coordinators(seed_file: Path | None = None) -> list[PracticeAccount]:
    """The practice coordinators of the training portal, one per seeded registration (empty if unreadable)."""
    import json

    try:
        seed = json.loads(Path(seed_file or SEED_FILE).read_text("utf-8"))
    except (OSError, ValueError) as exc:
        log.warning("training seed unreadable: %s", exc)
        return []
    found = []
    for registration in seed.get("registrations") or []:
        coordinator = registration.get("coordinator") or {}
        if coordinator.get("email") and coordinator.get("password"):
            found.append(PracticeAccount(registration=registration.get("dea_number", ""),
                                         registration_name=registration.get("name", ""),
                                         full_name=coordinator.get("full_name", ""), email=coordinator["email"],
                                         password=coordinator["password"]))
    return found


def practice_coordinator_for(registrations: list[str] | tuple[str, ...] = ()) -> PracticeAccount | None:
    """The practice coordinator who approves an application for one of ``registrations`` (else the first one)."""
    accounts = practice_coordinators()
    wanted = {str(r).upper() for r in registrations}
    return next((a for a in accounts if a.registration in wanted), accounts[0] if accounts else None)


def welcome_letter() -> tuple[str, str]:
    """Subject and text of the first letter in the practice mailbox: who plays whom in training."""
    accounts = practice_coordinators()
    lines = "\n".join(f"  {a.registration_name} ({a.registration}): {a.full_name}\n"
                      f"    e-mail {a.email}\n    password {a.password}" for a in accounts)
    return ("Welcome to the practice mailbox", (
        "Welcome to CSOS Desk training.\n\n"
        "This practice mailbox stands in for the e-mails and letters DEA's certification authority sends: the "
        "sign-in codes, the reference number (by e-mail) and the access code (by post) all arrive here.\n\n"
        "In training, YOU also play the practice coordinator — the person at the pharmacy who approves CSOS "
        "applications. When the enrollment wizard waits for your coordinator, press \"Open approvals as the "
        "practice coordinator\": the sign-in below is filled in for you; the coordinator's one-time code arrives in "
        "this mailbox too.\n\n"
        "Practice coordinators:\n" + (lines or "  (none found)") + "\n\n"
        "These are practice accounts on this computer only. Nothing in training reaches DEA or a real supplier."))


def reset_training_data(config: Any) -> list[str]:
    """Throw away the training profile's practice data (order book, practice certificates and keys, sandbox,
    wizard progress) so the next start begins afresh; the logs stay. Returns what was removed."""
    import shutil

    if not config.is_training:
        raise ConfigError("Only training data can be started over.", code="config.not_training")
    folder = Path(config.data_dir)
    own_sqlite = str(config.database_url).startswith("sqlite") and str(folder.resolve()) in str(config.database_url)
    if not own_sqlite:
        raise ConfigError("This training profile keeps its order book in a shared database; CSOS Desk does not "
                          "empty a shared database. Ask whoever set it up.", code="config.shared_training_db")
    removed = []
    for child in sorted(folder.iterdir()) if folder.is_dir() else []:
        if child.name == "logs":
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()
        removed.append(child.name)
    log.info("training data started over (%d entries removed)", len(removed))
    return removed



#: the practice power of attorney (21 CFR 1305.05(d) wording, filled in for the practice pharmacy) a trainee attaches
SAMPLE_POA = Path(__file__).resolve().parents[1] / "resources" / "training" / "power-of-attorney-sample.pdf"
