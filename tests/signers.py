"""A real signer over an in-memory cryptography key, for tests that are about CMS or verification rather than key
storage (the key stores have their own tests, and the end-to-end tests use them)."""

from __future__ import annotations

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa


class KeySigner:
    def __init__(self, key):
        self.key = key

    @property
    def signature_algorithm(self) -> str:
        return "sha256_rsa" if isinstance(self.key, rsa.RSAPrivateKey) else "sha256_ecdsa"

    def sign(self, data: bytes) -> bytes:
        if isinstance(self.key, rsa.RSAPrivateKey):
            return self.key.sign(data, padding.PKCS1v15(), hashes.SHA256())
        return self.key.sign(data, ec.ECDSA(hashes.SHA256()))
