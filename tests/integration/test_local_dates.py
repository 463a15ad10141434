"""Local dates (issue 19): the order's date (BEG05) and the order-number year are the pharmacy's local date; the
CMS signingTime stays UTC. Real SQLite, real CMS, real CRLs over loopback; the clock and TZ are frozen."""

from __future__ import annotations

import datetime as dt
import time

import pytest

from app.errors import ConfigError
from app.services.certificates.crl_cache import CrlCache
from app.services.certificates.validation import CertificateValidationService
from app.services.orders.local_dates import local_date
from app.services.signing.order_signing import OrderSigningService
from app.services.signing.verifier import MappingSchedules, OrderVerifier
from app.services.signing.x12 import parse_850
from tests.factories import draft_order, seed
from tests.pki import build_training_pki, serve_directory
from tests.signers import KeySigner

UTC = dt.timezone.utc


@pytest.fixture
def system_zone(monkeypatch):
    """Set this process's time zone (TZ + tzset) and put it back afterwards."""
    def set_zone(name: str) -> None:
        monkeypatch.setenv("TZ", name)
        time.tzset()
    yield set_zone
    monkeypatch.undo()
    time.tzset()


def _world(book, tmp_path, server, now):
    pki = build_training_pki(tmp_path, now=now - dt.timedelta(days=3), crl_base_url=server.base_url)
    pki.write_crls(now=now - dt.timedelta(hours=2))
    validation = CertificateValidationService(trust_roots=pki.trust_roots, crl_cache=CrlCache(tmp_path / "crls"),
                                              clock=lambda: now)
    return pki, OrderVerifier(validation=validation, catalog=MappingSchedules.from_database(book.db))


def _sign_at(book, tmp_path, now):
    """An order drafted and signed at ``now`` (UTC instant) with the book's clock frozen there."""
    seed(book)
    book.clock = lambda: now
    with serve_directory(tmp_path / "crl") as server:
        pki, verifier = _world(book, tmp_path, server, now)
        subscriber = pki.issue(now=now - dt.timedelta(days=2))
        order = draft_order(book)
        service = OrderSigningService(book, verifier, clock=lambda: now)
        signed = service.sign(order.id, signer=KeySigner(subscriber.key), certificate=subscriber.cert,
                              intermediates=pki.intermediates, now=now)
        verdict = verifier.verify(signed.document, now=now + dt.timedelta(minutes=1))
    return signed, parse_850(signed.content), verdict


def test_local_date_of_an_instant():
    evening_utc = dt.datetime(2026, 11, 30, 3, 0, tzinfo=UTC)  # 7 pm on the 29th in California
    assert local_date(evening_utc, "America/Los_Angeles") == dt.date(2026, 11, 29)
    assert local_date(evening_utc, "America/New_York") == dt.date(2026, 11, 29)
    assert local_date(evening_utc, "UTC") == dt.date(2026, 11, 30)
    with pytest.raises(ConfigError):
        local_date(evening_utc, "Mars/Olympus_Mons")


@pytest.mark.parametrize("zone, utc_instant, local_day", [
    ("America/Los_Angeles", dt.datetime(2026, 11, 20, 3, 0, tzinfo=UTC), dt.date(2026, 11, 19)),  # 7 pm PST
    ("America/Chicago", dt.datetime(2026, 11, 20, 5, 30, tzinfo=UTC), dt.date(2026, 11, 19)),  # 11:30 pm CST
    ("America/New_York", dt.datetime(2026, 11, 20, 5, 30, tzinfo=UTC), dt.date(2026, 11, 20)),  # 0:30 am EST
    ("Pacific/Honolulu", dt.datetime(2026, 11, 20, 9, 59, tzinfo=UTC), dt.date(2026, 11, 19)),  # 11:59 pm HST
])
def test_an_order_signed_in_the_evening_is_dated_that_day(book, tmp_path, system_zone, zone, utc_instant,
                                                          local_day):
    system_zone(zone)
    signed, order, verdict = _sign_at(book, tmp_path, utc_instant)
    assert order.date_signed == local_day  # BEG05
    assert signed.order.signed_at == utc_instant  # signingTime stays UTC
    assert verdict.signing_time == utc_instant and verdict.accepted, verdict.reasons


def test_new_years_eve_in_california_is_the_old_years_order(book, tmp_path, system_zone):
    system_zone("America/Los_Angeles")
    eve = dt.datetime(2027, 1, 1, 4, 0, tzinfo=UTC)  # 8 pm on 31 December 2026 in California
    signed, order, verdict = _sign_at(book, tmp_path, eve)
    assert order.order_number.startswith("26") and signed.order.order_number.startswith("26")
    assert order.date_signed == dt.date(2026, 12, 31)
    assert verdict.accepted, verdict.reasons  # the supplier's order-number rule reads the year from BEG05


def test_the_registrations_time_zone_setting_wins_over_the_computers(book, tmp_path, system_zone):
    system_zone("UTC")
    seed(book)
    eve = dt.datetime(2027, 1, 1, 4, 0, tzinfo=UTC)
    book.clock = lambda: eve
    assert draft_order(book).order_number.startswith("27")  # UTC: already 2027
    dea = draft_order(book).registration.dea_number
    book.time_zones = {dea: "America/Los_Angeles"}
    assert draft_order(book).order_number.startswith("26")


def test_the_time_zones_setting_reaches_the_order_book_from_the_command_line(tmp_path):
    import argparse
    import json

    from app.cli.common import open_context

    profile = tmp_path / "data" / "training"
    profile.mkdir(parents=True)
    (profile / "settings.json").write_text(json.dumps({"time_zones": {"bj6125341": "America/Los_Angeles"}}))
    args = argparse.Namespace(data_dir=str(tmp_path / "data"), database_url=None, profile="training")
    _config, db, book = open_context(args)
    try:
        assert book.time_zones == {"BJ6125341": "America/Los_Angeles"}
    finally:
        db.close()


def test_an_order_date_more_than_a_day_from_the_signing_time_is_refused(book, tmp_path, system_zone):
    import dataclasses

    from app.services.signing.verifier import order_reasons_for

    system_zone("America/Los_Angeles")
    instant = dt.datetime(2026, 11, 20, 3, 0, tzinfo=UTC)
    _signed, order, _verdict = _sign_at(book, tmp_path, instant)
    codes = lambda o: {r.code for r in order_reasons_for(o, None, {}, signing_time=instant)}  # noqa: E731
    assert "date_mismatch" not in codes(order)  # the local evening: one day before the UTC date
    assert "date_mismatch" in codes(dataclasses.replace(order, date_signed=dt.date(2026, 11, 17)))
