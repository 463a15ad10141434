"""Domain values: DEA number, NDC, order number, schedule.

Each is an immutable type built only through ``parse`` so anything holding one can trust it. Parse errors are
``InvalidValue`` with a code naming the rule that failed (``dea.check_digit``, ``ndc.ambiguous``...).
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from app.errors import InvalidValue

# First character of a DEA number: the registrant type. A/B/F/G: practitioners, hospitals, pharmacies;
# M: mid-level practitioners; P/R: manufacturers, distributors, researchers, importers/exporters; X: DATA-waived
# practitioners (historical); C, D, E, H, J, K, L, S, T, U: other registrant types DEA has issued.
DEA_REGISTRANT_TYPE_LETTERS = frozenset("ABCDEFGHJKLMPRSTUX")

_DEA_SHAPE = re.compile(r"^[A-Z]{2}[0-9]{7}$")


@dataclass(frozen=True, slots=True)
class DeaNumber:
    """A DEA registration number, normalised to upper case (e.g. ``BJ6125341``)."""

    value: str

    @classmethod
    def parse(cls, text: str) -> "DeaNumber":
        if not isinstance(text, str):
            raise InvalidValue("A DEA number must be text.", code="dea.type")
        candidate = text.strip().upper()
        if not candidate:
            raise InvalidValue("The DEA number is empty.", code="dea.empty")
        if not _DEA_SHAPE.match(candidate):
            raise InvalidValue(
                f"'{candidate}' is not a DEA number: it must be 2 letters followed by 7 digits (e.g. BJ6125341).",
                code="dea.format",
            )
        if candidate[0] not in DEA_REGISTRANT_TYPE_LETTERS:
            raise InvalidValue(
                f"'{candidate}' starts with '{candidate[0]}', which is not a DEA registrant-type letter.",
                code="dea.registrant_type",
            )
        digits = [int(c) for c in candidate[2:]]
        expected = dea_check_digit(digits[:6])
        if digits[6] != expected:
            raise InvalidValue(
                f"'{candidate}' fails the DEA check digit: the last digit should be {expected}, not {digits[6]}. "
                "Check for a typing mistake.",
                code="dea.check_digit",
            )
        return cls(candidate)

    def __str__(self) -> str:
        return self.value


def dea_check_digit(first_six: list[int]) -> int:
    """((d1+d3+d5) + 2*(d2+d4+d6)) mod 10."""
    d = first_six
    return ((d[0] + d[2] + d[4]) + 2 * (d[1] + d[3] + d[5])) % 10


_NDC_HYPHENATED = re.compile(r"^([0-9]+)-([0-9]+)-([0-9]+)$")
# Segment lengths (labeler, product, package) that FDA uses, and where the padding zero goes to reach 5-4-2.
_NDC_LAYOUTS = {(4, 4, 2), (5, 3, 2), (5, 4, 1), (5, 4, 2)}


@dataclass(frozen=True, slots=True)
class Ndc:
    """A National Drug Code, stored as 11 digits (HIPAA 5-4-2 layout)."""

    digits: str

    @classmethod
    def parse(cls, text: str) -> "Ndc":
        if not isinstance(text, str):
            raise InvalidValue("An NDC must be text.", code="ndc.type")
        candidate = text.strip().replace(" ", "")
        if not candidate:
            raise InvalidValue("The NDC is empty.", code="ndc.empty")
        match = _NDC_HYPHENATED.match(candidate)
        if match:
            labeler, product, package = match.groups()
            layout = (len(labeler), len(product), len(package))
            if layout not in _NDC_LAYOUTS:
                raise InvalidValue(
                    f"'{candidate}' is not an NDC layout FDA uses (4-4-2, 5-3-2, 5-4-1 or 5-4-2).",
                    code="ndc.layout",
                )
            return cls(labeler.zfill(5) + product.zfill(4) + package.zfill(2))
        if not candidate.isdigit() or not candidate.isascii():
            raise InvalidValue(
                f"'{candidate}' is not an NDC: use digits with hyphens, e.g. 12345-6789-01.", code="ndc.format"
            )
        if len(candidate) == 11:
            return cls(candidate)
        if len(candidate) == 10:
            raise InvalidValue(
                f"'{candidate}' is a 10-digit NDC without hyphens, which is ambiguous (it could be 4-4-2, 5-3-2 or "
                "5-4-1). Type it with hyphens as printed on the package.",
                code="ndc.ambiguous",
            )
        raise InvalidValue(
            f"'{candidate}' has {len(candidate)} digits; an NDC has 10 (with hyphens) or 11.", code="ndc.length"
        )

    @property
    def display(self) -> str:
        d = self.digits
        return f"{d[:5]}-{d[5:9]}-{d[9:]}"

    @property
    def product_ndc(self) -> str:
        """Labeler + product code (first 9 digits), the key of FDA's product.txt after normalising."""
        return self.digits[:9]

    def __str__(self) -> str:
        return self.display


_ORDER_NUMBER = re.compile(r"^[0-9]{2}X[0-9A-Z]{6}$")


@dataclass(frozen=True, slots=True)
class OrderNumber:
    """Duty O2: last two digits of the year, ``X``, six purchaser-chosen characters ``[0-9A-Z]``."""

    value: str

    @classmethod
    def parse(cls, text: str) -> "OrderNumber":
        if not isinstance(text, str):
            raise InvalidValue("An order number must be text.", code="order_number.type")
        candidate = text.strip().upper()
        if not candidate:
            raise InvalidValue("The order number is empty.", code="order_number.empty")
        if len(candidate) != 9:
            raise InvalidValue(
                f"'{candidate}' has {len(candidate)} characters; an order number has 9 (e.g. 26X000001).",
                code="order_number.length",
            )
        if not _ORDER_NUMBER.match(candidate):
            raise InvalidValue(
                f"'{candidate}' is not an order number: two digits of the year, the letter X, then six letters or "
                "digits (e.g. 26X000001).",
                code="order_number.format",
            )
        return cls(candidate)

    @classmethod
    def build(cls, year: int, suffix: str) -> "OrderNumber":
        return cls.parse(f"{year % 100:02d}X{suffix}")

    @property
    def year_two_digits(self) -> str:
        return self.value[:2]

    @property
    def suffix(self) -> str:
        return self.value[3:]

    def __str__(self) -> str:
        return self.value


class Schedule(enum.Enum):
    """DEA schedules as CSOS certificates list them. ``N`` suffix = non-narcotic (DEA's own notation)."""

    I = "I"  # noqa: E741 - the schedule's real name
    II = "II"
    IIN = "IIN"
    III = "III"
    IIIN = "IIIN"
    IV = "IV"
    V = "V"
    NON_CONTROLLED = "NC"

    @classmethod
    def parse(cls, text: str) -> "Schedule":
        if not isinstance(text, str):
            raise InvalidValue("A schedule must be text.", code="schedule.type")
        candidate = text.strip().upper().replace(" ", "")
        aliases = {"NC": cls.NON_CONTROLLED, "NONE": cls.NON_CONTROLLED, "": cls.NON_CONTROLLED,
                   "1": cls.I, "2": cls.II, "2N": cls.IIN, "3": cls.III, "3N": cls.IIIN, "4": cls.IV, "5": cls.V}
        if candidate in aliases:
            return aliases[candidate]
        try:
            return cls(candidate)
        except ValueError:
            raise InvalidValue(
                f"'{text}' is not a schedule; use I, II, IIN, III, IIIN, IV, V or NC.", code="schedule.unknown"
            ) from None

    @classmethod
    def from_fda(cls, deaschedule: str, *, narcotic: bool | None = None) -> "Schedule":
        """Map FDA's ``DEASCHEDULE`` (CI...CV, empty) to a schedule.

        FDA does not distinguish narcotic from non-narcotic in schedules II and III. Unless the caller knows the
        substance is non-narcotic, the narcotic schedule is assumed: it is the one fewer certificates authorize, so a
        wrong guess blocks an order rather than letting through one the signer may not sign.
        """
        value = (deaschedule or "").strip().upper()
        mapping = {"": cls.NON_CONTROLLED, "CI": cls.I, "CII": cls.II, "CIII": cls.III, "CIV": cls.IV, "CV": cls.V}
        if value not in mapping:
            raise InvalidValue(
                f"'{deaschedule}' is not an FDA DEASCHEDULE value (CI, CII, CIII, CIV, CV or empty).",
                code="schedule.fda_unknown",
            )
        schedule = mapping[value]
        if narcotic is False and schedule is cls.II:
            return cls.IIN
        if narcotic is False and schedule is cls.III:
            return cls.IIIN
        return schedule

    @property
    def is_controlled(self) -> bool:
        return self is not Schedule.NON_CONTROLLED

    @property
    def label(self) -> str:
        return {
            "I": "Schedule I", "II": "Schedule II (narcotic)", "IIN": "Schedule II (non-narcotic)",
            "III": "Schedule III (narcotic)", "IIIN": "Schedule III (non-narcotic)", "IV": "Schedule IV",
            "V": "Schedule V", "NC": "Not controlled",
        }[self.value]


# Order in which CSOS certificates encode schedules in the authorizedSchedules BIT STRING (DESIGN.md §4).
CERTIFICATE_SCHEDULE_BITS: tuple[Schedule, ...] = (
    Schedule.I, Schedule.II, Schedule.IIN, Schedule.III, Schedule.IIIN, Schedule.IV, Schedule.V,
)


class PackageUnit(enum.Enum):
    """Unit of the quantity in one package, as the 850's PO4 carries it."""

    EACH = "EA"
    MILLILITER = "ML"
    GRAM = "GR"

    @classmethod
    def parse(cls, text: str) -> "PackageUnit":
        candidate = (text or "").strip().upper()
        aliases = {"EA": cls.EACH, "EACH": cls.EACH, "TABLET": cls.EACH, "CAPSULE": cls.EACH,
                   "ML": cls.MILLILITER, "MILLILITER": cls.MILLILITER, "GR": cls.GRAM, "G": cls.GRAM, "GRAM": cls.GRAM}
        if candidate in aliases:
            return aliases[candidate]
        raise InvalidValue(f"'{text}' is not a package unit; use EA, ML or GR.", code="unit.unknown")
