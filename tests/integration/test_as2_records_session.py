"""An AS2 supplier's answers are fetched over the AS2 connector's own session (issue 20): the records API is usually
the AS2 server's host, so a server that keeps connections open answers over the connection the message went on
instead of a second TLS handshake. Sharing the session never loosens TLS: each request names its connector's bundle.

Against ``LoopbackSupplier`` (real HTTPS on loopback, HTTP/1.1 keep-alive).
"""

from __future__ import annotations

import pytest
import requests

from app.services.transport import as2
from app.services.transport.connectors import HttpsConnector, TransportError
from tests.integration.test_lifecycle_transport import LoopbackSupplier, make_tls_files


@pytest.fixture
def supplier(tmp_path):
    with LoopbackSupplier(tmp_path / "tls") as server:
        yield server


def _connections(session: requests.Session) -> int:
    pools = session.get_adapter("https://").poolmanager.pools  # urllib3's container refuses plain iteration
    return sum(pools[key].num_connections for key in pools.keys())


def _unknown_order(connector: HttpsConnector) -> str:
    with pytest.raises(TransportError) as caught:
        connector.fetch_records(order_number="26X000001", purchaser_dea="BJ6125341", after=0)
    return caught.value.code


def test_connectors_sharing_a_session_use_one_connection_and_the_owner_closes_it(supplier):
    shared = requests.Session()
    first = HttpsConnector(supplier.url, tls_bundle=supplier.tls_bundle, max_attempts=1, session=shared)
    second = HttpsConnector(supplier.url, tls_bundle=supplier.tls_bundle, max_attempts=1, session=shared)
    assert _unknown_order(first) == "transport.unknown_order"  # TLS verified, the supplier answered
    second.close()  # a borrower's close leaves the owner's session open
    assert _unknown_order(second) == "transport.unknown_order"
    assert _connections(shared) == 1  # the second request went over the first one's connection
    shared.close()


def test_a_shared_session_never_decides_which_certificates_are_trusted(supplier, tmp_path):
    other_bundle, _, _ = make_tls_files(tmp_path / "other")
    trusting = requests.Session()
    trusting.verify = str(supplier.tls_bundle)  # the session's own setting would trust the supplier...
    wrong = HttpsConnector(supplier.url, tls_bundle=other_bundle, max_attempts=1, session=trusting)
    assert _unknown_order(wrong) == "transport.tls"  # ...but the connector's bundle does not, and it decides
    distrusting = requests.Session()
    distrusting.verify = str(other_bundle)
    right = HttpsConnector(supplier.url, tls_bundle=supplier.tls_bundle, max_attempts=1, session=distrusting)
    assert _unknown_order(right) == "transport.unknown_order"
    trusting.close()
    distrusting.close()


def test_the_as2_connector_fetches_answers_over_its_own_session(tmp_path, supplier):
    identity = as2.create_identity(tmp_path / "pharmacy", "PHARMACY-AS2")
    partner = as2.create_identity(tmp_path / "partner", "SUPPLIER-AS2")
    settings = as2.settings_from("Acme", {"url": f"{supplier.url}/as2", "partner_as2_id": "SUPPLIER-AS2",
                                          "partner_certificate": partner.certificate_pem.decode("ascii"),
                                          "records_url": supplier.url, "tls_bundle": str(supplier.tls_bundle)})
    connector = as2.As2Connector(settings, identity, supplier_name="Acme")
    try:
        assert connector.records is not None and connector.records.session is connector.session
        with pytest.raises(TransportError) as caught:
            connector.fetch_records(order_number="26X000001", purchaser_dea="BJ6125341", after=0)
        assert caught.value.code == "transport.unknown_order"
        assert _connections(connector.session) == 1
    finally:
        connector.close()
