"""Private files (issue 19): what the program writes in its data folder is the user's alone on POSIX (folders
0700, files 0600), also when created without the entry point's umask; an installation made before is tightened
at the next start. And: `csos-desk` with no screen says so and exits 2 instead of Qt aborting."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from app.config import load_config
from app.logging_setup import setup_logging
from app.models.database import open_database, sqlite_url
from tests.private_files import not_private

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CSOS_", "PKCS11_"))}
    env.update(extra)
    return env


@pytest.fixture
def loose_umask():
    """The umask most desktops start programs with: what was written before this fix came out 0755/0644."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def test_settings_order_book_and_log_are_created_private_even_without_the_umask(tmp_path, loose_umask):
    config = load_config(data_dir=tmp_path / "data", profile="training")
    config.settings["sntp_server"] = "time.nist.gov"
    config.save_settings()
    db = open_database(config.database_url)
    try:
        with db.engine.begin() as connection:  # a write, so the -wal file exists
            connection.exec_driver_sql("CREATE TABLE IF NOT EXISTS t (x INTEGER)")
            connection.exec_driver_sql("INSERT INTO t VALUES (1)")
        log = setup_logging(config.data_dir)
        names = {p.name for p in config.data_dir.rglob("*")}
        assert {"settings.json", "orderbook.sqlite3", "orderbook.sqlite3-wal", "csos-desk.log"} <= names, names
        assert not_private(config.data_dir) == []
        assert stat.S_IMODE(log.stat().st_mode) == 0o600
    finally:
        db.close()


def test_an_existing_installation_is_tightened_on_start(tmp_path, loose_umask):
    root = tmp_path / "data"
    profile = root / "training"
    (profile / "logs").mkdir(parents=True, mode=0o755)
    db = open_database(sqlite_url(profile / "orderbook.sqlite3"))
    db.close()
    (profile / "settings.json").write_text("{}")
    (profile / "logs" / "csos-desk.log").write_text("old lines\n")
    (profile / "cache" / "crl").mkdir(parents=True)
    (profile / "cache" / "crl" / "abc.crl").write_bytes(b"0")
    for path in [root, *root.rglob("*")]:
        os.chmod(path, 0o755 if path.is_dir() else 0o644)  # as installations before this fix left them
    assert len(not_private(root)) >= 8
    done = subprocess.run([sys.executable, "-m", "app", "registration", "list"], capture_output=True, text=True,
                          env=_env(CSOS_DATA_DIR=str(root), CSOS_PROFILE="training"), cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    assert not_private(root) == []


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="X11/Wayland display check")
def test_no_display_is_a_plain_message_and_exit_2(tmp_path):
    env = _env(CSOS_DATA_DIR=str(tmp_path / "data"))
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        env.pop(name, None)
    done = subprocess.run([sys.executable, "-m", "app"], capture_output=True, text=True, env=env, cwd=ROOT,
                          timeout=120)
    assert done.returncode == 2, (done.returncode, done.stderr)
    assert "no screen" in done.stderr and "csos-desk demo" in done.stderr and "DISPLAY" in done.stderr
    assert "xcb" not in done.stderr and "Traceback" not in done.stderr


def test_a_shared_folder_given_as_data_dir_is_never_changed(tmp_path, loose_umask):
    """--data-dir /tmp (or a home folder) must not make the folder or anything else in it private."""
    shared = tmp_path / "shared"
    shared.mkdir()
    other = shared / "someone-elses.txt"
    other.write_text("not ours\n")
    (shared / "their-folder").mkdir()
    for path in [shared, *shared.rglob("*")]:
        os.chmod(path, 0o777 if path.is_dir() else 0o644)
    done = subprocess.run([sys.executable, "-m", "app", "registration", "list"], capture_output=True, text=True,
                          env=_env(CSOS_DATA_DIR=str(shared), CSOS_PROFILE="training"), cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    assert stat.S_IMODE(shared.stat().st_mode) == 0o777
    assert stat.S_IMODE(other.stat().st_mode) == 0o644
    assert stat.S_IMODE((shared / "their-folder").stat().st_mode) == 0o777
    assert not_private(shared / "training") == []
