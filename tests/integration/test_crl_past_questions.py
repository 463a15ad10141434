"""A CRL question about a past moment (the records check judges each order as of its signing time) is answered
from the stored CRL without a download when that CRL was issued after the moment: the CA's current CRL could not
answer it either (issue 6/7: the records check downloaded the CRL once per order). The answer is the same as
before; questions about the present still fetch as before."""

from __future__ import annotations

from datetime import timedelta

import pytest

from app.services.certificates.crl_cache import CrlCache, CrlUnavailable
from tests.pki import build_training_pki, serve_directory

pytestmark = pytest.mark.integration


@pytest.fixture
def world(tmp_path):
    with serve_directory(tmp_path / "crl") as server:
        pki = build_training_pki(tmp_path, crl_base_url=server.base_url)
        pki.write_crls()
        yield pki, server


def test_a_past_moment_before_the_stored_crl_does_not_download_again(world, tmp_path):
    pki, server = world
    cache = CrlCache(tmp_path / "cache", connect_timeout=2, read_timeout=2)
    stored = cache.get(pki.sub.crl_url)
    assert server.requests == 1 and cache.downloads == 1
    for days in (3, 2, 1):  # orders signed before this CRL was issued, checked one after another
        with pytest.raises(CrlUnavailable) as caught:
            cache.get(pki.sub.crl_url, now=stored.this_update - timedelta(days=days))
        assert caught.value.code == "crl.not_yet_valid"
    assert server.requests == 1 and cache.downloads == 1


def test_the_present_still_fetches_when_the_stored_crl_is_not_current(world, tmp_path):
    pki, server = world
    cache = CrlCache(tmp_path / "cache", connect_timeout=2, read_timeout=2)
    stored = cache.get(pki.sub.crl_url)
    later = stored.next_update + timedelta(minutes=1)  # the stored CRL has expired by then
    pki.write_crls(now=later - timedelta(minutes=1))
    cache.clock = lambda: later
    assert cache.get(pki.sub.crl_url, now=later).this_update > stored.this_update
    assert cache.downloads == 2
