"""Supplier connections read each trust bundle once per process, and verify exactly as before.

Against a real HTTPS supplier on loopback (``LoopbackSupplier``): an order goes through with the supplier's bundle;
another CA's bundle, a certificate for another host name and a bundle file changed to another CA are each refused
with the plain TLS message; a request that turns verification off is refused. And urllib3 is never handed the
bundle's path, so it never reads the file again for a new connection (what cost about 17 ms a connection with a
public-roots bundle).
"""

from __future__ import annotations

import random
import shutil

import pytest
import urllib3.connection

from app.models.states import OrderStatus
from app.services.orders.outbox import Outbox
from app.services.transport import tls
from app.services.transport.connectors import HttpsConnector, TransportError, connector_for
from tests.integration.test_lifecycle_transport import (  # noqa: F401 - fixtures
    LoopbackSupplier,
    make_tls_files,
    signed_order,
    signed_world,
    supplier,
)


@pytest.fixture
def wrapped_sockets(monkeypatch):
    """What urllib3 is asked for each new TLS connection: the bundle path (read again) and the context."""
    calls: list[dict] = []
    real = urllib3.connection.ssl_wrap_socket

    def record(*args, **kwargs):
        calls.append({"ca_certs": kwargs.get("ca_certs"), "ca_cert_dir": kwargs.get("ca_cert_dir"),
                      "context": kwargs.get("ssl_context")})
        return real(*args, **kwargs)

    monkeypatch.setattr(urllib3.connection, "ssl_wrap_socket", record)
    return calls


def _connector(supplier, bundle) -> HttpsConnector:
    return HttpsConnector(supplier.url, tls_bundle=bundle, connect_timeout=2, read_timeout=2, max_attempts=1)


def test_orders_go_over_one_context_per_bundle_never_reading_the_file_again(book, supplier, signed_world, tmp_path,
                                                                            wrapped_sockets):
    from tests.factories import seed

    seed(book)
    pki, subscriber, _ = signed_world
    with book.db.session() as session, session.begin():
        from app.models.orderbook import Supplier

        session.query(Supplier).one().connector = {"kind": "https", "url": supplier.url,
                                                   "tls_bundle": str(supplier.tls_bundle), "max_attempts": 1}
    outbox = Outbox(book, connector_for=lambda s: connector_for(s, data_dir=tmp_path), rng=random.Random(1))
    orders = [signed_order(book, pki, subscriber) for _ in range(3)]

    for order in orders:  # each send makes a new connector and a new connection, as the sign screen does
        outbox.send_now(order.id)

    assert [book.get_order(order.id).status for order in orders] == [OrderStatus.ACCEPTED] * 3
    assert len(wrapped_sockets) == 3
    assert all(call["ca_certs"] is None and call["ca_cert_dir"] is None for call in wrapped_sockets)
    assert {id(call["context"]) for call in wrapped_sockets} == {id(tls.verified_context(supplier.tls_bundle))}


def test_another_cas_bundle_is_refused(supplier, tmp_path):
    other_bundle = make_tls_files(tmp_path / "other")[2]
    with pytest.raises(TransportError) as caught:
        _connector(supplier, other_bundle).fetch_records(order_number="261000001", purchaser_dea="BJ6125341", after=0)
    assert caught.value.code == "transport.tls"
    assert "could not prove its identity" in caught.value.message


def test_a_certificate_for_another_host_name_is_refused(tmp_path):
    files = make_tls_files(tmp_path / "named", dns_name="supplier.example")
    with LoopbackSupplier(tmp_path, tls_files=files) as named:
        with pytest.raises(TransportError) as caught:
            _connector(named, files[2]).fetch_records(order_number="261000001", purchaser_dea="BJ6125341", after=0)
    assert caught.value.code == "transport.tls"


def _asked(supplier, bundle) -> str:
    """What a records request over a new connector ends in: the supplier's answer, or the error's code."""
    try:
        _connector(supplier, bundle).fetch_records(order_number="261000001", purchaser_dea="BJ6125341", after=0)
    except TransportError as exc:
        return exc.code
    return "answered"


def test_a_bundle_changed_on_disk_is_read_again(supplier, tmp_path):
    bundle = tmp_path / "supplier-bundle.pem"
    shutil.copyfile(supplier.tls_bundle, bundle)
    assert _asked(supplier, bundle) == "transport.unknown_order"  # trusted: it answers (it never had this order)
    first = tls.verified_context(bundle)

    bundle.write_bytes(make_tls_files(tmp_path / "other")[2].read_bytes())  # someone replaced the file
    assert _asked(supplier, bundle) == "transport.tls"
    assert tls.verified_context(bundle) is not first

    shutil.copyfile(supplier.tls_bundle, bundle)
    assert _asked(supplier, bundle) == "transport.unknown_order"


def test_a_damaged_or_missing_bundle_is_a_tls_error_and_nothing_is_sent(supplier, tmp_path):
    bundle = tmp_path / "damaged.pem"
    bundle.write_bytes(b"-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n")
    connector = _connector(supplier, bundle)
    assert _asked(supplier, bundle) == "transport.tls"
    bundle.unlink()  # removed after the connector was set up
    with pytest.raises(TransportError) as caught:
        connector.send_order(order_number="261000001", purchaser_dea="BJ6125341", document=b"x")
    assert caught.value.code == "transport.tls"
    assert supplier.received == []


def test_verify_false_is_refused(supplier):
    session = tls.verified_session()
    with pytest.raises(ValueError, match="always verified"):
        session.get(f"{supplier.url}/orders/BJ6125341/261000001/records", verify=False, timeout=2)
