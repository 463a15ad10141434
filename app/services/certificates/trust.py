"""Which CSOS trust roots this profile uses. Never the operating system's store (DESIGN.md §4)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from cryptography import x509

from app.errors import ConfigError
from app.services.certificates.validation import load_trust_bundle

RESOURCES = Path(__file__).resolve().parents[2] / "resources" / "trust"


def configured_trust_roots(config: Any, *, explicit: str | Path | None = None) -> list[x509.Certificate]:
    """Explicit file, else CSOS_TRUST_BUNDLE, else the ``csos_trust_bundle`` setting, else the bundles shipped in
    resources/trust/<profile>/. In training mode the setting points at the sandbox's root."""
    source = explicit or os.environ.get("CSOS_TRUST_BUNDLE") or config.settings.get("csos_trust_bundle")
    if source:
        return load_trust_bundle(source)
    shipped = RESOURCES / config.profile.value
    roots: list[x509.Certificate] = []
    for bundle in sorted(shipped.glob("*.pem")) if shipped.is_dir() else []:
        roots += load_trust_bundle(bundle)
    if not roots:
        raise ConfigError(f"No CSOS trust roots are configured for the {config.profile.value} profile. In training "
                          "mode start the sandbox (./run does); otherwise set 'csos_trust_bundle' in Settings.",
                          code="config.no_trust_roots")
    return roots
