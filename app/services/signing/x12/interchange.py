"""One document in one interchange: ``write`` and ``parse_interchange`` pick the transaction set module by the
document's type (writing) or by ST01 (parsing); the ``write_8xx``/``parse_8xx`` shorthands fix the set.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Union

from .ack855 import _SEGMENTS_855, Acknowledgement855, _parse_855_body, _write_855_body
from .core import _BodyParser, _fail, _known_segments, _read_interchange, _write_interchange, _Writer, Envelope
from .plain850 import read_plain_850
from .po850 import _SEGMENTS_850, PurchaseOrder, _parse_850_body, _write_850_body
from .ship856 import _SEGMENTS_856, Shipment856, _parse_856_body, _write_856_body
from .void865 import _SEGMENTS_865, VoidNotice, _parse_865_body, _write_865_body

__all__ = [
    "Document", "Interchange",
    "write", "write_850", "write_855", "write_856", "write_void", "write_865",
    "parse_interchange", "parse_any", "parse_850", "parse_855", "parse_856", "parse_void", "parse_865",
]


Document = Union[PurchaseOrder, Acknowledgement855, Shipment856, VoidNotice]


@dataclass(frozen=True, slots=True)
class Interchange:
    envelope: Envelope
    document: Document


# ---------------------------------------------------------------------------------------------------------------------
# Writing


_WRITERS: dict[type, tuple[str, Callable[[_Writer, Any], None]]] = {
    PurchaseOrder: ("850", _write_850_body),
    Acknowledgement855: ("855", _write_855_body),
    Shipment856: ("856", _write_856_body),
    VoidNotice: ("865", _write_865_body),
}


def write(document: Document, envelope: Envelope) -> bytes:
    """Write one document in one interchange. Deterministic: the same input always gives the same bytes."""
    entry = _WRITERS.get(type(document))
    if entry is None:
        raise _fail("x12.bad_element", None, f"cannot write a {type(document).__name__} as X12.")
    transaction_set, body = entry
    return _write_interchange(document, envelope, transaction_set, body)


def _envelope_writer(name: str, cls: type) -> Callable[..., bytes]:
    def writer(
        document: Any,
        *,
        interchange_control_number: int,
        group_control_number: int,
        sender_id: str,
        receiver_id: str,
        created_at: _dt.datetime,
        transaction_control_number: int = 1,
        sender_qualifier: str = "ZZ",
        receiver_qualifier: str = "ZZ",
        usage_indicator: str = "P",
        acknowledgment_requested: bool = False,
        application_sender_id: str | None = None,
        application_receiver_id: str | None = None,
    ) -> bytes:
        if not isinstance(document, cls):
            raise _fail("x12.bad_element", None, f"{name} writes a {cls.__name__}, not {type(document).__name__}.")
        return write(document, Envelope(
            sender_id=sender_id, receiver_id=receiver_id, created_at=created_at,
            interchange_control_number=interchange_control_number, group_control_number=group_control_number,
            transaction_control_number=transaction_control_number, sender_qualifier=sender_qualifier,
            receiver_qualifier=receiver_qualifier, usage_indicator=usage_indicator,
            acknowledgment_requested=acknowledgment_requested, application_sender_id=application_sender_id,
            application_receiver_id=application_receiver_id,
        ))

    writer.__name__ = writer.__qualname__ = name
    writer.__doc__ = (f"Write a {cls.__name__} as one X12 interchange. Keyword arguments are the Envelope fields; "
                      "control numbers must be unique per sender (the caller's job).")
    return writer


write_850 = _envelope_writer("write_850", PurchaseOrder)
write_855 = _envelope_writer("write_855", Acknowledgement855)
write_856 = _envelope_writer("write_856", Shipment856)
write_865 = _envelope_writer("write_865", VoidNotice)
write_void = write_865


# ---------------------------------------------------------------------------------------------------------------------
# Parsing


_PARSERS: dict[str, _BodyParser] = {
    "850": (_parse_850_body, _SEGMENTS_850),
    "855": (_parse_855_body, _SEGMENTS_855),
    "856": (_parse_856_body, _SEGMENTS_856),
    "865": (_parse_865_body, _SEGMENTS_865),
}
_ALL_KNOWN = _known_segments(_PARSERS)


def parse_interchange(data: bytes, *, expected: str | None = None) -> Interchange:
    """Parse one interchange holding one 850, 855, 856 or 865. ``expected`` (e.g. ``"850"``) rejects other sets.

    Raises only :class:`X12Error`.
    """
    if expected is None or expected == "850":
        plain = read_plain_850(data)  # a plain canonical 850, read fast; anything else: the general reader
        if plain is not None:
            return Interchange(*plain)
    envelope, document = _read_interchange(data, expected, _PARSERS, _ALL_KNOWN)
    return Interchange(envelope, document)


def parse_any(data: bytes) -> Document:
    """Parse an 850, 855, 856 or 865 (void notice), dispatching on ST01."""
    return parse_interchange(data).document


def parse_850(data: bytes) -> PurchaseOrder:
    plain = read_plain_850(data, envelope=False)  # the order alone: the envelope is checked, not built
    if plain is not None:
        return plain[1]
    return parse_interchange(data, expected="850").document  # type: ignore[return-value]


def parse_855(data: bytes) -> Acknowledgement855:
    return parse_interchange(data, expected="855").document  # type: ignore[return-value]


def parse_856(data: bytes) -> Shipment856:
    return parse_interchange(data, expected="856").document  # type: ignore[return-value]


def parse_865(data: bytes) -> VoidNotice:
    return parse_interchange(data, expected="865").document  # type: ignore[return-value]


parse_void = parse_865
