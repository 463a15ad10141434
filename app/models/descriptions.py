"""The one rule that turns catalog text (product name + strength) into the description an order line carries.

Why: the description is signed inside the X12 850 as PID05, which allows 1-80 printable ASCII characters and no
delimiter (``*``, ``~``, ``>``; DESIGN.md §5). FDA's NDC Directory has longer names, trademark signs and accented
labeler names, and those used to fail only at signing. The NDC stays the authoritative identifier of the product;
the description is for people, so it keeps the meaning:

* letters are transliterated to ASCII (``é`` -> ``e``, ``ß`` -> ``ss``, ``µg`` -> ``mcg``); ``®``, ``™``, ``©`` are
  dropped; anything else outside printable ASCII is dropped;
* the delimiters ``*`` ``~`` ``>`` and control characters become spaces; runs of spaces become one space;
* a result over 80 characters keeps the whole strength and cuts the name at a word boundary, marked ``...``;
* the same input always gives the same output (no locale, no table that changes at run time).

It lives with the models (pure text, no imports) so the migration that cleans old drafts (0004) applies the very
same rule as the order book; ``app.services.orders.descriptions`` re-exports it for the services.
"""

from __future__ import annotations

import unicodedata

MAX_LENGTH = 80  # X12 PID05
DELIMITERS = frozenset("*~>")  # element separator, segment terminator, sub-element separator
CUT_MARK = "..."
_MAX_STRENGTH = 50  # a strength longer than this is itself shortened, so the name keeps some room
_DROPPED = frozenset("\u00ae\u2122\u00a9\u2120")  # ® ™ © ℠ (NFKD would spell ™ as "TM")
# Letters NFKD does not decompose, and signs with a usual ASCII spelling in pharmacy text.
_SPELLED = {
    "\u00b5": "mc", "\u03bc": "mc",  # micro sign / Greek mu: µg -> mcg
    "\u00df": "ss", "\u00e6": "ae", "\u00c6": "AE", "\u0153": "oe", "\u0152": "OE",
    "\u00f8": "o", "\u00d8": "O", "\u0142": "l", "\u0141": "L", "\u0111": "d", "\u0110": "D",
    "\u00f0": "d", "\u00d0": "D", "\u00fe": "th", "\u00de": "Th", "\u0131": "i",
    "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2014": "-", "\u2212": "-",
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201c": '"', "\u201d": '"', "\u201e": '"',
    "\u00d7": "x", "\u2044": "/", "\u2215": "/", "\u00b7": " ", "\u2022": " ", "\u2026": "...",
}


def ascii_text(text: str) -> str:
    """``text`` in printable ASCII without X12 delimiters, spaces collapsed and trimmed."""
    # Signs are dropped or spelled before NFKD, which would otherwise turn "\u2122" into "TM"; then NFKD splits
    # "\u00e9" into "e" + a combining accent, and the accent is dropped.
    spelled = "".join("" if ch in _DROPPED else _SPELLED.get(ch, ch) for ch in text or "")
    out: list[str] = []
    for ch in unicodedata.normalize("NFKD", spelled):
        if "\x20" <= ch <= "\x7e":
            out.append(" " if ch in DELIMITERS else ch)
        elif ch in _SPELLED:
            out.append(_SPELLED[ch])
        elif ch.isspace() or unicodedata.category(ch).startswith(("C", "Z")):
            out.append(" ")
    return " ".join("".join(out).split())


def _cut(text: str, limit: int) -> str:
    """``text`` shortened to at most ``limit`` characters including the cut mark, at a word boundary if possible."""
    if len(text) <= limit:
        return text
    room = limit - len(CUT_MARK)
    if room <= 0:
        return text[:limit]
    head = text[:room + 1]
    boundary = head.rfind(" ")
    head = head[:boundary] if boundary > room // 2 else text[:room]
    head = head.rstrip(" ,;:-/(")
    return (head + CUT_MARK) if head else text[:room] + CUT_MARK


def x12_safe_description(name: str, strength: str = "", *, ndc: str | None = None) -> str:
    """The description an order line carries and signs: catalog name + strength, X12 PID05-safe (rule: module doc).

    ``ndc`` names the product when its name has no character that survives (the description may not be empty).
    """
    strength_text = _cut(ascii_text(strength), _MAX_STRENGTH)
    name_text = ascii_text(name)
    if not name_text:
        name_text = f"NDC {ascii_text(ndc)}" if ndc and ascii_text(ndc) else ("Product" if not strength_text else "")
    if not strength_text:
        return _cut(name_text, MAX_LENGTH)
    full = f"{name_text} {strength_text}".strip()
    if len(full) <= MAX_LENGTH:
        return full
    return f"{_cut(name_text, MAX_LENGTH - len(strength_text) - 1)} {strength_text}"


__all__ = ["CUT_MARK", "MAX_LENGTH", "ascii_text", "x12_safe_description"]
