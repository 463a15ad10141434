"""ASC X12 004010 for CSOS orders and the supplier's replies (DESIGN.md §5): this package owns the bytes of the
850 purchase order that gets signed and of the 855 acknowledgement, 856 ship notice and 865 void notice that come
back, written and parsed in one canonical spelling, one interchange / one functional group / one transaction set
each, on its own frozen dataclasses (it knows nothing about the order book). ``core`` holds what every set shares
(delimiters, character rules, errors, element codecs, segment writing and reading, the ISA/GS/ST ... SE/GE/IEA
envelope); ``po850``, ``ack855``, ``ship856`` and ``void865`` hold one transaction set each; ``interchange`` picks
the set for ``write`` and ``parse_interchange``. Callers use only the names below; the field mapping is in
``docs/x12-mapping.md``.
"""

from __future__ import annotations

from .ack855 import AckLine, Acknowledgement855, AckStatus, LineStatus
from .core import ELEMENT_SEPARATOR, SEGMENT_TERMINATOR, SUBELEMENT_SEPARATOR, Envelope, X12Error
from .interchange import (
    Document,
    Interchange,
    parse_850,
    parse_855,
    parse_856,
    parse_865,
    parse_any,
    parse_interchange,
    parse_void,
    write,
    write_850,
    write_855,
    write_856,
    write_865,
    write_void,
)
from .po850 import OrderLine850, Party, PurchaseOrder
from .ship856 import Shipment856, ShipmentLine
from .void865 import VoidNotice

__all__ = [
    "SEGMENT_TERMINATOR", "ELEMENT_SEPARATOR", "SUBELEMENT_SEPARATOR",
    "X12Error", "Party", "OrderLine850", "PurchaseOrder", "AckStatus", "LineStatus", "AckLine",
    "Acknowledgement855", "ShipmentLine", "Shipment856", "VoidNotice", "Document", "Envelope", "Interchange",
    "write", "write_850", "write_855", "write_856", "write_void", "write_865",
    "parse_interchange", "parse_any", "parse_850", "parse_855", "parse_856", "parse_void", "parse_865",
]
