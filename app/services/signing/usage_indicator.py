"""ISA15, the interchange usage indicator: ``T`` (test) for everything made in training, ``P`` (production) for real
orders (issue 17, item 5).

Why it matters: a supplier's EDI system routes on ISA15. A practice order marked P could be filled as a real order,
and a real order marked T could be thrown away as a test. So the profile decides the indicator when the interchange
is written, the verifier reports it, and a connector refuses to send one of the wrong kind before any network call.
"""

from __future__ import annotations

from typing import Any

from app.errors import CsosError

TEST = "T"
PRODUCTION = "P"
_ISA_LENGTH = 106  # fixed width, terminator included


class WrongTestIndicator(CsosError):
    """``transport.test_indicator``: a training (T) interchange offered to a production supplier, or the reverse."""

    code = "transport.test_indicator"


def for_profile(config: Any) -> str:
    """T in the training profile, P in production."""
    return TEST if getattr(config, "is_training", False) else PRODUCTION


def read_usage_indicator(content: bytes) -> str | None:
    """ISA15 of an X12 interchange (``T``/``P``), or None when the bytes do not start with a readable ISA."""
    head = content[:_ISA_LENGTH]
    if len(head) < _ISA_LENGTH or not head.startswith(b"ISA"):
        return None
    fields = head[:-1].split(head[3:4])
    if len(fields) != 17:
        return None
    value = fields[15].decode("ascii", "replace")
    return value if value in (TEST, PRODUCTION) else None


def usage_of_document(document: bytes) -> str | None:
    """ISA15 of the order inside a signed document (CMS), or None when it cannot be read."""
    from app.services.signing.cms import CmsError, parse_signed_document

    try:
        return read_usage_indicator(parse_signed_document(document).content)
    except CmsError:
        return None


def check_before_sending(document: bytes, expected: str | None, *, supplier: str = "this supplier") -> None:
    """Refuse (``WrongTestIndicator``) a signed order whose ISA15 is not ``expected``; ``expected`` None = no rule.
    Called before any network call or file is written."""
    if expected is None:
        return
    found = usage_of_document(document)
    if found is None or found == expected:
        return
    if found == TEST:
        message = (f"This order was made for practice (marked as a test) and was not sent to {supplier}, which is a "
                   "real supplier. Make and sign the order again in the production profile.")
    else:
        message = (f"This order is marked as a real order and was not sent to {supplier}, a practice supplier of "
                   "the training profile. Practice orders are made and signed in training.")
    raise WrongTestIndicator(message)
