"""The AS2 identity is parsed once per content of its files (issue 6/7: parsing the RSA key took ~40 ms of every AS2
send): loading it again gives the same key without parsing, a replaced identity is read afresh, and a key that
does not belong to the certificate is still refused, also when the pair was seen before."""

from __future__ import annotations

import pytest

from app.services.transport import as2


def test_the_same_files_are_parsed_once(tmp_path, monkeypatch):
    first = as2.create_identity(tmp_path, "PHARMACY-AS2")
    calls = []
    real = as2.serialization.load_pem_private_key
    monkeypatch.setattr(as2.serialization, "load_pem_private_key", lambda *a, **k: calls.append(1) or real(*a, **k))
    as2._PARSED.clear()
    one, two = as2.load_identity(tmp_path), as2.load_identity(tmp_path)
    assert len(calls) == 1 and one.key is two.key
    assert one.certificate == first.certificate
    replaced = as2.create_identity(tmp_path, "PHARMACY-AS2", replace=True)
    again = as2.load_identity(tmp_path)
    assert len(calls) == 2 and again.certificate == replaced.certificate != first.certificate


def test_a_key_from_another_identity_is_refused_every_time(tmp_path):
    as2.create_identity(tmp_path / "a", "PHARMACY-A")
    as2.create_identity(tmp_path / "b", "PHARMACY-B")
    folder_a, folder_b = as2.identity_folder(tmp_path / "a"), as2.identity_folder(tmp_path / "b")
    (folder_a / as2.KEY_FILE).write_bytes((folder_b / as2.KEY_FILE).read_bytes())
    for _ in range(2):
        with pytest.raises(as2.As2IdentityError) as caught:
            as2.load_identity(tmp_path / "a")
        assert caught.value.code == "as2.identity_unreadable"
