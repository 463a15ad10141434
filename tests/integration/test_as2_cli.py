"""`csos-desk as2 identity` and `supplier add --connector as2` end to end through the CLI (real files, real SQLite)."""

from __future__ import annotations

import json

from cryptography import x509

from app.cli import main


def test_identity_create_show_export_and_an_as2_supplier(tmp_path, capsys):
    base = ["--data-dir", str(tmp_path / "data")]
    assert main(base + ["as2", "identity"]) == 1
    assert "no AS2 identity yet" in capsys.readouterr().err
    assert main(base + ["as2", "identity", "--create"]) == 2  # --create needs --as2-id
    capsys.readouterr()
    cert_file = tmp_path / "pharmacy-as2.pem"
    assert main(base + ["as2", "identity", "--create", "--as2-id", "MAIN-ST-RX", "--export-cert",
                        str(cert_file)]) == 0
    created = capsys.readouterr().out
    certificate = x509.load_pem_x509_certificate(cert_file.read_bytes())
    fingerprint = certificate.fingerprint(certificate.signature_hash_algorithm).hex(":").upper()
    assert "MAIN-ST-RX" in created and fingerprint in created
    assert main(base + ["as2", "identity", "--create", "--as2-id", "OTHER"]) == 1  # never replaced silently
    assert "already has an AS2 identity" in capsys.readouterr().err
    assert main(base + ["as2", "identity", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["as2_id"] == "MAIN-ST-RX" and shown["fingerprint_sha256"] == fingerprint
    # The supplier side: its AS2 address, AS2 ID and certificate (here any certificate file will do).
    assert main(base + ["supplier", "add", "--name", "Wholesale East", "--connector", "as2",
                        "--as2-url", "https://as2.example.com/receive"]) == 2
    assert "--as2-partner-id" in capsys.readouterr().err
    assert main(base + ["supplier", "add", "--name", "Wholesale East", "--connector", "as2", "--as2-url",
                        "https://as2.example.com/receive", "--as2-partner-id", "WHOLESALE-EAST", "--as2-partner-cert",
                        str(cert_file), "--as2-content-type", "application/edi-x12"]) == 0
    capsys.readouterr()
    assert main(base + ["supplier", "list", "--json"]) == 0
    [supplier] = json.loads(capsys.readouterr().out)
    connector = supplier["connector"]
    assert connector["kind"] == "as2" and connector["partner_as2_id"] == "WHOLESALE-EAST"
    assert connector["encryption"] == "aes256_cbc" and connector["signature"] == "sha256"
    assert connector["content_type"] == "application/edi-x12"
    assert x509.load_pem_x509_certificate(connector["partner_certificate"].encode()) == certificate
    assert main(base + ["supplier", "add", "--name", "Folder Co", "--connector", "folder",
                        "--as2-partner-id", "X"]) == 2
    assert "--connector as2" in capsys.readouterr().err
