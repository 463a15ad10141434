"""PKCS#10 certificate request signed by the new key (proof of possession, S3) -- one code path for files and tokens.

The request is built by cryptography and signed through ``Signer.as_private_key()``, whose ``sign`` calls the key
file or the token. The result is checked (signature valid, public key is the signer's) before it is returned.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from .base import KeyStoreError, Signer


def build_csr(signer: Signer, *, subject: x509.Name, email: str | None = None) -> bytes:
    """DER PKCS#10 request for ``subject`` (and ``email`` as subjectAltName rfc822Name), SHA-256 signed."""
    builder = x509.CertificateSigningRequestBuilder().subject_name(subject)
    if email:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.RFC822Name(email)]), critical=False)
    csr = builder.sign(signer.as_private_key(), hashes.SHA256())
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    if not csr.is_signature_valid or csr.public_key().public_bytes(
        serialization.Encoding.DER, spki
    ) != signer.public_key.public_bytes(serialization.Encoding.DER, spki):
        raise KeyStoreError("The certificate request did not verify with the key's public key.", code="key.bad_csr")
    return csr.public_bytes(serialization.Encoding.DER)
