"""Supplier connectors (DESIGN.md §8): how a signed document reaches a supplier and how the supplier's answers come
back. One interface, three kinds, chosen by the supplier record's ``connector`` settings:

- ``https``: the supplier HTTP contract (docs/sandbox-api.md): POST the ``.csos``, get the 855 back at once, fetch
  later records (856 shipments, 865 voids). TLS is always verified against the configured bundle; connect and read
  timeouts; a few quick retries with exponential backoff and jitter for failures that may pass.
- ``folder``: an EDI/VAN agent picks files up from ``outgoing/`` and drops the supplier's X12 files in ``incoming/``;
  ``order sync`` reads them and moves each to ``incoming/processed/`` or ``incoming/failed/``.
- ``manual``: the file is saved for a person to upload on the supplier's portal; the supplier's answer files are
  linked with ``order import`` (or its answer typed in with ``order answer``).

Connectors only move bytes. What the answers mean for the order is ``app.services.orders.lifecycle``'s business, and when to
try again is the outbox's.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import logging
import os
import random
import re
import tempfile
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from app.errors import ConfigError, CsosError
from app.services.signing.cms import MEDIA_TYPE

log = logging.getLogger(__name__)

X12_MEDIA_TYPE = "application/edi-x12"
DEFAULT_CONNECT_TIMEOUT = 5.0
DEFAULT_READ_TIMEOUT = 30.0
DEFAULT_MAX_ATTEMPTS = 3
DEFAULT_BACKOFF = 0.5  # seconds before the 2nd try; doubles each try (full jitter), capped below
MAX_BACKOFF = 8.0
MAX_ANSWER_BYTES = 4 * 1024 * 1024
ANSWER_STATUSES = ("accepted", "accepted_with_changes", "rejected")


class TransportError(CsosError):
    """A document could not be handed to the supplier, or the supplier's answer cannot be used.

    ``retryable`` says whether the same request may succeed later (network trouble, 5xx, a garbled answer) or never
    will (the supplier refused the request itself, e.g. ``transport.order_number_reused``).
    """

    code = "transport.failed"

    delivered = False  # True when the supplier has the document even though this failed (never send it again)

    def __init__(self, message: str, *, code: str | None = None, retryable: bool = True) -> None:
        super().__init__(message, code=code)
        self.retryable = retryable


class AnswerUnreadable(TransportError):
    """The supplier took the document (HTTP 200) but its answer cannot be used: unreadable, not JSON, nested too
    deep, or without a known status. The supplier HAS the order, so it is never posted again (issue 16.2); the
    supplier's records are fetched later by ``order sync``."""

    code = "transport.answer_unreadable"
    delivered = True

    def __init__(self, message: str, *, code: str | None = None, answer: dict[str, Any] | None = None) -> None:
        super().__init__(message, code=code, retryable=False)
        self.answer = dict(answer or {})


@dataclass(frozen=True)
class SupplierRecord:
    """One document from the supplier (855, 856 or 865 X12 bytes), as received."""

    kind: str  # "855" | "856" | "865" (the X12 transaction set)
    data: bytes
    media_type: str = X12_MEDIA_TYPE
    seq: int | None = None  # the supplier's sequence number (https); None for files
    created_at: dt.datetime | None = None
    source: str = ""  # URL or file name, for the record

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass(frozen=True)
class Delivery:
    """What happened when a document was handed over.

    ``answered`` is True when the supplier answered at once (https): ``status``/``reasons`` are its verdict and
    ``records`` its acknowledgement. Folder and manual deliveries are handed over without an answer yet.
    """

    answered: bool
    status: str | None = None
    reasons: tuple[dict[str, str], ...] = ()
    records: tuple[SupplierRecord, ...] = ()
    answer: dict[str, Any] = field(default_factory=dict)
    where: str = ""  # the URL posted to or the file written

    def describe(self) -> str:
        if self.answered:
            return f"answered '{self.status}' by {self.where}"
        return f"handed over as {self.where}"


class Connector(ABC):
    kind: str = ""
    expected_test_indicator: str | None = None  # ISA15 this supplier takes (T training, P production); None: any

    @abstractmethod
    def send_order(self, *, order_number: str, purchaser_dea: str, document: bytes) -> Delivery:
        """Hand over a signed order. Sending the same bytes again must be harmless (idempotent)."""

    @abstractmethod
    def send_statement(self, *, order_number: str, purchaser_dea: str, document: bytes) -> Delivery:
        """Hand over a signed lost-order statement (O7)."""

    def fetch_records(self, *, order_number: str, purchaser_dea: str, after: int) -> list[SupplierRecord]:
        """The supplier's records for one order with a sequence number above ``after`` (https only)."""
        return []

    def collect_incoming(self) -> list["IncomingFile"]:
        """Supplier files waiting in a drop folder (folder only)."""
        return []

    @property
    def answers_at_once(self) -> bool:
        return False

    def close(self) -> None:  # noqa: B027 - optional hook
        pass


# ---------------------------------------------------------------------------------------------------------------------
# https


class HttpsConnector(Connector):
    kind = "https"

    def __init__(self, url: str, *, tls_bundle: str | Path, connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
                 read_timeout: float = DEFAULT_READ_TIMEOUT, max_attempts: int = DEFAULT_MAX_ATTEMPTS,
                 backoff: float = DEFAULT_BACKOFF, sleep: Callable[[float], None] = time.sleep,
                 rng: random.Random | None = None, session: Any = None) -> None:
        """``session``: a requests session to share (the AS2 connector's, so the records of the same host can go
        over its pooled connection); it keeps its owner's settings and is closed by its owner. Every request here
        names this connector's bundle itself, so TLS is verified against it either way."""
        from app.services.transport.tls import verified_session

        base = url.rstrip("/")
        if base.endswith("/orders"):
            base = base[: -len("/orders")]
        if not base.lower().startswith("https://"):
            raise ConfigError(f"The supplier address {url} is not an https:// address; orders are only sent over "
                              "verified TLS.", code="connector.not_https")
        bundle = Path(tls_bundle)
        if not bundle.is_file():
            raise ConfigError(f"The TLS certificate bundle {bundle} for {base} does not exist.",
                              code="connector.tls_bundle_missing")
        if max_attempts < 1:
            raise ConfigError("max_attempts must be at least 1.", code="connector.settings")
        self.url = base
        self.tls_bundle = str(bundle)
        self.timeout = (float(connect_timeout), float(read_timeout))
        self.max_attempts = int(max_attempts)
        self.backoff = float(backoff)
        self.sleep = sleep
        self.rng = rng or random.Random()
        self._owns_session = session is None
        # Its own session reads the bundle once per process, not once per connection (``transport.tls``).
        self.session = verified_session() if session is None else session
        if self._owns_session:
            self.session.verify = self.tls_bundle
        self.session.trust_env = False  # no proxies or CA bundles from the environment between us and the supplier

    @property
    def answers_at_once(self) -> bool:
        return True

    def close(self) -> None:
        if self._owns_session:
            self.session.close()

    def send_order(self, *, order_number: str, purchaser_dea: str, document: bytes) -> Delivery:
        url = f"{self.url}/orders"
        data = self._request("POST", url, data=document, headers={"Content-Type": MEDIA_TYPE},
                             what=f"order {order_number}")
        return self._delivery(data, url, order_number)

    def send_statement(self, *, order_number: str, purchaser_dea: str, document: bytes) -> Delivery:
        url = f"{self.url}/statements"
        data = self._request("POST", url, data=document, headers={"Content-Type": MEDIA_TYPE},
                             what=f"lost-order statement for {order_number}")
        status = data.get("status")
        if status != "recorded":
            raise TransportError(f"The supplier's answer to the lost-order statement for {order_number} says "
                                 f"'{status}', not 'recorded'.", code="transport.malformed_answer")
        return Delivery(answered=True, status="recorded", answer=data, where=url)

    def fetch_records(self, *, order_number: str, purchaser_dea: str, after: int) -> list[SupplierRecord]:
        url = f"{self.url}/orders/{purchaser_dea}/{order_number}/records"
        data = self._request("GET", url, params={"after": str(int(after))}, what=f"records of {order_number}")
        items = data.get("records")
        if not isinstance(items, list):
            raise TransportError(f"The supplier's record list for {order_number} is not readable.",
                                 code="transport.malformed_answer")
        records = [_record_from_json(item, url) for item in items]
        return sorted(records, key=lambda r: r.seq or 0)

    # -- plumbing ---------------------------------------------------------------------------------------------------

    def _delivery(self, data: dict[str, Any], url: str, order_number: str) -> Delivery:
        status = data.get("status")
        if status not in ANSWER_STATUSES:
            raise AnswerUnreadable(f"The supplier took order {order_number} but its answer has no known status "
                                   f"('{str(status)[:40]}').", answer={"where": url})
        reasons = data.get("reasons") or []
        if not isinstance(reasons, list) or not all(isinstance(r, dict) for r in reasons):
            raise AnswerUnreadable(f"The supplier took order {order_number} but its reasons are not readable.",
                                   answer={"where": url, "status": status})
        records: tuple[SupplierRecord, ...] = ()
        if data.get("acknowledgement") is not None:
            try:
                records = (_record_from_json(data["acknowledgement"], url),)
            except TransportError as exc:
                raise AnswerUnreadable(f"The supplier took order {order_number} but its acknowledgement is not "
                                       f"readable: {exc.message}", answer={"where": url, "status": status}) from None
        answer = {k: v for k, v in data.items() if k != "acknowledgement"}
        return Delivery(answered=True, status=status,
                        reasons=tuple({"code": str(r.get("code", "")), "message": str(r.get("message", ""))}
                                      for r in reasons),
                        records=records, answer=answer, where=url)

    def _request(self, method: str, url: str, *, what: str, **kwargs: Any) -> dict[str, Any]:
        """One request with bounded retries for failures that may pass (network, 5xx, garbled answer)."""
        failure: TransportError | None = None
        for attempt in range(1, self.max_attempts + 1):
            try:
                return self._request_once(method, url, what=what, **kwargs)
            except TransportError as exc:
                failure = exc
                if not exc.retryable or attempt == self.max_attempts:
                    break
                delay = self.rng.uniform(0, min(MAX_BACKOFF, self.backoff * 2 ** (attempt - 1)))
                log.info("supplier request failed (%s), try %d of %d in %.2fs", exc.code, attempt + 1,
                         self.max_attempts, delay)
                self.sleep(delay)
        assert failure is not None
        raise failure

    def _request_once(self, method: str, url: str, *, what: str, **kwargs: Any) -> dict[str, Any]:
        import requests

        try:
            response = self.session.request(method, url, timeout=self.timeout, allow_redirects=False, stream=True,
                                            verify=self.tls_bundle, **kwargs)
        except requests.exceptions.SSLError:
            raise TransportError(f"The supplier at {self.url} could not prove its identity (TLS certificate not "
                                 "trusted by the configured bundle). Nothing was sent.", code="transport.tls",
                                 retryable=True) from None
        except requests.exceptions.ConnectTimeout:
            raise TransportError(f"The supplier at {self.url} did not accept a connection in time "
                                 f"({self.timeout[0]:g} s).", code="transport.timeout") from None
        except requests.exceptions.ReadTimeout:
            raise TransportError(f"The supplier at {self.url} did not answer in time ({self.timeout[1]:g} s) for "
                                 f"{what}.", code="transport.timeout") from None
        except requests.exceptions.ConnectionError:
            raise TransportError(f"The connection to the supplier at {self.url} failed or was dropped while "
                                 f"sending {what}.", code="transport.connection") from None
        except requests.exceptions.RequestException as exc:
            raise TransportError(f"The request to the supplier at {self.url} failed ({type(exc).__name__}).",
                                 code="transport.connection") from None
        try:
            body = _read_limited(response)
        except requests.exceptions.RequestException:
            raise TransportError(f"The supplier at {self.url} stopped in the middle of its answer for {what}.",
                                 code="transport.connection") from None
        finally:
            response.close()
        data = _json_object(body)
        if response.status_code >= 500:
            raise TransportError(f"The supplier at {self.url} is having trouble (HTTP {response.status_code}); "
                                 f"{what} will be tried again.", code="transport.server_error")
        if response.status_code == 409 and data and data.get("error") == "order_number_reused":
            raise TransportError(f"The supplier already has a different document under {what}: "
                                 f"{data.get('message', 'order number reused')}. A new order with a new number is "
                                 "needed.", code="transport.order_number_reused", retryable=False)
        if response.status_code == 404 and data and data.get("error") == "unknown_order":
            raise TransportError(f"The supplier has never received {what}.", code="transport.unknown_order",
                                 retryable=False)
        if response.status_code != 200:
            detail = (data or {}).get("message") or (data or {}).get("error") or f"HTTP {response.status_code}"
            raise TransportError(f"The supplier at {self.url} refused the request for {what}: {detail}.",
                                 code="transport.refused", retryable=response.status_code == 429)
        if data is None:
            if method == "POST":  # HTTP 200 to a POST: the supplier has the document, whatever its answer says
                raise AnswerUnreadable(f"The supplier took {what}, but its answer could not be read (not a JSON "
                                       "object).", answer={"where": url})
            raise TransportError(f"The supplier's answer for {what} is not readable (not JSON); it will be asked "
                                 "again.", code="transport.malformed_answer")
        return data


def _read_limited(response: Any) -> bytes:
    chunks, size = [], 0
    for chunk in response.iter_content(64 * 1024):
        size += len(chunk)
        if size > MAX_ANSWER_BYTES:
            raise TransportError("The supplier's answer is implausibly large.", code="transport.malformed_answer")
        chunks.append(chunk)
    return b"".join(chunks)


def _json_object(body: bytes) -> dict[str, Any] | None:
    import json

    try:
        value = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):  # deeply nested JSON is not an answer either
        return None
    return value if isinstance(value, dict) else None


def _record_from_json(item: Any, url: str) -> SupplierRecord:
    if not isinstance(item, dict):
        raise TransportError("A supplier record is not readable.", code="transport.malformed_answer")
    kind = str(item.get("kind", ""))
    if kind not in ("855", "856", "865"):
        raise TransportError(f"A supplier record has an unknown kind '{kind}'.", code="transport.malformed_answer")
    try:
        data = base64.b64decode(str(item.get("data_base64", "")), validate=True)
    except (binascii.Error, ValueError):
        raise TransportError("A supplier record's data is not valid base64.",
                             code="transport.malformed_answer") from None
    if not data:
        raise TransportError("A supplier record is empty.", code="transport.malformed_answer")
    created = None
    if item.get("created_at"):
        try:
            created = dt.datetime.fromisoformat(str(item["created_at"]).replace("Z", "+00:00"))
            if created.tzinfo is None:
                created = created.replace(tzinfo=dt.timezone.utc)
        except ValueError:
            created = None
    seq = item.get("seq")
    return SupplierRecord(kind=kind, data=data, media_type=str(item.get("media_type") or X12_MEDIA_TYPE),
                          seq=int(seq) if isinstance(seq, int) else None, created_at=created, source=url)


# ---------------------------------------------------------------------------------------------------------------------
# folder and manual


_SAFE_NAME = re.compile(r"^[0-9A-Z]{2}X[0-9A-Z]{6}$")


@dataclass(frozen=True)
class IncomingFile:
    """A file found in the incoming folder: its record, or why it cannot be read."""

    path: Path
    record: SupplierRecord | None
    problem: str = ""


def write_once(path: Path, data: bytes) -> bool:
    """Write ``data`` to ``path`` atomically (temp file, fsync, rename). Returns False when the same bytes are already
    there; refuses to replace a different document (one number, one document)."""
    if path.exists():
        existing = path.read_bytes()
        if existing == data:
            return False
        raise TransportError(f"{path} already holds a different document under the same order number; it was not "
                             "replaced.", code="transport.conflicting_document", retryable=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=".", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except OSError as exc:
        Path(temporary).unlink(missing_ok=True)
        raise TransportError(f"{path} cannot be written ({exc.strerror}).", code="transport.folder_unwritable") \
            from None
    _fsync_folder(path.parent)
    return True


def _fsync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # not every platform can fsync a folder; the rename is still atomic
    finally:
        os.close(fd)


def _checked_name(order_number: str) -> str:
    if not _SAFE_NAME.match(order_number):
        raise TransportError(f"'{order_number}' is not an order number.", code="transport.bad_order_number",
                             retryable=False)
    return order_number


def read_supplier_file(path: Path) -> SupplierRecord:
    """A supplier's X12 file (855, 856 or 865) as a record; the lifecycle parses and checks it."""
    from app.services.signing.x12 import X12Error, parse_interchange

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise TransportError(f"{path} cannot be read ({exc.strerror}).", code="transport.file_unreadable",
                             retryable=False) from None
    try:
        interchange = parse_interchange(data)
    except X12Error as exc:
        raise TransportError(f"{path.name} is not a supplier document CSOS Desk can read: {exc.message}",
                             code="transport.unreadable_answer", retryable=False) from None
    kind = {"Acknowledgement855": "855", "Shipment856": "856", "VoidNotice": "865"}.get(
        type(interchange.document).__name__)
    if kind is None:
        raise TransportError(f"{path.name} is a purchase order (850), not a supplier's answer.",
                             code="transport.unreadable_answer", retryable=False)
    created = dt.datetime.fromtimestamp(path.stat().st_mtime, dt.timezone.utc)
    return SupplierRecord(kind=kind, data=data, created_at=created, source=path.name)


class _FileConnector(Connector):
    """Writes each signed document once, as a file in ``self.outgoing``; answers come back some other way."""

    outgoing: Path

    def send_order(self, *, order_number: str, purchaser_dea: str, document: bytes) -> Delivery:
        path = self.outgoing / f"{_checked_name(order_number)}.csos"
        write_once(path, document)
        return Delivery(answered=False, where=str(path))

    def send_statement(self, *, order_number: str, purchaser_dea: str, document: bytes) -> Delivery:
        path = self.outgoing / f"{_checked_name(order_number)}-lost-statement.csos"
        write_once(path, document)
        return Delivery(answered=False, where=str(path))


class FolderConnector(_FileConnector):
    """Drop folder for an EDI/VAN agent: ``outgoing/<order number>.csos`` out, X12 files in ``incoming/`` back."""

    kind = "folder"

    def __init__(self, outgoing: str | Path, incoming: str | Path) -> None:
        self.outgoing = Path(outgoing)
        self.incoming = Path(incoming)

    def collect_incoming(self) -> list[IncomingFile]:
        if not self.incoming.is_dir():
            return []
        found = []
        for path in sorted(self.incoming.iterdir(), key=lambda p: (p.stat().st_mtime, p.name)):
            if not path.is_file() or path.name.startswith("."):
                continue
            try:
                found.append(IncomingFile(path, read_supplier_file(path)))
            except TransportError as exc:
                found.append(IncomingFile(path, None, exc.message))
        return found

    def file_away(self, incoming: IncomingFile, *, problem: bool = False) -> Path:
        """Move a handled file to ``incoming/processed`` (or ``incoming/failed``) so it is read once."""
        target_dir = self.incoming / ("failed" if problem else "processed")
        target_dir.mkdir(parents=True, exist_ok=True)
        target = target_dir / incoming.path.name
        counter = 1
        while target.exists():
            target = target_dir / f"{incoming.path.stem}.{counter}{incoming.path.suffix}"
            counter += 1
        os.replace(incoming.path, target)
        return target


class ManualConnector(_FileConnector):
    """Saves the file for a person to upload on the supplier's portal; answers are imported by hand."""

    kind = "manual"

    def __init__(self, folder: str | Path) -> None:
        self.outgoing = Path(folder)


# ---------------------------------------------------------------------------------------------------------------------
# factory


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "supplier"


# Connector kinds that live in their own module register their factory here when the transport package loads
# (app/services/transport/__init__.py), so this module never imports them back: factory(supplier, settings, *,
# data_dir, tls_bundle) -> Connector.
CONNECTOR_FACTORIES: dict[str, Callable[..., Connector]] = {}


def connector_for(supplier: Any, *, data_dir: str | Path, tls_bundle: str | Path | None = None,
                  sleep: Callable[[float], None] = time.sleep, rng: random.Random | None = None,
                  overrides: Mapping[str, Any] | None = None, test_indicator: str | None = None) -> Connector:
    """``_connector_for``, told which ISA15 the profile's suppliers take (``usage_indicator.for_profile``): the
    outbox refuses to hand it an interchange of the other kind."""
    connector = _connector_for(supplier, data_dir=data_dir, tls_bundle=tls_bundle, sleep=sleep, rng=rng,
                               overrides=overrides)
    connector.expected_test_indicator = test_indicator
    return connector


def _connector_for(supplier: Any, *, data_dir: str | Path, tls_bundle: str | Path | None = None,
                   sleep: Callable[[float], None] = time.sleep, rng: random.Random | None = None,
                   overrides: Mapping[str, Any] | None = None) -> Connector:
    """The connector described by ``supplier.connector`` (settings JSON of the supplier record).

    ``tls_bundle`` is the default bundle for https suppliers that name none (the ``tls_bundle`` setting);
    ``data_dir`` is where folder and manual connectors keep files when the settings name no folder.
    """
    settings = dict(supplier.connector or {})
    settings.update(overrides or {})
    kind = settings.get("kind", "manual")
    base = Path(data_dir) / "suppliers" / _slug(supplier.name)
    if kind == "https":
        url = settings.get("url")
        if not url:
            raise ConfigError(f"Supplier '{supplier.name}' is set to send over https but has no address (url).",
                              code="connector.no_url")
        bundle = settings.get("tls_bundle") or tls_bundle
        if not bundle:
            raise ConfigError(f"Supplier '{supplier.name}' has no TLS certificate bundle to check its identity "
                              "(set tls_bundle).", code="connector.tls_bundle_missing")
        return HttpsConnector(url, tls_bundle=bundle,
                              connect_timeout=float(settings.get("connect_timeout", DEFAULT_CONNECT_TIMEOUT)),
                              read_timeout=float(settings.get("read_timeout", DEFAULT_READ_TIMEOUT)),
                              max_attempts=int(settings.get("max_attempts", DEFAULT_MAX_ATTEMPTS)),
                              backoff=float(settings.get("backoff", DEFAULT_BACKOFF)), sleep=sleep, rng=rng)
    if kind == "folder":
        folder = Path(settings["folder"]) if settings.get("folder") else base
        outgoing = Path(settings.get("outgoing") or folder / "outgoing")
        incoming = Path(settings.get("incoming") or folder / "incoming")
        return FolderConnector(outgoing, incoming)
    if kind == "manual":
        return ManualConnector(Path(settings.get("folder") or base / "to-upload"))
    if kind in CONNECTOR_FACTORIES:
        return CONNECTOR_FACTORIES[kind](supplier, settings, data_dir=data_dir, tls_bundle=tls_bundle)
    raise ConfigError(f"Supplier '{supplier.name}' has an unknown connector kind '{kind}' (use https, folder, "
                      "manual or as2).", code="connector.unknown_kind")
