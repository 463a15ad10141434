"""`csos-desk trust add|list|remove` as a script uses it: real processes, a real data folder, real certificates."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs7

from app.config import load_config
from app.services.certificates.trust import TrustCandidate, configured_trust_roots, group_fingerprint
from tests.pki import build_training_pki

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def cli(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CSOS_", "PKCS11_"))}
    env.update(CSOS_DATA_DIR=str(tmp_path / "data"), CSOS_PROFILE="production")

    def run(*args: str, expect: int = 0, stdin: str | None = None) -> subprocess.CompletedProcess:
        done = subprocess.run([sys.executable, "-m", "app", *args], capture_output=True, text=True, env=env,
                              cwd=ROOT, timeout=120, **({"input": stdin} if stdin is not None
                                                       else {"stdin": subprocess.DEVNULL}))
        assert done.returncode == expect, (args, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr
        return done

    return run


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return build_training_pki(tmp_path_factory.mktemp("pki"))


def _fp(cert) -> str:
    return TrustCandidate.of(cert).fingerprint


def test_add_list_remove_with_fingerprints(cli, pki, tmp_path):
    root = pki.root.certificate
    pem = tmp_path / "root.pem"
    pem.write_bytes(root.public_bytes(serialization.Encoding.PEM))
    fingerprint = _fp(root)

    assert "No CSOS trust roots" in cli("trust", "list").stdout
    # No terminal and no --yes: shows what it would trust, asks for --yes --fingerprint, adds nothing.
    shown = cli("trust", "add", str(pem), expect=2)
    assert group_fingerprint(fingerprint) in shown.stdout and "CSOS Training Root CA" in shown.stdout
    assert "--fingerprint" in shown.stderr
    assert json.loads(cli("trust", "list", "--json").stdout)["roots"] == []

    # --yes alone is not enough for a script.
    assert "--fingerprint" in cli("trust", "add", str(pem), "--yes", expect=2).stderr

    added = json.loads(cli("trust", "add", str(pem), "--yes", "--fingerprint", group_fingerprint(fingerprint),
                           "--json").stdout)
    assert [c["fingerprint_sha256"] for c in added["added"]] == [fingerprint]
    listed = json.loads(cli("trust", "list", "--json").stdout)
    assert [(r["fingerprint_sha256"], r["kind"]) for r in listed["roots"]] == [(fingerprint, "root")]
    text = cli("trust", "list").stdout
    assert group_fingerprint(fingerprint) in text and root.subject.rfc4514_string() in text

    # The store is the profile's own file, and the rest of the program trusts exactly it.
    config = load_config(data_dir=tmp_path / "data", profile="production")
    assert (config.data_dir / "trust" / "roots.pem").is_file()
    assert [_fp(c) for c in configured_trust_roots(config)] == [fingerprint]

    again = cli("trust", "add", str(pem), "--yes", "--fingerprint", fingerprint)
    assert "already trusted" in again.stdout

    removed = cli("trust", "remove", fingerprint[:16])
    assert "Removed" in removed.stdout
    assert json.loads(cli("trust", "list", "--json").stdout)["roots"] == []
    assert "trust.not_found" in cli("trust", "remove", fingerprint, expect=1).stderr


def test_wrong_fingerprint_is_refused_and_nothing_added(cli, pki, tmp_path):
    pem = tmp_path / "root.pem"
    pem.write_bytes(pki.root.certificate.public_bytes(serialization.Encoding.PEM))
    wrong = _fp(pki.sub.certificate)
    done = cli("trust", "add", str(pem), "--yes", "--fingerprint", wrong, expect=1)
    assert "trust.fingerprint_mismatch" in done.stderr and "Nothing was added" in done.stderr
    assert json.loads(cli("trust", "list", "--json").stdout)["roots"] == []


def test_non_ca_certificate_is_refused(cli, pki, tmp_path):
    leaf = pki.issue().cert
    pem = tmp_path / "leaf.pem"
    pem.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    done = cli("trust", "add", str(pem), "--yes", "--fingerprint", _fp(leaf), expect=1)
    assert "trust.not_ca" in done.stderr and "not a CA certificate" in done.stderr
    assert "NOT a CA certificate" in done.stdout  # said plainly while showing it
    assert json.loads(cli("trust", "list", "--json").stdout)["roots"] == []


def test_der_input(cli, pki, tmp_path):
    der = tmp_path / "root.cer"
    der.write_bytes(pki.root.certificate.public_bytes(serialization.Encoding.DER))
    fingerprint = _fp(pki.root.certificate)
    cli("trust", "add", str(der), "--yes", "--fingerprint", fingerprint)
    assert [r["fingerprint_sha256"] for r in json.loads(cli("trust", "list", "--json").stdout)["roots"]] == \
        [fingerprint]


def test_p7b_chain_input_picks_the_fingerprinted_root_and_says_what_is_not_a_root(cli, pki, tmp_path):
    leaf = pki.issue().cert
    p7b = tmp_path / "chain.p7b"
    p7b.write_bytes(pkcs7.serialize_certificates([leaf, pki.sub.certificate, pki.root.certificate],
                                                 serialization.Encoding.DER))
    root_fp = _fp(pki.root.certificate)
    done = cli("trust", "add", str(p7b), "--yes", "--fingerprint", root_fp)
    assert "holds 3 certificate(s)" in done.stdout
    assert "NOT a root: an intermediate CA" in done.stdout  # the sub CA, said plainly
    assert "NOT a CA certificate" in done.stdout  # the subscriber
    assert [r["fingerprint_sha256"] for r in json.loads(cli("trust", "list", "--json").stdout)["roots"]] == [root_fp]


def test_unreadable_file_is_refused(cli, tmp_path):
    junk = tmp_path / "junk.pem"
    junk.write_text("hello")
    assert "trust.unreadable" in cli("trust", "add", str(junk), "--yes", "--fingerprint", "ab" * 32,
                                     expect=1).stderr


def test_cert_install_in_production_offers_the_root_of_the_downloaded_chain(cli, pki, tmp_path):
    import datetime as dt
    import shlex

    from app.models.values import Schedule
    from app.services.certificates.profile import SubscriberIdentity

    password = "Juniper-Canyon-5182!w"
    today = dt.date.today()
    cli("registration", "add", "--dea", "BJ6125341", "--name", "Main Street Pharmacy", "--address", "1 Main St",
        "--city", "Springfield", "--state", "IL", "--zip", "62701", "--schedules", "II,IIN,III,IIIN,IV,V",
        "--expires", (today + dt.timedelta(days=300)).isoformat())
    key = json.loads(_with_stdin(cli, password, "cert", "keygen", "--label", "Pat 2026", "--password-stdin",
                                 "--json").stdout)
    csr_path = tmp_path / "pat.csr"
    _with_stdin(cli, password, "cert", "csr", "--key", key["key_id"][:8], "--name", "Pat Purchaser", "--email",
                "pat@example.com", "--registrant", "Main Street Pharmacy", "--serial", "55501234", "--out",
                str(csr_path), "--password-stdin")
    not_after = dt.datetime.combine(today + dt.timedelta(days=300), dt.time(12), dt.timezone.utc)
    cert = pki.sub.issue_signing_certificate(
        csr_path.read_bytes(), subscriber=SubscriberIdentity("Pat Purchaser", "pat@example.com", "55501234"),
        registration=pki.registration(dea="BJ6125341", expires=not_after, schedules=[Schedule.II, Schedule.IV]))
    downloaded = tmp_path / "downloaded chain.p7b"  # as the portal hands it out: certificate, issuing CA, root
    downloaded.write_bytes(pkcs7.serialize_certificates([cert, pki.sub.certificate, pki.root.certificate],
                                                        serialization.Encoding.DER))
    root_fp = _fp(pki.root.certificate)

    # No roots yet: the install is refused, and the hint names the root, its fingerprint and the exact command.
    refused = cli("cert", "install", str(downloaded), expect=1)
    assert "certificate.no_trust_roots" in refused.stderr
    assert "CSOS Training Root CA" in refused.stderr and group_fingerprint(root_fp) in refused.stderr
    assert "Compare it with the fingerprint DEA publishes" in refused.stderr
    command = next(line.strip() for line in refused.stderr.splitlines() if " trust add " in line)
    assert command == f"csos-desk --profile production trust add {shlex.quote(str(downloaded))}"
    # The pharmacist compared the fingerprint; the script form of that exact command adds the root (and only it).
    cli(*shlex.split(command)[1:], "--yes", "--fingerprint", root_fp)
    assert [r["fingerprint_sha256"] for r in json.loads(cli("trust", "list", "--json").stdout)["roots"]] == [root_fp]
    installed = cli("cert", "install", str(downloaded))
    assert "Installed signing certificate" in installed.stdout
    assert "trust add" not in installed.stderr  # trusted now: no hint


def _with_stdin(cli, text: str, *args: str) -> subprocess.CompletedProcess:
    return cli(*args, stdin=text + "\n")
