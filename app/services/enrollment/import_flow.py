"""Import of an existing .p12/.pfx certificate file as a wizard flow (DESIGN §1 K2, K5).

The key inside the file is kept encrypted in the chosen store (a key file on this computer or a token); the person
is told to delete the file or lock it away afterwards. Only a CSOS certificate that chains to this profile's CSOS
trust roots is imported (``CertificateBook.admit_p12``); anything else is refused on the first page, in plain words.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cryptography import x509

from app.errors import CsosError
from app.models.orderbook import CertificateRecord
from app.services.certificates.admission import HOW_TO_ADD_ROOTS, CertificateRefused
from app.services.certificates.book import CertificateBook
from app.services.enrollment.flow_common import SOFTWARE, TOKEN, Flow, key_label, summarize
from app.services.enrollment.wizard import Data, Step, WizardInputError
from app.services.keys import KeyStoreError

K2_WARNING = (
    "A .p12/.pfx file is a full copy of your private key. Only you may hold it. CSOS Desk keeps the key it imports "
    "encrypted and makes no other copies; after the import, delete the file or lock it away where only you can reach "
    "it (21 CFR 1311.30(d)).")


class ImportFlow(Flow):
    name = "import_p12"
    title = "Import a certificate file (.p12 / .pfx)"
    start_view = "file"

    def build_navmap(self) -> dict[str, Step]:
        return {
            "file": Step("Choose the file", accept=self._file_accept, slow=True,
                         next=lambda data: "trust_root" if data.get("root_offer") else "destination"),
            "trust_root": Step("Trust the CSOS root certificate", accept=self._trust_root_accept, slow=True,
                               needs=("p12_password",), resume_to="file", next="destination"),
            "destination": Step("Where the key will live", enter=self._enter_destination,
                                accept=self._destination_accept, slow=True, needs=("p12_password",),
                                resume_to="file", next="done"),
            "done": Step("Certificate imported", last=True, back=False),
        }

    def _file_accept(self, data: Data) -> None:
        data.pop("root_offer", None)
        data.pop("trust_root_confirmed", None)
        self._admit_file(data, offer_root=not self.certificates.config.is_training)

    def _admit_file(self, data: Data, *, offer_root: bool) -> None:
        """Read the file and admit its certificate. With ``offer_root`` (production), a certificate refused because
        this profile has no CSOS trust root yet, whose file holds a root, leads to the ``trust_root`` page instead of
        an error."""
        from app.services.keys import p12 as p12_files

        raw = str(data.get("p12_file") or "").strip()
        if not raw:
            raise WizardInputError("Choose the .p12 or .pfx file.", field="p12_file", code="flow.p12_missing")
        path = Path(raw).expanduser()
        try:
            content = path.read_bytes()
        except OSError as exc:
            raise WizardInputError(f"The file {path} cannot be read ({exc.strerror or exc}).", field="p12_file",
                                   code="flow.p12_unreadable") from None
        try:
            contents = p12_files.read_p12(content, password=data.get("p12_password") or "")
        except KeyStoreError as exc:
            field = "p12_password" if exc.code == "key.wrong_password" else "p12_file"
            raise WizardInputError(exc.message, field=field, code=exc.code) from None
        data["p12_file"] = str(path)
        try:
            # Not a CSOS certificate, no trust roots, a foreign CA, a key without certificate: said on this page,
            # before the person chooses where the key goes.
            cert = self.certificates.admit_p12(contents).view.certificate
        except CertificateRefused as exc:
            # Only when no root is set up at all: a file whose chain ends at another root than the trusted ones
            # (an impostor may copy DEA's names) stays refused.
            offer = root_offer_of(contents, self.certificates.config) if (
                offer_root and exc.code == "certificate.no_trust_roots") else None
            if offer is None:
                raise WizardInputError(exc.message, field="p12_file", code=exc.code) from None
            data["root_offer"] = offer
            return
        finally:
            del contents
        data["p12_summary"] = {} if cert is None else {
            "subject": cert.subject.rfc4514_string(), "not_after": cert.not_valid_after_utc.isoformat(),
            "issuer": cert.issuer.rfc4514_string()}

    def _trust_root_accept(self, data: Data) -> None:
        """The person compared the root's fingerprint with DEA's and said they are the same: the root joins this
        profile's CSOS trust roots (the same store as `csos-desk trust add`), then the certificate is admitted."""
        from app.services.certificates.trust import TrustCandidate, TrustStore

        offer = data.get("root_offer") or {}
        if data.get("trust_root_confirmed") is not True:
            raise WizardInputError("Tick the box only if the fingerprint is the same as the one DEA publishes. If it "
                                   "is not the same, do not trust it: close this window and ask your certification "
                                   "authority for the right file.", field="trust_root_confirmed",
                                   code="flow.root_not_confirmed")
        root = TrustCandidate.of(x509.load_pem_x509_certificate(str(offer.get("pem", "")).encode("ascii")))
        TrustStore(self.certificates.config.data_dir).add([root], fingerprints=[str(offer.get("fingerprint"))])
        data["root_added"] = root.fingerprint
        self._admit_file(data, offer_root=False)
        data.pop("root_offer", None)

    def _enter_destination(self, data: Data) -> None:
        self._enter_key_location(data)
        self.context["k2_warning"] = K2_WARNING

    def _destination_accept(self, data: Data) -> None:
        if data.get("installed"):
            return
        if data.get("k2_acknowledged") is not True:
            raise WizardInputError("Tick the box to confirm you read how to keep the file.", field="k2_acknowledged",
                                   code="flow.k2")
        self._check_key_choice(data, personal_words=[])
        content = Path(data["p12_file"]).read_bytes()
        store = data.get("key_store") or SOFTWARE
        try:
            record = self.certificates.import_p12(content, password=data.get("p12_password") or "",
                                                  new_secret=self.key_secret(data), label=key_label("Imported",
                                                                                                     self.clock()),
                                                  to_token=store == TOKEN,
                                                  token_serial=data.get("token_serial") if store == TOKEN else None)
        except KeyStoreError as exc:
            field = {"key.weak_password": "key_password", "key.wrong_pin": "key_pin",
                     "key.wrong_password": "p12_password"}.get(exc.code)
            raise WizardInputError(exc.message, field=field, code=exc.code) from None
        except CertificateRefused as exc:
            raise WizardInputError(exc.message, field="p12_file", code=exc.code) from None
        data["installed"] = [summarize(record)]
        data["check_problems"] = self.check_certificate(record)
        if record.registration_id is not None and record.registration is not None:
            data["test_order_registration"] = record.registration.dea_number

    def check_certificate(self, record: CertificateRecord) -> list[str]:
        """Problems a supplier would find now, judged by this profile's CSOS trust roots (the ones the import was
        admitted by) and the CA's CRL -- not by whatever the enrolling authority says. Empty = fine."""
        from app.services.certificates.crl_cache import CrlCache
        from app.services.certificates.validation import CertificateValidationService

        try:
            roots = self.certificates.trust_roots()
            if not roots:
                return [NO_ROOTS_CHECK]
            config = self.certificates.config
            cache = CrlCache(config.cache_dir / "crl", tls_ca_bundle=config.settings.get("tls_bundle"))
            service = CertificateValidationService(trust_roots=roots, crl_cache=cache, clock=self.clock)
            cert, intermediates = CertificateBook.chain(record)
            return [p.message for p in service.validate(cert, at=self.clock(), intermediates=intermediates).problems]
        except CsosError as exc:
            return [exc.message]
        except (ValueError, x509.InvalidVersion):
            return [NO_ROOTS_CHECK]


def root_offer_of(contents: Any, config: Any) -> dict[str, str] | None:
    """The root (self-signed CA) in a .p12's chain that this profile does not trust yet, described for the
    ``trust_root`` page: name, subject, validity and SHA-256 fingerprint to compare with DEA's (and its PEM)."""
    from cryptography.hazmat.primitives.serialization import Encoding

    from app.services.certificates.trust import TrustStore, group_fingerprint, root_offer

    chain = [c for c in [contents.certificate, *contents.additional_certificates] if c is not None]
    root = root_offer(chain, TrustStore(config.data_dir))
    if root is None:
        return None
    return {"name": root.name, "subject": root.subject, "not_before": root.not_before.isoformat(),
            "not_after": root.not_after.isoformat(), "fingerprint": root.fingerprint,
            "fingerprint_grouped": group_fingerprint(root.fingerprint),
            "pem": root.certificate.public_bytes(Encoding.PEM).decode("ascii")}


NO_ROOTS_CHECK = ("The certificate could not be checked against CSOS trust roots, so it is not called trusted. It is "
                  "checked again before it signs any order. " + HOW_TO_ADD_ROOTS)

__all__ = ["K2_WARNING", "NO_ROOTS_CHECK", "ImportFlow", "root_offer_of"]
