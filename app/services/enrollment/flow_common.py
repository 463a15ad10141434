"""What the enrollment, import, renewal and revocation flows share: the ``Flow`` base and its shared steps.

Each flow is a navigation map over ``app.services.enrollment.wizard`` plus the services it drives: the certification
authority (``EnrollmentAuthority``: the training portal's API, or DEA's web portal guided step by step) and the
certificate records (``CertificateBook``: keys, requests, installation). No Qt here: the pages only render ``data``
and ``context`` and hand back what the person entered. One flow per module beside this one (``enroll_flow``,
``import_flow``, ``renewal_flow``, ``revocation_flow``); ``flows`` is their index.

What is never saved with the progress (``wizard.is_secret_key`` and each flow's ``TRANSIENT``): passwords, PINs,
sign-in codes, the portal session, the reference number and the access code, identity document numbers and dates of
birth. After a restart the flow goes back to the page that asks for them.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from app.errors import CsosError
from app.models.orderbook import CertificateRecord, CertificateStatus
from app.services.certificates.book import ADMINISTRATIVE, CertificateBook
from app.services.enrollment.authority import EnrollmentAuthority, EnrollmentError, PortalSession
from app.services.enrollment.wizard import Data, Step, Wizard, WizardInputError, WizardStateStore
from app.services.keys import KeyStoreError, WeakPassword, password_problems

log = logging.getLogger(__name__)

Clock = Callable[[], dt.datetime]

EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")

SOFTWARE = "software"
TOKEN = "token"

FIPS_NOTICE = (
    "A key file on this computer is encrypted (AES-256, password-protected) by CSOS Desk's built-in cryptography, "
    "which is NOT a FIPS 140-2 validated module. 21 CFR 1311.55(b)(1) asks for a FIPS 140-2 Level 1 validated "
    "module: a validated USB token or smart card meets that rule. Ask your CSOS coordinator which one your "
    "pharmacy uses.")

# The key-location choices, said plainly: which one uses a validated module (issue 19).
KEY_CHOICE_SOFTWARE_TEXT = ("The key is a file on this computer, locked with a password only you know. The software "
                            "that protects it is not a validated (FIPS 140) security module.")
KEY_CHOICE_TOKEN_TEXT = ("The key is made on a small USB device and can never be copied off it. This is the choice "
                         "that uses a validated security module, when the token is FIPS 140 validated (most CSOS "
                         "tokens are); ask your CSOS coordinator whether your pharmacy uses one.")


# ---------------------------------------------------------------------------------------------------------------------
# The flow base: plumbing the host uses, and the steps several flows share


class Flow:
    """A flow = a navigation map + the services behind it. The host calls ``next``/``back``/``poll``."""

    name = "flow"
    title = "Wizard"
    start_view = ""
    TRANSIENT: frozenset[str] = frozenset({"password", "password_confirm", "sign_in_code", "challenge_id",
                                           "signed_in", "key_password", "key_password_confirm", "key_pin",
                                           "key_secret_ready", "reference_number", "access_code",
                                           "current_secret", "current_secret_ready", "p12_password",
                                           "identity_document_number", "date_of_birth"})
    #: seconds between polls on views that wait for someone else (the host runs ``poll`` on a timer)
    POLL_SECONDS: Mapping[str, float] = {}

    def __init__(self, *, authority: EnrollmentAuthority, certificates: CertificateBook,
                 store: WizardStateStore | None = None, clock: Clock | None = None,
                 data: Mapping[str, Any] | None = None, resume: bool = True) -> None:
        self.authority = authority
        self.certificates = certificates
        self.store = store
        self.clock = clock or (lambda: dt.datetime.now(dt.timezone.utc))
        self.session: PortalSession | None = None
        self.context: dict[str, Any] = {}
        self.navmap = self.build_navmap()
        initial = {"automatic": bool(authority.automatic), **self.initial_data(), **dict(data or {})}
        saved = store.load(self.name) if (store is not None and resume) else None
        if saved is not None and not self.resumable(saved.get("data") or {}, initial):
            store.discard(self.name)  # progress for another certificate: this run starts over
            saved = None
        self.wizard: Wizard | None = None
        if saved is not None:
            try:
                self.wizard = Wizard.restore(saved, self.navmap, transient=self.TRANSIENT, on_change=self._save)
                self.resumed = True
            except CsosError as exc:
                log.warning("saved %s progress not resumed: %s", self.name, exc.code)
        if self.wizard is None:
            self.wizard = Wizard(name=self.name, navmap=self.navmap, view=self.start_view, data=initial,
                                 transient=self.TRANSIENT, on_change=self._save)
            self.resumed = False

    # -- to be filled by each flow --------------------------------------------------------------------------------

    def build_navmap(self) -> dict[str, Step]:
        raise NotImplementedError

    def initial_data(self) -> Data:
        return {}

    def resumable(self, saved: Mapping[str, Any], initial: Mapping[str, Any]) -> bool:
        """Whether saved progress belongs to this run (a renewal of another certificate does not)."""
        return True

    # -- what the host uses ---------------------------------------------------------------------------------------

    @property
    def view(self) -> str:
        return self.wizard.view

    @property
    def data(self) -> Data:
        return self.wizard.data

    @property
    def step(self) -> Step:
        return self.wizard.step

    @property
    def can_go_back(self) -> bool:
        return self.wizard.can_go_back

    @property
    def is_last(self) -> bool:
        return self.wizard.is_last

    def start(self) -> None:
        """Prepare the current view (first show, or after a resume)."""
        self.wizard.enter()

    def next(self, updates: Mapping[str, Any] | None = None) -> str:
        return self.wizard.next(updates)

    def back(self) -> str:
        return self.wizard.back()

    def poll_seconds(self) -> float | None:
        return self.POLL_SECONDS.get(self.view) if self.data.get("automatic") else None

    def poll(self) -> bool:
        """Ask the authority whether what this view waits for has happened; True when the view changed."""
        return False

    def banner(self) -> tuple[str, bool] | None:
        """A line every page of this flow shows above its own text (text, urgent), or None."""
        return None

    def finish(self) -> None:
        """Done (or abandoned for good): the saved progress goes."""
        if self.store is not None:
            self.store.discard(self.name)

    def _save(self, wizard: Wizard) -> None:
        if self.store is None:
            return
        if wizard.is_last:
            self.store.discard(self.name)
        else:
            self.store.save(wizard)

    # -- shared steps ---------------------------------------------------------------------------------------------

    def _account_accept(self, data: Data) -> None:
        """Create the portal account (new) and ask for the one-time sign-in code."""
        email = required_text(data, "email", "Enter your e-mail address.").lower()
        if not EMAIL.match(email):
            raise WizardInputError(f"'{email}' is not an e-mail address.", field="email", code="flow.email")
        data["email"] = email
        password = data.get("password") or ""
        if not password:
            raise WizardInputError("Enter your portal password.", field="password", code="flow.password_missing")
        if data.get("account_choice", "new") == "new" and data.get("account_created_for") != email:
            if password != data.get("password_confirm"):
                raise WizardInputError("The two passwords are not the same.", field="password_confirm",
                                       code="flow.password_mismatch")
            full_name = required_text(data, "full_name", "Enter your full name first (Back to the Person page).")
            field_errors(lambda: self.authority.create_account(email=email, full_name=full_name,
                                                                password=password))
            data["account_created_for"] = email
        challenge = field_errors(lambda: self.authority.start_sign_in(email=email, password=password))
        data.pop("sign_in_code", None)  # a new code is on its way: the old one must not sit in the field
        data["challenge_id"] = challenge.challenge_id
        data["sign_in_message"] = challenge.message

    def _sign_in_code_accept(self, data: Data) -> None:
        code = re.sub(r"\s", "", str(data.get("sign_in_code") or ""))
        if not code:
            raise WizardInputError("Enter the 6-digit code from the e-mail.", field="sign_in_code",
                                   code="flow.code_missing")
        if not data.get("challenge_id"):
            raise WizardInputError("Sign in again: press Back.", field="sign_in_code", code="flow.no_challenge")
        self.session = field_errors(lambda: self.authority.finish_sign_in(challenge_id=data["challenge_id"],
                                                                            code=code))
        data.pop("challenge_id", None)
        data["signed_in"] = True
        account = self.authority.account(self.session)
        data["subscriber_serial"] = account.subscriber_serial
        data["coordinator_of"] = list(account.coordinator_of)
        data["portal_certificates"] = [{"serial": c.serial, "fingerprint": c.fingerprint, "status": c.status}
                                       for c in account.certificates]
        if not data.get("full_name"):
            data["full_name"] = account.full_name

    def _after_sign_in(self, default: str) -> Callable[[Data], str]:
        """After signing in again on a resumed run the wizard engine returns to where it left off by itself."""
        def target(data: Data) -> str:
            return default
        return target

    def _enter_key_location(self, data: Data) -> None:
        try:
            tokens = self.certificates.list_tokens()
            problem = ""
        except KeyStoreError as exc:
            tokens, problem = [], exc.message
        self.context["tokens"] = [{"serial": t.serial, "label": t.label, "manufacturer": t.manufacturer,
                                   "model": t.model, "pin_pad": t.pin_pad, "pin_locked": t.pin_locked,
                                   "module": t.module} for t in tokens]
        self.context["token_problem"] = problem
        self.context["fips_notice"] = FIPS_NOTICE
        data.setdefault("key_store", SOFTWARE)

    def _check_key_choice(self, data: Data, *, personal_words: list[str]) -> None:
        """Validate where the new key goes and its password/PIN (K1, K5); sets ``key_secret_ready``."""
        store = data.get("key_store") or SOFTWARE
        if store == SOFTWARE:
            password = data.get("key_password") or ""
            problems = password_problems(password, personal_words=personal_words)
            if problems:
                raise WizardInputError(problems[0].message, field="key_password", code="flow.weak_password")
            if password != data.get("key_password_confirm"):
                raise WizardInputError("The two passwords are not the same.", field="key_password_confirm",
                                       code="flow.password_mismatch")
        elif store == TOKEN:
            token = self._chosen_token(data)
            if token.get("pin_locked"):
                raise WizardInputError("This token's PIN is locked. Ask whoever manages the token to unlock it, or "
                                       "choose another token.", field="token_serial", code="flow.pin_locked")
            data["token_pin_pad"] = bool(token.get("pin_pad"))
            data["token_label"] = token.get("label")
            if not token.get("pin_pad") and not data.get("key_pin"):
                raise WizardInputError("Enter the token's PIN.", field="key_pin", code="flow.pin_missing")
        else:
            raise WizardInputError("Choose where the key will live.", field="key_store", code="flow.key_store")
        data["key_secret_ready"] = True

    def _chosen_token(self, data: Data) -> dict[str, Any]:
        tokens = self.context.get("tokens")
        if tokens is None:
            self._enter_key_location(data)
            tokens = self.context["tokens"]
        if not tokens:
            raise WizardInputError(self.context.get("token_problem") or "No token was found. Insert your token "
                                   "and press Next again, or choose a key file.", field="token_serial",
                                   code="flow.no_token")
        serial = data.get("token_serial") or (tokens[0]["serial"] if len(tokens) == 1 else None)
        token = next((t for t in tokens if t["serial"] == serial), None)
        if token is None:
            raise WizardInputError("Choose your token from the list.", field="token_serial", code="flow.token_choice")
        data["token_serial"] = token["serial"]
        return token

    @staticmethod
    def key_secret(data: Data) -> str | None:
        if (data.get("key_store") or SOFTWARE) == SOFTWARE:
            return data.get("key_password") or None
        return None if data.get("token_pin_pad") else (data.get("key_pin") or None)

    def _make_key_and_request(self, data: Data, *, full_name: str, email: str, registrant_name: str,
                              subject_serial: str, label: str) -> None:
        """Generate the key where chosen and the certificate request it signs (proof of possession, S3)."""
        store = data.get("key_store") or SOFTWARE
        if data.get("key_id") and data.get("csr_pem") and data.get("key_made_in") == key_place(data):
            return  # made before the person went back: never a second key for the same request
        secret = self.key_secret(data)
        try:
            ref = self.certificates.keygen(store=store, label=label, secret=secret,
                                           token_serial=data.get("token_serial") if store == TOKEN else None)
            csr_der = self.certificates.make_csr(ref, secret=secret, full_name=full_name, email=email,
                                                 registrant_name=registrant_name,
                                                 subject_serial=subject_serial or "0")
        except WeakPassword as exc:
            raise WizardInputError(exc.message, field="key_password", code=exc.code) from None
        except KeyStoreError as exc:
            field = "key_pin" if exc.code in ("key.wrong_pin", "key.pin_locked", "key.pin_required") else None
            raise WizardInputError(exc.message, field=field, code=exc.code) from None
        csr = x509.load_der_x509_csr(csr_der)
        data["key_id"] = ref.key_id
        data["key_made_in"] = key_place(data)
        data["key_description"] = ref.describe()
        data["csr_pem"] = csr.public_bytes(serialization.Encoding.PEM).decode("ascii")
        data["csr_sha256"] = hashes_hex(csr_der)

    def _install(self, data: Data, bundles: list[bytes]) -> list[CertificateRecord]:
        """Install what the authority issued (one certificate per registration, all for our key), bind it to the
        key, and check each like a supplier would (S1)."""
        secret = None if (data.get("key_store") or SOFTWARE) == SOFTWARE else self.key_secret(data)
        roots = self._authority_roots()
        records = [self.certificates.install(bundle, secret=secret, trust_roots=roots) for bundle in bundles]
        data["installed"] = [summarize(r) for r in records]
        data["check_problems"] = [problem for r in records for problem in self.check_certificate(r)]
        signing = [r for r in records if r.kind != ADMINISTRATIVE and r.registration is not None]
        data["test_order_registration"] = signing[0].registration.dea_number if signing else None
        return records

    def _authority_roots(self) -> list[x509.Certificate] | None:
        """The CSOS roots of the enrolling authority (training: the sandbox's root; both come from this profile's
        settings), or None: then the profile's configured roots decide."""
        try:
            pem = self.authority.trust_roots_pem()
            return list(x509.load_pem_x509_certificates(pem)) if pem else None
        except (CsosError, ValueError):
            return None

    def check_certificate(self, record: CertificateRecord) -> list[str]:
        """Problems a supplier would find with this certificate now (chain, CRL, validity); empty = fine. With no
        trust roots at all nothing is called trusted: that is the problem reported."""
        try:
            from app.services.certificates.crl_cache import CrlCache
            from app.services.certificates.validation import CertificateValidationService

            roots = self._authority_roots() or self.certificates.trust_roots()
            if not roots:
                from app.services.certificates.admission import HOW_TO_ADD_ROOTS

                return ["No CSOS trust roots are set up, so the certificate could not be checked and is not called "
                        "trusted. " + HOW_TO_ADD_ROOTS]
            tls = getattr(self.authority, "tls_bundle", None)
            cache = CrlCache(self.certificates.config.cache_dir / "crl", tls_ca_bundle=tls)
            service = CertificateValidationService(trust_roots=roots, crl_cache=cache, clock=self.clock)
            cert, intermediates = CertificateBook.chain(record)
            result = service.validate(cert, at=self.clock(), intermediates=intermediates)
            return [p.message for p in result.problems]
        except CsosError as exc:
            return [exc.message]
        except (ValueError, x509.InvalidVersion):  # the CA sent trust roots that cannot be read
            return ["The trust roots sent by the certificate authority cannot be read, so the certificate could not "
                    "be checked now. It is installed, and it is checked again before it signs any order."]


# ---------------------------------------------------------------------------------------------------------------------
# Small helpers


def record_status(record: CertificateRecord) -> str:
    status = record.status
    return status.value if isinstance(status, CertificateStatus) else str(status)


def summarize(record: CertificateRecord) -> dict[str, Any]:
    """What the pages show about a certificate record (JSON-ready, no secrets)."""
    registration = record.registration
    return {"fingerprint": record.fingerprint or "", "subscriber": record.subscriber_name, "email": record.email,
            "kind": record.kind, "status": record_status(record),
            "registration": registration.dea_number if registration is not None else "",
            "registration_name": registration.name if registration is not None else "",
            "schedules": record.schedules,
            "not_after": record.not_after.isoformat() if record.not_after else None,
            "key_location": key_location_text(record.key_ref or {})}


def key_location_text(key_ref: Mapping[str, Any]) -> str:
    token = key_ref.get("token")
    if token:
        return f"Token '{token.get('label', '')}' serial {token.get('serial', '')}"
    if key_ref.get("store") == "software":
        return "Key file on this computer"  # the certificate ID names the certificate; a key id would be a third name
    return "No key here"


def read_certificate_file(raw: Any) -> bytes:
    text = str(raw or "").strip()
    if not text:
        raise WizardInputError("Choose the certificate file you downloaded from the portal.",
                               field="certificate_file", code="flow.certificate_missing")
    try:
        return Path(text).expanduser().read_bytes()
    except OSError as exc:
        raise WizardInputError(f"The file {text} cannot be read ({exc.strerror or exc}).", field="certificate_file",
                               code="flow.certificate_unreadable") from None


def hashes_hex(data: bytes) -> str:
    digest = hashes.Hash(hashes.SHA256())
    digest.update(data)
    return digest.finalize().hex()


def key_place(data: Mapping[str, Any]) -> str:
    store = data.get("key_store") or SOFTWARE
    return f"token:{data.get('token_serial')}" if store == TOKEN else SOFTWARE


def key_label(name: str, now: dt.datetime) -> str:
    return f"CSOS {name}"[:52] + f" {now:%Y-%m-%d}"


def personal_words_of(data: Mapping[str, Any]) -> list[str]:
    words = str(data.get("full_name") or "").split()
    email = str(data.get("email") or "")
    if email:
        words.append(email.split("@")[0])
    words.extend(str(d) for d in data.get("registrations") or [])
    return [w for w in words if w]


def required_text(data: Data, key: str, message: str) -> str:
    value = str(data.get(key) or "").strip()
    if not value:
        raise WizardInputError(message, field=key, code=f"flow.{key}_missing")
    return value


def field_errors(call: Callable[[], Any]) -> Any:
    """An authority refusal about one entry becomes an input error on that entry (the page points at it)."""
    try:
        return call()
    except EnrollmentError as exc:
        if exc.field:
            raise WizardInputError(exc.message, field=exc.field, code=exc.code) from None
        raise


def parse_moment(value: Any) -> dt.datetime | None:
    if isinstance(value, dt.datetime):
        moment = value
    else:
        text = str(value or "").strip().replace("T", " ")
        if not text:
            return None
        try:
            moment = dt.datetime.fromisoformat(text)
        except ValueError:
            return None
    if moment.tzinfo is None:
        moment = moment.astimezone()  # a time typed by the person is their local time
    return moment.astimezone(dt.timezone.utc)


__all__ = ["EMAIL", "FIPS_NOTICE", "KEY_CHOICE_SOFTWARE_TEXT", "KEY_CHOICE_TOKEN_TEXT", "SOFTWARE", "TOKEN", "Clock",
           "Flow", "field_errors", "hashes_hex", "key_label",
           "key_location_text", "key_place", "parse_moment", "personal_words_of", "read_certificate_file",
           "record_status", "required_text", "summarize"]
