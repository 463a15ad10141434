"""After the signing session locks, the process memory holds no plaintext key (K4, issue 19).

A child process unlocks a software key file, signs, and locks; this test reads the child's memory (/proc/<pid>/maps
and /proc/<pid>/mem) at each step and looks for the private exponent d as OpenSSL's BIGNUM holds it (little-endian
words), for d and the prime p big-endian, and for a slice of the decrypted PKCS#8 DER. Positive control: the same scan
finds the key while the session is unlocked. The key is made in this process, so the child never generates it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from app.services.keys.software import SoftwareKeyStore

ROOT = Path(__file__).resolve().parents[3]
PASSWORD = "Tr0ub4dor&3-horse-battery"

CHILD = r"""
import gc, sys
from app.services.keys.software import SoftwareKeyStore
from app.services.keys.session import SigningSession
from app.services.keys.base import KeyRef

store = SoftwareKeyStore(sys.argv[1])
ref = KeyRef.from_json(sys.argv[2])
session = SigningSession(store, ref)
session.unlock(sys.stdin.readline().rstrip("\n"))
session.sign(b"an order")
print("unlocked", flush=True)
sys.stdin.readline()
session.lock()
gc.collect()
print("locked", flush=True)
sys.stdin.readline()
"""


def needles(key: rsa.RSAPrivateKey) -> dict[str, bytes]:
    numbers = key.private_numbers()
    d, p = numbers.d, numbers.p
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    size = (key.key_size + 7) // 8
    return {
        "d (OpenSSL BIGNUM, little-endian)": d.to_bytes(size, "little").rstrip(b"\0")[:64],
        "d (big-endian, as in the DER)": d.to_bytes((d.bit_length() + 7) // 8, "big")[:64],
        "p (big-endian)": p.to_bytes((p.bit_length() + 7) // 8, "big")[:64],
        "PKCS#8 DER slice": der[300:364],
    }


def scan(pid: int, wanted: dict[str, bytes]) -> set[str]:
    found: set[str] = set()
    with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb", buffering=0) as mem:
        for line in maps:
            fields = line.split()
            start, end = (int(x, 16) for x in fields[0].split("-"))
            name = fields[5] if len(fields) > 5 else ""
            if "r" not in fields[1] or name in ("[vvar]", "[vsyscall]", "[vdso]"):
                continue
            try:
                data = os.pread(mem.fileno(), end - start, start)
            except (OSError, OverflowError, ValueError):
                continue
            for label, needle in wanted.items():
                if label not in found and needle in data:
                    found.add(label)
    return found


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/<pid>/mem")
def test_no_plaintext_key_in_memory_after_the_session_locks(tmp_path):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    store = SoftwareKeyStore(tmp_path / "keys")
    ref = store.import_private_key(key, label="Memory scan", secret=PASSWORD)
    wanted = needles(key)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path / "keys"), ref.to_json()],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    try:
        child.stdin.write(PASSWORD + "\n")
        child.stdin.flush()
        assert child.stdout.readline().strip() == "unlocked"
        while_unlocked = scan(child.pid, wanted)
        child.stdin.write("lock\n")
        child.stdin.flush()
        assert child.stdout.readline().strip() == "locked"
        after_lock = scan(child.pid, wanted)
        child.stdin.write("exit\n")
        child.stdin.flush()
        assert child.wait(timeout=60) == 0
    finally:
        if child.poll() is None:
            child.kill()
    # Positive control: while unlocked the scan does find the key (OpenSSL holds d in a BIGNUM).
    assert "d (OpenSSL BIGNUM, little-endian)" in while_unlocked, while_unlocked
    assert after_lock == set(), f"plaintext key material left in memory after locking: {sorted(after_lock)}"


def test_the_decrypted_key_and_the_password_are_wiped_once_the_key_is_loaded(tmp_path, monkeypatch):
    """The buffers handed to OpenSSL (the PKCS#8 plaintext) and to PBKDF2 (the password) are all zeros afterwards;
    cryptography's own loader and KDF still do the work (they are wrapped, not replaced)."""
    from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

    from app.services.keys import software

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    store = SoftwareKeyStore(tmp_path / "keys")
    ref = store.import_private_key(key, label="Wipe check", secret=PASSWORD)
    seen: dict[str, object] = {}
    real_load = serialization.load_der_private_key
    real_derive_into = PBKDF2HMAC.derive_into

    def load(data, password=None, **kwargs):
        seen["plaintext"] = data.obj if isinstance(data, memoryview) else data  # the buffer behind the view
        seen["plaintext_copy"] = bytes(data)
        return real_load(data, password, **kwargs)

    def derive_into(self, key_material, buffer):
        seen["password"] = key_material
        return real_derive_into(self, key_material, buffer)

    monkeypatch.setattr(software.serialization, "load_der_private_key", load)
    monkeypatch.setattr(PBKDF2HMAC, "derive_into", derive_into)
    with store.open_signer(ref, secret=PASSWORD) as signer:
        assert signer.sign(b"x")
    assert seen["plaintext_copy"] == key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                                       serialization.NoEncryption())
    plaintext = seen["plaintext"]
    assert isinstance(plaintext, bytearray), type(plaintext)
    assert plaintext == bytearray(len(plaintext)), "the decrypted key was not overwritten"
    assert isinstance(seen["password"], bytearray) and seen["password"] == bytearray(len(seen["password"]))
