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
    if book.summary().products == 0:
        product_txt, package_txt = bundled_catalog_paths()
        import_fda_catalog(book.db, product_txt, package_txt, source="training sample")
    log.info("training sandbox running at %s", sandbox.base_url)
    return TrainingEnvironment(sandbox=sandbox, settings_changed=changed)


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
