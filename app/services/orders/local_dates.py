"""The pharmacy's calendar date: the order's date (BEG05) and its order-number year are the date where the pharmacy
is, not the UTC date (an order signed at 7 pm in California is dated that day). signingTime stays UTC.

The zone is the registration's ``time_zones`` setting (IANA name, e.g. ``America/Los_Angeles``) when set, else the
computer's own time zone.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Mapping

from app.errors import ConfigError


def zone_named(name: str | None) -> dt.tzinfo | None:
    """The zone called ``name``; None (= the computer's zone) for an empty name."""
    if not name or not str(name).strip():
        return None
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(str(name).strip())
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"The time zone '{name}' set for this pharmacy is not known. Use a name such as "
                          "America/Chicago, or remove the setting to use this computer's time zone.",
                          code="config.time_zone") from None


def local_date(moment: dt.datetime, zone: dt.tzinfo | str | None = None) -> dt.date:
    """``moment``'s calendar date in ``zone`` (a name or tzinfo; None = this computer's time zone)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)  # the order book stores UTC
    if isinstance(zone, str):
        zone = zone_named(zone)
    return moment.astimezone(zone).date()


def zone_for(time_zones: Mapping[str, Any] | None, registration_dea: str | None) -> str | None:
    """The configured zone name of a registration (settings ``time_zones``: DEA number → zone name)."""
    if not time_zones or not registration_dea:
        return None
    value = time_zones.get(registration_dea)
    return str(value) if value else None


def configured_time_zones(settings: Mapping[str, Any]) -> dict[str, str]:
    """The ``time_zones`` setting (DEA number → zone name); anything else there counts as not set."""
    value = settings.get("time_zones")
    if not isinstance(value, Mapping):
        return {}
    return {str(dea).strip().upper(): str(zone) for dea, zone in value.items() if zone}
