"""Start the training sandbox: portal/CA and suppliers in one Flask app, served over HTTPS in a daemon thread.

    with start_sandbox(tmp_path) as sandbox:
        requests.get(sandbox.portal_url + "/registrations", verify=sandbox.tls_bundle)

Everything lives in ``directory``: the TLS authority (``tls/``), the CSOS training CAs (``ca/``), their CRLs
(``crl/``), the training root (``csos-trust.pem``), the state database (``sandbox.sqlite3``), the suppliers' catalog
(``catalog.sqlite3``) and ``sandbox.json`` (addresses of the running sandbox, read by ``csos-desk sandbox supplier``).
Starting again on the same directory keeps all of it, and reuses the last ports (HTTPS, the plain-http CRL listener,
SNTP) when they are free: issued certificates carry the CRL address, and the profile's settings name the time server
and the suppliers' addresses.

CRLs are published over plain http on a second small listener (as DEA's and every CA's distribution points are: a CRL
is a signed object, and a supplier's verifier has no TLS root for the sandbox); the portal keeps HTTPS.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import socket
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from flask import Flask, jsonify
from sqlalchemy import func, select
from werkzeug.exceptions import HTTPException
from werkzeug.security import generate_password_hash
from werkzeug.serving import WSGIRequestHandler, make_server

from app.errors import CsosError
from app.models.database import open_database, sqlite_url
from app.models.orderbook import Product
from app.sandbox.api import SandboxApiError
from app.sandbox.authority import SandboxAuthority
from app.sandbox.portal import PASSWORD_HASH_METHOD, Portal, portal_blueprint
from app.sandbox.sntp import SntpServer
from app.sandbox.state import Account, Coordinator, SandboxRegistration, SandboxState
from app.sandbox.suppliers import FaultInjector, SandboxSupplier, SupplierDesk, suppliers_blueprint
from app.sandbox.tls import ensure_tls
from app.sandbox.training_registrations import training_registrations_blueprint
from app.services.certificates import ca as ca_engine
from app.services.catalog import bundled_catalog_paths, import_fda_catalog
from app.services.signing.verifier import MappingSchedules

log = logging.getLogger(__name__)

SEED_FILE = Path(__file__).resolve().parents[2] / "resources" / "sandbox" / "seed.json"
STATE_FILE = "sandbox.json"


class SandboxError(CsosError):
    """The sandbox cannot start. Codes: ``sandbox.port_in_use``, ``sandbox.seed``."""

    code = "sandbox.error"


@dataclass(frozen=True)
class SandboxRegistrationInfo:
    """A seeded pharmacy/clinic registration (what the client's order book needs to practise with it)."""

    dea_number: str
    name: str
    address_lines: tuple[str, ...]
    city: str
    state: str
    postal_code: str
    business_activity: str
    schedules: tuple[str, ...]
    expires_at: dt.datetime
    coordinator_email: str | None


@dataclass
class SandboxHandle:
    """A running sandbox. ``stop()`` (or leaving the ``with`` block) shuts it down; the directory stays."""

    directory: Path
    base_url: str
    port: int
    portal_url: str
    mailbox_url: str
    suppliers: list[SandboxSupplier]
    tls_bundle: Path  # PEM: verify the sandbox's HTTPS with this (requests: verify=str(tls_bundle))
    trust_bundle: Path  # PEM: the CSOS training root, to validate CSOS certificates and signed orders
    crl_urls: dict[str, str]  # {"root": ..., "sub": ...}: plain http, on the CRL listener
    registrations: list[SandboxRegistrationInfo]
    sntp_port: int | None = None  # loopback SNTP server for the training clock check (K6)
    crl_port: int | None = None  # the plain-http CRL listener
    _stop: Callable[[], None] | None = field(default=None, repr=False)

    def supplier(self, slug: str) -> SandboxSupplier:
        for supplier in self.suppliers:
            if supplier.slug == slug:
                return supplier
        raise KeyError(f"The sandbox has no supplier '{slug}'; it has {', '.join(s.slug for s in self.suppliers)}.")

    def stop(self) -> None:
        if self._stop is not None:
            stop, self._stop = self._stop, None
            stop()

    def __enter__(self) -> "SandboxHandle":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _QuietHandler(WSGIRequestHandler):
    """Requests go to our logger at debug level instead of werkzeug's console lines."""

    def setup(self) -> None:
        super().setup()
        # The answer goes out as soon as it is written. Werkzeug waits ~10 ms after each response before closing,
        # and without this the kernel held the answer's last write back until that close (Nagle's algorithm).
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        log.debug("%s %s -> %s", self.command, getattr(self, "path", "?"), code)

    def log_error(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        log.debug("http: " + format, *args)


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _bind(host: str, port: int, remembered: int | None, *, what: str = "sandbox") -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    candidates = [port] if port else ([remembered, 0] if remembered else [0])
    for candidate in candidates:
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, candidate))
        except OSError as exc:
            sock.close()
            if candidate == candidates[-1]:
                raise SandboxError(f"The {what} cannot listen on {host}:{candidate} ({exc.strerror}). Is another "
                                   "sandbox running? Stop it or choose another --port.",
                                   code="sandbox.port_in_use") from None
            continue
        sock.listen(128)
        return sock
    raise AssertionError("unreachable")


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def _seed(state: SandboxState, clock: Callable[[], dt.datetime]) -> list[dict[str, Any]]:
    """First start: registrations, coordinator and purchaser accounts (training passwords), suppliers."""
    seeded = state.get_setting("suppliers")
    if seeded is not None:
        return seeded
    try:
        seed = json.loads(SEED_FILE.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise SandboxError(f"The sandbox seed file {SEED_FILE} cannot be read ({exc}).", code="sandbox.seed") from None
    now = clock()
    with state.session() as session:
        for item in seed["registrations"]:
            expires = dt.datetime.combine((now + dt.timedelta(days=item["expires_in_days"])).date(),
                                          dt.time(23, 59, 59), dt.timezone.utc)
            session.add(SandboxRegistration(
                dea_number=item["dea_number"], name=item["name"], address_lines=item["address_lines"],
                city=item["city"], state=item["state"], postal_code=item["postal_code"],
                business_activity=item["business_activity"], schedules=item["schedules"], expires_at=expires,
                renewal_requires_approval=item["renewal_requires_approval"]))
            people = [(item["coordinator"], True)] + [(p, False) for p in item.get("purchasers", [])]
            for person, is_coordinator in people:
                account = Account(email=person["email"], full_name=person["full_name"],
                                  password_hash=generate_password_hash(person["password"], method=PASSWORD_HASH_METHOD),
                                  subscriber_serial=ca_engine.new_subscriber_serial(), created_at=now)
                session.add(account)
                session.flush()
                if is_coordinator:
                    session.add(Coordinator(registration_dea=item["dea_number"], account_id=account.id,
                                            role="principal"))
        state.put_setting(session, "suppliers", seed["suppliers"])
        session.commit()
    return seed["suppliers"]


def _catalog(directory: Path) -> tuple[MappingSchedules, dict[str, dict[str, Any]]]:
    db = open_database(sqlite_url(directory / "catalog.sqlite3"))
    try:
        with db.session() as session:
            count = session.scalar(select(func.count()).select_from(Product))
        if not count:
            import_fda_catalog(db, *bundled_catalog_paths(), source="sandbox")
        schedules = MappingSchedules.from_database(db)
        with db.session() as session:
            products = {p.ndc: {"name": p.name, "strength": p.strength, "schedule": p.schedule}
                        for p in session.scalars(select(Product))}
    finally:
        db.close()
    return schedules, products


def _registrations(state: SandboxState) -> list[SandboxRegistrationInfo]:
    with state.session() as session:
        out = []
        for reg in session.scalars(select(SandboxRegistration).order_by(SandboxRegistration.dea_number)):
            email = session.scalar(select(Account.email).join(Coordinator, Coordinator.account_id == Account.id)
                                   .where(Coordinator.registration_dea == reg.dea_number,
                                          Coordinator.role == "principal"))
            out.append(SandboxRegistrationInfo(
                dea_number=reg.dea_number, name=reg.name, address_lines=tuple(reg.address_lines), city=reg.city,
                state=reg.state, postal_code=reg.postal_code, business_activity=reg.business_activity,
                schedules=tuple(reg.schedules), expires_at=reg.expires_at, coordinator_email=email))
        return out


_CRL_PATH = re.compile(r"/crl/(root|sub)\.crl")


def crl_app(authority: SandboxAuthority) -> Callable[..., Any]:
    """The plain-http CRL listener: GET /crl/root.crl and /crl/sub.crl, nothing else."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        match = _CRL_PATH.fullmatch(environ.get("PATH_INFO", ""))
        if environ.get("REQUEST_METHOD") not in ("GET", "HEAD") or match is None:
            start_response("404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", "10")])
            return [b"not found\n"]
        body = authority.crl(match.group(1))
        start_response("200 OK", [("Content-Type", "application/pkix-crl"), ("Content-Length", str(len(body))),
                                  ("Cache-Control", "max-age=60")])
        return [body] if environ["REQUEST_METHOD"] == "GET" else []

    return app


def _remembered(state_path: Path) -> dict[str, int | None]:
    """The ports of the last start (sandbox.json), to come back on the same addresses."""
    try:
        data = json.loads(state_path.read_text("utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    out: dict[str, int | None] = {}
    for key in ("port", "crl_port", "sntp_port"):
        try:
            value = int(data.get(key) or 0)
        except (TypeError, ValueError):
            value = 0
        out[key] = value if 0 < value < 65536 else None
    return out


def _sntp(remembered: int | None) -> SntpServer:
    if remembered:
        try:
            return SntpServer(host="127.0.0.1", port=remembered)
        except OSError:
            log.warning("SNTP port %s is taken; the time server moves to another port", remembered)
    return SntpServer(host="127.0.0.1")


def create_app(portal: Portal, desk: SupplierDesk, authority: SandboxAuthority) -> Flask:
    app = Flask("csos_sandbox")
    app.config["MAX_CONTENT_LENGTH"] = 8 * 1024 * 1024
    app.json.sort_keys = False
    app.register_blueprint(portal_blueprint(portal, authority))
    app.register_blueprint(suppliers_blueprint(desk))
    app.register_blueprint(training_registrations_blueprint(portal))  # a registration added on this computer

    @app.errorhandler(SandboxApiError)
    def api_error(exc: SandboxApiError):
        return jsonify(exc.body()), exc.status

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        code = (exc.name or "error").lower().replace(" ", "_")
        return jsonify({"error": code, "message": exc.description}), exc.code

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        log.exception("sandbox request failed")
        return jsonify({"error": "internal_error", "message": "The training sandbox hit an unexpected problem; see "
                                                              "its log."}), 500

    app.wsgi_app = FaultInjector(app.wsgi_app, desk)  # type: ignore[method-assign]
    return app


def start_sandbox(directory: Path | str, *, host: str = "127.0.0.1", port: int = 0, sntp: bool = True,
                  clock: Callable[[], dt.datetime] = _utcnow, crl_port: int = 0) -> SandboxHandle:
    """Start portal/CA + suppliers on ``host:port`` and the http CRL listener on ``host:crl_port`` (0 = the port
    used last time if free, else one the OS picks); the SNTP server likewise comes back on its last port."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state_path = directory / STATE_FILE
    remembered = _remembered(state_path)
    sock = _bind(host, port, remembered.get("port"))
    resources: list[Callable[[], None]] = [sock.close]
    try:
        crl_sock = _bind(host, crl_port, remembered.get("crl_port"), what="sandbox's CRL listener")
        resources.append(crl_sock.close)
        bound_port = sock.getsockname()[1]
        bound_crl_port = crl_sock.getsockname()[1]
        base_url = f"https://{_url_host(host)}:{bound_port}"
        tls = ensure_tls(directory / "tls", host)
        state = SandboxState(directory / "sandbox.sqlite3")
        resources.append(state.close)
        authority = SandboxAuthority(directory, base_url, clock=clock,
                                     crl_base_url=f"http://{_url_host(host)}:{bound_crl_port}")
        supplier_seed = _seed(state, clock)
        schedules, products = _catalog(directory)
        suppliers = [SandboxSupplier(name=s["name"], slug=s["slug"], dea_number=s["dea_number"],
                                     url=f"{base_url}/suppliers/{s['slug']}", address_lines=tuple(s["address_lines"]),
                                     city=s["city"], state=s["state"], postal_code=s["postal_code"],
                                     backordered_ndcs=tuple(s.get("backordered_ndcs", ())))
                     for s in supplier_seed]
        portal = Portal(state, authority, clock=clock)
        desk = SupplierDesk(state, authority, suppliers, schedules, products, clock=clock)
        app = create_app(portal, desk, authority)
        server = make_server(host, bound_port, app, threaded=True, request_handler=_QuietHandler,
                             ssl_context=tls.server_context(), fd=sock.fileno())
        sock.close()  # the server holds its own duplicate of the listening socket
        crl_server = make_server(host, bound_crl_port, crl_app(authority), threaded=True,
                                 request_handler=_QuietHandler, fd=crl_sock.fileno())
        crl_sock.close()
        resources = [state.close, crl_server.server_close, server.server_close]
        threads = [threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.1}, name=name, daemon=True)
                   for s, name in ((server, "csos-sandbox"), (crl_server, "csos-sandbox-crl"))]
        for thread in threads:
            thread.start()
        # released in reverse: each server is shut down before its socket is closed
        resources = [state.close, crl_server.server_close, crl_server.shutdown, server.server_close, server.shutdown]
        sntp_server = _sntp(remembered.get("sntp_port")).start() if sntp else None
    except BaseException:
        for release in reversed(resources):
            release()
        raise

    def stop() -> None:
        for running in (server, crl_server):
            running.shutdown()
            running.server_close()
        for thread in threads:
            thread.join(timeout=5)
        if sntp_server is not None:
            sntp_server.stop()
        state.close()

    handle = SandboxHandle(
        directory=directory, base_url=base_url, port=bound_port, portal_url=f"{base_url}/portal",
        mailbox_url=f"{base_url}/portal/mailbox", suppliers=suppliers, tls_bundle=tls.bundle,
        trust_bundle=authority.trust_bundle, crl_urls=dict(authority.crl_urls), registrations=_registrations(state),
        sntp_port=sntp_server.port if sntp_server else None, crl_port=bound_crl_port, _stop=stop)
    _write_state(state_path, handle, host)
    log.info("training sandbox listening on %s", base_url)
    return handle


def _write_state(path: Path, handle: SandboxHandle, host: str) -> None:
    data = {
        "base_url": handle.base_url, "host": host, "port": handle.port, "pid": os.getpid(),
        "portal_url": handle.portal_url, "mailbox_url": handle.mailbox_url,
        "tls_bundle": str(handle.tls_bundle), "trust_bundle": str(handle.trust_bundle), "crl_urls": handle.crl_urls,
        "sntp_port": handle.sntp_port, "crl_port": handle.crl_port,
        "suppliers": [{**asdict(s), "address_lines": list(s.address_lines),
                       "backordered_ndcs": list(s.backordered_ndcs)} for s in handle.suppliers],
        "registrations": [{**asdict(r), "address_lines": list(r.address_lines), "schedules": list(r.schedules),
                           "expires_at": r.expires_at.isoformat()} for r in handle.registrations],
    }
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2), encoding="utf-8")
    os.replace(tmp, path)
