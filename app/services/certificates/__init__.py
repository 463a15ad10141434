"""Certificates: which certificate may sign for which registration, and whether a certificate can be trusted.

The certificate book (``book``: keys, certificates and the registrations they sign for), the CSOS certificate
profile (``profile``: every DEA-specific fact about a CSOS certificate), chain and CRL validation against explicit
CSOS trust roots (``validation``, ``trust``), CRLs fetched and kept until their next update (``crl_cache``), and the
small certification-authority engine the training CA and the tests' PKI are built on (``ca``).
"""
