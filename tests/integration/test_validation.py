"""Certificate validation end to end: real X.509 from ca.py, CRLs served over HTTP on 127.0.0.1, pyhanko underneath."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from app.services.certificates.crl_cache import CrlCache, CrlUnavailable
from app.services.certificates.validation import (
    CERTIFICATE_EXPIRED,
    CERTIFICATE_NOT_YET_VALID,
    CERTIFICATE_REVOKED,
    NOT_SIGNING_CERTIFICATE,
    REVOCATION_UNKNOWN,
    UNTRUSTED_CHAIN,
    CertificateValidationService,
    TrustBundleError,
    load_trust_bundle,
    validate_certificate,
)
from tests.pki import UNREACHABLE_BASE_URL, build_training_pki, pem, serve_directory

pytestmark = pytest.mark.integration

MINUTE = timedelta(minutes=1)


@pytest.fixture
def server(tmp_path):
    with serve_directory(tmp_path / "crl") as running:
        yield running


@pytest.fixture
def pki(tmp_path, server):
    pki = build_training_pki(tmp_path, crl_base_url=server.base_url)
    pki.write_crls()
    return pki


@pytest.fixture
def cache(tmp_path):
    return CrlCache(tmp_path / "crl-cache", connect_timeout=2, read_timeout=2)


def check(pki, cert, cache, *, at=None, now=None, **kwargs):
    """Validate with the trust bundle file, at pki.now + 1 min unless told otherwise."""
    at = at or pki.now + MINUTE
    return validate_certificate(cert, intermediates=pki.intermediates, trust_roots=load_trust_bundle(pki.trust_bundle),
                                at=at, crl_cache=cache, now=now or at, **kwargs)


def codes(result):
    return [p.code for p in result.problems]


# -- the good path ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("key_type", ["rsa", "ec"])
def test_good_certificate(tmp_path, server, cache, key_type):
    pki = build_training_pki(tmp_path, crl_base_url=server.base_url, key_type=key_type)
    pki.write_crls()
    result = check(pki, pki.issue().cert, cache)
    assert result.ok and result.problems == ()
    assert result.path == ("CSOS Training Root CA", "CSOS Training Sub CA", "Pat Purchaser")
    assert len(result.crl_fingerprints) == 2  # the sub CA's CRL and the root's (the sub CA declares it)
    assert server.requests == 2


def test_administrative_certificate_chain_is_valid_too(pki, cache):
    # Chain validity says nothing about S4; CsosCertificate.kind does (see test_csos_profile).
    assert check(pki, pki.issue_admin().cert, cache).ok


# -- time ------------------------------------------------------------------------------------------------------------

def test_expired_certificate(tmp_path, server, cache):
    # Hierarchy created two years ago; the subscriber's registration expired a year ago.
    real_now = datetime.now(timezone.utc).replace(microsecond=0)
    pki = build_training_pki(tmp_path, crl_base_url=server.base_url, now=real_now - timedelta(days=730))
    issued = pki.issue(not_after=real_now - timedelta(days=365))
    pki.write_crls(now=real_now)
    result = check(pki, issued.cert, cache, at=real_now)
    assert codes(result) == [CERTIFICATE_EXPIRED]
    assert "Pat Purchaser" in result.problems[0].message
    # The same certificate was fine when an order was signed with it during its validity (CRL current today).
    signed_at = pki.now + timedelta(days=30)
    assert check(pki, issued.cert, cache, at=signed_at, now=real_now).ok


def test_not_yet_valid_certificate(pki, cache):
    issued = pki.issue(now=pki.now + timedelta(days=2))
    result = check(pki, issued.cert, cache)
    assert codes(result) == [CERTIFICATE_NOT_YET_VALID]


# -- revocation ------------------------------------------------------------------------------------------------------

def test_revoked_certificate(pki, cache):
    issued, other = pki.issue(), pki.issue(full_name="Other Person")
    pki.revoke(issued.cert, x509.ReasonFlags.key_compromise, at=pki.now)
    pki.write_crls()
    result = check(pki, issued.cert, cache)
    assert codes(result) == [CERTIFICATE_REVOKED]
    assert "compromised key" in result.problems[0].message
    assert check(pki, other.cert, cache).ok


def test_revoked_after_signing_time(pki, cache):
    issued = pki.issue()
    pki.revoke(issued.cert, at=pki.now + timedelta(minutes=10))
    pki.write_crls(now=pki.now + timedelta(minutes=11))
    later = pki.now + timedelta(minutes=20)
    # Default: listed on the CRL = revoked, whatever signingTime the signer claims.
    assert codes(check(pki, issued.cert, cache, at=pki.now + MINUTE, now=later)) == [CERTIFICATE_REVOKED]
    # Re-checking an archived order: a revocation after the signing time does not undo the signature.
    assert check(pki, issued.cert, cache, at=pki.now + MINUTE, now=later, reject_revoked_after=False).ok
    assert codes(check(pki, issued.cert, cache, at=later, now=later,
                       reject_revoked_after=False)) == [CERTIFICATE_REVOKED]


def test_revoked_sub_ca_revokes_its_subscribers(pki, cache):
    issued = pki.issue()
    pki.root.revoke(pki.sub.certificate, x509.ReasonFlags.ca_compromise, at=pki.now)
    pki.write_crls()
    result = check(pki, issued.cert, cache)
    assert codes(result) == [CERTIFICATE_REVOKED]
    assert "CA" in result.problems[0].message


# -- trust -----------------------------------------------------------------------------------------------------------

def test_certificate_from_another_root_is_untrusted(tmp_path, pki, server, cache):
    other = build_training_pki(tmp_path / "other", crl_base_url=server.base_url, root_name="Other Root CA",
                               sub_name="Other Sub CA")
    stranger = other.issue()
    result = validate_certificate(stranger.cert, intermediates=other.intermediates, trust_roots=pki.trust_roots,
                                  at=pki.now + MINUTE, crl_cache=cache, now=pki.now + MINUTE)
    assert codes(result) == [UNTRUSTED_CHAIN]
    assert result.path == ()


def test_impostor_hierarchy_with_the_same_names_is_untrusted(tmp_path, pki, server, cache):
    impostor = build_training_pki(tmp_path / "impostor", crl_base_url=server.base_url, fresh_keys=True)
    forged = impostor.issue()
    result = validate_certificate(forged.cert, intermediates=impostor.intermediates, trust_roots=pki.trust_roots,
                                  at=pki.now + MINUTE, crl_cache=cache, now=pki.now + MINUTE)
    assert codes(result) == [UNTRUSTED_CHAIN]


def test_missing_intermediate_is_untrusted(pki, cache):
    result = validate_certificate(pki.issue().cert, intermediates=[], trust_roots=pki.trust_roots,
                                  at=pki.now + MINUTE, crl_cache=cache, now=pki.now + MINUTE)
    assert codes(result) == [UNTRUSTED_CHAIN]


def test_a_ca_certificate_cannot_be_presented_as_a_subscriber(pki, cache):
    assert codes(check(pki, pki.root.certificate, cache)) == [NOT_SIGNING_CERTIFICATE]  # PKIX alone: "valid"
    assert codes(check(pki, pki.sub.certificate, cache)) == [NOT_SIGNING_CERTIFICATE]


# -- CRL availability ------------------------------------------------------------------------------------------------

def test_expired_crl_means_revocation_unknown(pki, cache):
    issued = pki.issue()
    pki.write_crls(now=pki.now - timedelta(days=2))  # nextUpdate = yesterday
    result = check(pki, issued.cert, cache)
    assert codes(result) == [REVOCATION_UNKNOWN]
    assert "expired" in result.problems[0].message


def test_unreachable_crl_means_revocation_unknown(tmp_path, cache):
    pki = build_training_pki(tmp_path, crl_base_url=UNREACHABLE_BASE_URL)
    result = check(pki, pki.issue().cert, cache)
    assert codes(result) == [REVOCATION_UNKNOWN]
    assert "could not be downloaded" in result.problems[0].message


def test_missing_crl_file_means_revocation_unknown(tmp_path, server, cache):
    pki = build_training_pki(tmp_path, crl_base_url=server.base_url)  # nothing published: HTTP 404
    result = check(pki, pki.issue().cert, cache)
    assert codes(result) == [REVOCATION_UNKNOWN]
    assert "HTTP 404" in result.problems[0].message


def test_crl_with_bad_signature_means_revocation_unknown(tmp_path, pki, server, cache):
    issued = pki.issue()
    impostor = build_training_pki(tmp_path / "impostor", fresh_keys=True)  # same CA names, other keys
    pki.write_crl(pki.sub, data=impostor.crl(impostor.sub).public_bytes(serialization.Encoding.DER))
    result = check(pki, issued.cert, cache)
    assert codes(result) == [REVOCATION_UNKNOWN]
    assert "not signed by the CA" in result.problems[0].message
    assert cache.cached(pki.sub.crl_url) is None  # a bad CRL is not cached
    # Handed in directly (no cache in the way), pyhanko's own CRL signature check refuses it too.
    direct = validate_certificate(issued.cert, intermediates=pki.intermediates, trust_roots=pki.trust_roots,
                                  at=pki.now + MINUTE, now=pki.now + MINUTE,
                                  crls=[impostor.crl(impostor.sub), pki.crl(pki.root)])
    assert codes(direct) == [REVOCATION_UNKNOWN]


def test_corrupt_crl_file_means_revocation_unknown(pki, cache):
    pki.write_crl(pki.sub, data=b"<html>maintenance</html>")
    result = check(pki, pki.issue().cert, cache)
    assert codes(result) == [REVOCATION_UNKNOWN]


def test_explicit_crls_without_network(pki):
    issued = pki.issue()
    crls = [pki.crl(pki.root), pki.crl(pki.sub)]
    assert validate_certificate(issued.cert, intermediates=pki.intermediates, trust_roots=pki.trust_roots,
                                at=pki.now + MINUTE, now=pki.now + MINUTE, crls=crls, fetch=False).ok
    no_crls = validate_certificate(issued.cert, intermediates=pki.intermediates, trust_roots=pki.trust_roots,
                                   at=pki.now + MINUTE, now=pki.now + MINUTE, fetch=False)
    assert codes(no_crls) == [REVOCATION_UNKNOWN]


# -- the cache -------------------------------------------------------------------------------------------------------

def test_cached_crl_is_used_offline_until_next_update(tmp_path, pki, server):
    issued = pki.issue()
    cache_dir = tmp_path / "offline-cache"
    online = check(pki, issued.cert, CrlCache(cache_dir))
    assert online.ok and server.requests == 2

    # Still current: a new cache object on the same directory (a restarted program) answers from disk,
    # with fetching allowed or not, and without touching the network.
    for file in pki.directory.iterdir():
        file.unlink()
    restarted = CrlCache(cache_dir)
    in_23h = pki.now + timedelta(hours=23)
    assert check(pki, issued.cert, restarted, fetch=False, at=in_23h).ok
    assert check(pki, issued.cert, CrlCache(cache_dir), fetch=True, at=in_23h).ok
    assert server.requests == 2

    # Past nextUpdate (24 h) the cached CRL is not valid any more, offline or online.
    in_25h = pki.now + timedelta(hours=25)
    offline = check(pki, issued.cert, restarted, fetch=False, at=in_25h)
    assert codes(offline) == [REVOCATION_UNKNOWN] and "expired" in offline.problems[0].message
    online_but_gone = check(pki, issued.cert, restarted, fetch=True, at=in_25h)
    assert codes(online_but_gone) == [REVOCATION_UNKNOWN]
    assert server.requests == 4  # it tried the network for both CRLs

    # A new CRL published: fetched and cached again.
    pki.write_crls(now=in_25h - MINUTE)
    assert check(pki, issued.cert, restarted, fetch=True, at=in_25h).ok


def test_nothing_cached_and_offline(pki, cache):
    result = check(pki, pki.issue().cert, cache, fetch=False)
    assert codes(result) == [REVOCATION_UNKNOWN]
    with pytest.raises(CrlUnavailable) as info:
        cache.get(pki.sub.crl_url, fetch=False)
    assert info.value.code == "crl.not_cached"


def test_crl_cache_max_age_refreshes_but_keeps_a_valid_crl_when_the_refresh_fails(pki, tmp_path, server):
    cache = CrlCache(tmp_path / "c", max_age=timedelta(hours=1))
    first = cache.get(pki.sub.crl_url, now=pki.now + MINUTE)
    pki.write_crl(pki.sub, now=pki.now + timedelta(hours=2))
    refreshed = cache.get(pki.sub.crl_url, now=pki.now + timedelta(hours=2, minutes=1))
    assert refreshed.fingerprint != first.fingerprint and server.requests == 2
    (pki.directory / "sub.crl").unlink()
    kept = cache.get(pki.sub.crl_url, now=pki.now + timedelta(hours=4))
    assert kept.fingerprint == refreshed.fingerprint and server.requests == 3


# -- the memo --------------------------------------------------------------------------------------------------------

def test_repeated_validation_is_memoised_but_respects_time_boundaries(pki, cache):
    issued = pki.issue(not_after=pki.now + timedelta(hours=2))
    service = CertificateValidationService(trust_roots=pki.trust_roots, intermediates=pki.intermediates,
                                           crl_cache=cache)
    at = pki.now + MINUTE
    first = service.validate(issued.cert, at=at, now=at)
    for offset in range(1, 50):
        assert service.validate(issued.cert, at=at + timedelta(seconds=offset), now=at) is first
    assert service.memo_misses == 1 and service.memo_hits == 49
    # After notAfter the memo must not answer "ok".
    late = pki.now + timedelta(hours=2, minutes=1)
    assert codes(service.validate(issued.cert, at=late, now=at)) == [CERTIFICATE_EXPIRED]
    # A new CRL (the certificate revoked) changes the CRL set, so the memo cannot hide it.
    pki.revoke(issued.cert, at=pki.now)
    crl = pki.crl(pki.sub, now=pki.now + timedelta(seconds=30))
    cache.put(pki.sub.crl_url, crl)
    assert codes(service.validate(issued.cert, at=at, now=at)) == [CERTIFICATE_REVOKED]


def test_a_moment_next_to_a_boundary_is_memoised_for_that_moment_only(pki, cache):
    issued = pki.issue(not_after=pki.now + timedelta(hours=2))
    service = CertificateValidationService(trust_roots=pki.trust_roots, intermediates=pki.intermediates,
                                           crl_cache=cache)
    now = pki.now + MINUTE
    at = issued.cert.not_valid_after_utc - timedelta(seconds=1)  # too close to notAfter for a window
    first = service.validate(issued.cert, at=at, now=now)
    assert codes(first) == [] and service.validate(issued.cert, at=at, now=now) is first
    assert service.memo_misses == 1 and service.memo_hits == 1
    service.validate(issued.cert, at=at - timedelta(milliseconds=500), now=now)  # another moment: worked out
    assert service.memo_misses == 2
    late = issued.cert.not_valid_after_utc + timedelta(seconds=3)
    assert codes(service.validate(issued.cert, at=late, now=now)) == [CERTIFICATE_EXPIRED]


def test_validation_from_threads(pki, cache):
    issued = [pki.issue(full_name=f"Person {i}") for i in range(4)]
    pki.revoke(issued[0].cert, at=pki.now)
    pki.write_crls()
    service = CertificateValidationService(trust_roots=pki.trust_roots, intermediates=pki.intermediates,
                                           crl_cache=cache)
    results: dict[int, list] = {}

    def work(index: int) -> None:
        at = pki.now + MINUTE
        results[index] = [codes(service.validate(issued[index].cert, at=at, now=at)) for _ in range(20)]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results[0] == [[CERTIFICATE_REVOKED]] * 20
    assert all(results[i] == [[]] * 20 for i in (1, 2, 3))


# -- trust bundle ----------------------------------------------------------------------------------------------------

def test_trust_bundle_loading(tmp_path, pki):
    roots = load_trust_bundle(pki.trust_bundle)
    assert roots == [pki.root.certificate]
    empty = tmp_path / "empty.pem"
    empty.write_text("nothing here\n")
    with pytest.raises(TrustBundleError) as info:
        load_trust_bundle(empty)
    assert info.value.code == "trust_bundle.empty"
    leaf_bundle = tmp_path / "leaf.pem"
    leaf_bundle.write_bytes(pem(pki.issue().cert))
    with pytest.raises(TrustBundleError) as info:
        load_trust_bundle(leaf_bundle)
    assert info.value.code == "trust_bundle.not_ca"
    with pytest.raises(TrustBundleError) as info:
        load_trust_bundle(tmp_path / "missing.pem")
    assert info.value.code == "trust_bundle.unreadable"


# -- https distribution points: TLS is verified ----------------------------------------------------------------------

def _tls_server_files(pki, tmp_path):
    """A TLS server certificate for 127.0.0.1, issued by the training root (test-only, outside the CSOS profile)."""
    import ipaddress

    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    from tests.pki import subscriber_key

    key = subscriber_key("ec")
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(pki.root.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(pki.now - timedelta(hours=1))
        .not_valid_after(pki.now + timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
        .sign(pki.root.key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "tls.pem", tmp_path / "tls.key"
    cert_file.write_bytes(pem(cert))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


def test_https_crl_location_is_tls_verified(tmp_path, pki):
    import ssl

    from tests.pki import DirectoryServer

    pki.write_crls()
    cert_file, key_file = _tls_server_files(pki, tmp_path)
    https = DirectoryServer(pki.directory)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    https.httpd.socket = context.wrap_socket(https.httpd.socket, server_side=True)
    https.start()
    try:
        url = f"https://127.0.0.1:{https.port}/sub.crl"
        # The server's certificate is not in requests' default bundle: the download must fail, not be trusted.
        with pytest.raises(CrlUnavailable) as info:
            CrlCache(None, connect_timeout=2, read_timeout=2).get(url, now=pki.now + MINUTE)
        assert info.value.code == "crl.unreachable"
        trusted = CrlCache(None, connect_timeout=2, read_timeout=2, tls_ca_bundle=pki.trust_bundle)
        entry = trusted.get(url, now=pki.now + MINUTE, issuers=[pki.sub.certificate])
        assert entry.issuer == pki.sub.certificate.subject
    finally:
        https.stop()
