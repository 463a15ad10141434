"""Profiles (training / production), where data lives, and the settings file.

Training and production never share a folder: practice orders must not end up among the records DEA may inspect.
"""

from __future__ import annotations

import enum
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from app.errors import ConfigError

APP_NAME = "csos-desk"


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
        self.data_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.settings_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.settings, indent=2, sort_keys=True))
        os.replace(tmp, self.settings_path)


def load_config(*, data_dir: str | Path | None = None, database_url: str | None = None,
                profile: str | Profile | None = None) -> AppConfig:
    """Resolve configuration: explicit arguments, then environment (CSOS_*), then settings file, then defaults."""
    if isinstance(profile, str):
        profile = Profile.parse(profile)
    profile = profile or Profile.parse(os.environ.get("CSOS_PROFILE", "training"))
    root = Path(data_dir or os.environ.get("CSOS_DATA_DIR") or default_data_root()).expanduser()
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
