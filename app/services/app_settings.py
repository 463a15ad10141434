"""The rules behind the Settings screen: what a valid value is, and changing a supplier with an audit trail.

Values live in the profile's settings.json (``AppConfig.settings``); suppliers live in the order book.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from app.errors import InvalidValue, NotFound
from app.models.values import DeaNumber
from app.services.orders import parties
from app.services.orders.parties import CONNECTOR_KINDS, FieldProblem, SupplierForm  # noqa: F401 (the screen's names)

if TYPE_CHECKING:
    from app.models.orderbook import Supplier

# SQLAlchemy, the models and app.services.orders.details are imported inside the functions that use them: the
# program's start reads ``remembered_profile`` before its first window, which must not wait for them (issue 9/10).

_HOSTNAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")


def sntp_server(settings: dict[str, Any]) -> str:
    from app.services.signing.clock import DEFAULT_SERVER  # here: the clock module (subprocess, socket) is not
    # needed before the first window, which imports this module

    return str(settings.get("sntp_server") or DEFAULT_SERVER)


def parse_sntp_server(text: str) -> str:
    """``host`` or ``host:port``, as the signing check reads it."""
    from app.services.signing.clock import DEFAULT_SERVER

    value = text.strip()
    if not value:
        return DEFAULT_SERVER
    host, _, port = value.rpartition(":") if value.count(":") == 1 else (value, "", "")
    if not _HOSTNAME.match(host):
        raise InvalidValue(f"“{host}” is not a server name. Use a name like time.nist.gov (optionally :port).",
                           code="settings.sntp_server")
    if port and (not port.isdigit() or not 0 < int(port) < 65536):
        raise InvalidValue(f"“{port}” is not a port number (1 to 65535).", code="settings.sntp_port")
    return value


def reminder_days(settings: dict[str, Any]) -> tuple[int, ...]:
    configured = settings.get("reminder_days")
    if isinstance(configured, list) and configured and all(isinstance(d, int) and d > 0 for d in configured):
        return tuple(sorted(set(configured), reverse=True))
    from app.services.orders.details import DEFAULT_REMINDER_DAYS

    return DEFAULT_REMINDER_DAYS


def parse_reminder_days(text: str) -> list[int]:
    """"45, 30, 14, 7, 1" → [45, 30, 14, 7, 1]."""
    parts = [p for p in re.split(r"[,\s;]+", text.strip()) if p]
    if not parts:
        raise InvalidValue("Enter at least one number of days, e.g. 45, 30, 14, 7, 1.", code="settings.reminder_days")
    days: set[int] = set()
    for part in parts:
        if not part.isdigit() or not 1 <= int(part) <= 365:
            raise InvalidValue(f"“{part}” is not a number of days from 1 to 365. Separate the numbers with commas.",
                               code="settings.reminder_days")
        days.add(int(part))
    return sorted(days, reverse=True)


def check_database_url(text: str) -> str:
    """An SQLAlchemy URL, or empty for the default file in the data folder."""
    value = text.strip()
    if not value:
        return ""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(value)
    except ArgumentError:
        raise InvalidValue("This is not a database address. Use e.g. postgresql://user@server/csos, or leave it "
                           "empty for the order book in the data folder.", code="settings.database_url") from None
    if url.get_backend_name() not in ("sqlite", "postgresql"):
        raise InvalidValue(f"CSOS Desk works with SQLite or PostgreSQL, not “{url.get_backend_name()}”.",
                           code="settings.database_url")
    return value


def check_module_paths(paths: Sequence[str]) -> list[str]:
    """PKCS#11 module files (the token maker's driver); each must exist."""
    checked: list[str] = []
    for raw in paths:
        path = raw.strip()
        if not path:
            continue
        if not Path(path).is_file():
            raise InvalidValue(f"The token driver {path} does not exist. Check the path, or install the software "
                               "that came with the token.", code="settings.pkcs11_module")
        if path not in checked:
            checked.append(path)
    return checked


# -- suppliers ----------------------------------------------------------------------------------------------------


# One check per record type, shared with the command line and the order book (app.services.orders.parties), so the
# Settings screen and `csos-desk supplier add|edit` say the same thing about the same value.
check_supplier = parties.check_supplier


def connector_settings(form: SupplierForm, previous: dict[str, Any] | None = None) -> dict[str, Any]:
    connector: dict[str, Any] = {"kind": form.kind}
    if form.kind == "as2":
        from cryptography.hazmat.primitives.serialization import Encoding

        from app.services.transport.as2 import load_partner_certificate, partner_certificate_pem

        if previous and previous.get("kind") == "as2":
            connector.update(previous)  # keeps what the form does not show (encryption, content type, records)
        certificate = (form.as2_certificate or "").strip()
        connector.update(url=form.url.strip(), partner_as2_id=(form.as2_partner_id or "").strip(),
                         partner_certificate=load_partner_certificate(certificate).public_bytes(Encoding.PEM).decode()
                         if "-----BEGIN" in certificate else partner_certificate_pem(certificate))
        for key, value in (("encryption", "aes256_cbc"), ("signature", "sha256"),
                           ("content_type", "application/x-csos-signed-order")):
            connector.setdefault(key, value)
    elif form.kind == "https":
        connector["url"] = form.url.strip().rstrip("/")
        if form.tls_bundle.strip():
            connector["tls_bundle"] = form.tls_bundle.strip()
    elif form.kind == "folder":
        connector["folder"] = form.folder.strip()
    return connector


def form_of(supplier: Supplier) -> SupplierForm:
    connector = supplier.connector or {}
    return SupplierForm(name=supplier.name, dea_number=supplier.dea_number or "",
                        address_lines=tuple(supplier.address_lines or ()), city=supplier.city or "",
                        state=supplier.state or "", postal_code=supplier.postal_code or "",
                        kind=str(connector.get("kind") or "manual"), url=str(connector.get("url") or ""),
                        folder=str(connector.get("folder") or ""), tls_bundle=str(connector.get("tls_bundle") or ""),
                        as2_partner_id=str(connector.get("partner_as2_id") or ""),
                        as2_certificate=str(connector.get("partner_certificate") or ""))


def _raise_first(problems: list[FieldProblem]) -> None:
    if problems:
        raise InvalidValue(problems[0].message, code=problems[0].code)


def add_supplier(book: Any, form: SupplierForm) -> int:
    _raise_first(check_supplier(form))
    supplier = book.add_supplier(name=form.name, dea_number=form.dea_number.strip() or None,
                                 address_lines=list(form.address_lines), city=form.city.strip() or None,
                                 state=form.state.strip() or None, postal_code=form.postal_code.strip() or None,
                                 connector=connector_settings(form))
    return supplier.id


def update_supplier(book: Any, supplier_id: int, form: SupplierForm) -> None:
    """Change a supplier's details and connector; orders already signed keep what they were signed with."""
    from sqlalchemy import select
    from sqlalchemy.exc import SQLAlchemyError

    from app.models.database import explain_storage_failure
    from app.models.integrity import append_audit_event
    from app.models.orderbook import Supplier

    _raise_first(check_supplier(form))
    try:
        with book.db.session() as session, session.begin():
            supplier = session.get(Supplier, supplier_id)
            if supplier is None:
                raise NotFound("This supplier is no longer in the order book.", code="supplier.not_found")
            name = form.name.strip()
            others = session.execute(select(Supplier.id, Supplier.name).where(Supplier.id != supplier_id)).all()
            clash = parties.same_name(others, name)
            if clash:
                raise InvalidValue(f"Another supplier is already called “{clash[0][1]}” (capitals do not count). "
                                   "Use a different name.",
                                   code="supplier.duplicate")
            before = form_of(supplier)
            supplier.name = name
            supplier.dea_number = DeaNumber.parse(form.dea_number).value if form.dea_number.strip() else None
            supplier.address_lines = [line.strip() for line in form.address_lines if line.strip()]
            supplier.city = form.city.strip() or None
            supplier.state = form.state.strip().upper() or None
            supplier.postal_code = form.postal_code.strip() or None
            supplier.connector = connector_settings(form, previous=supplier.connector)
            changed = sorted(key for key, old in before.__dict__.items()
                             if old != form_of(supplier).__dict__[key])
            append_audit_event(session, action="supplier.updated", actor=book.actor,
                               details={"supplier_id": supplier_id, "name": name, "changed": changed})
    except SQLAlchemyError as exc:
        raise explain_storage_failure(exc, book.db.url) from exc


# -- which profile opens when none is given ----------------------------------------------------------------------

from app.config import PROFILE_CHOICE_FILE, remembered_profile  # noqa: E402,F401 - the start reads it from app.config


def remember_profile(data_root: Path, profile: str) -> None:
    """Remember the profile chosen in Settings, next to (not inside) the profiles' own folders."""
    import json
    import os

    if profile not in ("training", "production"):
        raise InvalidValue(f"'{profile}' is not a profile; use training or production.", code="config.profile")
    data_root.mkdir(parents=True, exist_ok=True)
    target = data_root / PROFILE_CHOICE_FILE
    tmp = target.with_suffix(".tmp")
    tmp.write_text(json.dumps({"profile": profile}))
    os.replace(tmp, target)

