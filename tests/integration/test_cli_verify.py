"""`csos-desk verify` as a supplier or inspector runs it: a real process, real files, real CRLs."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from app.models.values import PackageUnit
from app.services.signing.cms import sign_content
from app.services.signing.x12 import OrderLine850
from tests.integration.test_verifier import make_order, x12
from tests.pki import build_training_pki, serve_directory
from tests.signers import KeySigner

ROOT = Path(__file__).resolve().parents[2]
PRODUCT_TXT = ROOT / "resources/catalog/product.txt"
PACKAGE_TXT = ROOT / "resources/catalog/package.txt"
NOW = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


def run(*args, expect: int | None = None, env_extra=None):
    env = {**os.environ, "CSOS_DATA_DIR": env_extra or "/nonexistent-should-not-be-needed"}
    done = subprocess.run([sys.executable, "-m", "app", *args], capture_output=True, text=True, env=env, cwd=ROOT,
                          timeout=120)
    if expect is not None:
        assert done.returncode == expect, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    return done


@pytest.fixture(scope="module")
def signed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli-verify")
    with serve_directory(tmp / "crl") as server:
        pki = build_training_pki(tmp, now=NOW - dt.timedelta(days=30), crl_base_url=server.base_url)
        subscriber = pki.issue(now=NOW - dt.timedelta(days=20))
        order = make_order(lines=(
            OrderLine850(1, 2, "00406055201", "Oxycodone Hydrochloride 5 mg", 100, PackageUnit.EACH),
            OrderLine850(2, 1, "00009005501", "Xanax 0.5 mg", 100, PackageUnit.EACH)))  # both in the sample catalog
        data = sign_content(x12(order), signer=KeySigner(subscriber.key), certificate_der=subscriber.der,
                            intermediates_der=[pki.sub.certificate.public_bytes(serialization.Encoding.DER)],
                            signing_time=NOW)
        order_file = tmp / "order.csos"
        order_file.write_bytes(data)
        crl_files = pki.write_crls(now=NOW - dt.timedelta(minutes=5))
        yield {"pki": pki, "file": order_file, "crls": crl_files, "tmp": tmp, "data": data, "server": server}


def catalog_args():
    return ["--catalog", str(PRODUCT_TXT), "--packages", str(PACKAGE_TXT)]


def crl_args(signed):
    return [arg for path in signed["crls"] for arg in ("--crl", str(path))]


def test_an_acceptable_order_with_given_crls_and_json(signed):
    done = run("verify", str(signed["file"]), "--trust", str(signed["pki"].trust_bundle), *crl_args(signed),
               *catalog_args(), "--json", expect=0)
    result = json.loads(done.stdout)
    assert result["accepted"] is True and result["reasons"] == []
    assert result["order"]["order_number"] == f"{NOW:%y}X000001"
    assert result["order"]["purchaser_dea"] == "BJ6125341" and result["order"]["supplier_dea"] == "RA1234563"
    assert result["order"]["lines"][0] == {"ndc": "00406055201", "packages": 2, "package_quantity": "100",
                                           "unit": "EA", "description": "Oxycodone Hydrochloride 5 mg",
                                           "schedule": "II"}
    assert set(result["signer"]) >= {"subject", "serial", "not_after", "schedules"}


def test_crls_are_fetched_from_the_distribution_points_without_crl(signed, tmp_path):
    done = run("verify", str(signed["file"]), "--trust", str(signed["pki"].trust_bundle), *catalog_args(),
               expect=0, env_extra=str(tmp_path))
    assert "ACCEPTABLE" in done.stdout


def test_each_failed_rule_is_printed_code_first(signed, tmp_path):
    tampered = tmp_path / "tampered.csos"
    tampered.write_bytes(signed["data"].replace(b"PO1*1*2*EA", b"PO1*1*7*EA"))
    done = run("verify", str(tampered), "--trust", str(signed["pki"].trust_bundle), *crl_args(signed),
               *catalog_args(), expect=1)
    assert "content_altered: " in done.stdout


def test_at_moves_now_for_the_time_rules(signed):
    later = (NOW + dt.timedelta(days=61)).isoformat()
    done = run("verify", str(signed["file"]), "--trust", str(signed["pki"].trust_bundle), *crl_args(signed),
               *catalog_args(), "--at", later, "--json", expect=1)
    codes = {r["code"] for r in json.loads(done.stdout)["reasons"]}
    assert "order_expired" in codes


def test_unknown_products_without_a_catalog_in_an_empty_order_book(signed, tmp_path):
    done = run("verify", str(signed["file"]), "--trust", str(signed["pki"].trust_bundle), *crl_args(signed),
               "--json", expect=1, env_extra=str(tmp_path))
    assert {r["code"] for r in json.loads(done.stdout)["reasons"]} == {"unknown_product"}


@pytest.mark.parametrize("args, message", [
    (["missing.csos", "--trust", "TRUST"], "cannot be read"),
    (["ORDER", "--trust", "missing.pem"], ""),
    (["ORDER", "--trust", "TRUST", "--at", "yesterday"], "not an ISO-8601 time"),
    (["ORDER", "--trust", "TRUST", "--catalog", "x.txt"], "go together"),
])
def test_usage_and_io_errors_exit_2(signed, args, message):
    args = [str(signed["file"]) if a == "ORDER" else str(signed["pki"].trust_bundle) if a == "TRUST" else a
            for a in args]
    done = run("verify", *args, expect=2)
    assert message in done.stderr


def test_openssl_agrees(signed):
    done = subprocess.run(["openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in", str(signed["file"]),
                           "-CAfile", str(signed["pki"].trust_bundle), "-purpose", "any", "-out", os.devnull],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
