"""Getting started: the short checklist a new pharmacy follows, read from what the order book already holds.

Why a service: the checklist must know the state (a certificate installed, registrations and suppliers present, a
first order sent) and say what each step still needs, the same way in the window and in tests — without Qt. The
screen (app/ui/getting_started.py) only shows these steps and turns each ``action`` into the window that does it.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

from sqlalchemy import func, select

from app.errors import CsosError
from app.models.orderbook import CertificateRecord, CertificateStatus, Order, Registration, Supplier
from app.models.states import OrderStatus

log = logging.getLogger(__name__)

#: orders that count as "your first order is done": it left the pharmacy (sent, answered, received …)
SENT_STATES = frozenset(OrderStatus) - {OrderStatus.DRAFT, OrderStatus.SIGNED, OrderStatus.QUEUED,
                                        OrderStatus.CANCELLED}


@dataclass(frozen=True)
class Action:
    """A button on a step: ``key`` names what the window opens (``enroll``, ``import``, ``registrations``, …)."""

    label: str
    key: str


@dataclass(frozen=True)
class ChecklistStep:
    key: str
    title: str
    done: bool
    text: str
    actions: tuple[Action, ...] = ()
    items: tuple[str, ...] = ()  # one line per registration or supplier found


@dataclass(frozen=True)
class Checklist:
    steps: tuple[ChecklistStep, ...] = field(default_factory=tuple)

    @property
    def done(self) -> int:
        return sum(1 for step in self.steps if step.done)

    @property
    def complete(self) -> bool:
        return all(step.done for step in self.steps)

    def step(self, key: str) -> ChecklistStep:
        return next(step for step in self.steps if step.key == key)


def how_reached(connector: dict[str, Any] | None) -> str:
    """How orders reach a supplier, in the words of the counter (not the connector's kind)."""
    connector = connector or {}
    kind = connector.get("kind", "manual")
    if kind in ("https", "as2"):
        host = urlparse(str(connector.get("url") or "")).hostname or "the supplier's server"
        where = "the practice supplier on this computer" if host in ("127.0.0.1", "localhost", "::1") else host
        return f"sent over the internet to {where}"
    if kind == "folder":
        return "left in a shared folder the supplier collects from"
    if kind == "manual":
        return "saved as a file you upload to the supplier yourself"
    return "not set up yet: choose how orders reach this supplier in Settings"


def getting_started(db: Any, *, training: bool, trust_roots: bool | None = None,
                    now: dt.datetime | None = None) -> Checklist:
    """The checklist for this order book. ``trust_roots``: whether CSOS trust roots are set up (production only;
    None = not asked, the step is left out)."""
    now = now or dt.datetime.now(dt.timezone.utc)
    with db.session() as session:
        certificates = list(session.scalars(select(CertificateRecord).where(
            CertificateRecord.kind == "signing", CertificateRecord.status == CertificateStatus.ACTIVE)))
        registrations = list(session.scalars(select(Registration).order_by(Registration.dea_number)))
        suppliers = list(session.scalars(select(Supplier).order_by(Supplier.name)))
        drafts = session.scalar(select(func.count()).select_from(Order).where(
            Order.status.in_((OrderStatus.DRAFT, OrderStatus.SIGNED, OrderStatus.QUEUED)))) or 0
        sent = session.scalar(select(func.count()).select_from(Order).where(Order.status.in_(SENT_STATES))) or 0
        usable = [c for c in certificates if c.not_after is None or c.not_after > now]
        cert_lines = tuple(f"{c.subscriber_name} — {c.registration.dea_number if c.registration else ''}, "
                           f"valid until {c.not_after:%m/%d/%Y}" if c.not_after else c.subscriber_name
                           for c in usable)
    steps: list[ChecklistStep] = []
    if trust_roots is not None:
        steps.append(ChecklistStep(
            "trust_roots", "CSOS trust roots", trust_roots,
            "Set up." if trust_roots else
            "CSOS Desk checks every certificate against DEA's CSOS root certificates. Add the root certificate "
            "file you received from DEA or your CSOS coordinator.",
            (Action("Open Settings…", "trust_roots"),)))
    practice = " (practice certificate from the training portal)" if training else ""
    steps.append(ChecklistStep(
        "certificate", "Your CSOS certificate", bool(usable),
        ("You can sign orders with it." if usable else
         f"A CSOS signing certificate{practice} lets you sign orders for Schedule II–V substances. Enroll for one, "
         "or import the .p12 file you already have."),
        (Action("Enroll…", "enroll"), Action("Import a .p12…", "import")), cert_lines))
    reg_lines = tuple(f"{r.dea_number} — {r.name}, {r.city} {r.state}" for r in registrations)
    sup_lines = tuple(f"{s.name}: {how_reached(s.connector)}" for s in suppliers)
    parties_done = bool(registrations) and bool(suppliers)
    missing = [what for what, have in (("your DEA registration", registrations), ("a supplier", suppliers))
               if not have]
    steps.append(ChecklistStep(
        "parties", "Your DEA registration(s) and suppliers", parties_done,
        "Orders are made for a registration and sent to a supplier." if parties_done else
        f"Add {' and '.join(missing)}: orders are made for a registration and sent to a supplier.",
        (Action("Registrations…", "registrations"), Action("Suppliers…", "suppliers")),
        tuple(f"Registration {line}" for line in reg_lines) + tuple(f"Supplier {line}" for line in sup_lines)))
    steps.append(ChecklistStep(
        "first_order", "Your first order", bool(sent),
        "Sent." if sent else
        ("A draft is waiting: open it from the list, sign it and send it." if drafts else
         "Prepare an order, sign it with your certificate and send it to your supplier."),
        (Action("New order…", "new_order"),)))
    return Checklist(tuple(steps))


def trust_roots_present(config: Any) -> bool:
    """Whether CSOS trust roots are set up for this profile (the checklist's production step)."""
    try:
        from app.services.certificates.trust import configured_trust_roots

        return bool(configured_trust_roots(config))
    except CsosError as exc:
        log.info("no CSOS trust roots: %s", exc.code)
        return False




# -- the registrations screen's rows (also Qt-free): each registration and the certificate that matches it ------------


@dataclass(frozen=True)
class RegistrationRow:
    dea_number: str
    name: str
    address_lines: tuple[str, ...]
    city: str
    state: str
    postal_code: str
    schedules: tuple[str, ...]
    expires_on: dt.date | None
    certificate: str  # who holds an active certificate issued for this DEA number (by its deaNumberHash), or ""
    in_use: bool  # orders or certificates refer to it: it can be changed, not removed


def registration_rows(db: Any, *, now: dt.datetime | None = None) -> list[RegistrationRow]:
    """Every registration with the installed certificate whose DEA hash matches it (the profile's own check)."""
    from app.services.certificates.profile import CsosCertificate

    now = now or dt.datetime.now(dt.timezone.utc)
    with db.session() as session:
        registrations = list(session.scalars(select(Registration).order_by(Registration.dea_number)))
        certificates = list(session.scalars(select(CertificateRecord).where(
            CertificateRecord.kind == "signing", CertificateRecord.status == CertificateStatus.ACTIVE)))
        used_by_orders = set(session.scalars(select(Order.registration_id).distinct()))
        used_by_certificates = {c.registration_id for c in session.scalars(select(CertificateRecord))}
    views = []
    for record in certificates:
        if not record.certificate_der or (record.not_after is not None and record.not_after <= now):
            continue
        try:
            views.append((record, CsosCertificate.from_der(record.certificate_der)))
        except CsosError as exc:
            log.info("certificate not readable for the registrations screen: %s", exc.code)
    rows = []
    for reg in registrations:
        match = next((record for record, view in views if view.matches_dea(reg.dea_number)), None)
        rows.append(RegistrationRow(
            dea_number=reg.dea_number, name=reg.name, address_lines=tuple(reg.address_lines or ()), city=reg.city,
            state=reg.state, postal_code=reg.postal_code,
            schedules=tuple(s for s in (reg.schedules or "").split(",") if s), expires_on=reg.expires_on,
            certificate=(f"{match.subscriber_name}, valid until {match.not_after:%m/%d/%Y}" if match and
                         match.not_after else (match.subscriber_name if match else "")),
            in_use=reg.id in used_by_orders or reg.id in used_by_certificates))
    return rows


__all__ = ["Action", "Checklist", "ChecklistStep", "RegistrationRow", "getting_started", "how_reached",
           "registration_rows", "trust_roots_present"]
