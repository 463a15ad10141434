"""Hostile certificate files through `csos-desk cert …` (issue 16 item 3, issue 22 "a foreign certificate is called
trusted"): real processes, a real data folder, certificates made by tests/pki.py, CRLs served on loopback, and an
order signed afterwards to show the genuine certificate still works."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization

from app.models.values import Schedule
from tests.fixtures.hostile_certificates import (
    foreign_csos_p12,
    key_only_p12,
    p12,
    self_made_p12,
)
from tests.pki import DEFAULT_DEA, build_training_pki, new_key, serve_directory

ROOT = Path(__file__).resolve().parents[3]
CATALOG = [str(ROOT / "resources/catalog/product.txt"), str(ROOT / "resources/catalog/package.txt")]
KEY_PASSWORD = "Juniper-Canyon-5182!w"
P12_PASSWORD = "Orchid-Falcon-2267$t"
SERIAL = "55501234"


@pytest.fixture
def world(tmp_path):
    with serve_directory(tmp_path / "crl") as server:
        pki = build_training_pki(tmp_path, now=dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=2),
                                 crl_base_url=server.base_url)
        pki.write_crls(now=dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CSOS_", "PKCS11_"))}
        env.update(CSOS_DATA_DIR=str(tmp_path / "data"), CSOS_PROFILE="training")

        def run(*args: str, stdin: str = "", expect: int = 0, trust: bool = True) -> subprocess.CompletedProcess:
            done = subprocess.run([sys.executable, "-m", "app", *args], input=stdin, capture_output=True,
                                  text=True, env={**env, **({"CSOS_TRUST_BUNDLE": str(pki.trust_bundle)}
                                                            if trust else {})}, cwd=ROOT, timeout=120)
            assert done.returncode == expect, (args, done.stdout, done.stderr)
            assert "Traceback" not in done.stderr and "unexpected problem" not in done.stderr
            return done

        def key_files() -> list[str]:
            keys = tmp_path / "data" / "training" / "keys"
            return sorted(p.name for p in keys.iterdir()) if keys.is_dir() else []

        yield pki, run, key_files


def genuine(pki, tmp_path, *, chain: bool = True) -> tuple[Path, object]:
    key = new_key("rsa")
    issued = pki.issue(key=key, serial=SERIAL, schedules={Schedule.II, Schedule.IV})
    path = tmp_path / ("genuine.p12" if chain else "leaf-only.p12")
    path.write_bytes(p12(key, issued.cert, [pki.sub.certificate, pki.root.certificate] if chain else None,
                         P12_PASSWORD))
    return path, issued


def import_p12(run, path: Path, expect: int = 0, trust: bool = True) -> subprocess.CompletedProcess:
    return run("cert", "import", str(path), "--label", "Pat", "--password-stdin", "--json",
               stdin=f"{P12_PASSWORD}\n{KEY_PASSWORD}\n", expect=expect, trust=trust)


def order_with_a_line(run) -> str:
    run("registration", "add", "--dea", DEFAULT_DEA, "--name", "Main Street Pharmacy", "--address", "1 Main St",
        "--city", "Springfield", "--state", "IL", "--zip", "62701", "--schedules", "II,IIN,III,IIIN,IV,V",
        "--expires", (dt.date.today() + dt.timedelta(days=300)).isoformat())
    run("supplier", "add", "--name", "Acme Drug", "--dea", "RA1234563")
    run("catalog", "import", *CATALOG)
    number = json.loads(run("order", "new", "--registration", DEFAULT_DEA, "--supplier", "Acme Drug",
                            "--json").stdout)["order_number"]
    run("order", "add-line", number, "--ndc", "0406-0552-01", "--packages", "2")
    return number


def sign(run, number: str) -> dict:
    return json.loads(run("order", "sign", number, "--password-stdin", "--json", stdin=KEY_PASSWORD + "\n").stdout)


def test_a_foreign_csos_certificate_for_our_dea_number_is_refused_and_the_genuine_one_still_signs(world, tmp_path):
    pki, run, key_files = world
    number = order_with_a_line(run)
    path, _ = genuine(pki, tmp_path)
    mine = json.loads(import_p12(run, path).stdout)
    assert mine["status"] == "active" and mine["registration"] == DEFAULT_DEA
    keys_before = key_files()

    foreign, _, _ = foreign_csos_p12(tmp_path / "impostor", P12_PASSWORD, serial=SERIAL)
    (tmp_path / "foreign.p12").write_bytes(foreign)
    refused = import_p12(run, tmp_path / "foreign.p12", expect=1)
    assert "certificate.untrusted" in refused.stderr and "Nothing was imported" in refused.stderr
    listed = json.loads(run("cert", "list", "--json").stdout)
    assert [(r["fingerprint"], r["status"]) for r in listed] == [(mine["fingerprint"], "active")]
    assert key_files() == keys_before  # the foreign key was not stored
    assert sign(run, number)["signer_fingerprint"] == mine["fingerprint"]


def test_without_trust_roots_nothing_is_trusted_and_a_self_made_certificate_is_not_csos(world, tmp_path):
    pki, run, key_files = world
    (tmp_path / "test.p12").write_bytes(self_made_p12(P12_PASSWORD))
    for trust in (False, True):
        refused = import_p12(run, tmp_path / "test.p12", expect=1, trust=trust)
        assert "certificate.not_csos" in refused.stderr and "not a CSOS certificate" in refused.stderr
    path, _ = genuine(pki, tmp_path)
    no_roots = import_p12(run, path, expect=1, trust=False)
    assert "certificate.no_trust_roots" in no_roots.stderr and "csos-desk trust add" in no_roots.stderr
    assert json.loads(run("cert", "list", "--json", trust=False).stdout) == [] and key_files() == []
    for text in (no_roots.stderr, refused.stderr):
        assert "K2" not in text and "docs/" not in text

    root = pki.root.certificate.fingerprint(hashes.SHA256()).hex()
    run("trust", "add", str(pki.trust_bundle), "--yes", "--fingerprint", root, trust=False)
    assert json.loads(import_p12(run, path, trust=False).stdout)["status"] == "active"


def test_a_leaf_only_reinstall_keeps_the_chain_and_a_repeated_import_makes_no_second_key_file(world, tmp_path):
    pki, run, key_files = world
    number = order_with_a_line(run)
    path, issued = genuine(pki, tmp_path)
    first = json.loads(import_p12(run, path).stdout)
    keys = key_files()
    assert len(keys) == 1
    again = json.loads(import_p12(run, path).stdout)
    assert again["id"] == first["id"] and key_files() == keys

    leaf = tmp_path / "leaf.pem"
    leaf.write_bytes(issued.cert.public_bytes(serialization.Encoding.PEM))
    run("cert", "install", str(leaf))
    leaf_p12 = tmp_path / "leaf-only.p12"
    leaf_p12.write_bytes(p12(issued.key, issued.cert, None, P12_PASSWORD))
    import_p12(run, leaf_p12)
    shown = json.loads(run("cert", "show", first["fingerprint"][:12], "--json").stdout)
    assert shown["chain"] == [pki.sub.certificate.subject.rfc4514_string()] and shown["status"] == "active"
    assert key_files() == keys
    assert sign(run, number)["status"] == "signed"


def test_a_key_only_p12_is_refused_and_nothing_is_written(world, tmp_path):
    _, run, key_files = world
    (tmp_path / "key-only.p12").write_bytes(key_only_p12(P12_PASSWORD))
    refused = import_p12(run, tmp_path / "key-only.p12", expect=1)
    assert "certificate.key_only" in refused.stderr and "Nothing was imported" in refused.stderr
    assert key_files() == [] and json.loads(run("cert", "list", "--json").stdout) == []


def test_cert_remove_deletes_an_unused_certificate_and_its_key_file_but_keeps_one_that_signed(world, tmp_path):
    pki, run, key_files = world
    number = order_with_a_line(run)
    path, _ = genuine(pki, tmp_path)
    signer = json.loads(import_p12(run, path).stdout)
    sign(run, number)
    key = new_key("rsa")
    spare = pki.issue(key=key, serial="55509999", full_name="Sam Spare")
    (tmp_path / "spare.p12").write_bytes(p12(key, spare.cert, [pki.sub.certificate], P12_PASSWORD))
    unused = json.loads(import_p12(run, tmp_path / "spare.p12").stdout)
    assert len(key_files()) == 2

    in_use = run("cert", "remove", signer["fingerprint"][:12], expect=1)
    assert "certificate.in_use" in in_use.stderr and number in in_use.stderr
    removed = run("cert", "remove", unused["fingerprint"][:12]).stdout
    assert f"Removed certificate {unused['fingerprint'][:16]}" in removed
    assert [r["fingerprint"] for r in json.loads(run("cert", "list", "--json").stdout)] == [signer["fingerprint"]]
    assert key_files() == [f"{signer['key']['key_id']}.key"]
