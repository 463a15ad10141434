"""Password rules for software key files, and the slow-down after wrong passwords.

The rules are for a pharmacy counter: long enough, not a well-known password, not built from words anyone would try
first (the pharmacy, CSOS, DEA...). The check returns the first broken rule as ``WeakPassword`` with a stable
``reason``; ``password_problems`` lists them all for a live hint under the password field.
"""

from __future__ import annotations

import string
import threading
import time
from collections.abc import Callable, Iterable

from .base import WeakPassword

MIN_LENGTH = 12
MAX_LENGTH = 1024

# A short list of the most used passwords (and pharmacy-flavoured ones) that pass the length rule. Compared after
# lower-casing and stripping trailing digits/punctuation, so "Qwertyuiop123!" is caught too.
COMMON_PASSWORDS = frozenset(
    {
        "qwertyuiop",
        "qwertyuiopasdf",
        "asdfghjkl",
        "zxcvbnm",
        "1q2w3e4r5t6y",
        "1qaz2wsx3edc",
        "iloveyou",
        "letmein",
        "welcome",
        "trustno1",
        "sunshine",
        "football",
        "baseball",
        "princess",
        "dragon",
        "monkey",
        "superman",
        "starwars",
        "changeme",
        "abcdefghijkl",
        "abcdefghijklmnop",
        "qazwsxedcrfv",
        "administrator",
        "passw0rd",
        "p@ssw0rd",
        "p@ssword",
        "secret",
        "opensesame",
        "whatever",
        "computer",
        "internet",
        "onetwothreefour",
        "correcthorsebatterystaple",
    }
)

# Words nobody should build a CSOS password around.
FORBIDDEN_WORDS = (
    "password",
    "passwort",
    "pharmacy",
    "pharmacist",
    "drugstore",
    "csos",
    "controlled",
    "substance",
    "narcotic",
    "oxycodone",
    "fentanyl",
    "morphine",
    "admin",
    "qwerty",
    "letmein",
    "welcome",
    "12345",
)

_LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s", "!": "i"})


def password_problems(password: str, *, personal_words: Iterable[str] = ()) -> list[WeakPassword]:
    """Every rule ``password`` breaks (empty list = acceptable).

    ``personal_words`` are things like the subscriber's name, the pharmacy name, the DEA number: a password containing
    one of them (4 characters or more) is refused.
    """
    problems: list[WeakPassword] = []
    if not isinstance(password, str):
        return [WeakPassword("The password must be text.", reason="type")]
    if len(password) < MIN_LENGTH:
        problems.append(
            WeakPassword(f"Use at least {MIN_LENGTH} characters (this one has {len(password)}).", reason="too_short")
        )
    if len(password) > MAX_LENGTH:
        problems.append(WeakPassword(f"Use at most {MAX_LENGTH} characters.", reason="too_long"))
    if password != password.strip():
        problems.append(WeakPassword("Do not start or end the password with a space.", reason="edge_space"))
    if password and len(set(password)) <= 2:
        problems.append(WeakPassword("The password repeats one or two characters.", reason="repeated"))
    classes = _char_classes(password)
    if len(password) < 20 and len(classes) < 2:
        problems.append(
            WeakPassword(
                "Mix letters with digits or symbols, or use a passphrase of 20 characters or more.",
                reason="one_class",
            )
        )
    if password and _is_sequence(password):
        problems.append(WeakPassword("The password is a keyboard or number sequence.", reason="sequence"))
    lowered = password.lower()
    folded = lowered.translate(_LEET)
    core = lowered.rstrip(string.digits + string.punctuation + " ")
    if lowered in COMMON_PASSWORDS or core in COMMON_PASSWORDS or folded.rstrip("0123456789!?.* ") in COMMON_PASSWORDS:
        problems.append(WeakPassword("This is one of the most used passwords.", reason="common"))
    for word in FORBIDDEN_WORDS:
        if word in lowered or word in folded:
            problems.append(
                WeakPassword(f"The password must not contain the word '{word}'.", reason="forbidden_word")
            )
            break
    for word in personal_words:
        w = (word or "").strip().lower()
        if len(w) >= 4 and (w in lowered or w in folded):
            problems.append(
                WeakPassword("The password must not contain your name, the pharmacy or the DEA number.", reason="personal")
            )
            break
    return problems


def check_password(password: str, *, personal_words: Iterable[str] = ()) -> None:
    """Raise the first ``WeakPassword`` problem, if any."""
    problems = password_problems(password, personal_words=personal_words)
    if problems:
        raise problems[0]


def _char_classes(password: str) -> set[str]:
    classes = set()
    for ch in password:
        if ch.islower():
            classes.add("lower")
        elif ch.isupper():
            classes.add("upper")
        elif ch.isdigit():
            classes.add("digit")
        else:
            classes.add("other")
    return classes


_ROWS = ("0123456789", "abcdefghijklmnopqrstuvwxyz", "qwertyuiop", "asdfghjkl", "zxcvbnm", "1234567890")


def _is_sequence(password: str) -> bool:
    """True when the whole password walks along one keyboard/alphabet row (either way), possibly repeated."""
    p = password.lower()
    for row in _ROWS:
        for seq in (row, row[::-1]):
            doubled = seq * (len(p) // len(seq) + 2)
            if p in doubled:
                return True
    return False


# ---------------------------------------------------------------------------------------------------------------------
# Slow-down after wrong passwords
# ---------------------------------------------------------------------------------------------------------------------


def failure_delay(failures: int) -> float:
    """Seconds to wait before the next attempt after ``failures`` wrong passwords in a row.

    Two free retries for typos, then 1, 2, 4 ... seconds, capped at 60.
    """
    if failures < 3:
        return 0.0
    return float(min(60, 2 ** (failures - 3)))


class FailureThrottle:
    """Per-key counter of consecutive wrong secrets, with a growing delay before the next attempt.

    ``sleep`` and ``clock`` are injectable so tests record delays instead of waiting. The counter lives in memory for
    the life of the program; it slows down a person guessing at the keyboard. It is not the defence against an attacker
    who copied the file -- that is the 600,000-iteration PBKDF2.
    """

    def __init__(
        self,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        delay: Callable[[int], float] = failure_delay,
    ) -> None:
        self._sleep = sleep
        self._clock = clock
        self._delay = delay
        self._lock = threading.Lock()
        self._failures: dict[str, int] = {}
        self._last_failure: dict[str, float] = {}

    def failures(self, key: str) -> int:
        with self._lock:
            return self._failures.get(key, 0)

    def wait_before_attempt(self, key: str) -> float:
        """Sleep what is still due after the last failure; returns the seconds slept."""
        with self._lock:
            n = self._failures.get(key, 0)
            due = self._last_failure.get(key, 0.0) + self._delay(n) if n else 0.0
            remaining = due - self._clock() if n else 0.0
        if remaining > 0:
            self._sleep(remaining)
            return remaining
        return 0.0

    def record_failure(self, key: str) -> int:
        with self._lock:
            n = self._failures.get(key, 0) + 1
            self._failures[key] = n
            self._last_failure[key] = self._clock()
            return n

    def record_success(self, key: str) -> None:
        with self._lock:
            self._failures.pop(key, None)
            self._last_failure.pop(key, None)
