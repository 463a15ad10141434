"""After a full `csos-desk demo` (enrollment with a portal password, a sign-in code, a reference number and a postal
access code, a software key with its password, a signed and transmitted order, a records export): nothing the
program wrote -- logs, order book, settings, caches, wizard state, exports, temp files -- holds a password, a one-time
code, an access code or private-key bytes (issue 9/10 item 5; K1 and the house rule on secrets).

The one place such codes may appear is the training sandbox's mailbox table: it *is* the e-mail and the letter the
simulated DEA/CA sends. Everything else of the sandbox is checked too (it stores hashes only).
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from app.demo import COORDINATOR, DEMO_KEY_PASSWORD, DEMO_PORTAL_PASSWORD
from tests.integration.test_no_secrets_in_logs import PRIVATE_KEY_MARKERS, _private_key_material

ROOT = Path(__file__).resolve().parents[2]
SANDBOX_SERVER_SECRETS = ("tls", "ca", "as2")  # the simulated CA's, HTTPS and AS2 servers' own keys, by design


def _mailbox_codes(sandbox_db: Path) -> list[str]:
    with sqlite3.connect(sandbox_db) as connection:
        rows = connection.execute("SELECT data FROM mailbox").fetchall()
    codes = []
    for (data,) in rows:
        for key, value in json.loads(data).items():
            if key in ("code", "access_code", "reference_number"):
                codes.append(value)
    return codes


def _sandbox_tables_without_mailbox(sandbox_db: Path) -> bytes:
    with sqlite3.connect(sandbox_db) as connection:
        tables = [name for (name,) in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
                  if name != "mailbox"]
        dump = [repr(row) for table in tables for row in connection.execute(f'SELECT * FROM "{table}"')]
    return "\n".join(dump).encode()


def test_a_full_demo_run_leaves_no_secret_in_logs_database_or_temp_files(tmp_path):
    out, temp = tmp_path / "demo", tmp_path / "tmp"
    temp.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CSOS_", "PKCS11_"))}
    env.update(QT_QPA_PLATFORM="offscreen", TMPDIR=str(temp))
    done = subprocess.run([sys.executable, "-m", "app", "demo", "--out", str(out)], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=300)
    assert done.returncode == 0, (done.stdout, done.stderr)

    sandbox_db = out / "data" / "training" / "sandbox" / "sandbox.sqlite3"
    codes = _mailbox_codes(sandbox_db)
    # The run really used each kind of one-time secret (else the grep below proves nothing).
    assert len(codes) >= 4 and any(len(c) >= 16 for c in codes), codes
    secrets = [DEMO_PORTAL_PASSWORD, DEMO_KEY_PASSWORD, COORDINATOR[1], *codes]
    secrets += [c.replace("-", "") for c in codes if "-" in c]

    key_files = sorted((out / "data" / "training" / "keys").glob("*.key"))
    assert len(key_files) == 1
    private_key = serialization.load_pem_private_key(key_files[0].read_bytes(), DEMO_KEY_PASSWORD.encode())
    material = _private_key_material(private_key)
    # The AS2 transport key (training's AS2 supplier) is a key file by design: 0600, and found nowhere else.
    as2_key_file = out / "data" / "training" / "as2" / "transport-key.pem"
    assert oct(as2_key_file.stat().st_mode & 0o777) == oct(0o600)
    material += _private_key_material(serialization.load_pem_private_key(as2_key_file.read_bytes(), None))
    key_files.append(as2_key_file)

    haystacks: dict[str, bytes] = {"printed output": (done.stdout + done.stderr).encode()}
    for path in [*out.rglob("*"), *temp.rglob("*")]:
        if not path.is_file() or path in key_files:
            continue
        relative = path.relative_to(tmp_path)
        if path == sandbox_db:
            haystacks[str(relative)] = _sandbox_tables_without_mailbox(path)
        elif path.parent.name in SANDBOX_SERVER_SECRETS and "sandbox" in path.parts:
            continue
        else:
            haystacks[str(relative)] = path.read_bytes()
    assert any(name.endswith("orderbook.sqlite3") for name in haystacks)
    assert any(name.endswith("csos-desk.log") for name in haystacks)

    # Issue 22: the demo prints its three practice passwords (training only, on purpose, so its data can be opened
    # in the window); its output must still hold no one-time code and no key material.
    printed_on_purpose = {DEMO_PORTAL_PASSWORD, DEMO_KEY_PASSWORD, COORDINATOR[1]}
    for where, data in haystacks.items():
        for secret in secrets:
            if where == "printed output" and secret in printed_on_purpose:
                continue
            assert secret.encode() not in data, f"a password or code appears in {where}"
        for marker in PRIVATE_KEY_MARKERS:
            assert marker not in data, f"private-key PEM in {where}"
        compact = data.replace(b"\n", b"").replace(b"\r", b"")
        for fragment in material:
            assert fragment not in compact, f"private key material in {where}"
    # The key file holds the key encrypted and nothing else.
    key_bytes = key_files[0].read_bytes()
    assert b"BEGIN ENCRYPTED PRIVATE KEY" in key_bytes
    assert not any(s.encode() in key_bytes for s in secrets)
    assert oct(key_files[0].stat().st_mode & 0o777) == oct(0o600)
    # The demo left no temp files behind.
    assert not any(temp.iterdir()), sorted(p.name for p in temp.iterdir())
