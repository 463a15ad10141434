"""PKCS#11 token key store (python-pkcs11) -- DESIGN §7, K1, K4, K5.

* Key pairs are generated ON the token: private key sensitive, non-extractable, private, sign-only, with a random
  16-byte CKA_ID; the public key and the issued certificate are public objects under the same CKA_ID, so keys can be
  listed and certificates bound without the PIN.
* Tokens, their worker thread, logins and errors: ``pkcs11_tokens`` (the ``Pkcs11Tokens`` base of this store).
  Signing mechanisms and the check of every token signature: ``pkcs11_signer``.
"""

from __future__ import annotations

import logging
import os
import weakref
from collections.abc import Iterable
from typing import Any

from asn1crypto import core as asn1_core
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from pkcs11 import Attribute, CertificateType, KeyType, Mechanism, MechanismFlag, ObjectClass
from pkcs11 import exceptions as p11x
from pkcs11.util.ec import decode_ec_private_key, decode_ec_public_key, encode_ec_public_key
from pkcs11.util.ec import encode_named_curve_parameters
from pkcs11.util.rsa import decode_rsa_private_key, decode_rsa_public_key

from .base import (
    STORE_PKCS11,
    KeyAlgorithm,
    KeyNotFound,
    KeyRef,
    KeyStore,
    KeyStoreError,
    SignerClosed,
    TokenError,
    TokenIdentity,
    TokenRefused,
    TokenRemoved,
    UnsupportedKey,
    check_certificate_matches,
)
from .pkcs11_signer import Pkcs11Signer, token_signature, verify_token_signature
from .pkcs11_tokens import Login, Pkcs11Tokens, TokenInfo, acquire_module, info_of, release_module
from .software import check_label

log = logging.getLogger(__name__)

CKA_ID_BYTES = 16
_P256_PARAMS = encode_named_curve_parameters("secp256r1")


class Pkcs11KeyStore(Pkcs11Tokens, KeyStore):
    """Keys on PKCS#11 tokens reached through the module at ``module_path``.

    ``token_label`` / ``token_serial`` choose the token used by ``generate_key`` / ``import_private_key`` and listed by
    ``list_keys``; with neither, the only initialised token is used (several → ``key.token_ambiguous``). Key
    references carry their token's serial, so ``open_signer`` finds the right token whatever the selection.
    ``disable_mechanisms`` makes the store behave as if the token lacked those mechanisms (to work around a broken
    driver, and to test the fall-backs).
    """

    kind = STORE_PKCS11

    def __init__(
        self,
        module_path: str,
        *,
        token_label: str | None = None,
        token_serial: str | None = None,
        disable_mechanisms: Iterable[Mechanism] = (),
    ) -> None:
        self.module_path = os.path.abspath(module_path)
        self.token_label = token_label
        self.token_serial = token_serial
        self._disabled = frozenset(disable_mechanisms)
        self._mod = acquire_module(self.module_path)
        self._closed = False
        self._signers: weakref.WeakSet[Pkcs11Signer] = weakref.WeakSet()
        try:
            self._run(self._w_load)
        except BaseException:
            self.close()
            raise

    # -- closing ------------------------------------------------------------------------------------------------------

    def close(self) -> None:
        """Close this store's signers (logging out where it held the last use of a login) and its worker share."""
        if self._closed:
            return

        def close_signers() -> None:
            for signer in list(self._signers):
                self._w_close_signer(signer)

        try:
            self._run(close_signers)
        finally:
            self._closed = True
            release_module(self._mod)

    def __enter__(self) -> "Pkcs11KeyStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- public API -----------------------------------------------------------------------------------------------------

    def list_tokens(self, *, include_uninitialized: bool = False) -> list[TokenInfo]:
        infos = self._run(self._w_list_tokens)
        return [i for i in infos if include_uninitialized or i.initialized]

    def find_token(self, *, label: str | None = None, serial: str | None = None) -> TokenInfo:
        return self._run(self._w_find_token_info, label, serial)

    def list_keys(self) -> list[KeyRef]:
        return self._run(self._w_list_keys)

    def generate_key(self, *, algorithm: KeyAlgorithm, label: str, secret: str | None) -> KeyRef:
        label = check_label(label)
        return self._run(self._w_generate, algorithm, label, secret)

    def open_signer(self, ref: KeyRef, *, secret: str | None) -> Pkcs11Signer:
        self._check_ref(ref)
        return self._run(self._w_open_signer, ref, secret)

    def delete_key(self, ref: KeyRef, *, secret: str | None) -> None:
        self._check_ref(ref)
        self._run(self._w_delete, ref, secret)

    def public_key(self, ref: KeyRef) -> rsa.RSAPublicKey | ec.EllipticCurvePublicKey:
        self._check_ref(ref)
        return self._run(self._w_public_key, ref)

    def store_certificate(self, ref: KeyRef, cert_der: bytes, *, secret: str | None = None) -> None:
        """Write the certificate under the key's CKA_ID (replacing older ones).

        Uses the open login if there is one, else logs in with ``secret`` if given, else a public read/write session
        (PKCS#11 allows public objects there; a token that insists on a login gives ``key.pin_required``).
        """
        self._check_ref(ref)
        check_certificate_matches(self.public_key(ref), cert_der)
        self._run(self._w_store_certificate, ref, cert_der, secret)

    def load_certificate(self, ref: KeyRef) -> bytes | None:
        self._check_ref(ref)
        return self._run(self._w_load_certificate, ref)

    def key_attributes(self, ref: KeyRef, *, secret: str | None) -> dict[str, bool]:
        """The private key's protection attributes (sensitive, extractable, local...) for the compliance view."""
        self._check_ref(ref)
        return self._run(self._w_key_attributes, ref, secret)

    def import_private_key(self, private_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, *, label: str,
                           secret: str | None, certificate_der: bytes | None = None) -> KeyRef:
        """Best effort: put an existing key on the token as sensitive and non-extractable (C_CreateObject).

        Tokens that refuse raise ``TokenRefused``. The key is then not 'generated on the token' (CKA_LOCAL false).
        """
        label = check_label(label)
        KeyAlgorithm.of_public_key(private_key)
        if certificate_der is not None:
            check_certificate_matches(private_key.public_key(), certificate_der)
        return self._run(self._w_import, private_key, label, secret, certificate_der)

    def logged_in_tokens(self) -> list[str]:
        """Serials of tokens this process holds a login on (for tests and the status bar)."""
        return self._run(lambda: sorted(self._mod.logins))

    # =================================================================================================================
    # Worker side: everything below runs on the module's worker thread only.
    # =================================================================================================================


    @staticmethod
    def _w_public_from_object(pub: Any) -> rsa.RSAPublicKey | ec.EllipticCurvePublicKey:
        key_type = pub[Attribute.KEY_TYPE]
        if key_type == KeyType.RSA:
            n = int.from_bytes(pub[Attribute.MODULUS], "big")
            e = int.from_bytes(pub[Attribute.PUBLIC_EXPONENT], "big")
            return rsa.RSAPublicNumbers(e, n).public_key()
        if key_type == KeyType.EC:
            loaded = serialization.load_der_public_key(encode_ec_public_key(pub))
            return loaded  # type: ignore[return-value]
        raise UnsupportedKey("This token key is not an RSA or elliptic-curve key.")

    def _w_ref(self, token_identity: TokenIdentity, ckid: bytes, label: str,
               public_key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey) -> KeyRef:
        return KeyRef(store=STORE_PKCS11, key_id=ckid.hex(), label=label,
                      algorithm=KeyAlgorithm.of_public_key(public_key), token=token_identity)

    def _w_keys_on(self, token: Any) -> list[KeyRef]:
        identity = info_of(token).identity

        def collect(session: Any) -> list[KeyRef]:
            found: dict[bytes, KeyRef] = {}
            for pub in session.get_objects({Attribute.CLASS: ObjectClass.PUBLIC_KEY}):
                try:
                    ckid = bytes(pub[Attribute.ID])
                    ref = self._w_ref(identity, ckid, pub[Attribute.LABEL], self._w_public_from_object(pub))
                except (UnsupportedKey, ValueError, p11x.PKCS11Error) as exc:
                    log.debug("skipping token public key: %s", type(exc).__name__)
                    continue
                if ckid:
                    found.setdefault(ckid, ref)
            for cert in session.get_objects({Attribute.CLASS: ObjectClass.CERTIFICATE}):
                try:
                    ckid = bytes(cert[Attribute.ID])
                    if not ckid or ckid in found:
                        continue
                    pk = x509.load_der_x509_certificate(bytes(cert[Attribute.VALUE])).public_key()
                    found[ckid] = self._w_ref(identity, ckid, cert[Attribute.LABEL], pk)  # type: ignore[arg-type]
                except (UnsupportedKey, ValueError, x509.InvalidVersion, p11x.PKCS11Error) as exc:
                    log.debug("skipping token certificate: %s", type(exc).__name__)
            return sorted(found.values(), key=lambda r: (r.label, r.key_id))

        return self._w_with_public_session(token, collect)

    def _w_list_keys(self) -> list[KeyRef]:
        if self.token_label is not None or self.token_serial is not None:
            return self._w_keys_on(self._w_selected_token())
        refs: list[KeyRef] = []
        for token in self._w_tokens():
            if info_of(token).initialized:
                refs.extend(self._w_keys_on(token))
        return refs

    def _w_public_key(self, ref: KeyRef) -> rsa.RSAPublicKey | ec.EllipticCurvePublicKey:
        token = self._w_token_of(ref)

        def read(session: Any) -> rsa.RSAPublicKey | ec.EllipticCurvePublicKey:
            for pub in session.get_objects({Attribute.CLASS: ObjectClass.PUBLIC_KEY, Attribute.ID: ref.key_id_bytes}):
                return self._w_public_from_object(pub)
            for cert in session.get_objects({Attribute.CLASS: ObjectClass.CERTIFICATE,
                                             Attribute.ID: ref.key_id_bytes}):
                return x509.load_der_x509_certificate(bytes(cert[Attribute.VALUE])).public_key()  # type: ignore
            raise KeyNotFound(f"The key '{ref.label}' is not on {ref.token.describe()}.")  # type: ignore[union-attr]

        return self._w_with_public_session(token, read)

    def _w_private(self, session: Any, ref: KeyRef) -> Any:
        try:
            return session.get_key(object_class=ObjectClass.PRIVATE_KEY, id=ref.key_id_bytes)
        except p11x.NoSuchKey as exc:
            raise KeyNotFound(
                f"The key '{ref.label}' is not on {ref.token.describe()}."  # type: ignore[union-attr]
            ) from exc
        except p11x.MultipleObjectsReturned as exc:
            raise TokenError("The token holds several private keys with the same id.",
                             code="key.duplicate_id") from exc

    # -- generate / import ----------------------------------------------------------------------------------------

    def _w_generate(self, algorithm: KeyAlgorithm, label: str, secret: str | None) -> KeyRef:
        token = self._w_selected_token()
        identity = info_of(token).identity
        ckid = os.urandom(CKA_ID_BYTES)

        def generate(login: Login) -> KeyRef:
            session = login.session
            common = {Attribute.TOKEN: True, Attribute.ID: ckid, Attribute.LABEL: label}
            public_template = {**common, Attribute.PRIVATE: False, Attribute.VERIFY: True,
                               Attribute.ENCRYPT: False, Attribute.WRAP: False, Attribute.DERIVE: False}
            private_template = {**common, Attribute.PRIVATE: True, Attribute.SENSITIVE: True,
                                Attribute.EXTRACTABLE: False, Attribute.SIGN: True, Attribute.DECRYPT: False,
                                Attribute.UNWRAP: False, Attribute.DERIVE: False}
            caps = MechanismFlag.SIGN | MechanismFlag.VERIFY
            if algorithm.is_rsa:
                if Mechanism.RSA_PKCS_KEY_PAIR_GEN not in login.mechanisms:
                    raise TokenRefused("This token cannot generate RSA keys. Choose ECDSA P-256.")
                pub, priv = session.generate_keypair(
                    KeyType.RSA, algorithm.key_size, id=ckid, label=label, store=True, capabilities=caps,
                    mechanism=Mechanism.RSA_PKCS_KEY_PAIR_GEN,
                    public_template=public_template, private_template=private_template)
            else:
                if Mechanism.EC_KEY_PAIR_GEN not in login.mechanisms:
                    raise TokenRefused("This token cannot generate elliptic-curve keys. Choose RSA-2048.")
                public_template[Attribute.EC_PARAMS] = _P256_PARAMS
                pub, priv = session.generate_keypair(
                    KeyType.EC, None, id=ckid, label=label, store=True, capabilities=caps,
                    mechanism=Mechanism.EC_KEY_PAIR_GEN,
                    public_template=public_template, private_template=private_template)
            # Trust but verify: a token that ignored the template must not hold a CSOS key.
            if priv[Attribute.SENSITIVE] is not True or priv[Attribute.EXTRACTABLE] is not False:
                priv.destroy()
                pub.destroy()
                raise TokenRefused("The token would not make the key non-extractable; the key was destroyed.")
            public_key = self._w_public_from_object(pub)
            ref = self._w_ref(identity, ckid, label, public_key)
            if ref.algorithm is not algorithm:
                priv.destroy()
                pub.destroy()
                raise TokenRefused("The token generated a different kind of key than asked; it was destroyed.")
            return ref

        ref = self._w_with_login(token, secret, generate)
        log.info("token key generated: serial=%s id=%s algorithm=%s", identity.serial, ref.key_id,
                 algorithm.value)
        return ref

    def _w_import(self, private_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, label: str,
                  secret: str | None, certificate_der: bytes | None) -> KeyRef:
        token = self._w_selected_token()
        identity = info_of(token).identity
        ckid = os.urandom(CKA_ID_BYTES)
        public_key = private_key.public_key()

        def do_import(login: Login) -> KeyRef:
            session = login.session
            if isinstance(private_key, rsa.RSAPrivateKey):
                priv_attrs = decode_rsa_private_key(private_key.private_bytes(
                    serialization.Encoding.DER, serialization.PrivateFormat.TraditionalOpenSSL,
                    serialization.NoEncryption()), capabilities=MechanismFlag.SIGN)
                pub_attrs = decode_rsa_public_key(public_key.public_bytes(
                    serialization.Encoding.DER, serialization.PublicFormat.PKCS1), capabilities=MechanismFlag.VERIFY)
            else:
                priv_attrs = decode_ec_private_key(private_key.private_bytes(
                    serialization.Encoding.DER, serialization.PrivateFormat.TraditionalOpenSSL,
                    serialization.NoEncryption()))
                pub_attrs = decode_ec_public_key(public_key.public_bytes(
                    serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo))
            common = {Attribute.TOKEN: True, Attribute.ID: ckid, Attribute.LABEL: label}
            priv_attrs.update(common)
            priv_attrs.update({Attribute.PRIVATE: True, Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False,
                               Attribute.SIGN: True, Attribute.DECRYPT: False, Attribute.UNWRAP: False})
            pub_attrs.update(common)
            pub_attrs.update({Attribute.PRIVATE: False, Attribute.VERIFY: True})
            pub_attrs.pop(Attribute.ENCRYPT, None)
            pub_attrs.pop(Attribute.WRAP, None)
            try:
                priv = session.create_object(priv_attrs)
            except (p11x.TemplateInconsistent, p11x.TemplateIncomplete, p11x.AttributeValueInvalid,
                    p11x.AttributeTypeInvalid, p11x.AttributeReadOnly, p11x.FunctionNotSupported,
                    p11x.FunctionFailed, p11x.GeneralError) as exc:
                raise TokenRefused(
                    f"The token refused to take this key ({type(exc).__name__}). Keep the key in a key file, or "
                    "generate a new key on the token and renew the certificate."
                ) from exc
            try:
                pub = session.create_object(pub_attrs)
            except p11x.PKCS11Error as exc:
                priv.destroy()
                raise TokenRefused(f"The token refused the public key ({type(exc).__name__}).") from exc
            if priv[Attribute.SENSITIVE] is not True or priv[Attribute.EXTRACTABLE] is not False:
                priv.destroy()
                pub.destroy()
                raise TokenRefused("The token would not protect the imported key; it was removed again.")
            ref = self._w_ref(identity, ckid, label, public_key)
            if certificate_der is not None:
                self._w_write_certificate(session, ref, certificate_der)
            return ref

        ref = self._w_with_login(token, secret, do_import)
        log.info("key imported onto token serial=%s id=%s", identity.serial, ref.key_id)
        return ref

    # -- certificates ---------------------------------------------------------------------------------------------

    def _w_write_certificate(self, session: Any, ref: KeyRef, cert_der: bytes) -> None:
        cert = x509.load_der_x509_certificate(cert_der)
        old = list(session.get_objects({Attribute.CLASS: ObjectClass.CERTIFICATE, Attribute.ID: ref.key_id_bytes}))
        session.create_object({
            Attribute.CLASS: ObjectClass.CERTIFICATE,
            Attribute.CERTIFICATE_TYPE: CertificateType.X_509,
            Attribute.TOKEN: True,
            Attribute.PRIVATE: False,
            Attribute.ID: ref.key_id_bytes,
            Attribute.LABEL: ref.label,
            Attribute.SUBJECT: cert.subject.public_bytes(),
            Attribute.ISSUER: cert.issuer.public_bytes(),
            Attribute.SERIAL_NUMBER: asn1_core.Integer(cert.serial_number).dump(),
            Attribute.VALUE: cert_der,
        })
        for obj in old:  # replace only after the new one is safely written
            obj.destroy()

    def _w_store_certificate(self, ref: KeyRef, cert_der: bytes, secret: str | None) -> None:
        token = self._w_token_of(ref)
        info = info_of(token)
        if info.serial not in self._mod.logins and secret is not None:
            self._w_with_login(token, secret, lambda login: self._w_write_certificate(login.session, ref, cert_der))
        else:
            try:
                self._w_with_public_session(token, lambda s: self._w_write_certificate(s, ref, cert_der), rw=True)
            except TokenError as exc:
                if exc.code != "key.token_session_lost":
                    raise
                raise KeyStoreError("The token needs its PIN to store the certificate.",
                                    code="key.pin_required") from exc
        log.info("certificate stored on token serial=%s id=%s", info.serial, ref.key_id)

    def _w_load_certificate(self, ref: KeyRef) -> bytes | None:
        token = self._w_token_of(ref)

        def read(session: Any) -> bytes | None:
            for cert in session.get_objects({Attribute.CLASS: ObjectClass.CERTIFICATE,
                                             Attribute.ID: ref.key_id_bytes}):
                return bytes(cert[Attribute.VALUE])
            return None

        return self._w_with_public_session(token, read)

    # -- signing --------------------------------------------------------------------------------------------------

    def _w_open_signer(self, ref: KeyRef, secret: str | None) -> Pkcs11Signer:
        token = self._w_token_of(ref)
        login = self._w_login(token, secret)
        try:
            key = self._w_private(login.session, ref)
            public_key = self._w_public_key(ref)
            if KeyAlgorithm.of_public_key(public_key) is not ref.algorithm:
                raise KeyNotFound("The key on the token is not the one this reference describes.")
        except BaseException as exc:
            self._w_release(login)
            if isinstance(exc, p11x.PKCS11Error):
                raise self._w_translate(exc, login.serial, ref.token) from exc
            raise
        signer = Pkcs11Signer(self, ref, login, key, public_key)
        self._signers.add(signer)
        return signer

    def _w_close_signer(self, signer: Pkcs11Signer) -> None:
        login = signer._login
        signer._login = None
        signer._key = None
        if login is not None:
            self._w_release(login)

    def _w_sign(self, signer: Pkcs11Signer, data: bytes) -> bytes:
        login = signer._login
        key = signer._key
        if login is None or key is None:
            raise SignerClosed("The key is locked. Enter the PIN again to sign.")
        if self._mod.logins.get(login.serial) is not login:
            self._w_close_signer(signer)
            raise TokenError("The connection to the token was lost. Unlock the key again.",
                             code="key.token_session_lost")
        try:
            signature = token_signature(key, signer.key_ref.algorithm, login.mechanisms, data)
        except p11x.PKCS11Error as exc:
            error = self._w_translate(exc, login.serial, signer.key_ref.token)
            if isinstance(error, (TokenRemoved,)) or error.code == "key.token_session_lost":
                signer._login = None
                signer._key = None
            raise error from exc
        verify_token_signature(signer.public_key, signature, data)
        return signature

    # -- delete / inspect -------------------------------------------------------------------------------------------

    def _w_delete(self, ref: KeyRef, secret: str | None) -> None:
        token = self._w_token_of(ref)

        def delete(login: Login) -> None:
            objects = list(login.session.get_objects({Attribute.ID: ref.key_id_bytes}))
            if not any(o[Attribute.CLASS] == ObjectClass.PRIVATE_KEY for o in objects):
                raise KeyNotFound(f"The key '{ref.label}' is not on the token.")
            for obj in objects:
                obj.destroy()

        self._w_with_login(token, secret, delete)
        log.info("token key deleted: serial=%s id=%s", ref.token.serial if ref.token else "?", ref.key_id)

    def _w_key_attributes(self, ref: KeyRef, secret: str | None) -> dict[str, bool]:
        token = self._w_token_of(ref)
        names = {
            "sensitive": Attribute.SENSITIVE,
            "extractable": Attribute.EXTRACTABLE,
            "always_sensitive": Attribute.ALWAYS_SENSITIVE,
            "never_extractable": Attribute.NEVER_EXTRACTABLE,
            "local": Attribute.LOCAL,
            "private": Attribute.PRIVATE,
            "sign": Attribute.SIGN,
            "decrypt": Attribute.DECRYPT,
        }

        def read(login: Login) -> dict[str, bool]:
            key = self._w_private(login.session, ref)
            out = {}
            for name, attr in names.items():
                try:
                    out[name] = bool(key[attr])
                except p11x.AttributeTypeInvalid:
                    continue
            return out

        return self._w_with_login(token, secret, read)


__all__ = ["CKA_ID_BYTES", "Pkcs11KeyStore", "Pkcs11Signer", "TokenInfo"]
