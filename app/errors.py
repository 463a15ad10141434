"""Typed errors shared by every layer.

Each error carries a stable ``code`` (logged, tested, used by the CLI's JSON output) and a ``message`` written for
the person at the counter. Messages never contain secrets: passwords, PINs, access codes and key bytes stay out.
"""

from __future__ import annotations


class CsosError(Exception):
    """Base of every error CSOS Desk reports to a person.

    ``code`` is stable across releases (tests and logs rely on it); ``message`` is plain language.
    """

    code: str = "error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        return self.message


class InvalidValue(CsosError):
    """A domain value (DEA number, NDC, order number, schedule...) broke a named rule."""

    code = "invalid_value"


class NotFound(CsosError):
    code = "not_found"


class InvalidTransition(CsosError):
    """An order was asked to move to a state the state machine does not allow from where it is."""

    code = "invalid_transition"


class ImmutableRecord(CsosError):
    """Someone tried to change signed content or an append-only record."""

    code = "immutable_record"


class IntegrityError(CsosError):
    """Stored data does not match its own hash chain or signature."""

    code = "integrity_failed"


class CatalogImportError(CsosError):
    code = "catalog_import_failed"


class StorageError(CsosError):
    """The database could not be opened or written (disk full, locked, newer schema...)."""

    code = "storage_failed"


class ConfigError(CsosError):
    code = "config_invalid"
