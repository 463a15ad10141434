"""`csos-desk cert|token|reminders` as a script uses them: real processes, a real data folder, --password-stdin."""

from __future__ import annotations

import datetime as dt
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from app.models.values import Schedule
from app.services.certificates.profile import SubscriberIdentity
from tests.pki import build_training_pki, new_key

ROOT = Path(__file__).resolve().parents[3]
PASSWORD = "Juniper-Canyon-5182!w"
P12_PASSWORD = "Orchid-Falcon-2267$t"
EXPORT_PASSWORD = "Walnut-Meteor-9034&y"
DEA = "BJ6125341"
TODAY = dt.date.today()


@pytest.fixture
def cli(tmp_path, pki):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CSOS_", "PKCS11_"))}
    env.update(CSOS_DATA_DIR=str(tmp_path / "data"), CSOS_PROFILE="training", CSOS_TRUST_BUNDLE=str(pki.trust_bundle))

    def run(*args: str, stdin: str = "", expect: int = 0) -> subprocess.CompletedProcess:
        done = subprocess.run([sys.executable, "-m", "app", *args], input=stdin, capture_output=True, text=True,
                              env=env, cwd=ROOT, timeout=120)
        assert done.returncode == expect, (args, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr
        return done

    return run


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return build_training_pki(tmp_path_factory.mktemp("pki"))


def test_keygen_csr_install_list_show_reminders_round_trip(cli, pki, tmp_path):
    cli("registration", "add", "--dea", DEA, "--name", "Main Street Pharmacy", "--address", "1 Main St", "--city",
        "Springfield", "--state", "IL", "--zip", "62701", "--schedules", "II,IIN,III,IIIN,IV,V",
        "--expires", (TODAY + dt.timedelta(days=20)).isoformat())
    key = json.loads(cli("cert", "keygen", "--label", "Pat 2026", "--algorithm", "ec-p256", "--password-stdin",
                         "--json", stdin=PASSWORD + "\n").stdout)
    assert key["store"] == "software" and key["algorithm"] == "ec_p256"
    pending = json.loads(cli("cert", "list", "--json").stdout)
    assert [(r["status"], r["key"]["key_id"]) for r in pending] == [("pending", key["key_id"])]

    csr_path = tmp_path / "pat.csr"
    cli("cert", "csr", "--key", key["key_id"][:8], "--name", "Pat Purchaser", "--email", "pat@example.com",
        "--registrant", "Main Street Pharmacy", "--serial", "55501234", "--out", str(csr_path), "--password-stdin",
        stdin=PASSWORD + "\n")
    csr = x509.load_pem_x509_csr(csr_path.read_bytes())
    assert csr.is_signature_valid
    assert csr.subject.rfc4514_string() == "2.5.4.5=55501234,CN=Pat Purchaser,O=Main Street Pharmacy,C=US"

    not_after = dt.datetime.combine(TODAY + dt.timedelta(days=20), dt.time(12), dt.timezone.utc)
    cert = pki.sub.issue_signing_certificate(
        csr_path.read_bytes(), subscriber=SubscriberIdentity("Pat Purchaser", "pat@example.com", "55501234"),
        registration=pki.registration(dea=DEA, expires=not_after, schedules=[Schedule.II, Schedule.IV]))
    cert_path = tmp_path / "pat.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM) + pki.sub.certificate.public_bytes(
        serialization.Encoding.PEM))
    out = cli("cert", "install", str(cert_path)).stdout
    fingerprint = cert.fingerprint(hashes.SHA256()).hex()
    assert f"Installed signing certificate {fingerprint} (active)." in out
    assert f"It signs for {DEA}" in out

    listed = json.loads(cli("cert", "list", "--json").stdout)
    assert [(r["fingerprint"], r["status"], r["registration"]) for r in listed] == [(fingerprint, "active", DEA)]
    shown = json.loads(cli("cert", "show", fingerprint[:10], "--json").stdout)
    assert shown["key"]["key_id"] == key["key_id"] and shown["subject_serial"] == "55501234"
    assert shown["chain"] == [pki.sub.certificate.subject.rfc4514_string()]
    assert shown["schedules"] == ["II", "IV"]
    assert "Pat Purchaser" in cli("cert", "show", fingerprint[:10]).stdout

    reminders = json.loads(cli("reminders", "--json").stdout)
    assert sorted((r["kind"], r["threshold"]) for r in reminders) == [("certificate", 30), ("registration", 30)]
    assert "[NOTICE]" in cli("reminders").stdout


def test_p12_import_then_warned_export(cli, pki, tmp_path):
    key = new_key("rsa")
    issued = pki.issue(key=key)
    p12 = tmp_path / "pat.p12"
    p12.write_bytes(pkcs12.serialize_key_and_certificates(
        b"pat", key, issued.cert, [pki.sub.certificate],
        serialization.BestAvailableEncryption(P12_PASSWORD.encode())))
    imported = json.loads(cli("cert", "import", str(p12), "--label", "Pat imported", "--password-stdin", "--json",
                              stdin=f"{P12_PASSWORD}\n{PASSWORD}\n").stdout)
    assert imported["status"] == "active" and imported["registration"] is None  # no registration in the book

    target = tmp_path / "backup.p12"
    refused = cli("cert", "export", imported["fingerprint"][:12], "--out", str(target), "--password-stdin",
                  stdin=f"{PASSWORD}\n{EXPORT_PASSWORD}\n", expect=2)
    assert "WARNING" in refused.stderr and "--i-understand-the-risk" in refused.stderr and not target.exists()
    wrong = cli("cert", "export", imported["fingerprint"][:12], "--out", str(target), "--i-understand-the-risk",
                "--password-stdin", stdin=f"{P12_PASSWORD}\n{EXPORT_PASSWORD}\n", expect=1)
    assert "key.wrong_password" in wrong.stderr and not target.exists()
    cli("cert", "export", imported["fingerprint"][:12], "--out", str(target), "--i-understand-the-risk",
        "--password-stdin", stdin=f"{PASSWORD}\n{EXPORT_PASSWORD}\n")
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    loaded = pkcs12.load_pkcs12(target.read_bytes(), EXPORT_PASSWORD.encode())
    assert loaded.key.private_numbers() == key.private_numbers()


def test_problems_are_explained_and_change_nothing(cli, pki, tmp_path):
    missing = cli("cert", "keygen", "--label", "Pat", "--password-stdin", expect=2)
    assert "standard input ended" in missing.stderr
    no_terminal = cli("cert", "keygen", "--label", "Pat", expect=2)  # stdin is a pipe, not a terminal
    assert "--password-stdin" in no_terminal.stderr
    weak = cli("cert", "keygen", "--label", "Pat", "--password-stdin", stdin="short\n", expect=1)
    assert "key.weak_password" in weak.stderr
    stranger = tmp_path / "stranger.pem"
    stranger.write_bytes(pki.issue(key=new_key("ec")).cert.public_bytes(serialization.Encoding.PEM)
                         + pki.sub.certificate.public_bytes(serialization.Encoding.PEM))
    assert "certificate.no_matching_key" in cli("cert", "install", str(stranger), expect=1).stderr
    assert "does not exist" in cli("cert", "install", str(tmp_path / "nope.pem"), expect=2).stderr
    assert "certificate.not_found" in cli("cert", "show", "abcdef12", expect=1).stderr
    assert json.loads(cli("cert", "list", "--json").stdout) == []
    assert json.loads(cli("token", "list", "--json").stdout) == []  # no driver configured
    assert "Nothing is due" in cli("reminders").stdout


def test_terminal_entry_is_masked_and_a_new_password_is_typed_twice(monkeypatch, capsys):
    import argparse

    from app.cli import certificates as cli_certs

    typed = iter(["first-Try-1234!", "first-Typo-1234!", "Second-Try-5678!", "Second-Try-5678!", "old-Secret-99!"])
    prompts: list[str] = []

    def fake_getpass(prompt: str) -> str:
        prompts.append(prompt)
        return next(typed)

    monkeypatch.setattr(cli_certs.getpass, "getpass", fake_getpass)
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True, raising=False)
    secrets = cli_certs.read_secrets(argparse.Namespace(password_stdin=False),
                                     [("New password", True), ("Old password", False)])
    assert secrets == ["Second-Try-5678!", "old-Secret-99!"]
    assert prompts == ["New password: ", "New password (again): ", "New password: ", "New password (again): ",
                       "Old password: "]
    assert "differ" in capsys.readouterr().err
