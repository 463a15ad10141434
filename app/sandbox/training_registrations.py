"""Training: the practice portal learns a registration added on this computer (issue 22, a second registration).

In production DEA's portal knows every registration. The practice portal only knew the seeded ones, so a
registration the trainee added locally ended in "The sandbox has no registration …". ``POST
/portal/_training/registrations`` adds it, with the practice coordinator (the trainee plays them) as its
coordinator, so enrolling for it, approving and ordering work as for the seeded ones. Idempotent.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import Blueprint, jsonify, request
from sqlalchemy import select

from app.errors import CsosError
from app.models.values import DeaNumber
from app.sandbox.api import SandboxApiError, json_body, text_field
from app.sandbox.state import Coordinator, SandboxRegistration

SCHEDULES = ("II", "IIN", "III", "IIIN", "IV", "V")


def learn_registration(portal: Any, data: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """Add the registration (201) or say it is known already (200). Its coordinator: the first practice one."""
    try:
        number = DeaNumber.parse(text_field(data, "dea_number", max_length=9) or "").value
    except CsosError as exc:
        raise SandboxApiError(400, "invalid_dea_number", exc.message, field="dea_number") from None
    schedules = [s for s in data.get("schedules") or [] if s in SCHEDULES]
    expires = data.get("expires_on")
    try:
        day = dt.date.fromisoformat(expires) if expires else (portal.now() + dt.timedelta(days=365)).date()
    except (TypeError, ValueError):
        raise SandboxApiError(400, "invalid_date", "expires_on must be a date (YYYY-MM-DD).",
                              field="expires_on") from None
    with portal.lock, portal.state.session() as session:
        row = session.get(SandboxRegistration, number)
        if row is not None:
            return 200, {"registration": portal.registration_json(session, row), "added": False}
        row = SandboxRegistration(
            dea_number=number, name=text_field(data, "name", max_length=64) or number,
            address_lines=[str(a)[:60] for a in (data.get("address_lines") or [])][:3],
            city=str(data.get("city") or "")[:60], state=str(data.get("state") or "")[:2],
            postal_code=str(data.get("postal_code") or "")[:15],
            business_activity=str(data.get("business_activity") or "RETAIL PHARMACY")[:60],
            schedules=schedules, expires_at=dt.datetime.combine(day, dt.time(23, 59, 59), dt.timezone.utc),
            renewal_requires_approval=True)
        session.add(row)
        first = session.scalar(select(Coordinator).where(Coordinator.role == "principal").order_by(Coordinator.id))
        if first is not None:
            session.add(Coordinator(registration_dea=number, account_id=first.account_id, role="principal"))
        session.commit()
        return 201, {"registration": portal.registration_json(session, row), "added": True}


def training_registrations_blueprint(portal: Any) -> Blueprint:
    bp = Blueprint("training_registrations", __name__)

    @bp.post("/portal/_training/registrations")
    def learn():
        status, body = learn_registration(portal, json_body(request))
        return jsonify(body), status

    return bp


__all__ = ["learn_registration", "training_registrations_blueprint"]
