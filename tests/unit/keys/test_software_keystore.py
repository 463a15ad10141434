"""Software key store, password rules, .p12 import/export, certificate binding -- real crypto, real openssl."""

from __future__ import annotations

import base64
import datetime as dt
import logging
import os
import shutil
import stat
import subprocess

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import pkcs7, pkcs12
from cryptography.x509.oid import NameOID

from app.services.keys import (
    CertificateError,
    CertificateNoMatchingKey,
    CorruptKeyFile,
    ExportNotAcknowledged,
    KeyAlgorithm,
    KeyNotFound,
    KeyRef,
    KeyStoreError,
    SoftwareKeyStore,
    TokenIdentity,
    UnsupportedKey,
    WeakPassword,
    WrongPassword,
    build_csr,
    check_password,
    password_problems,
)
from app.services.keys.p12 import export_p12, import_certificate, import_p12, load_certificates, read_p12
from app.services.keys.passwords import FailureThrottle, failure_delay
from app.services.keys.software import PBKDF2_ITERATIONS, pkcs8_parameters

PASSWORD = "Zebra-Quilt-8841!x"
OTHER_PASSWORD = "Maple-Harbor-5527?k"
OPENSSL = shutil.which("openssl")
needs_openssl = pytest.mark.skipif(OPENSSL is None and not os.environ.get("CI"), reason="openssl CLI missing")

SUBJECT = x509.Name(
    [
        x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Main Street Pharmacy"),
        x509.NameAttribute(NameOID.COMMON_NAME, "Pat Purchaser"),
        x509.NameAttribute(NameOID.SERIAL_NUMBER, "100200300"),
    ]
)

ALGS = [KeyAlgorithm.RSA_2048, KeyAlgorithm.EC_P256]


def verify(public_key, signature: bytes, data: bytes) -> None:
    if isinstance(public_key, rsa.RSAPublicKey):
        public_key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
    else:
        public_key.verify(signature, data, ec.ECDSA(hashes.SHA256()))


def spki(key) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def make_cert(public_key, signing_key, *, cn: str = "Pat Purchaser", issuer: str | None = None) -> x509.Certificate:
    now = dt.datetime.now(dt.timezone.utc)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer or cn)]))
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=30))
        .sign(signing_key, hashes.SHA256())
    )


def openssl(*args: str, input_: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([OPENSSL or "openssl", *args], capture_output=True, input=input_)


class FakeTime:
    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return SoftwareKeyStore(tmp_path_factory.mktemp("keys"))


@pytest.fixture(scope="module")
def keys(store):
    return {alg: store.generate_key(algorithm=alg, label=f"Pat {alg.value}", secret=PASSWORD) for alg in ALGS}


@pytest.fixture(scope="module")
def signers(store, keys):
    opened = {alg: store.open_signer(ref, secret=PASSWORD) for alg, ref in keys.items()}
    yield opened
    for s in opened.values():
        s.close()


@pytest.fixture
def fresh_store(tmp_path):
    fake = FakeTime()
    s = SoftwareKeyStore(tmp_path / "keys", sleep=fake.sleep, clock=fake.clock)
    s.fake_time = fake  # type: ignore[attr-defined]
    return s


# ---------------------------------------------------------------------------------------------------------------------
# File at rest (K2, K5)
# ---------------------------------------------------------------------------------------------------------------------


def test_key_file_encryption_is_pbes2_pbkdf2_sha256_600k_aes256(store, keys):
    path = store.path_of(keys[KeyAlgorithm.RSA_2048])
    text = path.read_text()
    assert "PRIVATE KEY-----" in text and "-----BEGIN PRIVATE KEY-----" not in text  # never unencrypted
    block = text.split("-----BEGIN ENCRYPTED PRIVATE KEY-----")[1].split("-----END")[0]
    params = pkcs8_parameters(base64.b64decode("".join(block.split())))
    assert params.kdf == "pbkdf2" and params.prf == "sha256"
    assert params.iterations >= 600_000 and PBKDF2_ITERATIONS == 600_000
    assert params.cipher == "aes-256-cbc"


@needs_openssl
def test_openssl_reads_key_file_parameters_and_decrypts_it(store, keys, signers):
    path = store.path_of(keys[KeyAlgorithm.EC_P256])
    parsed = openssl("asn1parse", "-in", str(path))
    out = parsed.stdout.decode()
    assert parsed.returncode == 0, parsed.stderr
    assert ":PBES2" in out and ":PBKDF2" in out and ":hmacWithSHA256" in out and ":aes-256-cbc" in out
    assert ":0927C0" in out  # 600000
    dec = openssl("pkcs8", "-in", str(path), "-passin", f"pass:{PASSWORD}")
    assert dec.returncode == 0, dec.stderr
    key = serialization.load_pem_private_key(dec.stdout, None)
    assert spki(key.public_key()) == spki(signers[KeyAlgorithm.EC_P256].public_key)
    assert openssl("pkcs8", "-in", str(path), "-passin", f"pass:{OTHER_PASSWORD}").returncode != 0


def test_key_files_are_mode_0600_and_nothing_else_is_written(fresh_store):
    ref = fresh_store.generate_key(algorithm=KeyAlgorithm.EC_P256, label="Pat", secret=PASSWORD)
    path = fresh_store.path_of(ref)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(fresh_store.directory.stat().st_mode) == 0o700
    with fresh_store.open_signer(ref, secret=PASSWORD) as signer:
        cert = make_cert(signer.public_key, signer.as_private_key())
    fresh_store.store_certificate(ref, cert.public_bytes(serialization.Encoding.DER))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    # K2: one file per key, no temp files or backup copies left behind
    assert sorted(p.name for p in fresh_store.directory.iterdir()) == [path.name]


def test_failed_write_leaves_no_temp_file_and_keeps_the_old_file(fresh_store, monkeypatch):
    ref = fresh_store.generate_key(algorithm=KeyAlgorithm.EC_P256, label="Pat", secret=PASSWORD)
    before = fresh_store.path_of(ref).read_bytes()
    with fresh_store.open_signer(ref, secret=PASSWORD) as signer:
        cert = make_cert(signer.public_key, signer.as_private_key())

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(KeyStoreError) as err:
        fresh_store.store_certificate(ref, cert.public_bytes(serialization.Encoding.DER))
    assert err.value.code == "key.io_error"
    monkeypatch.undo()
    assert fresh_store.path_of(ref).read_bytes() == before
    assert [p.name for p in fresh_store.directory.iterdir()] == [fresh_store.path_of(ref).name]


# ---------------------------------------------------------------------------------------------------------------------
# Signing and CSR
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("alg", ALGS)
def test_sign_and_verify(signers, keys, store, alg):
    signer = signers[alg]
    assert signer.key_ref == keys[alg]
    assert signer.signature_algorithm == ("sha256_rsa" if alg.is_rsa else "sha256_ecdsa")
    assert spki(signer.public_key) == spki(store.public_key(keys[alg]))
    data = b"ISA*00*~BEG*00*SA*25XABC123~"
    sig = signer.sign(data)
    verify(signer.public_key, sig, data)
    with pytest.raises(InvalidSignature):
        verify(signer.public_key, sig, data + b"!")


@pytest.mark.parametrize("alg", ALGS)
def test_csr_verifies_with_cryptography_and_openssl(signers, alg, tmp_path):
    der = build_csr(signers[alg], subject=SUBJECT, email="pat@example.org")
    csr = x509.load_der_x509_csr(der)
    assert csr.is_signature_valid
    assert csr.subject == SUBJECT
    assert csr.signature_hash_algorithm.name == "sha256"
    assert spki(csr.public_key()) == spki(signers[alg].public_key)
    if OPENSSL:
        path = tmp_path / "req.der"
        path.write_bytes(der)
        done = openssl("req", "-verify", "-in", str(path), "-inform", "DER", "-noout")
        output = (done.stdout + done.stderr).decode()
        assert done.returncode == 0 and "verify OK" in output and "failure" not in output


def test_wrapper_refuses_other_hashes_and_export(signers):
    rsa_key = signers[KeyAlgorithm.RSA_2048].as_private_key()
    ec_key = signers[KeyAlgorithm.EC_P256].as_private_key()
    assert isinstance(rsa_key, rsa.RSAPrivateKey) and isinstance(ec_key, ec.EllipticCurvePrivateKey)
    with pytest.raises(UnsupportedKey):
        rsa_key.sign(b"x", padding.PKCS1v15(), hashes.SHA1())
    with pytest.raises(UnsupportedKey):
        rsa_key.sign(b"x", padding.PSS(padding.MGF1(hashes.SHA256()), 32), hashes.SHA256())
    with pytest.raises(UnsupportedKey):
        ec_key.sign(b"x", ec.ECDSA(hashes.SHA512()))
    with pytest.raises(KeyStoreError):
        rsa_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption())
    with pytest.raises(KeyStoreError):
        ec_key.private_numbers()


def test_closed_signer_refuses(fresh_store):
    ref = fresh_store.generate_key(algorithm=KeyAlgorithm.EC_P256, label="Pat", secret=PASSWORD)
    signer = fresh_store.open_signer(ref, secret=PASSWORD)
    signer.close()
    assert signer.closed
    with pytest.raises(KeyStoreError) as err:
        signer.sign(b"x")
    assert err.value.code == "key.signer_closed"


def test_rsa_3072(fresh_store):
    ref = fresh_store.generate_key(algorithm=KeyAlgorithm.RSA_3072, label="Big", secret=PASSWORD)
    with fresh_store.open_signer(ref, secret=PASSWORD) as signer:
        assert signer.public_key.key_size == 3072
        verify(signer.public_key, signer.sign(b"x"), b"x")


# ---------------------------------------------------------------------------------------------------------------------
# Wrong password, corrupt files, slow-down
# ---------------------------------------------------------------------------------------------------------------------


def test_wrong_password(store, keys):
    with pytest.raises(WrongPassword) as err:
        store.open_signer(keys[KeyAlgorithm.EC_P256], secret=OTHER_PASSWORD)
    assert err.value.code == "key.wrong_password"
    assert OTHER_PASSWORD not in str(err.value)
    with pytest.raises(WrongPassword):
        store.open_signer(keys[KeyAlgorithm.EC_P256], secret="")


@pytest.mark.parametrize(
    "damage",
    ["truncate_half", "truncate_tiny", "garbage", "empty", "binary", "bad_base64", "no_meta"],
)
def test_corrupt_file_is_typed(fresh_store, damage):
    ref = fresh_store.generate_key(algorithm=KeyAlgorithm.EC_P256, label="Pat", secret=PASSWORD)
    path = fresh_store.path_of(ref)
    data = path.read_bytes()
    damaged = {
        "truncate_half": data[: len(data) // 2],
        "truncate_tiny": data[:40],
        "garbage": b"this is not a key file at all\n",
        "empty": b"",
        "binary": os.urandom(600),
        "bad_base64": data.replace(b"-----BEGIN ENCRYPTED PRIVATE KEY-----\n",
                                   b"-----BEGIN ENCRYPTED PRIVATE KEY-----\n!!!!"),
        "no_meta": data.replace(b"X-CSOS-Key: ", b"X-Other: "),
    }[damage]
    path.write_bytes(damaged)
    with pytest.raises(CorruptKeyFile) as err:
        fresh_store.open_signer(ref, secret=PASSWORD)
    assert err.value.code == "key.corrupt_file"
    assert fresh_store.list_keys() == []  # listing skips the damaged file instead of failing


def test_flipped_ciphertext_byte_is_a_typed_error(fresh_store):
    ref = fresh_store.generate_key(algorithm=KeyAlgorithm.EC_P256, label="Pat", secret=PASSWORD)
    path = fresh_store.path_of(ref)
    text = path.read_text()
    head, rest = text.split("-----BEGIN ENCRYPTED PRIVATE KEY-----\n")
    body, tail = rest.split("-----END ENCRYPTED PRIVATE KEY-----")
    der = bytearray(base64.b64decode("".join(body.split())))
    der[-20] ^= 0xFF
    path.write_text(head + "-----BEGIN ENCRYPTED PRIVATE KEY-----\n" + base64.b64encode(bytes(der)).decode()
                    + "\n-----END ENCRYPTED PRIVATE KEY-----" + tail)
    # No MAC in PKCS#8: damage inside the ciphertext is indistinguishable from a wrong password -- but it is typed.
    with pytest.raises((WrongPassword, CorruptKeyFile)):
        fresh_store.open_signer(ref, secret=PASSWORD)


def test_swapped_public_key_is_detected(fresh_store):
    a = fresh_store.generate_key(algorithm=KeyAlgorithm.EC_P256, label="A", secret=PASSWORD)
    b = fresh_store.generate_key(algorithm=KeyAlgorithm.EC_P256, label="B", secret=PASSWORD)
    text_a = fresh_store.path_of(a).read_text()
    text_b = fresh_store.path_of(b).read_text()
    pub_b = text_b[text_b.index("-----BEGIN PUBLIC KEY-----"):text_b.index("-----END PUBLIC KEY-----")]
    pub_a = text_a[text_a.index("-----BEGIN PUBLIC KEY-----"):text_a.index("-----END PUBLIC KEY-----")]
    fresh_store.path_of(a).write_text(text_a.replace(pub_a, pub_b))
    with pytest.raises(CorruptKeyFile):
        fresh_store.open_signer(a, secret=PASSWORD)


def test_missing_file_is_key_not_found(fresh_store):
    ref = fresh_store.generate_key(algorithm=KeyAlgorithm.EC_P256, label="Pat", secret=PASSWORD)
    fresh_store.path_of(ref).unlink()
    with pytest.raises(KeyNotFound):
        fresh_store.open_signer(ref, secret=PASSWORD)


def test_repeated_wrong_passwords_slow_down(fresh_store):
    fake = fresh_store.fake_time
    ref = fresh_store.generate_key(algorithm=KeyAlgorithm.EC_P256, label="Pat", secret=PASSWORD)
    for _ in range(6):
        with pytest.raises(WrongPassword):
            fresh_store.open_signer(ref, secret=OTHER_PASSWORD)
    # two free typos, then 1, 2, 4 s before the 4th, 5th, 6th attempt
    assert fake.sleeps == [1.0, 2.0, 4.0]
    assert fresh_store.throttle.failures(ref.key_id) == 6
    # the right password still has to wait out the delay, then resets the counter
    with fresh_store.open_signer(ref, secret=PASSWORD):
        pass
    assert fake.sleeps == [1.0, 2.0, 4.0, 8.0]
    assert fresh_store.throttle.failures(ref.key_id) == 0
    with pytest.raises(WrongPassword):
        fresh_store.open_signer(ref, secret=OTHER_PASSWORD)
    assert fake.sleeps == [1.0, 2.0, 4.0, 8.0]


def test_throttle_counts_waiting_time_and_is_per_key():
    fake = FakeTime()
    throttle = FailureThrottle(sleep=fake.sleep, clock=fake.clock)
    for _ in range(4):
        throttle.record_failure("a")
    fake.now += 1.5  # the user already waited 1.5 of the 2 seconds
    assert throttle.wait_before_attempt("a") == pytest.approx(0.5)
    assert throttle.wait_before_attempt("b") == 0.0
    assert failure_delay(0) == failure_delay(2) == 0 and failure_delay(100) == 60


# ---------------------------------------------------------------------------------------------------------------------
# Password rules
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("Short1!", "too_short"),
        ("aaaaaaaaaaaaaaaa", "repeated"),
        ("abababababababab", "repeated"),
        ("abcdefghijklmn", "one_class"),
        ("12345678901234", "sequence"),
        ("Qwertyuiop123!", "common"),
        ("MyPassword2024!", "forbidden_word"),
        ("Pharmacy-Order-77", "forbidden_word"),
        ("Csos-Signing-2025", "forbidden_word"),
        ("P@ssw0rd-Strong-99", "forbidden_word"),
        (" Leading-Space-77", "edge_space"),
        ("Brightwater-Lane-42", "personal"),
    ],
)
def test_weak_passwords_rejected_with_reason(password, reason):
    problems = password_problems(password, personal_words=["Brightwater Lane", "BJ6125341", "water"])
    assert reason in {p.reason for p in problems}
    with pytest.raises(WeakPassword) as err:
        check_password(password, personal_words=["Brightwater Lane", "water"])
    assert err.value.code == "key.weak_password"
    assert password not in str(err.value)


@pytest.mark.parametrize("password", [PASSWORD, OTHER_PASSWORD, "correct horse battery staple on a tuesday", "Tr0ub4dor&3xyz"])
def test_strong_passwords_accepted(password):
    assert password_problems(password) == []


def test_generate_refuses_weak_password_and_writes_nothing(fresh_store):
    with pytest.raises(WeakPassword) as err:
        fresh_store.generate_key(algorithm=KeyAlgorithm.EC_P256, label="Pat", secret="pharmacy1234")
    assert err.value.reason == "forbidden_word"
    assert list(fresh_store.directory.iterdir()) == []


# ---------------------------------------------------------------------------------------------------------------------
# Certificates, key references, delete, change password
# ---------------------------------------------------------------------------------------------------------------------


def test_store_certificate_refuses_other_key(store, keys, signers):
    other = ec.generate_private_key(ec.SECP256R1())
    cert = make_cert(other.public_key(), other)
    with pytest.raises(CertificateNoMatchingKey) as err:
        store.store_certificate(keys[KeyAlgorithm.EC_P256], cert.public_bytes(serialization.Encoding.DER))
    assert err.value.code == "certificate.no_matching_key"


@pytest.mark.parametrize("encoding", ["pem", "der", "pkcs7_der", "pkcs7_pem", "pem_chain"])
def test_import_certificate_formats_bind_to_matching_key(fresh_store, encoding):
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = make_cert(ca_key.public_key(), ca_key, cn="CSOS Training Sub CA")
    refs = [fresh_store.generate_key(algorithm=KeyAlgorithm.EC_P256, label=n, secret=PASSWORD) for n in ("A", "B")]
    cert = make_cert(fresh_store.public_key(refs[1]), ca_key, issuer="CSOS Training Sub CA")
    data = {
        "pem": cert.public_bytes(serialization.Encoding.PEM),
        "der": cert.public_bytes(serialization.Encoding.DER),
        "pkcs7_der": pkcs7.serialize_certificates([ca_cert, cert], serialization.Encoding.DER),
        "pkcs7_pem": pkcs7.serialize_certificates([ca_cert, cert], serialization.Encoding.PEM),
        "pem_chain": ca_cert.public_bytes(serialization.Encoding.PEM) + cert.public_bytes(serialization.Encoding.PEM),
    }[encoding]
    result = import_certificate(fresh_store, data)
    assert result.key_ref.key_id == refs[1].key_id
    assert result.certificate == cert
    assert fresh_store.load_certificate(refs[1]) == cert.public_bytes(serialization.Encoding.DER)
    assert fresh_store.load_certificate(refs[0]) is None
    if encoding in ("pkcs7_der", "pkcs7_pem", "pem_chain"):
        assert result.chain == [ca_cert]


def test_import_certificate_without_matching_key(fresh_store):
    fresh_store.generate_key(algorithm=KeyAlgorithm.EC_P256, label="A", secret=PASSWORD)
    other = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(CertificateNoMatchingKey) as err:
        import_certificate(fresh_store, make_cert(other.public_key(), other).public_bytes(serialization.Encoding.PEM))
    assert err.value.code == "certificate.no_matching_key"
    with pytest.raises(CertificateError):
        load_certificates(b"not a certificate")
    with pytest.raises(CertificateError):
        load_certificates(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")


def test_key_ref_json_round_trip():
    soft = KeyRef(store="software", key_id="00" * 16, label="Pat 2025", algorithm=KeyAlgorithm.RSA_2048)
    tok = KeyRef(store="pkcs11", key_id="ab" * 16, label="Pat token", algorithm=KeyAlgorithm.EC_P256,
                 token=TokenIdentity("SoftHSM project", "SoftHSM v2", "e0e12c96b5756e1b", "csos-test"))
    for ref in (soft, tok):
        assert KeyRef.from_json(ref.to_json()) == ref
    assert "e0e12c96b5756e1b" in tok.describe()
    with pytest.raises(KeyStoreError) as err:
        KeyRef.from_json('{"store": "software"}')
    assert err.value.code == "key.bad_reference"
    with pytest.raises(ValueError):
        KeyRef(store="pkcs11", key_id="00", label="x", algorithm=KeyAlgorithm.EC_P256)  # token identity missing


def test_list_keys(fresh_store):
    a = fresh_store.generate_key(algorithm=KeyAlgorithm.EC_P256, label="Alpha", secret=PASSWORD)
    assert fresh_store.list_keys() == [a]
    with pytest.raises(KeyStoreError) as err:
        fresh_store.generate_key(algorithm=KeyAlgorithm.EC_P256, label="bad\nlabel", secret=PASSWORD)
    assert err.value.code == "key.bad_label"


def test_delete_needs_the_password(fresh_store):
    ref = fresh_store.generate_key(algorithm=KeyAlgorithm.EC_P256, label="Pat", secret=PASSWORD)
    with pytest.raises(WrongPassword):
        fresh_store.delete_key(ref, secret=OTHER_PASSWORD)
    assert fresh_store.path_of(ref).exists()
    fresh_store.delete_key(ref, secret=PASSWORD)
    assert not fresh_store.path_of(ref).exists()
    with pytest.raises(KeyNotFound):
        fresh_store.open_signer(ref, secret=PASSWORD)


def test_change_password(fresh_store):
    ref = fresh_store.generate_key(algorithm=KeyAlgorithm.EC_P256, label="Pat", secret=PASSWORD)
    with pytest.raises(WeakPassword):
        fresh_store.change_password(ref, old_secret=PASSWORD, new_secret="short")
    fresh_store.change_password(ref, old_secret=PASSWORD, new_secret=OTHER_PASSWORD)
    with pytest.raises(WrongPassword):
        fresh_store.open_signer(ref, secret=PASSWORD)
    with fresh_store.open_signer(ref, secret=OTHER_PASSWORD) as s:
        verify(s.public_key, s.sign(b"x"), b"x")


# ---------------------------------------------------------------------------------------------------------------------
# .p12 import / export
# ---------------------------------------------------------------------------------------------------------------------


def test_export_requires_acknowledgement(store, keys, tmp_path):
    target = tmp_path / "backup.p12"
    with pytest.raises(ExportNotAcknowledged) as err:
        export_p12(store, keys[KeyAlgorithm.RSA_2048], secret=PASSWORD, export_password=OTHER_PASSWORD, path=target)
    assert err.value.code == "key.export_not_acknowledged"
    assert not target.exists()


@needs_openssl
def test_p12_round_trip_modern_encryption_and_mode(store, keys, signers, tmp_path, fresh_store):
    ref = keys[KeyAlgorithm.RSA_2048]
    signer = signers[KeyAlgorithm.RSA_2048]
    cert = make_cert(signer.public_key, signer.as_private_key())
    store.store_certificate(ref, cert.public_bytes(serialization.Encoding.DER))
    target = tmp_path / "backup.p12"
    with pytest.raises(WeakPassword):
        export_p12(store, ref, secret=PASSWORD, export_password="weak", path=target, acknowledge_backup_risk=True)
    export_p12(store, ref, secret=PASSWORD, export_password=OTHER_PASSWORD, path=target, acknowledge_backup_risk=True)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    info = openssl("pkcs12", "-info", "-noout", "-in", str(target), "-passin", f"pass:{OTHER_PASSWORD}")
    text = (info.stdout + info.stderr).decode()
    assert info.returncode == 0, text
    assert "PBES2, PBKDF2, AES-256-CBC, Iteration 600000, PRF hmacWithSHA256" in text
    assert "MAC: sha256" in text
    with pytest.raises(KeyStoreError) as err:  # no silent overwrite
        export_p12(store, ref, secret=PASSWORD, export_password=OTHER_PASSWORD, path=target,
                   acknowledge_backup_risk=True)
    assert err.value.code == "key.export_exists"
    # back in: same key, same certificate, re-encrypted in our own format
    new_ref = import_p12(fresh_store, target.read_bytes(), password=OTHER_PASSWORD, label="Restored", secret=PASSWORD)
    assert spki(fresh_store.public_key(new_ref)) == spki(signer.public_key)
    assert fresh_store.load_certificate(new_ref) == cert.public_bytes(serialization.Encoding.DER)
    with fresh_store.open_signer(new_ref, secret=PASSWORD) as restored:
        verify(signer.public_key, restored.sign(b"x"), b"x")


@pytest.fixture(scope="module")
def legacy_pfx(tmp_path_factory):
    """A .pfx as old Windows / OpenSSL 1.x tools make them: 3DES key bag, RC2-40 cert bag, SHA-1 MAC."""
    if OPENSSL is None:
        pytest.fail("openssl CLI missing") if os.environ.get("CI") else pytest.skip("openssl CLI missing")
    d = tmp_path_factory.mktemp("legacy")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = make_cert(key.public_key(), key, cn="Legacy Holder")
    (d / "k.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                serialization.NoEncryption()))
    (d / "c.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    done = openssl("pkcs12", "-export", "-legacy", "-in", str(d / "c.pem"), "-inkey", str(d / "k.pem"),
                   "-out", str(d / "legacy.pfx"), "-passout", "pass:OldPfxPass-2019")
    assert done.returncode == 0, done.stderr
    (d / "k.pem").unlink()
    info = openssl("pkcs12", "-info", "-noout", "-legacy", "-in", str(d / "legacy.pfx"), "-passin",
                   "pass:OldPfxPass-2019")
    text = (info.stdout + info.stderr).decode()
    assert "pbeWithSHA1And3-KeyTripleDES-CBC" in text and "RC2" in text and "MAC: sha1" in text, text
    return (d / "legacy.pfx").read_bytes(), key, cert


def test_legacy_pfx_imports_and_is_reencrypted(legacy_pfx, fresh_store):
    data, key, cert = legacy_pfx
    contents = read_p12(data, password="OldPfxPass-2019")
    assert contents.certificate == cert
    ref = import_p12(fresh_store, data, password="OldPfxPass-2019", label="Legacy", secret=PASSWORD)
    assert ref.algorithm is KeyAlgorithm.RSA_2048
    assert spki(fresh_store.public_key(ref)) == spki(key.public_key())
    assert fresh_store.load_certificate(ref) == cert.public_bytes(serialization.Encoding.DER)
    text = fresh_store.path_of(ref).read_text()
    block = text.split("-----BEGIN ENCRYPTED PRIVATE KEY-----")[1].split("-----END")[0]
    params = pkcs8_parameters(base64.b64decode("".join(block.split())))
    assert (params.prf, params.iterations, params.cipher) == ("sha256", 600_000, "aes-256-cbc")
    with fresh_store.open_signer(ref, secret=PASSWORD) as signer:
        verify(key.public_key(), signer.sign(b"x"), b"x")


def test_legacy_pfx_wrong_password_and_new_password_rules(legacy_pfx, fresh_store):
    data, _, _ = legacy_pfx
    with pytest.raises(WrongPassword):
        import_p12(fresh_store, data, password="not-the-password", label="Legacy", secret=PASSWORD)
    with pytest.raises(WeakPassword):  # the old .pfx password is not carried over if it is weak
        import_p12(fresh_store, data, password="OldPfxPass-2019", label="Legacy", secret="password")
    assert fresh_store.list_keys() == []


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty", "flipped_mac"])
def test_corrupt_p12_is_typed(legacy_pfx, damage):
    data, _, _ = legacy_pfx
    bad = {
        "truncated": data[: len(data) // 2],
        "garbage": b"\x30\x03\x02\x01\x03 nonsense",
        "empty": b"",
        "flipped_mac": data[:-5] + bytes([data[-5] ^ 0xFF]) + data[-4:],
    }[damage]
    with pytest.raises((CorruptKeyFile, WrongPassword)) as err:
        read_p12(bad, password="OldPfxPass-2019")
    if damage != "flipped_mac":  # a broken MAC reads as a wrong password: the MAC is how the password is checked
        assert err.value.code == "key.corrupt_file"


def test_p12_with_unsupported_key_type(fresh_store):
    key = ec.generate_private_key(ec.SECP384R1())
    data = pkcs12.serialize_key_and_certificates(b"x", key, None, None,
                                                 serialization.BestAvailableEncryption(b"Some-Pass-1234"))
    with pytest.raises(UnsupportedKey):
        import_p12(fresh_store, data, password="Some-Pass-1234", label="P-384", secret=PASSWORD)


# ---------------------------------------------------------------------------------------------------------------------
# Logs (K1)
# ---------------------------------------------------------------------------------------------------------------------


def test_no_password_in_logs(fresh_store, caplog, tmp_path):
    caplog.set_level(logging.DEBUG)
    ref = fresh_store.generate_key(algorithm=KeyAlgorithm.EC_P256, label="Pat", secret=PASSWORD)
    for _ in range(4):
        with pytest.raises(WrongPassword):
            fresh_store.open_signer(ref, secret=OTHER_PASSWORD)
    with fresh_store.open_signer(ref, secret=PASSWORD) as signer:
        signer.sign(b"x")
    export_password = "Export-Otter-3391#q"
    export_p12(fresh_store, ref, secret=PASSWORD, export_password=export_password, path=tmp_path / "x.p12",
               acknowledge_backup_risk=True)
    import_p12(fresh_store, (tmp_path / "x.p12").read_bytes(), password=export_password, label="Again",
               secret=OTHER_PASSWORD)
    text = caplog.text + " ".join(repr(r.args) for r in caplog.records)
    assert "wrong password" in text and "exported" in text  # logging did happen
    for secret in (PASSWORD, OTHER_PASSWORD, export_password):
        assert secret not in text
