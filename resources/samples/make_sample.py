"""Regenerate the bundled sample signed order that `csos-desk --self-test` verifies.

    .venv/bin/python resources/samples/make_sample.py

Writes, next to this script:
  sample-order.csos      a CMS SignedData CSOS order (X12 850), signed by a training subscriber
  training-trust.pem     the training root it chains to (the sample's own, not the sandbox's)
  root.crl, sub.crl      the CAs' CRLs (DER), current at the verification moment, so no network is needed
  sample.json            the fixed verification moment and the sample catalog's schedules

Everything is dated around one fixed moment (SIGNED_AT) and the self-test verifies "as of" VERIFY_AT, so the sample
stays valid forever: no certificate, CRL or 60-day order limit ever runs out. The CA keys are thrown away after
signing; this is training material that proves the installed program can verify, nothing more.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))  # run from a checkout without installing

from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import padding, rsa  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402

from app.models.values import CERTIFICATE_SCHEDULE_BITS, DeaNumber, PackageUnit, Schedule  # noqa: E402
from app.services.certificates.ca import create_root_ca  # noqa: E402
from app.services.signing.cms import sign_content  # noqa: E402
from app.services.certificates.profile import RegistrationFacts, SubscriberIdentity  # noqa: E402
from app.services.signing.x12 import OrderLine850, Party, PurchaseOrder, write_850  # noqa: E402

SIGNED_AT = datetime(2025, 11, 3, 15, 0, tzinfo=timezone.utc)  # the CSOS Modernization rule's effective date
VERIFY_AT = SIGNED_AT + timedelta(hours=1)
CRL_BASE = "http://training.invalid/csos-desk-sample"  # never fetched: the self-test passes the CRLs itself

ORDER_NUMBER = "25X5AMPL1"
PURCHASER_DEA = "BJ6125341"
SUPPLIER_DEA = "RA1234563"
# (line, NDC-11, description, packages, quantity in one package, schedule from the sample catalog)
LINES = [
    (1, "00406055262", "Oxycodone Hydrochloride 5 mg", 2, 100, Schedule.II),
    (2, "00009002901", "Alprazolam 0.5 mg", 1, 100, Schedule.IV),
]


class _KeySigner:
    """The two things sign_content needs from a signer, over an in-memory RSA key."""

    signature_algorithm = "sha256_rsa"

    def __init__(self, key: rsa.RSAPrivateKey) -> None:
        self._key = key

    def sign(self, data: bytes) -> bytes:
        return self._key.sign(data, padding.PKCS1v15(), hashes.SHA256())


def build() -> dict[str, bytes]:
    """The sample files' contents, by file name."""
    ca_moment = SIGNED_AT - timedelta(days=2)
    root = create_root_ca(now=ca_moment, crl_url=f"{CRL_BASE}/root.crl")
    sub = root.create_subordinate_ca(now=ca_moment, crl_url=f"{CRL_BASE}/sub.crl")

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "CSOS Desk sample")]))
           .sign(key, hashes.SHA256()))
    registration = RegistrationFacts(
        dea_number=DeaNumber.parse(PURCHASER_DEA), registrant_name="Main Street Pharmacy",
        address_lines=("100 Main Street", "Springfield IL 62701"), business_activity="RETAIL PHARMACY",
        schedules=frozenset(CERTIFICATE_SCHEDULE_BITS), expires=SIGNED_AT + timedelta(days=365))
    subscriber = SubscriberIdentity(full_name="Pat Purchaser", email="pat@mainstreet.example", serial="100000000001")
    certificate = sub.issue_signing_certificate(csr, subscriber=subscriber, registration=registration,
                                                now=SIGNED_AT - timedelta(days=1))

    order = PurchaseOrder(
        order_number=ORDER_NUMBER, date_signed=SIGNED_AT.date(),
        purchaser=Party(name="Main Street Pharmacy", dea_number=PURCHASER_DEA, address_lines=("100 Main Street",),
                        city="Springfield", state="IL", postal_code="62701"),
        supplier=Party(name="Acme Drug", dea_number=SUPPLIER_DEA, address_lines=("9 Depot Rd",), city="Memphis",
                       state="TN", postal_code="38118"),
        lines=tuple(OrderLine850(line_number=n, packages=packages, ndc=ndc, description=description,
                                 package_quantity=quantity, unit=PackageUnit.EACH)
                    for n, ndc, description, packages, quantity, _ in LINES))
    content = write_850(order, created_at=SIGNED_AT, interchange_control_number=1, group_control_number=1,
                        sender_id=PURCHASER_DEA, receiver_id=SUPPLIER_DEA)
    document = sign_content(content, signer=_KeySigner(key),
                            certificate_der=certificate.public_bytes(serialization.Encoding.DER),
                            intermediates_der=[sub.certificate.public_bytes(serialization.Encoding.DER)],
                            signing_time=SIGNED_AT)
    der = serialization.Encoding.DER
    metadata = {
        "about": "Sample CSOS order for `csos-desk --self-test`; regenerate with make_sample.py.",
        "order_file": "sample-order.csos",
        "trust_bundle": "training-trust.pem",
        "crl_files": ["root.crl", "sub.crl"],
        "verify_at": VERIFY_AT.isoformat(),
        "order_number": ORDER_NUMBER,
        "purchaser_dea": PURCHASER_DEA,
        "catalog": {ndc: schedule.value for _, ndc, _, _, _, schedule in LINES},
    }
    return {
        "sample-order.csos": document,
        "training-trust.pem": root.certificate.public_bytes(serialization.Encoding.PEM),
        "root.crl": root.build_crl(now=SIGNED_AT, next_update=timedelta(days=1)).public_bytes(der),
        "sub.crl": sub.build_crl(now=SIGNED_AT, next_update=timedelta(days=1)).public_bytes(der),
        "sample.json": (json.dumps(metadata, indent=2, sort_keys=True) + "\n").encode("utf-8"),
    }


def write(directory: Path = HERE) -> list[Path]:
    """Build the sample, check it verifies exactly as the self-test will, then write it."""
    files = build()
    directory.mkdir(parents=True, exist_ok=True)
    staged = directory / ".staging"
    staged.mkdir(exist_ok=True)
    for name, data in files.items():
        (staged / name).write_bytes(data)
    from app.services.self_test import verify_sample  # the self-test's own check, on the staged copy

    result = verify_sample(staged)
    if not result.ok:
        raise SystemExit(f"the new sample does not verify: {result.detail}")
    written = []
    for name in files:
        target = directory / name
        (staged / name).replace(target)
        written.append(target)
    staged.rmdir()
    return written


if __name__ == "__main__":
    for path in write(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE):
        print(path)
