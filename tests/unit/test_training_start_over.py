"""Training helpers: the practice coordinators come from the sandbox seed (not typed into the program), and
"Start training over" empties only the training folder."""

from __future__ import annotations

import json

import pytest

from app.config import load_config
from app.errors import ConfigError
from app.training import SEED_FILE, practice_coordinator_for, practice_coordinators, reset_training_data, welcome_letter


def test_practice_coordinators_are_read_from_the_seed():
    seed = json.loads(SEED_FILE.read_text("utf-8"))
    expected = {(r["dea_number"], r["coordinator"]["email"], r["coordinator"]["password"])
                for r in seed["registrations"]}
    assert {(a.registration, a.email, a.password) for a in practice_coordinators()} == expected
    clinic = seed["registrations"][1]
    assert practice_coordinator_for([clinic["dea_number"]]).email == clinic["coordinator"]["email"]
    subject, body = welcome_letter()
    assert subject == "Welcome to the practice mailbox" and clinic["coordinator"]["password"] in body


def test_an_unreadable_seed_gives_no_accounts(tmp_path):
    assert practice_coordinators(tmp_path / "missing.json") == []


def test_start_over_empties_the_training_folder_only(tmp_path):
    training = load_config(data_dir=tmp_path, profile="training")
    production = load_config(data_dir=tmp_path, profile="production")
    for config in (training, production):
        (config.data_dir / "keys").mkdir(parents=True)
        (config.data_dir / "keys" / "k.key").write_text("x")
        (config.data_dir / "orderbook.sqlite3").write_text("db")
    (training.data_dir / "logs").mkdir()
    (training.data_dir / "logs" / "csos.log").write_text("kept")
    removed = reset_training_data(training)
    assert set(removed) == {"keys", "orderbook.sqlite3"}
    assert [p.name for p in training.data_dir.iterdir()] == ["logs"]
    assert (production.data_dir / "orderbook.sqlite3").exists() and (production.data_dir / "keys" / "k.key").exists()
    with pytest.raises(ConfigError):
        reset_training_data(production)
    shared = load_config(data_dir=tmp_path, profile="training", database_url="postgresql://db.example/csos")
    with pytest.raises(ConfigError) as caught:
        reset_training_data(shared)
    assert caught.value.code == "config.shared_training_db"
