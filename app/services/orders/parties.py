"""Registrations and suppliers as they are typed: one check per record type, and one rule for telling names apart.

Why here: the command line, the Settings screen and the order book itself all call ``check_registration`` /
``check_supplier``, so a person sees the same words wherever a value is entered, and a value that would only fail
when the order is signed or sent (an ``*`` in a name, a 5,000-character city, ZIP "ABCDE", state "ZZ", an
``http://`` supplier address) is refused when it is typed. The limits are those of the X12 850 elements the values
go into (N1 name 60, N3 address line 55, N4 city 2-30 and state code, ZIP in N4 postal code).

Names are compared with Unicode case folding after NFKC (``name_key``): "ACME DRUG" is "Acme Drug", "éclair drug"
is "Éclair Drug", a full-width "Ａｃｍｅ" is "Acme". Duplicates and look-ups use the same rule.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence
from urllib.parse import urlsplit

from app.errors import InvalidValue
from app.models.values import DeaNumber, Schedule

CONNECTOR_KINDS = ("https", "folder", "manual", "as2")
DELIMITERS = "*~>"  # X12 element separator, segment terminator, sub-element separator

NAME_MAX = 60  # N1-02
ADDRESS_LINE_MAX = 55  # N3-01 / N3-02
ADDRESS_LINES_MAX = 4  # two N3 segments
CITY_MIN, CITY_MAX = 2, 30  # N4-01
BUSINESS_ACTIVITY_MAX = 100  # not in the 850; the certificate's business activity
URL_MAX = 2000

# US states, DC, the territories and the military "states" (DEA registers in all of them).
US_STATE_CODES = frozenset(
    "AL AK AZ AR CA CO CT DE FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH NJ NM NY NC ND OH OK OR PA "
    "RI SC SD TN TX UT VT VA WA WV WI WY DC PR VI GU AS MP FM MH PW AA AE AP".split())
_ZIP = re.compile(r"^[0-9]{5}(-[0-9]{4})?$")


def name_key(name: str) -> str:
    """What two names are compared by: NFKC, Unicode case folding, NFKC again, inner spaces collapsed."""
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name or "").casefold())
    return " ".join(folded.split())


def same_name(names: Iterable[tuple[int, str]], wanted: str) -> list[tuple[int, str]]:
    """The (id, name) pairs whose name is ``wanted`` under ``name_key``."""
    key = name_key(wanted)
    return [(ident, name) for ident, name in names if name_key(name) == key]


@dataclass(frozen=True)
class FieldProblem:
    field: str
    code: str
    message: str


@dataclass(frozen=True)
class SupplierForm:
    """What is entered for one supplier (Settings screen, `supplier add|edit`)."""

    name: str
    dea_number: str = ""
    address_lines: tuple[str, ...] = ()
    city: str = ""
    state: str = ""
    postal_code: str = ""
    kind: str = "manual"
    url: str = ""
    folder: str = ""
    tls_bundle: str = ""
    # as2 only. None: not on this form (`supplier add` checks its --as2-… options itself). The certificate is the PEM
    # text on file, or the path of a file chosen to replace it.
    as2_partner_id: str | None = None
    as2_certificate: str | None = None


@dataclass(frozen=True)
class RegistrationForm:
    """What is entered for one DEA registration (`registration add|edit`, enrollment)."""

    dea_number: str
    name: str
    address_lines: tuple[str, ...] = ()
    city: str = ""
    state: str = ""
    postal_code: str = ""
    schedules: tuple[str, ...] = ()
    business_activity: str = "RETAIL PHARMACY"


def _text(field: str, what: str, value: str, *, maximum: int, minimum: int = 1,
          required: bool = True) -> FieldProblem | None:
    """One piece of text that goes into an electronic order: the characters it may hold and its length."""
    text = (value or "").strip()
    if not text:
        if required:
            return FieldProblem(field, f"{field}.empty", f"Enter the {what}.")
        return None
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") for ch in text):
        return FieldProblem(field, f"{field}.characters", f"The {what} contains an invisible control character (such "
                                                          "as a tab or a line break). Type it again on one line.")
    bad = sorted({ch for ch in text if ch in DELIMITERS})
    if bad:
        return FieldProblem(field, f"{field}.characters", f"The {what} cannot contain {' '.join(bad)}: these "
                                                          "characters separate the parts of an electronic order. "
                                                          "Leave them out.")
    from app.services.orders.descriptions import ascii_text

    spelled = ascii_text(text)  # what the signed order will carry (é -> e)
    if not spelled:
        return FieldProblem(field, f"{field}.characters", f"The {what} has no letters or digits an electronic order "
                                                          "can carry. Type it with ordinary letters.")
    length = max(len(text), len(spelled))
    if length > maximum:
        return FieldProblem(field, f"{field}.too_long", f"The {what} is too long: at most {maximum} characters, this "
                                                        f"one has {length:,}. Shorten or abbreviate it.")
    if length < minimum:
        return FieldProblem(field, f"{field}.too_short", f"The {what} needs at least {minimum} characters.")
    return None


def _address(problems: list[FieldProblem], lines: Sequence[str], city: str, state: str, postal_code: str, *,
             required: bool) -> None:
    """A registration's address is required (the 850 carries it); a supplier's parts are optional (O1: the supplier
    completes it; an incomplete one is kept for people and left out of the order), but each part given must be
    valid."""
    lines = [line for line in lines if (line or "").strip()]
    if len(lines) > ADDRESS_LINES_MAX:
        problems.append(FieldProblem("address1", "address.lines", f"An address has at most {ADDRESS_LINES_MAX} "
                                                                  "lines."))
    for index, line in enumerate(lines[:ADDRESS_LINES_MAX], start=1):
        problem = _text(f"address{index}", "address line", line, maximum=ADDRESS_LINE_MAX)
        if problem is not None:
            problems.append(FieldProblem(problem.field, problem.code.replace(f"address{index}.", "address."),
                                         problem.message))
    if required and not lines:
        problems.append(FieldProblem("address1", "address.empty", "Enter the street address (the first line at "
                                                                  "least)."))
    problem = _text("city", "city", city, minimum=CITY_MIN, maximum=CITY_MAX, required=required)
    if problem is not None:
        problems.append(FieldProblem("city", problem.code.replace("city.", "address.city_"), problem.message))
    code = state.strip().upper()
    if code or required:
        if code not in US_STATE_CODES:
            problems.append(FieldProblem("state", "address.state",
                                         f"“{state.strip()}” is not a US state or territory code. Use the "
                                         "two-letter code, e.g. TN." if code else
                                         "Enter the two-letter state code, e.g. TN."))
    postal = postal_code.strip()
    if postal or required:
        if not _ZIP.match(postal):
            problems.append(FieldProblem("postal_code", "address.zip",
                                         f"“{postal}” is not a ZIP code. Use 5 digits (38118) or ZIP+4 "
                                         "(38118-1234)." if postal else "Enter the ZIP code (5 digits, or ZIP+4)."))


def check_registration(form: RegistrationForm) -> list[FieldProblem]:
    """Every problem of a registration as entered, each tied to its field."""
    problems: list[FieldProblem] = []
    try:
        DeaNumber.parse(form.dea_number)
    except InvalidValue as exc:
        problems.append(FieldProblem("dea_number", exc.code, exc.message))
    problem = _text("name", "registrant's name", form.name, maximum=NAME_MAX)
    if problem is not None:
        problems.append(problem)
    _address(problems, form.address_lines, form.city, form.state, form.postal_code, required=True)
    for schedule in form.schedules:
        try:
            Schedule.parse(schedule)
        except InvalidValue as exc:
            problems.append(FieldProblem("schedules", exc.code, exc.message))
    problem = _text("business_activity", "business activity", form.business_activity,
                    maximum=BUSINESS_ACTIVITY_MAX, required=False)
    if problem is not None:
        problems.append(problem)
    return problems


def check_supplier(form: SupplierForm) -> list[FieldProblem]:
    """Every problem of a supplier as entered, each tied to the field that shows it."""
    problems: list[FieldProblem] = []
    if not form.name.strip():
        problems.append(FieldProblem("name", "supplier_name.empty", "Enter the supplier's name."))
    else:
        problem = _text("name", "supplier's name", form.name, maximum=NAME_MAX)
        if problem is not None:
            problems.append(FieldProblem("name", problem.code.replace("name.", "supplier_name."), problem.message))
    if form.dea_number.strip():
        try:
            DeaNumber.parse(form.dea_number)
        except InvalidValue as exc:
            problems.append(FieldProblem("dea_number", exc.code, exc.message))
    _address(problems, form.address_lines, form.city, form.state, form.postal_code, required=False)
    if form.kind not in CONNECTOR_KINDS:
        problems.append(FieldProblem("kind", "connector.kind", "Choose how orders reach this supplier."))
    url = form.url.strip()
    if form.kind in ("https", "as2") or url:
        problem = _url_problem(url)
        if problem is not None:
            problems.append(problem)
    if form.kind == "https" and form.tls_bundle.strip() and not Path(form.tls_bundle.strip()).is_file():
        problems.append(FieldProblem("tls_bundle", "connector.tls_bundle",
                                     f"The certificate file {form.tls_bundle.strip()} does not exist. Choose the file "
                                     "again, or leave it empty to use this computer's trusted certificates."))
    if form.kind == "as2":
        _as2_problems(problems, form)
    if form.kind == "folder":
        if not form.folder.strip():
            problems.append(FieldProblem("folder", "connector.folder",
                                         "Choose the folder your EDI software picks orders up from."))
        elif not Path(form.folder.strip()).is_dir():
            problems.append(FieldProblem("folder", "connector.folder",
                                         f"The folder {form.folder.strip()} does not exist. Create it or choose "
                                         "another one."))
    return problems


def _as2_problems(problems: list[FieldProblem], form: SupplierForm) -> None:
    from app.errors import CsosError
    from app.services.transport.as2 import load_partner_certificate
    from app.services.transport.as2_mime import check_as2_id

    if form.as2_partner_id is not None:
        try:
            check_as2_id(form.as2_partner_id)
        except CsosError as exc:
            problems.append(FieldProblem("as2_partner_id", "connector.as2_partner_id",
                                         "Enter the supplier's AS2 ID (the supplier tells you). " + exc.message
                                         if form.as2_partner_id.strip() else
                                         "Enter the supplier's AS2 ID (the supplier tells you)."))
    if form.as2_certificate is None:
        return
    value = form.as2_certificate.strip()
    problem = "Choose the AS2 certificate file the supplier gave you (.pem or .cer)." if not value else ""
    if value and "-----BEGIN" not in value:
        try:
            load_partner_certificate(Path(value).read_bytes(), source=value)
        except OSError:
            problem = f"The file {value} cannot be read. Choose the AS2 certificate file the supplier gave you."
        except CsosError as exc:
            problem = exc.message + " Choose the AS2 certificate file the supplier gave you."
    if problem:
        problems.append(FieldProblem("as2_certificate", "connector.as2_partner_certificate", problem))


def _url_problem(url: str) -> FieldProblem | None:
    ask = "(ask the supplier for their CSOS order address)"
    if not url.lower().startswith("https://") or len(url) <= len("https://"):
        if url.lower().startswith("http://"):
            return FieldProblem("url", "connector.url", "The supplier's address must start with https:// (a secure "
                                                        f"connection); http:// is not accepted {ask}.")
        return FieldProblem("url", "connector.url", f"Enter the supplier's web address starting with https:// {ask}.")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - a bad port raises here
    except ValueError:
        parts = None
    if parts is None or not parts.hostname or len(url) > URL_MAX or any(ch.isspace() or ord(ch) < 0x20 for ch in url):
        return FieldProblem("url", "connector.url", f"“{url[:80]}” is not a web address {ask}.")
    if parts.username or parts.password:
        return FieldProblem("url", "connector.url", "Leave the user name and password out of the address; CSOS Desk "
                                                    "does not store passwords.")
    return None


def raise_first(problems: list[FieldProblem]) -> None:
    """The first problem as a typed error (the command line shows one at a time, the Settings screen all)."""
    if problems:
        raise InvalidValue(problems[0].message, code=problems[0].code)
