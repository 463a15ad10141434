"""Training suppliers over real HTTPS: orders signed with certificates from the sandbox CA (full enrollment),
verified by the shared verifier, answered with X12 855/856/865 records; idempotency, lost orders, controls, faults,
the Schedule II report."""

from __future__ import annotations

import base64
import csv
import dataclasses
import datetime as dt
import io
import json
import time

import pytest
import requests

from app.models.values import PackageUnit
from app.sandbox import start_sandbox
from app.services.signing.cms import MEDIA_TYPE, sign_content
from app.services.signing.x12 import (
    AckStatus,
    LineStatus,
    OrderLine850,
    Party,
    PurchaseOrder,
    parse_855,
    parse_856,
    parse_865,
    write_850,
)
from tests.integration.conftest import CLINIC, PHARMACY, Enrolled, SandboxClient, new_order_number
from tests.pki import build_training_pki
from tests.signers import KeySigner

pytestmark = pytest.mark.integration

OXYCODONE = ("00406055201", "Oxycodone Hydrochloride 5 mg", 100)  # CII (narcotic)
XANAX = ("00009005501", "Xanax 0.5 mg", 100)  # CIV
VYVANSE = ("59417010310", "Vyvanse 30 mg", 100)  # CIIN, backordered at blue-river
AMOXICILLIN = ("65862001701", "Amoxicillin 500 mg", 100)  # not controlled


def now() -> dt.datetime:
    """Read when a test runs, not when the file is collected: the module's certificates are issued when its first
    test runs, and in a long suite a collection-time "now" came before their notBefore (orders refused)."""
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


@dataclasses.dataclass
class World:
    sandbox: object
    client: SandboxClient
    pharmacy: Enrolled  # BJ6125341, schedules II-V
    clinic: Enrolled  # FR3141594, schedules III-V
    coordinator: Enrolled  # administrative certificate

    def post(self, slug: str, body: bytes, *, path: str = "orders", content_type: str = MEDIA_TYPE,
             timeout: float = 30) -> requests.Response:
        return requests.post(self.sandbox.supplier(slug).url + "/" + path, data=body,
                             headers={"Content-Type": content_type}, verify=str(self.sandbox.tls_bundle),
                             timeout=timeout)

    def control(self, slug: str, action: str, body: dict) -> requests.Response:
        return requests.post(f"{self.sandbox.supplier(slug).url}/_training/{action}", json=body,
                             verify=str(self.sandbox.tls_bundle), timeout=30)

    def records(self, slug: str, purchaser: str, number: str, after: int = 0) -> requests.Response:
        return requests.get(f"{self.sandbox.supplier(slug).url}/orders/{purchaser}/{number}/records",
                            params={"after": after}, verify=str(self.sandbox.tls_bundle), timeout=30)


@pytest.fixture(scope="module")
def world(sandbox, sandbox_client) -> World:
    return World(sandbox=sandbox, client=sandbox_client, pharmacy=sandbox_client.enroll(PHARMACY),
                 clinic=sandbox_client.enroll(CLINIC),
                 coordinator=sandbox_client.enroll(PHARMACY, role="coordinator",
                                                   full_name=PHARMACY["coordinator"]["full_name"]))


def make_order(registration: dict, supplier, *lines, number: str | None = None,
               signed: dt.datetime | None = None) -> PurchaseOrder:
    signed = signed or now()
    return PurchaseOrder(
        order_number=number or new_order_number(signed), date_signed=signed.date(),
        purchaser=Party(name=registration["name"], dea_number=registration["dea_number"],
                        address_lines=tuple(registration["address_lines"]), city=registration["city"],
                        state=registration["state"], postal_code=registration["postal_code"]),
        supplier=Party(name=supplier.name, dea_number=supplier.dea_number),
        lines=tuple(OrderLine850(i, packages, ndc, name, quantity, PackageUnit.EACH)
                    for i, ((ndc, name, quantity), packages) in enumerate(lines, start=1)),
    )


def sign(subscriber: Enrolled, order: PurchaseOrder, *, signed: dt.datetime | None = None) -> bytes:
    signed = signed or now()
    content = write_850(order, interchange_control_number=1, group_control_number=1,
                        sender_id=order.purchaser.dea_number, receiver_id=order.supplier.dea_number or "SUPPLIER",
                        created_at=signed)
    return sign_content(content, signer=KeySigner(subscriber.key), certificate_der=subscriber.der,
                        intermediates_der=subscriber.intermediates_der, signing_time=signed)


def ack_of(answer: dict):
    assert answer["acknowledgement"]["kind"] == "855" and answer["acknowledgement"]["seq"] == 1
    assert answer["acknowledgement"]["media_type"] == "application/edi-x12"
    return parse_855(base64.b64decode(answer["acknowledgement"]["data_base64"]))


def codes(answer: dict) -> set[str]:
    return {reason["code"] for reason in answer["reasons"]}


# -- orders ---------------------------------------------------------------------------------------------------------


def test_a_good_order_is_accepted_with_an_855(world):
    acme = world.sandbox.supplier("acme")
    order = make_order(PHARMACY, acme, (OXYCODONE, 2), (AMOXICILLIN, 1))
    response = world.post("acme", sign(world.pharmacy, order))
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["status"] == "accepted" and answer["reasons"] == []
    assert (answer["order_number"], answer["purchaser_dea"]) == (order.order_number, PHARMACY["dea_number"])
    ack = ack_of(answer)
    assert ack.status is AckStatus.ACCEPTED and ack.order_number == order.order_number
    assert [(line.line_number, line.status, line.quantity) for line in ack.lines] == [
        (1, LineStatus.ACCEPTED, 2), (2, LineStatus.ACCEPTED, 1)]
    records = world.records("acme", PHARMACY["dea_number"], order.order_number).json()["records"]
    assert [(r["seq"], r["kind"]) for r in records] == [(1, "855")]
    assert records[0]["data_base64"] == answer["acknowledgement"]["data_base64"]
    dt.datetime.fromisoformat(records[0]["created_at"])


def test_resubmission_is_idempotent_and_a_reused_number_is_refused(world):
    acme = world.sandbox.supplier("acme")
    order = make_order(PHARMACY, acme, (XANAX, 1))
    document = sign(world.pharmacy, order)
    first = world.post("acme", document)
    second = world.post("acme", document)
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json()
    assert len(world.records("acme", PHARMACY["dea_number"], order.order_number).json()["records"]) == 1

    changed = dataclasses.replace(order, lines=(OrderLine850(1, 5, *XANAX[:2], 100, PackageUnit.EACH),))
    reused = world.post("acme", sign(world.pharmacy, changed))
    assert reused.status_code == 409 and reused.json()["error"] == "order_number_reused"

    # Order numbers are unique per purchaser registration: another purchaser may use the same one.
    theirs = make_order(CLINIC, acme, (XANAX, 1), number=order.order_number)
    other = world.post("acme", sign(world.clinic, theirs))
    assert other.status_code == 200 and other.json()["status"] == "accepted"
    # ... and each supplier keeps its own books.
    elsewhere = world.post("summit", sign(world.pharmacy, dataclasses.replace(
        order, supplier=Party(name="Summit Medical Supply", dea_number=world.sandbox.supplier("summit").dea_number))))
    assert elsewhere.json()["status"] == "accepted"


def test_orders_are_not_accepted_for_each_reason_with_a_statement_of_non_acceptance(world, tmp_path):
    acme = world.sandbox.supplier("acme")
    cases: dict[str, bytes] = {}
    cases["schedule_not_authorized"] = sign(world.clinic, make_order(CLINIC, acme, (OXYCODONE, 1)))
    cases["dea_number_mismatch"] = sign(world.pharmacy, make_order(CLINIC, acme, (XANAX, 1)))
    cases["unknown_product"] = sign(world.pharmacy, make_order(
        PHARMACY, acme, (("12345678901", "Nothing 1 mg", 100), 1)))
    cases["not_signing_certificate"] = sign(world.coordinator, make_order(PHARMACY, acme, (XANAX, 1)))
    cases["wrong_supplier"] = sign(world.pharmacy, make_order(PHARMACY, world.sandbox.supplier("summit"), (XANAX, 1)))
    old = now() - dt.timedelta(days=61)
    cases["order_expired"] = sign(world.pharmacy, make_order(PHARMACY, acme, (XANAX, 1), signed=old), signed=old)
    good = sign(world.pharmacy, make_order(PHARMACY, acme, (XANAX, 1)))
    cases["content_altered"] = good.replace(b"Xanax 0.5 mg", b"Xanax 2.0 mg")
    impostor = build_training_pki(tmp_path, fresh_keys=True)  # same CA names, different keys
    fake = impostor.issue(dea=PHARMACY["dea_number"])
    forged = Enrolled(email="", full_name="", token="", key=fake.key, certificate=fake.cert,
                      chain=[impostor.sub.certificate, impostor.root.certificate], serial="")
    cases["untrusted_chain"] = sign(forged, make_order(PHARMACY, acme, (XANAX, 1)))

    for expected, document in cases.items():
        response = world.post("acme", document)
        assert response.status_code == 200, (expected, response.text)
        answer = response.json()
        assert answer["status"] == "rejected", expected
        assert expected in codes(answer), (expected, answer["reasons"])
        ack = ack_of(answer)
        assert ack.status is AckStatus.REJECTED
        assert expected in ack.reason and ack.reason.startswith("NOT ACCEPTED")
        assert all(line.status is LineStatus.REJECTED for line in ack.lines)


def test_a_revoked_certificate_cannot_order(world):
    client = world.client
    subscriber = client.enroll(PHARMACY)
    revoked = client.post(f"/certificates/{subscriber.serial}/revoke", client.coordinator_token(PHARMACY),
                          json={"reason": "employment_ended"})
    assert revoked.status_code == 200
    answer = world.post("acme", sign(subscriber, make_order(PHARMACY, world.sandbox.supplier("acme"),
                                                            (XANAX, 1)))).json()
    assert answer["status"] == "rejected" and "certificate_revoked" in codes(answer)


def test_unreadable_or_mislabelled_documents_get_clear_errors(world):
    assert world.post("acme", b"hello").json()["error"] == "unreadable_order"
    assert world.post("acme", b"hello").status_code == 422
    document = sign(world.pharmacy, make_order(PHARMACY, world.sandbox.supplier("acme"), (XANAX, 1)))
    wrong_type = world.post("acme", document, content_type="application/octet-stream")
    assert wrong_type.status_code == 415 and wrong_type.json()["error"] == "unsupported_media_type"
    empty = world.post("acme", b"")
    assert empty.status_code == 400 and empty.json()["error"] == "empty_body"
    nobody = requests.post(world.sandbox.base_url + "/suppliers/nobody/orders", data=document,
                           headers={"Content-Type": MEDIA_TYPE}, verify=str(world.sandbox.tls_bundle), timeout=30)
    assert nobody.status_code == 404 and nobody.json()["error"] == "unknown_supplier"
    unknown = world.records("acme", PHARMACY["dea_number"], new_order_number())
    assert unknown.status_code == 404 and unknown.json()["error"] == "unknown_order"
    assert world.records("acme", "BJ6125342", "26X000001").status_code == 400


def test_backordered_lines_make_an_acceptance_with_changes(world):
    blue = world.sandbox.supplier("blue-river")
    answer = world.post("blue-river", sign(world.pharmacy, make_order(PHARMACY, blue, (VYVANSE, 3),
                                                                      (XANAX, 1)))).json()
    assert answer["status"] == "accepted_with_changes"
    ack = ack_of(answer)
    assert ack.status is AckStatus.ACCEPTED_WITH_CHANGES
    assert [(line.status, line.quantity) for line in ack.lines] == [(LineStatus.BACKORDERED, 3),
                                                                    (LineStatus.ACCEPTED, 1)]


def test_the_operator_can_reject_the_next_order(world):
    summit = world.sandbox.supplier("summit")
    assert world.control("summit", "reject", {"next": 1, "reason": "Credit hold"}).json()["reject_next"] == 1
    first = world.post("summit", sign(world.pharmacy, make_order(PHARMACY, summit, (XANAX, 1)))).json()
    second = world.post("summit", sign(world.pharmacy, make_order(PHARMACY, summit, (XANAX, 1)))).json()
    assert first["status"] == "rejected" and codes(first) == {"supplier_declined"}
    assert "Credit hold" in ack_of(first).reason
    assert second["status"] == "accepted"


# -- lost orders (O7) -----------------------------------------------------------------------------------------------


def statement_for(subscriber: Enrolled, registration: dict, number: str) -> bytes:
    content = json.dumps({"type": "lost_order_statement", "order_number": number,
                          "purchaser_dea": registration["dea_number"], "date": now().date().isoformat(),
                          "lines_not_received": [{"line_number": 1, "ndc": XANAX[0], "packages": 1}]}).encode()
    return sign_content(content, signer=KeySigner(subscriber.key), certificate_der=subscriber.der,
                        intermediates_der=subscriber.intermediates_der, signing_time=now())


def test_after_a_lost_order_statement_the_late_original_is_not_accepted(world):
    acme = world.sandbox.supplier("acme")
    original = make_order(PHARMACY, acme, (XANAX, 1))
    recorded = world.post("acme", statement_for(world.pharmacy, PHARMACY, original.order_number), path="statements")
    assert recorded.status_code == 200 and recorded.json() == {"status": "recorded"}
    late = world.post("acme", sign(world.pharmacy, original)).json()
    assert late["status"] == "rejected" and "lost_order_replaced" in codes(late)
    assert "lost_order_replaced" in ack_of(late).reason
    replacement = world.post("acme", sign(world.pharmacy, make_order(PHARMACY, acme, (XANAX, 1)))).json()
    assert replacement["status"] == "accepted"

    wrong_signer = world.post("acme", statement_for(world.clinic, PHARMACY, new_order_number()), path="statements")
    assert wrong_signer.status_code == 422
    assert "dea_number_mismatch" in {r["code"] for r in wrong_signer.json()["reasons"]}
    not_signed = world.post("acme", b"{}", path="statements")
    assert not_signed.status_code == 422 and not_signed.json()["error"] == "statement_rejected"


# -- shipments, voids, the Schedule II report -------------------------------------------------------------------------


def test_partial_shipments_and_voids_produce_parseable_records(world):
    acme = world.sandbox.supplier("acme")
    order = make_order(PHARMACY, acme, (OXYCODONE, 5), (XANAX, 2), (AMOXICILLIN, 1))
    assert world.post("acme", sign(world.pharmacy, order)).json()["status"] == "accepted"
    key = {"purchaser_dea": PHARMACY["dea_number"], "order_number": order.order_number}
    later = (now() + dt.timedelta(days=3)).date()
    first = world.control("acme", "ship", {**key, "lines": [{"line_number": 1, "packages": 2}],
                                          "ship_date": later.isoformat()})
    assert first.status_code == 200, first.text
    assert first.json()["record"]["seq"] == 2
    shipment = parse_856(base64.b64decode(first.json()["record"]["data_base64"]))
    assert shipment.ship_date == later and shipment.order_number == order.order_number
    assert [(line.line_number, line.ndc, line.packages_shipped) for line in shipment.lines] == [(1, OXYCODONE[0], 2)]

    too_many = world.control("acme", "ship", {**key, "lines": [{"line_number": 1, "packages": 4}]})
    assert too_many.status_code == 409 and too_many.json()["error"] == "exceeds_remaining"
    too_late = world.control("acme", "ship", {**key, "ship_date": (now() + dt.timedelta(days=61)).date().isoformat()})
    assert too_late.status_code == 409 and too_late.json()["error"] == "beyond_60_days"
    shipped_void = world.control("acme", "void", {**key, "lines": [1], "reason": "no"})
    assert shipped_void.json()["error"] == "line_already_shipped"
    whole = world.control("acme", "void", {**key, "lines": None, "reason": "no"})
    assert whole.json()["error"] == "already_shipped"

    void = world.control("acme", "void", {**key, "lines": [2], "reason": "Discontinued by maker"})
    assert void.status_code == 200
    notice = parse_865(base64.b64decode(void.json()["record"]["data_base64"]))
    assert not notice.whole_order and notice.voided_lines == (2,) and notice.reason == "Discontinued by maker"

    rest = world.control("acme", "ship", {**key, "lines": None})  # everything still open: line 1 (3), line 3 (1)
    shipped = parse_856(base64.b64decode(rest.json()["record"]["data_base64"]))
    assert [(line.line_number, line.packages_shipped) for line in shipped.lines] == [(1, 3), (3, 1)]
    assert world.control("acme", "ship", {**key}).json()["error"] == "nothing_to_ship"

    records = world.records("acme", PHARMACY["dea_number"], order.order_number).json()["records"]
    assert [(r["seq"], r["kind"]) for r in records] == [(1, "855"), (2, "856"), (3, "865"), (4, "856")]
    after = world.records("acme", PHARMACY["dea_number"], order.order_number, after=2).json()["records"]
    assert [r["seq"] for r in after] == [3, 4]

    report = requests.get(acme.url + "/reports/filled-schedule-ii.csv", verify=str(world.sandbox.tls_bundle),
                          timeout=30)
    assert report.headers["Content-Type"].startswith("text/csv")
    rows = [r for r in csv.DictReader(io.StringIO(report.text)) if r["order_number"] == order.order_number]
    # Only the Schedule II line, one row per shipment, in ship-date order (the second shipment went out today).
    assert [(r["line_number"], r["packages_shipped"], r["schedule"], r["ship_date"]) for r in rows] == [
        ("1", "3", "II", now().date().isoformat()), ("1", "2", "II", later.isoformat())]
    due = dt.date.fromisoformat(rows[1]["report_due_by"])
    assert due > later and due.weekday() < 5 and (due - later).days <= 4


def test_a_whole_order_void_and_auto_shipping(world):
    summit = world.sandbox.supplier("summit")
    order = make_order(PHARMACY, summit, (XANAX, 1))
    world.post("summit", sign(world.pharmacy, order))
    key = {"purchaser_dea": PHARMACY["dea_number"], "order_number": order.order_number}
    void = world.control("summit", "void", {**key, "lines": None, "reason": "Out of stock"})
    notice = parse_865(base64.b64decode(void.json()["record"]["data_base64"]))
    assert notice.whole_order and notice.voided_lines == ()
    assert world.control("summit", "ship", key).json()["error"] == "order_voided"

    assert world.control("summit", "auto", {"ship": True}).json() == {"auto": {"ship": True}}
    try:
        auto = make_order(PHARMACY, summit, (XANAX, 2), (AMOXICILLIN, 1))
        assert world.post("summit", sign(world.pharmacy, auto)).json()["status"] == "accepted"
    finally:
        world.control("summit", "auto", {"ship": False})
    records = world.records("summit", PHARMACY["dea_number"], auto.order_number).json()["records"]
    assert [r["kind"] for r in records] == ["855", "856"]
    shipment = parse_856(base64.b64decode(records[1]["data_base64"]))
    assert [(line.line_number, line.packages_shipped) for line in shipment.lines] == [(1, 2), (2, 1)]


# -- fault switches ----------------------------------------------------------------------------------------------------


def test_fail_next_answers_503_that_many_times_without_recording(world):
    acme = world.sandbox.supplier("acme")
    order = make_order(PHARMACY, acme, (XANAX, 1))
    document = sign(world.pharmacy, order)
    assert world.control("acme", "faults", {"fail_next": 2}).json()["faults"]["fail_next"] == 2
    answers = [world.post("acme", document) for _ in range(2)]
    assert [a.status_code for a in answers] == [503, 503]
    assert answers[0].json()["error"] == "service_unavailable"
    assert world.records("acme", PHARMACY["dea_number"], order.order_number).status_code == 404
    assert world.post("acme", document).json()["status"] == "accepted"


def test_drop_next_closes_the_connection_without_an_answer(world):
    acme = world.sandbox.supplier("acme")
    document = sign(world.pharmacy, make_order(PHARMACY, acme, (XANAX, 1)))
    world.control("acme", "faults", {"drop_next": 1})
    with pytest.raises(requests.exceptions.ConnectionError):
        world.post("acme", document)
    assert world.post("acme", document).json()["status"] == "accepted"


def test_malformed_next_records_the_order_but_garbles_the_answer(world):
    acme = world.sandbox.supplier("acme")
    order = make_order(PHARMACY, acme, (XANAX, 1))
    document = sign(world.pharmacy, order)
    world.control("acme", "faults", {"malformed_next": 1})
    garbled = world.post("acme", document)
    assert garbled.status_code == 200
    with pytest.raises(ValueError):
        garbled.json()
    stored = world.records("acme", PHARMACY["dea_number"], order.order_number)
    assert stored.status_code == 200 and [r["kind"] for r in stored.json()["records"]] == ["855"]
    retry = world.post("acme", document)  # the order was recorded: the retry gets the stored answer
    assert retry.json()["status"] == "accepted"


def test_latency_slows_every_answer_until_switched_off(world):
    url = world.sandbox.supplier("blue-river").url
    world.control("blue-river", "faults", {"latency_ms": 400})
    try:
        started = time.monotonic()
        slow = requests.get(url + "/orders/BJ6125341/26X000000/records", verify=str(world.sandbox.tls_bundle),
                            timeout=30)
        assert slow.status_code == 404 and time.monotonic() - started >= 0.4
        with pytest.raises(requests.exceptions.Timeout):
            requests.get(url + "/orders/BJ6125341/26X000000/records", verify=str(world.sandbox.tls_bundle),
                         timeout=0.1)
    finally:
        assert world.control("blue-river", "faults", {"latency_ms": 0}).json()["faults"] == {
            "latency_ms": 0, "fail_next": 0, "drop_next": 0, "malformed_next": 0, "wrong_order_next": 0,
            "unreadable_ack_next": 0, "deep_json_next": 0}
    bad = world.control("blue-river", "faults", {"explode": 1})
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_field"


def test_the_cli_drives_a_running_sandbox(world, capsys):
    from app.cli import main

    acme = world.sandbox.supplier("acme")
    order = make_order(PHARMACY, acme, (XANAX, 3))
    world.post("acme", sign(world.pharmacy, order))
    where = ["sandbox", "--dir", str(world.sandbox.directory)]
    ship = ["supplier", "ship", "acme", "--purchaser", PHARMACY["dea_number"], "--order", order.order_number]
    assert main([*where, *ship, "--line", "1:1"]) == 0
    assert "856 record #2 added." in capsys.readouterr().out
    assert main([*where, *ship, "--line", "1:9"]) == 1
    assert "exceeds_remaining" in capsys.readouterr().out
    assert main([*where, *ship, "--line", "one"]) == 2
    assert main([*where, "supplier", "faults", "acme", "--fail-next", "0", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["faults"]["fail_next"] == 0
    assert main([*where, "status", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["portal_url"] == world.sandbox.portal_url
    kinds = [r["kind"] for r in world.records("acme", PHARMACY["dea_number"], order.order_number).json()["records"]]
    assert kinds == ["855", "856"]


def test_the_cli_sets_every_fault_switch(world, capsys):
    """`sandbox supplier faults` has a flag for each of the supplier's switches (wrong_order_next,
    unreadable_ack_next and deep_json_next included) and the running supplier takes them."""
    from app.cli import main
    from app.cli.sandbox import FAULT_FLAGS
    from app.sandbox.suppliers import FAULT_KEYS

    assert set(FAULT_FLAGS) == set(FAULT_KEYS)
    where = ["sandbox", "--dir", str(world.sandbox.directory), "supplier", "faults", "summit"]
    try:
        assert main([*where, "--wrong-order-next", "1", "--unreadable-ack-next", "2", "--deep-json-next", "3",
                     "--json"]) == 0
        faults = json.loads(capsys.readouterr().out)["faults"]
        assert (faults["wrong_order_next"], faults["unreadable_ack_next"], faults["deep_json_next"]) == (1, 2, 3)
    finally:
        world.control("summit", "faults", {"wrong_order_next": 0, "unreadable_ack_next": 0, "deep_json_next": 0})


# -- persistence ---------------------------------------------------------------------------------------------------


def test_orders_and_records_survive_a_restart(tmp_path):
    directory = tmp_path / "sandbox"
    with start_sandbox(directory, sntp=False) as first:
        client = SandboxClient(first)
        subscriber = client.enroll(CLINIC)
        acme = first.supplier("acme")
        order = make_order(CLINIC, acme, (XANAX, 2))
        document = sign(subscriber, order)
        world = World(sandbox=first, client=client, pharmacy=subscriber, clinic=subscriber, coordinator=subscriber)
        answer = world.post("acme", document).json()
        world.control("acme", "ship", {"purchaser_dea": CLINIC["dea_number"], "order_number": order.order_number,
                                       "lines": [{"line_number": 1, "packages": 1}]})
    with start_sandbox(directory, sntp=False) as second:
        world.sandbox = second
        assert world.post("acme", document).json() == answer  # same answer after the restart
        records = world.records("acme", CLINIC["dea_number"], order.order_number).json()["records"]
        assert [r["kind"] for r in records] == ["855", "856"]
        again = world.control("acme", "ship", {"purchaser_dea": CLINIC["dea_number"],
                                               "order_number": order.order_number})
        assert parse_856(base64.b64decode(again.json()["record"]["data_base64"])).lines[0].packages_shipped == 1
        # X12 control numbers keep counting across the restart.
        numbers = [base64.b64decode(r["data_base64"])[90:99] for r in
                   world.records("acme", CLINIC["dea_number"], order.order_number).json()["records"]]
        assert len(set(numbers)) == 3
