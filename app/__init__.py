"""CSOS Desk: controlled-substance ordering for pharmacies and clinics (DEA CSOS)."""

__version__ = "0.1.0"
