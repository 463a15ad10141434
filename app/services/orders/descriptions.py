"""The X12-safe description rule for the services (the rule itself: ``app.models.descriptions``, shared with the
migration that cleans old drafts)."""

from __future__ import annotations

from app.models.descriptions import CUT_MARK, MAX_LENGTH, ascii_text, x12_safe_description

__all__ = ["CUT_MARK", "MAX_LENGTH", "ascii_text", "x12_safe_description"]
