"""What each known setting in settings.json holds, checked when the file is read.

Why: a setting of the wrong kind (``"reminder_days": "soon"``, ``"pkcs11_modules": 5``) used to fail wherever the
value was first used, as an "unexpected problem"; now the program says which setting, in which file, and what it
should be. Unknown settings are left alone (a newer version may have written them).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

from app.errors import ConfigError


def _text(value: Any) -> bool:
    return isinstance(value, str)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _text_map(value: Any) -> bool:
    return isinstance(value, dict) and all(isinstance(v, str) for v in value.values())


# What each known setting holds (None is always allowed: "not set"). A wrong type is named with its file when the
# settings are read, instead of failing later as an unexpected problem wherever the value is first used.
SETTING_TYPES: dict[str, tuple[str, Any]] = {
    **{name: ("text", _text) for name in ("database_url", "sntp_server", "csos_trust_bundle", "tls_bundle",
                                          "sandbox_dir", "sandbox_portal_url", "sandbox_tls_bundle",
                                          "dea_portal_url", "pkcs11_token_label")},
    "pkcs11_modules": ("a path or a list of paths",
                       lambda v: _text(v) or (isinstance(v, list) and all(_text(m) for m in v))),
    "reminder_days": ("a list of whole numbers of days, e.g. [45, 30, 14, 7, 1]",
                      lambda v: isinstance(v, list) and all(isinstance(d, int) and not isinstance(d, bool)
                                                            for d in v)),
    "crl_max_age_seconds": ("a number of seconds", _number),
    "time_zones": ("DEA number → time zone name, e.g. {\"BJ6125341\": \"America/Chicago\"}", _text_map),
    "dismissed_reminders": ("an object", lambda v: isinstance(v, dict)),
    "monthly_limits": ("DEA number → {substance: units}", lambda v: isinstance(v, dict) and all(
        isinstance(limits, dict) for limits in v.values())),
}


def check_setting_types(settings: Mapping[str, Any], path: Path) -> None:
    """Refuse a settings file whose known settings hold the wrong kind of value, naming the setting and the file."""
    for name, (expected, fits) in SETTING_TYPES.items():
        value = settings.get(name)
        if value is not None and not fits(value):
            shown = json.dumps(value)[:60]
            raise ConfigError(f"The setting “{name}” in {path} should be {expected}, not {shown}. Correct it (or "
                              "remove the line to use the default) and start again.", code="config.setting_type")
