"""What python-pkcs11 does not tell: the token's PIN length limits, and why a token driver would not start (K1).

* ``pin_limits`` reads ``ulMinPinLen`` / ``ulMaxPinLen`` from ``C_GetTokenInfo`` through ctypes on the SAME loaded
  library (python-pkcs11 only exposes label, serial and flags). It must run on the module's worker thread, like every
  other call to the library. Any failure gives ``None``: the length check is then left to the token.
* ``driver_problem`` turns a failed load or ``C_Initialize`` into one typed error per cause, each with the fix:
  the file is missing; the file is not a PKCS#11 library; the token service is not running (opencryptoki's
  ``pkcsslotd``); the user is not in the token's group (opencryptoki's ``pkcs11``).
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys
from dataclasses import dataclass

from .base import (
    TokenAccessDenied,
    TokenDriverFailed,
    TokenDriverInvalid,
    TokenDriverMissing,
    TokenServiceStopped,
)

log = logging.getLogger(__name__)

_ULONG = ctypes.c_ulong
_PACK = 1 if sys.platform == "win32" else 0  # PKCS#11 packs its structures to 1 byte on Windows only

# opencryptoki: the slot daemon's socket, its data folders and the group whose members may use them.
OCK_GROUP = "pkcs11"
OCK_SERVICE = "pkcsslotd"
OCK_SOCKETS = ("/run/pkcsslotd.socket", "/var/run/pkcsslotd.socket", "/run/opencryptoki/pkcsslotd.socket")
OCK_DIRS = ("/var/lib/opencryptoki", "/run/lock/opencryptoki")


class _Version(ctypes.Structure):
    _pack_ = _PACK
    _fields_ = [("major", ctypes.c_ubyte), ("minor", ctypes.c_ubyte)]


class _TokenInfo(ctypes.Structure):
    _pack_ = _PACK
    _fields_ = [
        ("label", ctypes.c_char * 32), ("manufacturerID", ctypes.c_char * 32), ("model", ctypes.c_char * 16),
        ("serialNumber", ctypes.c_char * 16), ("flags", _ULONG), ("ulMaxSessionCount", _ULONG),
        ("ulSessionCount", _ULONG), ("ulMaxRwSessionCount", _ULONG), ("ulRwSessionCount", _ULONG),
        ("ulMaxPinLen", _ULONG), ("ulMinPinLen", _ULONG), ("ulTotalPublicMemory", _ULONG),
        ("ulFreePublicMemory", _ULONG), ("ulTotalPrivateMemory", _ULONG), ("ulFreePrivateMemory", _ULONG),
        ("hardwareVersion", _Version), ("firmwareVersion", _Version), ("utcTime", ctypes.c_char * 16),
    ]


_GET_TOKEN_INFO = ctypes.CFUNCTYPE(_ULONG, _ULONG, ctypes.POINTER(_TokenInfo))


class _FunctionList(ctypes.Structure):
    """The head of CK_FUNCTION_LIST, up to C_GetTokenInfo (the 7th function)."""

    _pack_ = _PACK
    _fields_ = [("version", _Version)] + [(f"f{i}", ctypes.c_void_p) for i in range(6)] + [
        ("C_GetTokenInfo", _GET_TOKEN_INFO)]


_GET_FUNCTION_LIST = ctypes.CFUNCTYPE(_ULONG, ctypes.POINTER(ctypes.POINTER(_FunctionList)))
_FUNCTION_LISTS: dict[str, ctypes._Pointer] = {}


def _function_list(module_path: str) -> ctypes._Pointer:
    flist = _FUNCTION_LISTS.get(module_path)
    if flist is None:
        library = ctypes.CDLL(module_path)  # the library python-pkcs11 already loaded: dlopen hands back the same one
        get_list = _GET_FUNCTION_LIST(("C_GetFunctionList", library))
        out = ctypes.POINTER(_FunctionList)()
        if get_list(ctypes.byref(out)) != 0 or not out:
            raise OSError("C_GetFunctionList failed")
        flist = _FUNCTION_LISTS[module_path] = out
    return flist


@dataclass(frozen=True)
class PinLimits:
    minimum: int
    maximum: int

    def check(self, pin: str) -> str | None:
        """A plain sentence when ``pin`` cannot be right for this token (so no try is used on it), else None."""
        length = len(pin.encode("utf-8"))
        if self.minimum and length < self.minimum:
            return (f"This token's PIN has at least {self.minimum} characters; the PIN you typed is shorter. "
                    "Nothing was sent to the token, so no try was used.")
        if self.maximum and length > self.maximum:
            return (f"This token's PIN has at most {self.maximum} characters; the PIN you typed is longer. "
                    "Nothing was sent to the token, so no try was used.")
        return None


def pin_limits(module_path: str, slot_id: int) -> PinLimits | None:
    """The token's PIN length limits, or None when they cannot be read (or make no sense)."""
    try:
        info = _TokenInfo()
        rv = _function_list(module_path).contents.C_GetTokenInfo(slot_id, ctypes.byref(info))
    except (OSError, AttributeError, ValueError) as exc:
        log.debug("token PIN limits unreadable: %s", type(exc).__name__)
        return None
    if rv != 0:
        return None
    low, high = int(info.ulMinPinLen), int(info.ulMaxPinLen)
    if low > 1024 or (high and high < low):
        return None
    return PinLimits(minimum=low, maximum=high if high < 1_000_000 else 0)


# ---------------------------------------------------------------------------------------------------------------------
# Why a driver does not start
# ---------------------------------------------------------------------------------------------------------------------


def is_opencryptoki(module_path: str) -> bool:
    try:
        real = os.path.realpath(module_path)
    except OSError:
        real = module_path
    return "opencryptoki" in module_path.lower() or "opencryptoki" in real.lower()


def _in_group(name: str) -> bool | None:
    """True/False when the group exists; None when it does not (then nothing can be said)."""
    try:
        import grp  # POSIX only

        group = grp.getgrnam(name)
    except (ImportError, KeyError):
        return None
    if os.geteuid() == 0:
        return True
    return group.gr_gid == os.getegid() or group.gr_gid in os.getgroups()


def load_problem(module_path: str, detail: str) -> Exception:
    """The library could not be dlopen'ed or has no C_GetFunctionList."""
    if not os.path.exists(module_path):
        return TokenDriverMissing(
            f"The token driver file {module_path} is not on this computer. Install the software that came with "
            "your token (or its driver package), or choose the right driver file in Settings → Signing devices.")
    if os.path.isdir(module_path):
        return TokenDriverInvalid(
            f"The token driver {module_path} could not be loaded: it is a folder. Choose the driver file itself "
            "(a .so or .dll file) in Settings → Signing devices.")
    if not os.access(module_path, os.R_OK):
        return TokenDriverInvalid(
            f"The token driver {module_path} could not be loaded: this user may not read it. Ask the computer's "
            "administrator to make it readable.")
    log.info("token driver not loadable: %s", detail[:200])
    return TokenDriverInvalid(
        f"The token driver {module_path} could not be loaded: it is not a PKCS#11 token driver. Choose the driver "
        "file your token's maker installed (for example opensc-pkcs11.so or the maker's own library) in "
        "Settings → Signing devices.")


def initialize_problem(module_path: str, error_name: str) -> Exception:
    """The library loaded but C_Initialize (or the first slot list) failed: say why and what to do."""
    if is_opencryptoki(module_path):
        member = _in_group(OCK_GROUP)
        denied = any(os.path.exists(d) and not os.access(d, os.R_OK | os.X_OK) for d in OCK_DIRS)
        if member is False or denied:
            return TokenAccessDenied(
                f"This computer's user may not use the token service: join the group '{OCK_GROUP}' (ask the "
                f"administrator to run: sudo usermod -aG {OCK_GROUP} {_user()}), then log out and in again.",
                group=OCK_GROUP, service=OCK_SERVICE)
        if not any(os.path.exists(s) for s in OCK_SOCKETS):
            return TokenServiceStopped(
                f"The token service is not running. Start it (ask the administrator to run: sudo systemctl "
                f"enable --now {OCK_SERVICE}), then try again.", group=OCK_GROUP, service=OCK_SERVICE)
        socket = next(s for s in OCK_SOCKETS if os.path.exists(s))
        if not os.access(socket, os.R_OK | os.W_OK):
            return TokenAccessDenied(
                f"This computer's user may not use the token service: join the group '{OCK_GROUP}' (ask the "
                f"administrator to run: sudo usermod -aG {OCK_GROUP} {_user()}), then log out and in again.",
                group=OCK_GROUP, service=OCK_SERVICE)
    return TokenDriverFailed(
        f"The token driver {os.path.basename(module_path)} loaded but would not start ({error_name}). Check that the "
        "token's service or reader software is running (restart the computer if unsure), then try again.")


def _user() -> str:
    try:
        import pwd

        return pwd.getpwuid(os.geteuid()).pw_name
    except (KeyError, ImportError):
        return "$USER"


__all__ = ["OCK_GROUP", "OCK_SERVICE", "PinLimits", "initialize_problem", "is_opencryptoki", "load_problem",
           "pin_limits"]
