"""`csos-desk history`, `history limit` and the warning line of `order sign` (issue 21), in real processes."""

from __future__ import annotations

import csv
import io
import json

from tests.integration.test_cli_sign import DEA, PASSWORD, _enrol, world  # noqa: F401 - fixture re-used


def test_order_sign_warns_above_the_monthly_limit_and_still_signs(world, tmp_path):
    pki, run = world
    _enrol(pki, run, tmp_path)
    refused = run("history", "limit", "--registration", DEA, "--substance", "aspirin", "--units", "5", expect=1)
    assert "not in the controlled-substance table" in refused.stderr
    run("history", "limit", "--registration", DEA, "--substance", "Oxycodone", "--units", "150")
    order = json.loads(run("order", "new", "--registration", DEA, "--supplier", "Acme Drug", "--json").stdout)
    number = order["order_number"]
    run("order", "add-line", number, "--ndc", "0406-0552-01", "--packages", "2")
    run("order", "add-line", number, "--ndc", "0009-0055-01", "--packages", "1")
    signed = run("order", "sign", number, "--password-stdin", "--json", stdin=PASSWORD + "\n")
    assert json.loads(signed.stdout)["status"] == "signed"  # a notice, never a block
    warnings = [line for line in signed.stderr.splitlines() if line.startswith("warning: Oxycodone")]
    assert len(warnings) == 1 and "above the 150 units a month you set" in warnings[0]
    # The audit trail keeps the notice printed before the password, with when it was worked out.
    (signing,) = [details for details in _audit_details(tmp_path, number) if details.get("to") == "signed"]
    assert ["warning: " + n["message"] for n in signing["unusual_quantity"]] == warnings
    assert signing["unusual_quantity_shown_at"]
    # The history now holds the order: oxycodone under its substance, in this month.
    history = json.loads(run("history", "--registration", DEA, "--json").stdout)
    substances = {row["substance"]: row for row in history["rows"]}
    assert substances["oxycodone"]["ordered_packages"] == 2 and substances["oxycodone"]["schedule"] == "II"
    assert substances["oxycodone"]["month"] == history["months"][-1]
    rows = list(csv.reader(io.StringIO(run("history", "--substance", "oxycodone", "--csv").stdout)))
    assert rows[0][0] == "registration" and [r[3] for r in rows[1:]] == ["oxycodone"]
    run("history", "limit", "--registration", DEA, "--substance", "oxycodone", "--remove")
    assert "twice your usual" in run("history", "limit", "--registration", DEA, "--substance", "oxycodone",
                                     "--remove").stdout


def _audit_details(tmp_path, order_number: str) -> list[dict]:
    from sqlalchemy import select

    from app.config import load_config
    from app.models.database import open_database
    from app.models.orderbook import AuditEvent, Order

    db = open_database(load_config(data_dir=tmp_path / "data", profile="training").database_url)
    try:
        with db.session() as session:
            order_id = session.scalar(select(Order.id).where(Order.order_number == order_number))
            return [event.details for event in session.scalars(select(AuditEvent)
                                                               .where(AuditEvent.order_id == order_id))]
    finally:
        db.close()
