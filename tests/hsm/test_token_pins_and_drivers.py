"""Tokens as an outside user meets them (issue 19): the PIN flags read and told, PIN length checked before a try is
used, one plain message per driver problem, a token without a user PIN. Real SoftHSM; opencryptoki where installed."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app.services.keys.base import (
    KeyAlgorithm,
    PinLengthInvalid,
    PinNotInitialized,
    TokenDriverProblem,
    WrongPin,
)
from app.services.keys.pkcs11_store import Pkcs11KeyStore
from app.services.keys.pkcs11_tokens import COUNT_LOW_TEXT, PIN_NOT_INITIALIZED_TEXT

from .conftest import NO_USER_PIN_LABEL

pytestmark = pytest.mark.hsm

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def store(hsm_token):
    s = Pkcs11KeyStore(hsm_token.module, token_label=hsm_token.label)
    yield s
    s.close()


@pytest.fixture(scope="module")
def ref(store, hsm_token):
    ref = store.generate_key(algorithm=KeyAlgorithm.EC_P256, label="pin-checks", secret=hsm_token.pin)
    yield ref
    store.delete_key(ref, secret=hsm_token.pin)


def test_pin_outside_the_tokens_length_limits_is_refused_without_using_a_try(store, ref, hsm_token):
    with store.open_signer(ref, secret=hsm_token.pin):
        pass  # a good login clears the token's failed-try count
    assert not store.find_token(label=hsm_token.label).pin_count_low
    for pin in ("12", "9" * 300):  # SoftHSM: 4..255
        with pytest.raises(PinLengthInvalid) as err:
            store.open_signer(ref, secret=pin)
        assert err.value.code == "key.pin_length"
        assert "no try was used" in err.value.message and pin not in err.value.message
    if hsm_token.softhsm is not None:
        # SoftHSM flags COUNT_LOW after any failed C_Login; still clear, so the token never saw these PINs.
        assert not store.find_token(label=hsm_token.label).pin_count_low


def test_a_wrong_pin_tells_how_close_the_token_is_to_locking(store, ref, hsm_token):
    if hsm_token.softhsm is None:
        pytest.skip("needs SoftHSM, which flags COUNT_LOW after a wrong PIN")
    with pytest.raises(WrongPin) as err:
        store.open_signer(ref, secret="999999")
    assert err.value.message == f"The PIN is not correct. {COUNT_LOW_TEXT}"
    listed = next(t for t in store.list_tokens() if t.label == hsm_token.label)
    assert listed.pin_notice == COUNT_LOW_TEXT
    with store.open_signer(ref, secret=hsm_token.pin):
        pass
    assert store.find_token(label=hsm_token.label).pin_notice == ""


def test_a_token_without_a_user_pin_gets_a_plain_message(hsm_token, softhsm):
    with Pkcs11KeyStore(hsm_token.module, token_label=NO_USER_PIN_LABEL) as s:
        info = s.find_token(label=NO_USER_PIN_LABEL)
        assert info.initialized and not info.pin_initialized
        assert info.pin_notice == PIN_NOT_INITIALIZED_TEXT
        with pytest.raises(PinNotInitialized) as err:
            s.generate_key(algorithm=KeyAlgorithm.EC_P256, label="never", secret="123456")
    assert err.value.code == "key.pin_not_initialized"
    assert "UserPinNotInitialized" not in err.value.message
    assert "Set the user PIN with the token's own tool" in err.value.message


@pytest.mark.parametrize("kind", ["missing", "folder", "text", "executable", "other_library"])
def test_each_driver_problem_has_its_own_error_and_fix(tmp_path, kind):
    if kind == "missing":
        path, code, words = str(tmp_path / "nope.so"), "key.driver_missing", "is not on this computer"
    elif kind == "folder":
        path, code, words = str(tmp_path), "key.driver_not_pkcs11", "it is a folder"
    elif kind == "text":
        (tmp_path / "driver.so").write_text("not a library")
        path, code, words = str(tmp_path / "driver.so"), "key.driver_not_pkcs11", "not a PKCS#11 token driver"
    elif kind == "executable":
        path, code, words = "/bin/true", "key.driver_not_pkcs11", "not a PKCS#11 token driver"
    else:
        import ctypes.util

        found = ctypes.util.find_library("z")
        libz = next((p for p in ("/lib/x86_64-linux-gnu/libz.so.1", "/usr/lib/x86_64-linux-gnu/libz.so.1",
                                 "/lib/aarch64-linux-gnu/libz.so.1") if os.path.exists(p)), None)
        if libz is None:
            pytest.skip(f"no libz at a known path (find_library: {found})")
        path, code, words = libz, "key.driver_not_pkcs11", "not a PKCS#11 token driver"
    with pytest.raises(TokenDriverProblem) as err:
        Pkcs11KeyStore(path)
    assert err.value.code == code
    assert words in err.value.message and "Settings → Signing devices" in err.value.message


# ---------------------------------------------------------------------------------------------------------------------
# opencryptoki (a second PKCS#11 implementation): the service and its group
# ---------------------------------------------------------------------------------------------------------------------

OCK_MODULE = next((p for p in ("/usr/lib/x86_64-linux-gnu/pkcs11/libopencryptoki.so",
                               "/usr/lib/aarch64-linux-gnu/pkcs11/libopencryptoki.so",
                               "/usr/lib64/pkcs11/libopencryptoki.so") if os.path.exists(p)), None)
PKCSSLOTD = shutil.which("pkcsslotd") or ("/usr/sbin/pkcsslotd" if os.path.exists("/usr/sbin/pkcsslotd") else None)
OCK_SOCKETS = ("/run/pkcsslotd.socket", "/var/run/pkcsslotd.socket")

needs_ock = pytest.mark.skipif(OCK_MODULE is None or PKCSSLOTD is None,
                               reason="opencryptoki is not installed (apt-get install opencryptoki)")

_PROBE = (
    "import sys\n"
    "from app.services.keys.pkcs11_store import Pkcs11KeyStore\n"
    "from app.services.keys.base import KeyStoreError\n"
    "try:\n"
    "    s = Pkcs11KeyStore(sys.argv[1]); print('loaded', len(s.list_tokens(include_uninitialized=True)))\n"
    "except KeyStoreError as e:\n"
    "    print(e.code); print(e.message)\n"
)


def _probe(*prefix: str, python: str = sys.executable, extra_path: str = "") -> list[str]:
    """Load the module in a child process (opencryptoki is never loaded into the test process)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), extra_path) if p), HOME="/nonexistent")
    done = subprocess.run([*prefix, python, "-c", _PROBE, OCK_MODULE], capture_output=True, text=True, env=env,
                          timeout=120, cwd="/")
    assert "Traceback" not in done.stderr, done.stderr
    return done.stdout.splitlines()


def _slotd_running() -> bool:
    return any(os.path.exists(s) for s in OCK_SOCKETS)


def _pid_of_slotd() -> int | None:
    """The running pkcsslotd's pid: from its pid file when that names a live pkcsslotd, else from /proc. (It makes
    its sockets before it writes the pid file, so right after start the file can still be missing or stale.)"""
    for pid_file in ("/run/pkcsslotd.pid", "/var/run/pkcsslotd.pid"):
        try:
            pid = int(Path(pid_file).read_text().strip())
        except (OSError, ValueError):
            continue
        if _is_slotd(pid):
            return pid
    found = [int(entry.name) for entry in Path("/proc").iterdir()
             if entry.name.isdigit() and _is_slotd(int(entry.name))]
    return found[0] if len(found) == 1 else None


def _is_slotd(pid: int) -> bool:
    """A live pkcsslotd (not one that has exited and waits to be reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    name, _, rest = stat.partition("(")[2].rpartition(")")
    return name == "pkcsslotd" and rest.split()[:1] != ["Z"]


@pytest.fixture
def slotd_started():
    """Start pkcsslotd for the test (as root) and stop exactly that daemon afterwards."""
    if os.geteuid() != 0:
        pytest.skip("starting the opencryptoki service needs root")
    if _slotd_running():
        yield None  # someone else's service: use it, leave it running
        return
    subprocess.run([PKCSSLOTD], check=True, timeout=30)
    deadline = time.monotonic() + 10
    while not (_slotd_running() and _pid_of_slotd()) and time.monotonic() < deadline:
        time.sleep(0.1)
    pid = _pid_of_slotd()
    assert pid is not None, "pkcsslotd started but its process was not found: it would be left running"
    try:
        yield pid
    finally:
        if pid:
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 10
            while _slotd_running() and time.monotonic() < deadline:
                time.sleep(0.1)


@needs_ock
def test_opencryptoki_with_its_service_stopped_says_to_start_it():
    if _slotd_running():
        pytest.skip("pkcsslotd is running on this machine (not ours to stop)")
    code, message = _probe()[:2]
    assert code == "key.token_service_stopped"
    assert "pkcsslotd" in message and "not running" in message


@needs_ock
def test_opencryptoki_for_a_user_outside_its_group_names_the_group(slotd_started):
    assert _probe()[0].startswith("loaded")  # positive control: root may use the running service
    setpriv = shutil.which("setpriv")
    # The venv's interpreter may live under /root; a user outside it runs the system Python of the same version.
    system_python = f"/usr/bin/python{sys.version_info[0]}.{sys.version_info[1]}"
    if setpriv is None or not os.path.exists(system_python):
        pytest.skip(f"needs setpriv and {system_python} to run as another user")
    site = next(p for p in sys.path if p.endswith("site-packages") and p.startswith(sys.prefix))
    lines = _probe(setpriv, "--reuid=nobody", "--regid=nogroup", "--clear-groups", python=system_python,
                   extra_path=site)
    assert lines[0] == "key.token_group_missing", lines
    assert "'pkcs11'" in lines[1] and "usermod -aG pkcs11" in lines[1]
