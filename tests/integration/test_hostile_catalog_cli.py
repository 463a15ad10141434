"""Hostile catalog rows through the command line (issue 16 item 4): real FDA-style names that used to fail only at
signing -- a 120-character name, "Xanax®", accented names and labelers, a name with the X12 separator '*' -- are
ordered AND signed with a description the X12 writer accepts; a package quantity of 10^27 is a typed error naming
the file line, and nothing is imported. Real processes, real files, real certificate and CMS."""

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
from app.services.signing import x12
from app.services.signing.cms import parse_signed_document
from tests.pki import build_training_pki, serve_directory

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "hostile_catalog"
PASSWORD = "Harbor-Lantern-4417!q"
DEA = "BJ6125341"


@pytest.fixture
def world(tmp_path):
    with serve_directory(tmp_path / "crl") as server:
        pki = build_training_pki(tmp_path, now=dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=2),
                                 crl_base_url=server.base_url)
        pki.write_crls(now=dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CSOS_", "PKCS11_"))}
        env.update(CSOS_DATA_DIR=str(tmp_path / "data"), CSOS_PROFILE="training",
                   CSOS_TRUST_BUNDLE=str(pki.trust_bundle))

        def run(*args: str, stdin: str = "", expect: int = 0) -> subprocess.CompletedProcess:
            done = subprocess.run([sys.executable, "-m", "app", *args], input=stdin, capture_output=True, text=True,
                                  env=env, cwd=ROOT, timeout=120)
            assert done.returncode == expect, (args, done.stdout, done.stderr)
            assert "Traceback" not in done.stderr and "unexpected problem" not in done.stderr
            return done

        yield pki, run


def test_a_huge_package_quantity_is_a_line_numbered_error_and_nothing_is_imported(world):
    _, run = world
    failed = run("catalog", "import", str(FIXTURES / "product.txt"), str(FIXTURES / "package_huge_quantity.txt"),
                 expect=1)
    assert "catalog.package_quantity" in failed.stderr
    assert "package_huge_quantity.txt line 4" in failed.stderr and "99,999,999" in failed.stderr
    run("registration", "add", "--dea", DEA, "--name", "Main Street Pharmacy", "--address", "1 Main St", "--city",
        "Springfield", "--state", "IL", "--zip", "62701", "--schedules", "II,IIN,III,IIIN,IV,V")
    run("supplier", "add", "--name", "Acme Drug", "--dea", "RA1234563")
    number = json.loads(run("order", "new", "--registration", DEA, "--supplier", "Acme Drug",
                            "--json").stdout)["order_number"]
    # The rows before the bad one were not imported either: one transaction.
    assert "catalog.unknown_ndc" in run("order", "add-line", number, "--ndc", "70001-101-01", "--packages", "1",
                                        expect=1).stderr


def test_real_catalog_names_are_ordered_and_signed(world, tmp_path):
    pki, run = world
    run("registration", "add", "--dea", DEA, "--name", "Main Street Pharmacy", "--address", "1 Main St", "--city",
        "Springfield", "--state", "IL", "--zip", "62701", "--schedules", "II,IIN,III,IIIN,IV,V",
        "--expires", (dt.date.today() + dt.timedelta(days=300)).isoformat())
    run("supplier", "add", "--name", "Acme Drug", "--dea", "RA1234563")
    run("catalog", "import", str(FIXTURES / "product.txt"), str(FIXTURES / "package.txt"))
    key = json.loads(run("cert", "keygen", "--label", "Pat", "--password-stdin", "--json",
                         stdin=PASSWORD + "\n").stdout)
    csr = tmp_path / "pat.csr"
    run("cert", "csr", "--key", key["key_id"][:8], "--name", "Pat Purchaser", "--email", "pat@example.com",
        "--registrant", "Main Street Pharmacy", "--serial", "55501234", "--out", str(csr), "--password-stdin",
        stdin=PASSWORD + "\n")
    cert = pki.sub.issue_signing_certificate(
        csr.read_bytes(), subscriber=SubscriberIdentity("Pat Purchaser", "pat@example.com", "55501234"),
        registration=pki.registration(dea=DEA, schedules=[Schedule.II, Schedule.IIN, Schedule.IV]))
    chain = tmp_path / "pat.pem"
    chain.write_bytes(cert.public_bytes(serialization.Encoding.PEM)
                      + pki.sub.certificate.public_bytes(serialization.Encoding.PEM))
    run("cert", "install", str(chain))

    number = json.loads(run("order", "new", "--registration", DEA, "--supplier", "Acme Drug",
                            "--json").stdout)["order_number"]
    for ndc in ("70001-101-01", "70001-102-01", "70001-103-01", "70001-104-01"):
        run("order", "add-line", number, "--ndc", ndc, "--packages", "1")
    lines = json.loads(run("order", "show", number, "--json").stdout)["lines"]
    descriptions = [line["description"] for line in lines]
    # The whole strength is kept; the name is cut at a word, marked "...". The NDC says which product it is.
    assert descriptions[0] == "Dextroamphetamine Saccharate, Amphetamine... 1.25 mg; 1.25 mg; 1.25 mg; 1.25 mg"
    assert descriptions[1:] == ["Xanax .5 mg", "Clement Lorazepam 1 mg", "Oxycodone Kit 5 mg"]

    signed = json.loads(run("order", "sign", number, "--password-stdin", "--json", stdin=PASSWORD + "\n").stdout)
    assert signed["status"] == "signed"
    out = tmp_path / f"{number}.csos"
    run("order", "export", number, "--out", str(out))
    order = x12.parse_850(parse_signed_document(out.read_bytes()).content)
    # What was shown is exactly what was signed.
    assert [line.description for line in order.lines] == descriptions
