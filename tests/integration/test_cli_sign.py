"""From a draft to a verified .csos with the command line only: keygen → CSR → certificate → install → sign →
export → verify (issue 3/10 item 5). Real processes, real files, CRLs served over HTTP on loopback."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from app.models.values import Schedule
from app.services.certificates.profile import SubscriberIdentity
from tests.private_files import not_private, posix
from tests.pki import build_training_pki, serve_directory

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "Harbor-Lantern-4417!q"
DEA = "BJ6125341"
CATALOG = [str(ROOT / "resources/catalog/product.txt"), str(ROOT / "resources/catalog/package.txt")]


@pytest.fixture(params=["training"])
def world(tmp_path, request):
    with serve_directory(tmp_path / "crl") as server:
        pki = build_training_pki(tmp_path, now=dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=2),
                                 crl_base_url=server.base_url)
        pki.write_crls(now=dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CSOS_", "PKCS11_"))}
        env.update(CSOS_DATA_DIR=str(tmp_path / "data"), CSOS_PROFILE=request.param,
                   CSOS_TRUST_BUNDLE=str(pki.trust_bundle))

        def run(*args: str, stdin: str = "", expect: int = 0) -> subprocess.CompletedProcess:
            done = subprocess.run([sys.executable, "-m", "app", *args], input=stdin, capture_output=True, text=True,
                                  env=env, cwd=ROOT, timeout=120)
            assert done.returncode == expect, (args, done.stdout, done.stderr)
            assert "Traceback" not in done.stderr
            return done

        yield pki, run


def _enrol(pki, run, tmp_path, schedules=(Schedule.II, Schedule.IV)):
    run("registration", "add", "--dea", DEA, "--name", "Main Street Pharmacy", "--address", "1 Main St", "--city",
        "Springfield", "--state", "IL", "--zip", "62701", "--schedules", "II,IIN,III,IIIN,IV,V",
        "--expires", (dt.date.today() + dt.timedelta(days=300)).isoformat())
    run("supplier", "add", "--name", "Acme Drug", "--dea", "RA1234563")
    run("catalog", "import", *CATALOG)
    key = json.loads(run("cert", "keygen", "--label", "Pat", "--password-stdin", "--json",
                         stdin=PASSWORD + "\n").stdout)
    csr = tmp_path / "pat.csr"
    run("cert", "csr", "--key", key["key_id"][:8], "--name", "Pat Purchaser", "--email", "pat@example.com",
        "--registrant", "Main Street Pharmacy", "--serial", "55501234", "--out", str(csr), "--password-stdin",
        stdin=PASSWORD + "\n")
    cert = pki.sub.issue_signing_certificate(
        csr.read_bytes(), subscriber=SubscriberIdentity("Pat Purchaser", "pat@example.com", "55501234"),
        registration=pki.registration(dea=DEA, schedules=list(schedules)))
    chain = tmp_path / "pat.pem"
    chain.write_bytes(cert.public_bytes(serialization.Encoding.PEM)
                      + pki.sub.certificate.public_bytes(serialization.Encoding.PEM))
    run("cert", "install", str(chain))


def test_sign_export_and_verify(world, tmp_path):
    pki, run = world
    _enrol(pki, run, tmp_path)
    order = json.loads(run("order", "new", "--registration", DEA, "--supplier", "Acme Drug", "--json").stdout)
    number = order["order_number"]
    run("order", "add-line", number, "--ndc", "0406-0552-01", "--packages", "2")
    run("order", "add-line", number, "--ndc", "0009-0055-01", "--packages", "1")
    # A wrong password signs nothing and says why.
    failed = run("order", "sign", number, "--password-stdin", stdin="not-the-password\n", expect=1)
    assert "key.wrong_password" in failed.stderr
    assert json.loads(run("order", "show", number, "--json").stdout)["status"] == "draft"
    signed = json.loads(run("order", "sign", number, "--password-stdin", "--json", stdin=PASSWORD + "\n").stdout)
    assert signed["status"] == "signed"
    out = tmp_path / f"{number}.csos"
    run("order", "export", number, "--out", str(out))
    verified = json.loads(run("verify", str(out), "--trust", str(pki.trust_bundle), "--catalog", *CATALOG[:1],
                              "--packages", CATALOG[1], "--json").stdout)
    assert verified["accepted"], verified["reasons"]
    assert [line["schedule"] for line in verified["order"]["lines"]] == ["II", "IV"]
    done = subprocess.run(["openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in", str(out), "-CAfile",
                           str(pki.trust_bundle), "-purpose", "any", "-out", os.devnull], capture_output=True)
    assert done.returncode == 0
    if posix():  # every file this CLI run wrote in the data folder is private (issue 19)
        assert not_private(tmp_path / "data") == []
        assert {"orderbook.sqlite3", "csos-desk.log"} <= {p.name for p in (tmp_path / "data").rglob("*")}


def test_the_pre_sign_check_stops_a_schedule_the_certificate_lacks(world, tmp_path):
    pki, run = world
    _enrol(pki, run, tmp_path, schedules=(Schedule.IV, Schedule.V))
    number = json.loads(run("order", "new", "--registration", DEA, "--supplier", "Acme Drug",
                            "--json").stdout)["order_number"]
    run("order", "add-line", number, "--ndc", "0406-0552-01", "--packages", "1")
    failed = run("order", "sign", number, "--password-stdin", stdin=PASSWORD + "\n", expect=1)
    assert "schedule_not_authorized" in failed.stderr
    assert json.loads(run("order", "show", number, "--json").stdout)["status"] == "draft"


def test_the_hidden_clock_bypass_is_gone(world):
    _, run = world
    refused = run("order", "sign", "26X000001", "--skip-clock-check", "--password-stdin", expect=2)
    assert "unrecognized arguments: --skip-clock-check" in refused.stderr


@pytest.mark.parametrize("world", ["production"], indirect=True)
def test_production_refuses_to_sign_when_the_clock_cannot_be_verified(world, tmp_path):
    """K6 from the command line: the time server does not answer, no earlier check, and (on this machine) the
    operating system does not report NTP synchronisation: nothing is signed and the message says what to do."""
    import socket

    from app.services.signing.clock import os_reports_synchronised

    if os_reports_synchronised():
        pytest.skip("this machine's time service vouches for the clock, so the refusal cannot be shown here")
    pki, run = world
    _enrol(pki, run, tmp_path)
    number = json.loads(run("order", "new", "--registration", DEA, "--supplier", "Acme Drug",
                            "--json").stdout)["order_number"]
    run("order", "add-line", number, "--ndc", "0406-0552-01", "--packages", "1")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:  # bound, never answers
        silent.bind(("127.0.0.1", 0))
        settings = tmp_path / "data" / "production" / "settings.json"
        saved = json.loads(settings.read_text()) if settings.exists() else {}
        settings.write_text(json.dumps({**saved, "sntp_server": f"127.0.0.1:{silent.getsockname()[1]}"}))
        refused = run("order", "sign", number, "--password-stdin", stdin=PASSWORD + "\n", expect=1)
    assert "clock.not_verified" in refused.stderr and "set time automatically" in refused.stderr
    assert json.loads(run("order", "show", number, "--json").stdout)["status"] == "draft"
