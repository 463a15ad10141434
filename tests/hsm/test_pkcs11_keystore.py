"""PKCS#11 key store against a real SoftHSM2 token (tests/hsm/conftest.py)."""

from __future__ import annotations

import datetime as dt
import logging
import subprocess
import threading
import uuid

import pkcs11
import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID
from pkcs11 import Attribute, Mechanism, ObjectClass

from app.services.keys import (
    CertificateNoMatchingKey,
    KeyAlgorithm,
    KeyNotFound,
    KeyRef,
    SessionLocked,
    SigningSession,
    TokenNotFound,
    TokenRemoved,
    WrongPin,
    build_csr,
)
from app.services.keys.p12 import import_certificate, import_p12
from app.services.keys.pkcs11_store import Pkcs11KeyStore

pytestmark = pytest.mark.hsm

SUBJECT = x509.Name(
    [
        x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Main Street Pharmacy"),
        x509.NameAttribute(NameOID.COMMON_NAME, "Pat Purchaser"),
        x509.NameAttribute(NameOID.SERIAL_NUMBER, "100200300"),
    ]
)


def verify(public_key, signature: bytes, data: bytes) -> None:
    if isinstance(public_key, rsa.RSAPublicKey):
        public_key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
    else:
        public_key.verify(signature, data, ec.ECDSA(hashes.SHA256()))


def self_signed(signer, *, cn: str = "Pat Purchaser") -> x509.Certificate:
    """A certificate signed through the signer's cryptography wrapper (same path as the CSR)."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = dt.datetime.now(dt.timezone.utc)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(signer.public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=30))
        .sign(signer.as_private_key(), hashes.SHA256())
    )


@pytest.fixture(scope="module")
def store(hsm_token):
    s = Pkcs11KeyStore(hsm_token.module, token_label=hsm_token.label)
    yield s
    s.close()


@pytest.fixture(scope="module")
def keys(store, hsm_token):
    refs = {
        alg: store.generate_key(algorithm=alg, label=f"test {alg.value} {uuid.uuid4().hex[:6]}", secret=hsm_token.pin)
        for alg in (KeyAlgorithm.RSA_2048, KeyAlgorithm.EC_P256)
    }
    yield refs
    for ref in refs.values():
        try:
            store.delete_key(ref, secret=hsm_token.pin)
        except KeyNotFound:
            pass


ALGS = [KeyAlgorithm.RSA_2048, KeyAlgorithm.EC_P256]


# ---------------------------------------------------------------------------------------------------------------------
# Tokens
# ---------------------------------------------------------------------------------------------------------------------


def test_token_listed_with_identity_and_flags(store, hsm_token):
    tokens = [t for t in store.list_tokens() if t.label == hsm_token.label]
    assert len(tokens) == 1
    info = tokens[0]
    assert info.serial and info.manufacturer and info.model
    assert info.initialized
    assert info.protected_authentication_path is False  # SoftHSM has no PIN pad
    # uninitialised (free) SoftHSM slots are hidden by default
    assert all(t.initialized for t in store.list_tokens())


def test_token_found_by_label_and_by_serial(store, hsm_token):
    by_label = store.find_token(label=hsm_token.label)
    by_serial = store.find_token(serial=by_label.serial)
    assert by_serial == by_label
    assert store.find_token(label=hsm_token.label, serial=by_label.serial) == by_label
    with pytest.raises(TokenNotFound) as err:
        store.find_token(label="no-such-token")
    assert err.value.code == "key.token_not_found"
    with pytest.raises(TokenNotFound):
        store.find_token(label=hsm_token.label, serial="0000000000000000")


def test_store_selected_by_serial_only(hsm_token, keys):
    with Pkcs11KeyStore(hsm_token.module, token_label=hsm_token.label) as by_label:
        serial = by_label.find_token(label=hsm_token.label).serial
    with Pkcs11KeyStore(hsm_token.module, token_serial=serial) as by_serial:
        ids = {r.key_id for r in by_serial.list_keys()}
    assert {r.key_id for r in keys.values()} <= ids


# ---------------------------------------------------------------------------------------------------------------------
# Keys
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("alg", ALGS)
def test_generated_key_is_listed_with_token_identity(store, keys, hsm_token, alg):
    ref = keys[alg]
    assert len(ref.key_id) == 32  # random 16-byte CKA_ID
    assert ref.token is not None and ref.token.label == hsm_token.label
    listed = {r.key_id: r for r in store.list_keys()}
    assert listed[ref.key_id] == ref
    assert KeyRef.from_json(ref.to_json()) == ref


@pytest.mark.parametrize("alg", ALGS)
def test_private_key_on_token_is_sensitive_and_not_extractable(store, keys, hsm_token, alg):
    attrs = store.key_attributes(keys[alg], secret=hsm_token.pin)
    assert attrs["sensitive"] is True
    assert attrs["extractable"] is False
    assert attrs["always_sensitive"] is True
    assert attrs["never_extractable"] is True
    assert attrs["local"] is True  # generated on the token
    assert attrs["private"] is True
    assert attrs["sign"] is True
    assert attrs["decrypt"] is False


def test_private_value_cannot_be_read_through_raw_pkcs11(hsm_token, keys):
    lib = pkcs11.lib(hsm_token.module)
    token = next(
        s.get_token() for s in lib.get_slots(token_present=True) if s.get_token().label == hsm_token.label
    )
    session = token.open(user_pin=hsm_token.pin)
    try:
        key = session.get_key(object_class=ObjectClass.PRIVATE_KEY, id=keys[KeyAlgorithm.RSA_2048].key_id_bytes)
        with pytest.raises(pkcs11.exceptions.AttributeSensitive):
            key[Attribute.PRIVATE_EXPONENT]
    finally:
        session.close()


@pytest.mark.parametrize("alg", ALGS)
def test_sign_and_verify(store, keys, hsm_token, alg):
    data = b"ISA*00*...~BEG*00*SA*25X000123~"
    with store.open_signer(keys[alg], secret=hsm_token.pin) as signer:
        assert signer.signature_algorithm == alg.signature_algorithm
        signature = signer.sign(data)
        verify(signer.public_key, signature, data)
        assert signer.public_key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ) == store.public_key(keys[alg]).public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        with pytest.raises(InvalidSignature):
            verify(signer.public_key, signature, data + b"x")
    assert signer.closed


def test_softhsm_lacks_ecdsa_sha256_and_prehash_path_is_used(hsm_token, store, keys):
    lib = pkcs11.lib(hsm_token.module)
    slot = next(s for s in lib.get_slots(token_present=True) if s.get_token().label == hsm_token.label)
    mechanisms = slot.get_mechanisms()
    if Mechanism.ECDSA_SHA256 in mechanisms:
        pytest.skip("this token has ECDSA_SHA256; the pre-hash path is covered by the disable_mechanisms test")
    assert Mechanism.ECDSA in mechanisms
    with store.open_signer(keys[KeyAlgorithm.EC_P256], secret=hsm_token.pin) as signer:
        verify(signer.public_key, signer.sign(b"abc"), b"abc")


def test_rsa_fallback_to_raw_pkcs1_gives_identical_signature(hsm_token, store, keys):
    ref = keys[KeyAlgorithm.RSA_2048]
    data = b"deterministic PKCS#1 v1.5"
    with store.open_signer(ref, secret=hsm_token.pin) as signer:
        normal = signer.sign(data)
    with Pkcs11KeyStore(hsm_token.module, token_label=hsm_token.label,
                        disable_mechanisms=[Mechanism.SHA256_RSA_PKCS, Mechanism.ECDSA_SHA256]) as limited:
        with limited.open_signer(ref, secret=hsm_token.pin) as signer:
            fallback = signer.sign(data)
        with limited.open_signer(keys[KeyAlgorithm.EC_P256], secret=hsm_token.pin) as signer:
            verify(signer.public_key, signer.sign(data), data)
    assert fallback == normal


@pytest.mark.parametrize("alg", ALGS)
def test_csr_from_token_verifies_with_cryptography_and_openssl(store, keys, hsm_token, alg, tmp_path):
    with store.open_signer(keys[alg], secret=hsm_token.pin) as signer:
        der = build_csr(signer, subject=SUBJECT, email="pat@example.org")
        pub = signer.public_key
    csr = x509.load_der_x509_csr(der)
    assert csr.is_signature_valid
    assert csr.subject == SUBJECT
    assert csr.public_key().public_numbers() == pub.public_numbers()
    san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.RFC822Name) == ["pat@example.org"]
    path = tmp_path / "req.der"
    path.write_bytes(der)
    done = subprocess.run(["openssl", "req", "-verify", "-in", str(path), "-inform", "DER", "-noout"],
                          capture_output=True, text=True)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "verify OK" in output and "failure" not in output
    # A tampered request must fail. OpenSSL 3.0 `req -verify` exits 0 even then, so read what it prints.
    bad = bytearray(der)
    bad[-5] ^= 0x01
    path.write_bytes(bytes(bad))
    done = subprocess.run(["openssl", "req", "-verify", "-in", str(path), "-inform", "DER", "-noout"],
                          capture_output=True, text=True)
    assert "verify failure" in done.stdout + done.stderr


def test_wrong_pin(store, keys, hsm_token):
    ref = keys[KeyAlgorithm.EC_P256]
    with pytest.raises(WrongPin) as err:
        store.open_signer(ref, secret="999999")
    assert err.value.code == "key.wrong_pin"
    assert "999999" not in str(err.value)
    with pytest.raises(WrongPin):
        store.open_signer(ref, secret="")
    if hsm_token.softhsm is not None:
        # SoftHSM never locks the PIN (so PinLocked cannot be shown here) but flags the failed tries, and the
        # token list reports it so the UI can warn before a real token locks.
        assert store.find_token(label=hsm_token.label).pin_count_low
    # the right PIN still works afterwards
    with store.open_signer(ref, secret=hsm_token.pin) as signer:
        verify(signer.public_key, signer.sign(b"x"), b"x")


def test_wrong_pin_rejected_while_token_already_logged_in(store, keys, hsm_token):
    """PKCS#11 logins are per process: without our PIN check a second unlock would accept any PIN."""
    with store.open_signer(keys[KeyAlgorithm.RSA_2048], secret=hsm_token.pin):
        with pytest.raises(WrongPin):
            store.open_signer(keys[KeyAlgorithm.EC_P256], secret="000000")
        with store.open_signer(keys[KeyAlgorithm.EC_P256], secret=hsm_token.pin) as second:
            verify(second.public_key, second.sign(b"y"), b"y")
        assert store.logged_in_tokens()  # first signer still holds the login
    assert store.logged_in_tokens() == []  # last signer closed: logged out, session closed


def test_certificate_stored_under_same_cka_id(store, keys, hsm_token):
    ref = keys[KeyAlgorithm.EC_P256]
    with store.open_signer(ref, secret=hsm_token.pin) as signer:
        cert = self_signed(signer)
    with store.open_signer(keys[KeyAlgorithm.RSA_2048], secret=hsm_token.pin) as rsa_signer:
        other = self_signed(rsa_signer)
    der = cert.public_bytes(serialization.Encoding.DER)
    store.store_certificate(ref, der)  # public object: no PIN needed
    assert store.load_certificate(ref) == der
    # replaced, not duplicated, on renewal
    store.store_certificate(ref, der)
    lib = pkcs11.lib(hsm_token.module)
    token = next(s.get_token() for s in lib.get_slots(token_present=True) if s.get_token().label == hsm_token.label)
    with token.open() as session:
        certs = list(session.get_objects({Attribute.CLASS: ObjectClass.CERTIFICATE, Attribute.ID: ref.key_id_bytes}))
        assert len(certs) == 1
        assert bytes(certs[0][Attribute.VALUE]) == der
        assert certs[0][Attribute.PRIVATE] is False
    with pytest.raises(CertificateNoMatchingKey):
        store.store_certificate(ref, other.public_bytes(serialization.Encoding.DER))
    assert store.load_certificate(ref) == der


def test_import_certificate_binds_to_token_key(store, keys, hsm_token):
    ref = keys[KeyAlgorithm.RSA_2048]
    with store.open_signer(ref, secret=hsm_token.pin) as signer:
        cert = self_signed(signer, cn="Bound")
    result = import_certificate(store, cert.public_bytes(serialization.Encoding.PEM))
    assert result.key_ref.key_id == ref.key_id
    assert store.load_certificate(ref) == cert.public_bytes(serialization.Encoding.DER)


def test_import_p12_onto_token(store, hsm_token, tmp_path):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Imported")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    data = pkcs12.serialize_key_and_certificates(b"x", key, cert, None,
                                                 serialization.BestAvailableEncryption(b"Transfer-Pass-2024"))
    ref = import_p12(store, data, password="Transfer-Pass-2024", label="imported ec", secret=hsm_token.pin)
    try:
        assert ref.store == "pkcs11" and ref.algorithm is KeyAlgorithm.EC_P256
        attrs = store.key_attributes(ref, secret=hsm_token.pin)
        assert attrs["sensitive"] is True and attrs["extractable"] is False
        assert attrs["local"] is False  # honest: not generated on the token
        assert store.load_certificate(ref) == cert.public_bytes(serialization.Encoding.DER)
        with store.open_signer(ref, secret=hsm_token.pin) as signer:
            verify(key.public_key(), signer.sign(b"z"), b"z")
    finally:
        store.delete_key(ref, secret=hsm_token.pin)


def test_delete_key_removes_all_objects(store, hsm_token):
    ref = store.generate_key(algorithm=KeyAlgorithm.EC_P256, label="to delete", secret=hsm_token.pin)
    with store.open_signer(ref, secret=hsm_token.pin) as signer:
        store.store_certificate(ref, self_signed(signer).public_bytes(serialization.Encoding.DER))
    with pytest.raises(WrongPin):
        store.delete_key(ref, secret="111111")
    store.delete_key(ref, secret=hsm_token.pin)
    assert ref.key_id not in {r.key_id for r in store.list_keys()}
    with pytest.raises(KeyNotFound):
        store.open_signer(ref, secret=hsm_token.pin)
    assert store.logged_in_tokens() == []  # the failed open released its login


def test_all_pkcs11_calls_run_on_one_worker_thread(store, keys, hsm_token, monkeypatch):
    seen: set[int] = set()
    original = Pkcs11KeyStore._w_sign

    def recording(self, signer, data):
        seen.add(threading.get_ident())
        return original(self, signer, data)

    monkeypatch.setattr(Pkcs11KeyStore, "_w_sign", recording)
    results: list[bytes] = []
    errors: list[BaseException] = []
    with store.open_signer(keys[KeyAlgorithm.EC_P256], secret=hsm_token.pin) as signer:

        def work() -> None:
            try:
                for _ in range(5):
                    results.append(signer.sign(b"parallel"))
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)

        threads = [threading.Thread(target=work) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for sig in results:
            verify(signer.public_key, sig, b"parallel")
    assert not errors
    assert len(results) == 20
    assert len(seen) == 1 and threading.get_ident() not in seen


def test_signing_session_on_token_locks_after_ten_minutes(store, keys, hsm_token):
    now = [1000.0]
    opened = []
    real_open = store.open_signer

    class Spy:
        kind = store.kind

        def open_signer(self, ref, *, secret):
            s = real_open(ref, secret=secret)
            opened.append(s)
            return s

    session = SigningSession(Spy(), keys[KeyAlgorithm.RSA_2048], clock=lambda: now[0])  # type: ignore[arg-type]
    session.unlock(hsm_token.pin)
    assert store.logged_in_tokens()
    now[0] += 9 * 60 + 59
    assert session.is_unlocked
    now[0] += 2
    assert not session.is_unlocked
    assert opened[0].closed
    assert store.logged_in_tokens() == []  # token logged out
    with pytest.raises(SessionLocked):
        session.sign(b"late")


def test_token_removed_mid_use_gives_typed_errors(store, hsm_token, softhsm):
    label, pin = softhsm.spare["removal"]
    with Pkcs11KeyStore(hsm_token.module, token_label=label) as gone_store:
        info = gone_store.find_token(label=label)
        ref = gone_store.generate_key(algorithm=KeyAlgorithm.EC_P256, label="doomed", secret=pin)
        session = SigningSession(gone_store, ref)
        session.unlock(pin)
        assert session.sign(b"before")
        softhsm.delete_token(info.serial)
        with pytest.raises(TokenRemoved) as err:
            session.sign(b"after")
        assert err.value.code == "key.token_removed"
        assert not session.is_unlocked  # the dead login was dropped
        with pytest.raises(TokenNotFound):
            gone_store.open_signer(ref, secret=pin)
        with pytest.raises(TokenNotFound):
            gone_store.list_keys()
        assert gone_store.logged_in_tokens() == []
        # the other token and listing are unaffected (python-pkcs11's get_tokens() would raise GeneralError here)
        assert hsm_token.label in {t.label for t in gone_store.list_tokens()}
    assert store.find_token(label=hsm_token.label).label == hsm_token.label


def test_no_pin_in_logs(hsm_token, softhsm, caplog):
    label, pin = softhsm.spare["logs"]
    wrong = "Wrong-4Kt8-pQ"
    caplog.set_level(logging.DEBUG)
    with Pkcs11KeyStore(hsm_token.module, token_label=label) as s:
        ref = s.generate_key(algorithm=KeyAlgorithm.RSA_2048, label="log test", secret=pin)
        with pytest.raises(WrongPin) as err:
            s.open_signer(ref, secret=wrong)
        assert wrong not in str(err.value)
        session = SigningSession(s, ref)
        session.unlock(pin)
        session.sign(b"data")
        assert pin not in repr(vars(session))
        session.lock()
        s.delete_key(ref, secret=pin)
    text = caplog.text + " ".join(repr(r.args) for r in caplog.records)
    assert "unlocked" in text  # logging did happen
    assert pin not in text and wrong not in text


def test_unknown_module_is_a_typed_error(tmp_path):
    from app.services.keys import KeyStoreError

    with pytest.raises(KeyStoreError) as err:
        Pkcs11KeyStore(str(tmp_path / "nope.so"))
    assert err.value.code == "key.driver_missing"  # one code per driver problem: test_token_pins_and_drivers.py



def test_closing_the_store_logs_out_and_leaves_signers_closable(hsm_token, keys):
    other = Pkcs11KeyStore(hsm_token.module, token_label=hsm_token.label)
    signer = other.open_signer(keys[KeyAlgorithm.EC_P256], secret=hsm_token.pin)
    assert other.logged_in_tokens()
    other.close()
    signer.close()  # no error, nothing left to do
    assert signer.closed
    with Pkcs11KeyStore(hsm_token.module, token_label=hsm_token.label) as again:
        assert again.logged_in_tokens() == []
        with again.open_signer(keys[KeyAlgorithm.EC_P256], secret=hsm_token.pin) as s2:
            verify(s2.public_key, s2.sign(b"q"), b"q")
