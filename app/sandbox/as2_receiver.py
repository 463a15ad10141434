"""Training suppliers over AS2 (RFC 4130): ``POST /suppliers/<slug>/as2``.

What a wholesaler's AS2 server does, in order: recognise the trading partner by AS2-From, decrypt, verify the
signature with the partner's certificate on file, answer with a signed MDN carrying the MIC of the signed entity. Then
what a CSOS supplier must add: the bytes it stored must be exactly what the purchaser signed — the order's CMS
signature is checked on the stored bytes (a payload damaged in transfer, e.g. by line-ending conversion, is refused
with ``integrity-check-failed`` although its AS2 MIC would match) — and the order goes to the same desk, with the same
verifier, as an order posted over https. The 855/856/865 answers are fetched from the supplier's records path as
usual (docs/sandbox-api.md).

A repeated Message-ID the supplier already processed gets the same MDN again and is not handed to the desk twice.

Training switches (``/suppliers/<slug>/_training/as2…``): register a trading partner (AS2 ID + certificate), answer
the next N messages with a negative MDN or with a receipt whose MIC is not that of the bytes sent, list what arrived.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import re
import threading
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from flask import Blueprint, Response, jsonify, request

from app.sandbox.api import SandboxApiError, int_field, json_body, text_field
from app.services.signing.cms import MEDIA_TYPE, CmsError, check_signature, parse_signed_document
from app.services.transport import as2_mime
from app.services.transport.as2_mime import As2FormatError, IncomingMessage

log = logging.getLogger(__name__)

FOLDER = "as2"
PAYLOAD_TYPES = (MEDIA_TYPE, "application/edi-x12", "application/octet-stream", "application/pkcs7-mime")
MAX_MESSAGE_BYTES = 4 * 1024 * 1024


def as2_id_of(slug: str) -> str:
    return "CSOS-SANDBOX-" + re.sub(r"[^A-Z0-9]+", "-", slug.upper())


def _identity(folder: Path) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    """One AS2 transport key for the training suppliers, kept across restarts (the profile holds its certificate)."""
    key_path, cert_path = folder / "sandbox-as2-key.pem", folder / "sandbox-as2-certificate.pem"
    if key_path.exists() and cert_path.exists():
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        assert isinstance(key, rsa.RSAPrivateKey)
        return key, x509.load_pem_x509_certificate(cert_path.read_bytes())
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "TRAINING sandbox suppliers AS2")])
    now = dt.datetime.now(dt.timezone.utc)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
                   .not_valid_after(now + dt.timedelta(days=3650))
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .sign(key, hashes.SHA256()))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return key, certificate


def _add_partner(folder: Path, as2_id: str, certificate_pem: str) -> dict[str, Any]:
    try:
        as2_id = as2_mime.check_as2_id(as2_id)
        certificate = x509.load_pem_x509_certificate(certificate_pem.encode("ascii"))
    except (As2FormatError, ValueError, UnicodeEncodeError) as exc:
        raise SandboxApiError(400, "invalid_value", getattr(exc, "message", None) or
                              "certificate_pem is not a PEM certificate.") from None
    path = folder / "partners.json"
    try:
        partners = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        partners = {}
    partners[as2_id] = certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")
    temporary = path.with_suffix(".part")
    temporary.write_text(json.dumps(partners, indent=2), "utf-8")
    temporary.replace(path)
    return {"as2_id": as2_id, "fingerprint": as2_mime.fingerprint(certificate)}


def training_connector(sandbox: Any, slug: str, as2_id: str, certificate_pem: str) -> dict[str, Any]:
    """Make a pharmacy's AS2 identity a trading partner of a running sandbox's supplier ``slug`` and return the
    as2 connector settings that reach it (training.py; its https records path serves the answers)."""
    supplier = sandbox.supplier(slug)
    folder = Path(sandbox.directory) / FOLDER
    _add_partner(folder, as2_id, certificate_pem)
    _, certificate = _identity(folder)
    return {"kind": "as2", "url": f"{supplier.url}/as2", "partner_as2_id": as2_id_of(slug),
            "partner_certificate": certificate.public_bytes(serialization.Encoding.PEM).decode("ascii"),
            "encryption": as2_mime.DEFAULT_ENCRYPTION, "signature": as2_mime.DEFAULT_SIGNATURE,
            "content_type": MEDIA_TYPE, "records_url": supplier.url, "tls_bundle": str(sandbox.tls_bundle)}


class As2Receiver:
    """The AS2 side of the training suppliers, in front of the ``SupplierDesk``."""

    def __init__(self, desk: Any, directory: Path) -> None:
        self.desk = desk
        self.folder = Path(directory) / FOLDER
        self.key, self.certificate = _identity(self.folder)
        self.partners_file = self.folder / "partners.json"
        self.lock = threading.Lock()
        self.messages: dict[str, list[dict[str, Any]]] = {}  # per supplier: every message, in arrival order
        self.answered: dict[tuple[str, str], tuple[dict[str, str], bytes]] = {}  # processed Message-IDs → MDN
        self.negative_next: dict[str, int] = {}
        self.wrong_mic_next: dict[str, int] = {}

    @property
    def certificate_pem(self) -> str:
        return self.certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")

    # -- trading partners (kept in a file so a standalone sandbox and the client agree across restarts) -----------

    def partners(self) -> dict[str, str]:
        try:
            data = json.loads(self.partners_file.read_text("utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def add_partner(self, as2_id: str, certificate_pem: str) -> dict[str, Any]:
        with self.lock:
            return _add_partner(self.folder, as2_id, certificate_pem)

    def _partner_certificate(self, as2_id: str) -> x509.Certificate | None:
        pem = self.partners().get(as2_id)
        return x509.load_pem_x509_certificate(pem.encode("ascii")) if pem else None

    # -- POST /suppliers/<slug>/as2 -------------------------------------------------------------------------------

    def receive(self, slug: str, headers: dict[str, str], body: bytes) -> tuple[dict[str, str], bytes]:
        supplier = self.desk.supplier(slug)
        our_id = as2_id_of(slug)
        incoming = as2_mime.read_request_headers(headers)
        if not incoming.message_id or not incoming.as2_from:
            raise SandboxApiError(400, "not_as2", "An AS2 message needs Message-ID and AS2-From headers.")
        if len(body) > MAX_MESSAGE_BYTES:
            raise SandboxApiError(413, "too_large", "The AS2 message is larger than 4 MB.")
        entry: dict[str, Any] = {"message_id": incoming.message_id, "as2_from": incoming.as2_from,
                                 "as2_to": incoming.as2_to, "received_at": self.desk.now().isoformat()}
        key = (slug, incoming.message_id)
        with self.lock:
            self.messages.setdefault(slug, []).append(entry)
            repeat = self.answered.get(key)
            forced = self.negative_next.get(slug, 0)
            if repeat is None and forced:
                self.negative_next[slug] = forced - 1
        if repeat is not None:
            entry.update(disposition="processed", duplicate=True)
            log.info("AS2 %s: repeated message %s answered with its first MDN", slug, incoming.message_id)
            return repeat
        if forced:
            return self._mdn(incoming, entry, our_id, "unexpected-processing-error",
                             "TRAINING fault: the supplier's AS2 system could not process the message. Send it "
                             "again later.")
        if incoming.as2_to != our_id:
            return self._mdn(incoming, entry, our_id, "authentication-failed",
                             f"This AS2 server is {our_id}, not {incoming.as2_to or '(no AS2-To)'}.")
        try:
            as2_mime.open_message(headers, body, key=self.key, certificate=self.certificate,
                                  partner_certificate=self._partner_certificate(incoming.as2_from),
                                  incoming=incoming)
        except As2FormatError as exc:
            return self._mdn(incoming, entry, our_id, exc.disposition, exc.message)
        payload = incoming.payload
        entry.update(payload_sha256=hashlib.sha256(payload).hexdigest(), payload_bytes=len(payload),
                     payload_type=incoming.payload_type, encryption=incoming.encryption, mic=incoming.mic)
        if incoming.payload_type not in PAYLOAD_TYPES:
            return self._mdn(incoming, entry, our_id, "unexpected-processing-error",
                             f"{supplier.name} takes signed CSOS orders, not '{incoming.payload_type}'.")
        # The stored bytes must be exactly what the purchaser signed: check the CSOS signature on them.
        try:
            document = parse_signed_document(payload)
            problems = check_signature(document)
        except CmsError as exc:
            problems = [("malformed", exc.message)]
        entry["cms_problems"] = [code for code, _ in problems]
        if problems:
            return self._mdn(incoming, entry, our_id, "integrity-check-failed",
                             "The CSOS signature does not verify on the bytes received: "
                             + "; ".join(message for _, message in problems))
        try:
            if document.content.startswith(b"ISA"):
                status, answer = self.desk.receive_order(slug, payload, MEDIA_TYPE)
                entry.update(document="order", order_status=answer.get("status"))
            else:
                answer = self.desk.receive_statement(slug, payload, MEDIA_TYPE)
                entry.update(document="statement", order_status=answer.get("status"))
        except SandboxApiError as exc:
            return self._mdn(incoming, entry, our_id, "unexpected-processing-error",
                             f"{supplier.name} could not take the document: {exc.message}")
        with self.lock:
            wrong_mic = self.wrong_mic_next.get(slug, 0)
            if wrong_mic:
                self.wrong_mic_next[slug] = wrong_mic - 1
        if wrong_mic:  # TRAINING fault: a receipt for other bytes than those sent
            incoming.mic = as2_mime.mic_of(b"TRAINING fault: not the bytes that were sent")
            entry["mic"] = incoming.mic
        answer_headers, answer_body = self._mdn(incoming, entry, our_id, "",
                                                f"{supplier.name} (TRAINING) received the message and verified its "
                                                "signature. Whether the order is accepted is in the supplier's "
                                                "acknowledgement (855).")
        if not wrong_mic:
            with self.lock:
                self.answered[key] = (answer_headers, answer_body)
        return answer_headers, answer_body

    def _mdn(self, incoming: IncomingMessage, entry: dict[str, Any], our_id: str, error: str,
             text: str) -> tuple[dict[str, str], bytes]:
        incoming.wants_signed_receipt = True  # the training suppliers always sign their receipts
        mdn = as2_mime.build_mdn(incoming, as2_id=our_id, key=self.key, certificate=self.certificate, error=error,
                                 text=text, reporting_ua="CSOS Desk TRAINING supplier", date=self.desk.now())
        entry.update(disposition="processed" + (f"/error: {error}" if error else ""), text=text)
        log.info("AS2 %s: message %s -> %s", incoming.as2_to, incoming.message_id, entry["disposition"])
        return mdn.headers, mdn.body

    def status(self, slug: str) -> dict[str, Any]:
        supplier = self.desk.supplier(slug)
        with self.lock:
            messages = list(self.messages.get(slug, []))
            negative = self.negative_next.get(slug, 0)
        return {"as2_id": as2_id_of(slug), "url": f"{supplier.url}/as2", "records_url": supplier.url,
                "certificate_pem": self.certificate_pem, "fingerprint": as2_mime.fingerprint(self.certificate),
                "partners": sorted(self.partners()), "negative_next": negative, "messages": messages}


def add_as2_routes(bp: Blueprint, desk: Any) -> As2Receiver:
    """Add the AS2 endpoint and its training switches to the suppliers' blueprint."""
    receiver = As2Receiver(desk, desk.authority.directory)

    @bp.post("/suppliers/<slug>/as2")
    def as2_message(slug: str):
        headers, body = receiver.receive(slug, dict(request.headers), request.get_data())
        response = Response(body, status=200)
        for name, value in headers.items():
            response.headers[name] = value
        return response

    @bp.get("/suppliers/<slug>/as2/certificate")
    def as2_certificate(slug: str):
        desk.supplier(slug)
        return Response(receiver.certificate_pem, mimetype="application/x-pem-file")

    @bp.get("/suppliers/<slug>/_training/as2")
    def as2_status(slug: str):
        return jsonify(receiver.status(slug))

    @bp.post("/suppliers/<slug>/_training/as2/partners")
    def as2_partner(slug: str):
        desk.supplier(slug)
        data = json_body(request)
        return jsonify(receiver.add_partner(text_field(data, "as2_id", max_length=128) or "",
                                            text_field(data, "certificate_pem", max_length=20000) or ""))

    @bp.post("/suppliers/<slug>/_training/as2/faults")
    def as2_faults(slug: str):
        desk.supplier(slug)
        data = json_body(request)
        with receiver.lock:
            for name, switch in (("negative_next", receiver.negative_next), ("wrong_mic_next", receiver.wrong_mic_next)):
                if name in data:
                    switch[slug] = int_field(data, name, minimum=0, maximum=100)
            return jsonify({"negative_next": receiver.negative_next.get(slug, 0),
                            "wrong_mic_next": receiver.wrong_mic_next.get(slug, 0)})

    return receiver
