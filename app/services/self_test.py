"""`csos-desk --self-test`: the checks that prove an installed copy works, without Qt.

Support asks a pharmacy to run this after installing or when something looks wrong; each check prints one line
(``ok`` or ``FAIL``) a person can read over the phone. The Qt checks (main window, About dialog) live in
``app.ui.self_test_window``; the CLI runs both. Nothing here changes the user's data: the database check opens a
temporary order book unless a data folder is given, and the sample order is verified as of a fixed moment with the
CRLs shipped beside it, so the check never touches the network and never expires.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping

from app import __version__
from app.config import configured_pkcs11_modules
from app.errors import CsosError

log = logging.getLogger(__name__)

# Next to app/ in a checkout, and in the PyInstaller bundle (_internal/resources beside _internal/app).
RESOURCES_DIR = Path(__file__).resolve().parents[2] / "resources"
SAMPLES_DIR = RESOURCES_DIR / "samples"
LICENSES_DIR = RESOURCES_DIR / "licenses"
MIGRATIONS_DIR = Path(__file__).resolve().parents[1] / "models" / "migrations"


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    detail: str

    @property
    def line(self) -> str:
        return f"{'ok  ' if self.ok else 'FAIL'} {self.name}: {self.detail}"

    def to_json(self) -> dict[str, Any]:
        return {"check": self.name, "ok": self.ok, "detail": self.detail}


def run_check(name: str, check: Callable[[], str]) -> CheckResult:
    """Run one check; a CsosError or any other failure becomes a FAIL line, never a traceback."""
    try:
        return CheckResult(name, True, check())
    except CsosError as exc:
        log.info("self-test %s failed: %s", name, exc.code)
        return CheckResult(name, False, exc.message)
    except Exception as exc:  # the self-test reports every failure as a line; details go to the log
        log.exception("self-test %s failed", name)
        return CheckResult(name, False, f"{type(exc).__name__}: {exc}")


class SelfTestFailure(CsosError):
    code = "self_test.failed"


# -- installation ------------------------------------------------------------------------------------------------


def check_installation() -> str:
    """The files the program loads from disk at run time are where it looks for them."""
    wanted = [
        RESOURCES_DIR / "icons" / "csos-desk.svg",
        MIGRATIONS_DIR / "env.py",
        MIGRATIONS_DIR / "script.py.mako",
        SAMPLES_DIR / "sample.json",
        LICENSES_DIR / "index.json",
    ]
    missing = [str(path) for path in wanted if not path.is_file()]
    versions = sorted(p.name for p in (MIGRATIONS_DIR / "versions").glob("*.py"))
    if not versions:
        missing.append(str(MIGRATIONS_DIR / "versions" / "*.py"))
    if missing:
        raise SelfTestFailure("files missing from this installation: " + ", ".join(missing) +
                              ". Reinstall CSOS Desk.", code="self_test.files_missing")
    where = "installed bundle" if getattr(sys, "frozen", False) else "source checkout"
    return (f"CSOS Desk {__version__} ({where}, Python {sys.version_info.major}.{sys.version_info.minor}), "
            f"{len(versions)} schema migration(s)")


# -- database ------------------------------------------------------------------------------------------------------


def check_database(database_url: str) -> str:
    """Open (create and migrate) the order book and confirm it is at the newest schema."""
    from sqlalchemy import func, select

    from app.models.database import head_revision, open_database, schema_revision
    from app.models.orderbook import Order

    db = open_database(database_url)
    try:
        revision = schema_revision(db.engine)
        head = head_revision()
        if revision != head:
            raise SelfTestFailure(f"the order book is at schema {revision}, expected {head}.",
                                  code="self_test.schema")
        with db.session() as session:
            orders = session.execute(select(func.count()).select_from(Order)).scalar_one()
    finally:
        db.close()
    return f"order book opened at {_describe(database_url)}, schema {revision}, {orders} order(s)"


def _describe(url: str) -> str:
    if url.startswith("sqlite:///"):
        return url.removeprefix("sqlite:///")
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


# -- sample signed order -------------------------------------------------------------------------------------------


def verify_sample(sample_dir: Path = SAMPLES_DIR) -> CheckResult:
    return run_check("sample order", lambda: _verify_sample(sample_dir))


def _verify_sample(sample_dir: Path) -> str:
    """Verify the bundled sample with the real verifier, as of the moment recorded beside it."""
    from app.models.values import Schedule
    from app.services.certificates.validation import CertificateValidationService, load_trust_bundle
    from app.services.signing.verifier import MappingSchedules, OrderVerifier

    try:
        metadata = json.loads((sample_dir / "sample.json").read_text(encoding="utf-8"))
        at = datetime.fromisoformat(metadata["verify_at"])
        document = (sample_dir / metadata["order_file"]).read_bytes()
        crls = [(sample_dir / name).read_bytes() for name in metadata["crl_files"]]
        catalog = MappingSchedules({ndc: Schedule.parse(value) for ndc, value in metadata["catalog"].items()})
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SelfTestFailure(f"the sample order files in {sample_dir} are missing or damaged ({exc}).",
                              code="self_test.sample_missing") from None
    validation = CertificateValidationService(trust_roots=load_trust_bundle(sample_dir / metadata["trust_bundle"]),
                                              clock=lambda: at)
    verifier = OrderVerifier(validation=validation, catalog=catalog, crls=crls, fetch_crls=False, clock=lambda: at)
    verdict = verifier.verify(document, now=at)
    if not verdict.accepted:
        raise SelfTestFailure("the sample order did not verify: " +
                              "; ".join(f"{r.code} ({r.message})" for r in verdict.reasons),
                              code="self_test.sample_rejected")
    order = verdict.order
    if order is None or order.order_number != metadata.get("order_number"):
        raise SelfTestFailure("the sample order verified but is not the order recorded beside it.",
                              code="self_test.sample_rejected")
    return (f"order {order.order_number} from {order.purchaser.dea_number} verified against the training trust "
            f"(signature, chain, CRL, schedules) as of {at:%Y-%m-%d %H:%M} UTC")


# -- PKCS#11 -------------------------------------------------------------------------------------------------------



def check_pkcs11_module(module_path: str) -> str:
    """Load the driver and list its tokens (no PIN is asked for: nothing is signed)."""
    from app.services.keys.pkcs11_store import Pkcs11KeyStore

    if not Path(module_path).is_file():
        raise SelfTestFailure(f"the token driver {module_path} does not exist. Check the driver path in Settings.",
                              code="self_test.pkcs11_missing")
    with Pkcs11KeyStore(module_path) as store:
        tokens = store.list_tokens()
    labels = ", ".join(f"'{t.label}'" for t in tokens) or "no initialised token present"
    return f"driver {module_path} loaded; {len(tokens)} token(s): {labels}"


# -- all Qt-free checks ----------------------------------------------------------------------------------------------


def iter_checks(*, database_url: str, settings: Mapping[str, Any],
                environ: Mapping[str, str] = os.environ) -> Iterator[CheckResult]:
    """Each result as soon as it is known, so a check that hangs shows which one it is."""
    yield run_check("installation", check_installation)
    yield run_check("database", lambda: check_database(database_url))
    yield verify_sample()
    modules = configured_pkcs11_modules(settings, environ)
    if not modules:
        yield CheckResult("pkcs11", True, "no token driver configured (software keys only); skipped")
    for module in modules:
        yield run_check("pkcs11", lambda module=module: check_pkcs11_module(module))


def all_ok(results: Iterable[CheckResult]) -> bool:
    return all(result.ok for result in results)
