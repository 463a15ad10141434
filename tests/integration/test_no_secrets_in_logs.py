"""A full key-and-certificate run through the command line with known passwords and PINs -- right ones and wrong ones
-- and then a grep of everything it left behind (log files, the order book, settings, cache) and everything it printed:
no password, no PIN, no private key (K1, house rule "no secrets in logs, exceptions or the database")."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from app.services.certificates.profile import SubscriberIdentity
from tests.hsm.conftest import SO_PIN, SOFTHSM_MODULE_CANDIDATES
from tests.pki import build_training_pki, new_key

pytestmark = pytest.mark.hsm

ROOT = Path(__file__).resolve().parents[2]
DEA = "BJ6125341"

KEY_PASSWORD = "Tundra-Maple-6613!r"
WRONG_PASSWORD = "Wrong-Amber-2291?k"
WEAK_PASSWORD = "Zq-pharmacy-Zq-2291"
P12_PASSWORD = "Cobalt-Fern-4478@v"
IMPORTED_PASSWORD = "Garnet-Willow-8325%n"
EXPORT_PASSWORD = "Indigo-Prairie-5570^h"
TOKEN_PIN = "Pin-3371-grep"
WRONG_PIN = "Pin-0000-nope"
SECRETS = (KEY_PASSWORD, WRONG_PASSWORD, WEAK_PASSWORD, P12_PASSWORD, IMPORTED_PASSWORD, EXPORT_PASSWORD, TOKEN_PIN,
           WRONG_PIN)
PRIVATE_KEY_MARKERS = (b"PRIVATE KEY-----", b"BEGIN ENCRYPTED", b"BEGIN RSA PRIVATE", b"BEGIN EC PRIVATE")


@pytest.fixture
def softhsm_env(tmp_path):
    """A token of this test's own, reached only by the CLI processes (through SOFTHSM2_CONF in their environment)."""
    module = next((m for m in SOFTHSM_MODULE_CANDIDATES if os.path.exists(m)), None)
    util = shutil.which("softhsm2-util")
    if module is None or util is None:
        if os.environ.get("CI"):
            pytest.fail("SoftHSM tests must run in CI: SoftHSM2 is not installed")
        pytest.skip("SoftHSM2 is not installed (apt-get install softhsm2)")
    tokens = tmp_path / "softhsm-tokens"
    tokens.mkdir()
    conf = tmp_path / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n")
    subprocess.run([util, "--init-token", "--free", "--label", "csos-grep", "--so-pin", SO_PIN, "--pin", TOKEN_PIN],
                   env={**os.environ, "SOFTHSM2_CONF": str(conf)}, check=True, capture_output=True, timeout=60)
    return {"SOFTHSM2_CONF": str(conf), "PKCS11_MODULE": module, "PKCS11_TOKEN_LABEL": "csos-grep"}


def test_a_full_run_leaves_no_password_pin_or_private_key_anywhere(tmp_path, softhsm_env):
    data_root = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CSOS_", "PKCS11_"))}
    env.update(softhsm_env, CSOS_DATA_DIR=str(data_root), CSOS_PROFILE="training")
    printed: list[str] = []

    def cli(*args: str, stdin: str = "", expect: int = 0) -> str:
        done = subprocess.run([sys.executable, "-m", "app", *args], input=stdin, capture_output=True, text=True,
                              env=env, cwd=ROOT, timeout=120)
        printed.extend((done.stdout, done.stderr))
        assert done.returncode == expect, (args, done.stdout, done.stderr)
        return done.stdout + done.stderr

    pki = build_training_pki(tmp_path / "pki")
    env["CSOS_TRUST_BUNDLE"] = str(pki.trust_bundle)  # only certificates chaining to a CSOS root are installed

    def issue_from(csr_path: Path, serial: str) -> Path:
        cert = pki.sub.issue_signing_certificate(
            csr_path.read_bytes(), subscriber=SubscriberIdentity("Pat Purchaser", "pat@example.com", serial),
            registration=pki.registration(dea=DEA))
        out = csr_path.with_suffix(".pem")
        out.write_bytes(cert.public_bytes(serialization.Encoding.PEM)
                        + pki.sub.certificate.public_bytes(serialization.Encoding.PEM))
        return out

    def key_id(output: str) -> str:
        return output.split("Key ", 1)[1].split(" ", 1)[0]

    cli("registration", "add", "--dea", DEA, "--name", "Main Street Pharmacy", "--address", "1 Main St", "--city",
        "Springfield", "--state", "IL", "--zip", "62701", "--schedules", "II,IIN,III,IIIN,IV,V", "--expires",
        "2030-06-30")

    # Software key: a weak password refused, then keygen, a wrong password, the CSR, the certificate.
    assert "key.weak_password" in cli("cert", "keygen", "--label", "Pat file", "--password-stdin",
                                      stdin=WEAK_PASSWORD + "\n", expect=1)
    software = key_id(cli("cert", "keygen", "--label", "Pat file", "--password-stdin", stdin=KEY_PASSWORD + "\n"))
    csr_args = ["--name", "Pat Purchaser", "--email", "pat@example.com", "--registrant", "Main Street Pharmacy"]
    assert "key.wrong_password" in cli("cert", "csr", "--key", software, *csr_args, "--serial", "11100001",
                                       "--out", str(tmp_path / "file.csr"), "--password-stdin",
                                       stdin=WRONG_PASSWORD + "\n", expect=1)
    cli("cert", "csr", "--key", software, *csr_args, "--serial", "11100001", "--out", str(tmp_path / "file.csr"),
        "--password-stdin", stdin=KEY_PASSWORD + "\n")
    cli("cert", "install", str(issue_from(tmp_path / "file.csr", "11100001")))

    # Token key: keygen with the PIN, a wrong PIN, the CSR, the certificate.
    assert "csos-grep" in cli("token", "list")
    token = key_id(cli("cert", "keygen", "--label", "Pat token", "--algorithm", "ec-p256", "--token",
                       "--password-stdin", stdin=TOKEN_PIN + "\n"))
    assert "key.wrong_pin" in cli("cert", "csr", "--key", token, *csr_args, "--serial", "11100002", "--out",
                                  str(tmp_path / "token.csr"), "--password-stdin", stdin=WRONG_PIN + "\n", expect=1)
    cli("cert", "csr", "--key", token, *csr_args, "--serial", "11100002", "--out", str(tmp_path / "token.csr"),
        "--password-stdin", stdin=TOKEN_PIN + "\n")
    cli("cert", "install", str(issue_from(tmp_path / "token.csr", "11100002")))

    # A .p12 whose private key we know: wrong file password, import, warned export.
    imported_key = new_key("rsa")
    p12 = tmp_path / "pat.p12"
    p12.write_bytes(pkcs12.serialize_key_and_certificates(
        b"pat", imported_key, pki.issue(key=imported_key, dea=DEA, serial="11100003").cert, [pki.sub.certificate],
        serialization.BestAvailableEncryption(P12_PASSWORD.encode())))
    assert "key.wrong_password" in cli("cert", "import", str(p12), "--label", "Pat p12", "--password-stdin",
                                       stdin=f"{WRONG_PASSWORD}\n{IMPORTED_PASSWORD}\n", expect=1)
    imported = cli("cert", "import", str(p12), "--label", "Pat p12", "--password-stdin",
                   stdin=f"{P12_PASSWORD}\n{IMPORTED_PASSWORD}\n")
    fingerprint = imported.split("certificate ", 1)[1].split(" ", 1)[0]
    export = tmp_path / "export" / "backup.p12"
    export.parent.mkdir()
    cli("cert", "export", fingerprint, "--out", str(export), "--i-understand-the-risk", "--password-stdin",
        stdin=f"{WRONG_PASSWORD}\n{EXPORT_PASSWORD}\n", expect=1)
    cli("cert", "export", fingerprint, "--out", str(export), "--i-understand-the-risk", "--password-stdin",
        stdin=f"{IMPORTED_PASSWORD}\n{EXPORT_PASSWORD}\n")
    assert export.exists()
    listing = cli("cert", "list")
    assert listing.count("active") == 3, listing
    cli("cert", "show", fingerprint[:12])
    cli("reminders")

    # ---- the grep ---------------------------------------------------------------------------------------------
    profile_dir = data_root / "training"
    logs = sorted((profile_dir / "logs").glob("*.log*"))
    log_text = "".join(p.read_text(encoding="utf-8", errors="replace") for p in logs)
    # The grep looks at real content: the run did log, including the failures.
    for expected in ("software key created", "token key generated", "wrong password for software key",
                     "certificate recorded", "private key exported by its holder"):
        assert expected in log_text, expected
    everything_written = {p: p.read_bytes() for p in profile_dir.rglob("*")
                          if p.is_file() and p.parent.name != "keys"}
    assert any(p.name.startswith("orderbook.sqlite3") for p in everything_written)
    haystacks = {**{str(p): data for p, data in everything_written.items()},
                 "printed output": "\n".join(printed).encode()}
    material = _private_key_material(imported_key)
    for where, data in haystacks.items():
        for secret in SECRETS:
            assert secret.encode() not in data, f"a secret appears in {where}"
        for marker in PRIVATE_KEY_MARKERS:
            assert marker not in data, f"private-key PEM in {where}"
        compact = data.replace(b"\n", b"").replace(b"\r", b"")  # PEM/base64 wraps its lines
        for fragment in material:
            assert fragment not in compact, f"private key material in {where}"
    # The key files themselves hold the keys encrypted, never in the clear or with their password.
    for key_file in (profile_dir / "keys").glob("*.key"):
        data = key_file.read_bytes()
        assert b"BEGIN ENCRYPTED PRIVATE KEY" in data and b"BEGIN PRIVATE KEY" not in data
        assert not any(s.encode() in data for s in SECRETS)
        assert not any(fragment in data.replace(b"\n", b"") for fragment in material)


def _private_key_material(key) -> list[bytes]:
    """Ways the imported private key could leak: the private exponent raw or in hex, the end of its PKCS#8 (the CRT
    coefficient, private) raw or in base64."""
    numbers = key.private_numbers()
    d = numbers.d.to_bytes((numbers.d.bit_length() + 7) // 8, "big")
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    return [d[:32], d[:32].hex().encode(), d[:32].hex().upper().encode(), base64.b64encode(der)[-64:],
            der[-64:]]
