"""A real SoftHSM2 token for the PKCS#11 tests (never mocked, never silently skipped in CI).

The session fixture writes a private ``softhsm2.conf`` into a temp dir, points ``SOFTHSM2_CONF`` at it and initialises
a token ``csos-test`` (SO PIN 0000, user PIN 123456). ``SOFTHSM2_CONF`` must be set before the first test loads the
module: SoftHSM reads it once, in C_Initialize, and python-pkcs11 keeps the module initialised for the whole process.

Env overrides for a real token: ``PKCS11_MODULE``, ``PKCS11_TOKEN_LABEL``, ``PKCS11_TOKEN_PIN``. Tests that need to
delete tokens (``softhsm`` fixture) only run with the SoftHSM set up here.

Trap: SoftHSM 2.6 sees a token *deleted* while the module is loaded (the next call on it fails), but not a token
*initialised* by softhsm2-util after C_Initialize, and python-pkcs11 has no C_InitToken. So every token a test will
delete is initialised here, before any test loads the module.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

SOFTHSM_MODULE_CANDIDATES = (
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
    "/usr/lib64/pkcs11/libsofthsm2.so",
    "/opt/homebrew/lib/softhsm/libsofthsm2.so",
)

SO_PIN = "0000"
NO_USER_PIN_LABEL = "csos-no-user-pin"  # initialised by the SO, user PIN never set


@dataclass(frozen=True)
class HsmToken:
    module: str
    label: str
    pin: str
    softhsm: "SoftHsmUtil | None"


@dataclass(frozen=True)
class SoftHsmUtil:
    """Drives ``softhsm2-util`` against the test's private token directory; ``spare`` = purpose -> (label, PIN)."""

    util: str
    conf: Path
    spare: dict

    def _run(self, *args: str) -> str:
        env = dict(os.environ, SOFTHSM2_CONF=str(self.conf))
        done = subprocess.run([self.util, *args], capture_output=True, text=True, env=env, timeout=60)
        if done.returncode != 0:
            raise RuntimeError(f"softhsm2-util {' '.join(args[:2])} failed: {done.stdout} {done.stderr}")
        return done.stdout

    def init_token(self, label: str, pin: str) -> None:
        self._run("--init-token", "--free", "--label", label, "--so-pin", SO_PIN, "--pin", pin)

    def delete_token(self, serial: str) -> None:
        self._run("--delete-token", "--serial", serial)

    def init_token_without_user_pin(self, module: str, label: str) -> None:
        """C_InitToken on the free slot and nothing else (softhsm2-util always sets a user PIN): a token that is
        initialised but whose user PIN is not. Runs in a child process so this process has not loaded the module."""
        script = (
            "import ctypes, sys\n"
            "lib = ctypes.CDLL(sys.argv[1])\n"
            "assert lib.C_Initialize(None) == 0\n"
            "n = ctypes.c_ulong(0)\n"
            "assert lib.C_GetSlotList(0, None, ctypes.byref(n)) == 0\n"
            "slots = (ctypes.c_ulong * n.value)()\n"
            "assert lib.C_GetSlotList(0, slots, ctypes.byref(n)) == 0\n"
            "so = sys.argv[2].encode()\n"
            "label = sys.argv[3].encode().ljust(32, b' ')\n"
            "rv = lib.C_InitToken(ctypes.c_ulong(slots[n.value - 1]), so, ctypes.c_ulong(len(so)), label)\n"
            "lib.C_Finalize(None)\n"
            "sys.exit(rv)\n"
        )
        env = dict(os.environ, SOFTHSM2_CONF=str(self.conf))
        done = subprocess.run([sys.executable, "-c", script, module, SO_PIN, label], capture_output=True, text=True,
                              env=env, timeout=60)
        if done.returncode != 0:
            raise RuntimeError(f"C_InitToken failed: rv={done.returncode} {done.stderr}")


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"SoftHSM tests must run in CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def hsm_token(tmp_path_factory: pytest.TempPathFactory) -> HsmToken:
    module = os.environ.get("PKCS11_MODULE")
    if module:
        label = os.environ.get("PKCS11_TOKEN_LABEL")
        pin = os.environ.get("PKCS11_TOKEN_PIN")
        if not label or not pin:
            pytest.fail("PKCS11_MODULE is set: set PKCS11_TOKEN_LABEL and PKCS11_TOKEN_PIN too")
        yield HsmToken(module, label, pin, None)
        return

    module = next((m for m in SOFTHSM_MODULE_CANDIDATES if os.path.exists(m)), None)
    util = shutil.which("softhsm2-util")
    if module is None or util is None:
        _unavailable("SoftHSM2 is not installed (apt-get install softhsm2)")
        return

    base = tmp_path_factory.mktemp("softhsm")
    tokens = base / "tokens"
    tokens.mkdir()
    conf = base / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n"
    )
    previous = os.environ.get("SOFTHSM2_CONF")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    spare = {"removal": ("csos-removal", "654321"), "logs": ("csos-logs", "Pin-7Qz9-xW"),
             "pulled_while_signing": ("csos-pulled-out", "Pin-5521-gone")}
    softhsm = SoftHsmUtil(util, conf, spare)
    label = os.environ.get("PKCS11_TOKEN_LABEL", "csos-test")
    pin = os.environ.get("PKCS11_TOKEN_PIN", "123456")
    softhsm.init_token(label, pin)
    for spare_label, spare_pin in spare.values():
        softhsm.init_token(spare_label, spare_pin)
    softhsm.init_token_without_user_pin(module, NO_USER_PIN_LABEL)
    try:
        yield HsmToken(module, label, pin, softhsm)
    finally:
        if previous is None:
            os.environ.pop("SOFTHSM2_CONF", None)
        else:
            os.environ["SOFTHSM2_CONF"] = previous


@pytest.fixture
def softhsm(hsm_token: HsmToken) -> SoftHsmUtil:
    """For tests that delete tokens: only with the SoftHSM set up by ``hsm_token``."""
    if hsm_token.softhsm is None:
        pytest.skip("deletes tokens: needs the SoftHSM set up by the tests, but PKCS11_MODULE points elsewhere")
    return hsm_token.softhsm
