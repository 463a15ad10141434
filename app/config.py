"""Profiles (training / production), where data lives, and the settings file.

Training and production never share a folder: practice orders must not end up among the records DEA may inspect.
"""

from __future__ import annotations

import enum
import json
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from app.errors import ConfigError

APP_NAME = "csos-desk"
PRIVATE_UMASK = 0o077  # what the program writes in its data folder is the user's alone (folders 0700, files 0600)
_tightened: set[Path] = set()


def use_private_umask() -> None:
    """At process start (CLI and GUI entry): every file and folder created from now on is private on POSIX."""
    if os.name == "posix":
        os.umask(PRIVATE_UMASK)


# What the program itself keeps directly in a data root: one folder per profile and the demo's runs.
OWN_ROOT_ENTRIES = frozenset({"training", "production", "demo-runs"})


def tighten_data_folder(root: Path) -> None:
    """Installations made before files were private (folder 0755, files 0644): take group/other access away from
    what the program keeps under ``root`` once per process. Only the program's own folders are walked (one per
    profile, the demo's runs); ``root`` itself is made private only when it holds nothing else — a folder given with
    --data-dir may be shared (``/tmp``, a home folder), and what is not ours is never changed."""
    if os.name != "posix" or root in _tightened:
        return
    _tightened.add(root)
    try:
        if not root.is_dir() or root.is_symlink() or (root.stat().st_mode & 0o077) == 0:
            return
        entries = {entry.name for entry in root.iterdir()}
    except OSError:
        return
    for name in sorted(entries & OWN_ROOT_ENTRIES):
        own = root / name
        if own.is_symlink() or not own.is_dir():
            continue
        for folder, dirs, files in os.walk(own):
            for entry in [*dirs, *files]:
                _make_private(Path(folder) / entry)
        _make_private(own)
    if entries <= OWN_ROOT_ENTRIES:
        _make_private(root)


def _make_private(path: Path) -> None:
    try:
        mode = path.lstat().st_mode
        if not stat.S_ISLNK(mode) and mode & 0o077:
            os.chmod(path, stat.S_IMODE(mode) & ~0o077)
    except OSError:
        pass  # not ours to change (another owner) or gone meanwhile


class Profile(enum.Enum):
    TRAINING = "training"
    PRODUCTION = "production"

    @classmethod
    def parse(cls, text: str) -> "Profile":
        try:
            return cls(text.strip().lower())
        except ValueError:
            raise ConfigError(f"'{text}' is not a profile; use 'training' or 'production'.",
                              code="config.profile") from None


def default_data_root() -> Path:
    from platformdirs import user_data_dir

    return Path(user_data_dir(APP_NAME, appauthor=False))


@dataclass
class AppConfig:
    profile: Profile
    data_dir: Path  # this profile's own folder
    database_url: str
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def settings_path(self) -> Path:
        return self.data_dir / "settings.json"

    @property
    def keys_dir(self) -> Path:
        return self.data_dir / "keys"

    @property
    def cache_dir(self) -> Path:
        return self.data_dir / "cache"

    @property
    def is_training(self) -> bool:
        return self.profile is Profile.TRAINING

    def save_settings(self) -> None:
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = self.settings_path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(json.dumps(self.settings, indent=2, sort_keys=True))
        os.replace(tmp, self.settings_path)


# Beside (not inside) the profiles' folders: the profile last chosen in Settings, opened when none is given.
PROFILE_CHOICE_FILE = "profile-choice.json"


def remembered_profile(data_root: Path) -> str | None:
    """The profile last chosen in Settings (``app.services.app_settings.remember_profile`` writes it); read here so
    the start, which needs it before its first window, imports nothing more than this module."""
    try:
        value = json.loads((data_root / PROFILE_CHOICE_FILE).read_text()).get("profile")
    except (OSError, ValueError, AttributeError):
        return None
    return value if value in ("training", "production") else None


def load_config(*, data_dir: str | Path | None = None, database_url: str | None = None,
                profile: str | Profile | None = None) -> AppConfig:
    """Resolve configuration: explicit arguments, then environment (CSOS_*), then settings file, then defaults."""
    if isinstance(profile, str):
        profile = Profile.parse(profile)
    profile = profile or Profile.parse(os.environ.get("CSOS_PROFILE", "training"))
    root = Path(data_dir or os.environ.get("CSOS_DATA_DIR") or default_data_root()).expanduser()
    tighten_data_folder(root)
    profile_dir = root / profile.value
    settings: dict[str, Any] = {}
    settings_path = profile_dir / "settings.json"
    if settings_path.exists():
        try:
            settings = json.loads(settings_path.read_text())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"The settings file {settings_path} cannot be read ({exc}). Fix or delete it.",
                              code="config.settings_unreadable") from None
        if not isinstance(settings, dict):
            raise ConfigError(f"The settings file {settings_path} is not a settings object.",
                              code="config.settings_unreadable")
        from app.setting_types import check_setting_types

        check_setting_types(settings, settings_path)
    url = (database_url or os.environ.get("CSOS_DATABASE_URL") or settings.get("database_url")
           or f"sqlite:///{(profile_dir / 'orderbook.sqlite3').resolve()}")
    return AppConfig(profile=profile, data_dir=profile_dir, database_url=url, settings=settings)


def configured_pkcs11_modules(settings: Mapping[str, Any], environ: Mapping[str, str] = os.environ) -> list[str]:
    """Token driver paths: the ``pkcs11_modules`` setting (a path or a list), then ``PKCS11_MODULE``."""
    configured = settings.get("pkcs11_modules") or []
    if isinstance(configured, str):
        configured = [configured]
    modules = [str(m).strip() for m in configured if str(m).strip()]
    from_env = environ.get("PKCS11_MODULE", "").strip()
    if from_env:
        modules.append(from_env)
    unique: list[str] = []
    for module in modules:
        path = os.path.abspath(module)
        if path not in unique:
            unique.append(path)
    return unique
