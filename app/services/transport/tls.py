"""Verified TLS for supplier connections, with each trust bundle read once per process.

``requests`` hands urllib3 the bundle's path, and urllib3 reads the whole file into a fresh SSL context for every new
connection. A supplier with a public certificate is checked against a bundle of public roots (certifi's, or the
system's): about 17 ms of reading on every connection here, twice for each AS2 order (the message, then the answer).
The connectors mount ``CachedTrustAdapter`` instead: the same verification (certificate required, host name
checked, against the same file), from an SSL context built once per bundle and built again when the file changes.
"""

from __future__ import annotations

import os
import ssl
import threading
from pathlib import Path
from typing import Any

from requests.adapters import HTTPAdapter

_CONTEXTS: dict[tuple[str, int, int], ssl.SSLContext] = {}
_LOCK = threading.Lock()


def default_bundle() -> str:
    """The bundle ``verify=True`` means to requests (certifi's)."""
    from requests.utils import DEFAULT_CA_BUNDLE_PATH

    return DEFAULT_CA_BUNDLE_PATH


def verified_context(bundle: str | Path) -> ssl.SSLContext:
    """A client context that requires a certificate chaining to ``bundle`` and the host's name in it; one per
    bundle file as it is now (its path, size and modification time), shared by every connection of the process."""
    path = os.path.realpath(bundle)
    stat = os.stat(path)  # a missing file fails here, as it would in requests
    key = (path, stat.st_mtime_ns, stat.st_size)
    with _LOCK:
        context = _CONTEXTS.get(key)
        if context is None:
            context = ssl.create_default_context(cafile=path) if os.path.isfile(path) else \
                ssl.create_default_context(capath=path)
            for stale in [k for k in _CONTEXTS if k[0] == path]:
                del _CONTEXTS[stale]
            _CONTEXTS[key] = context
        return context


class CachedTrustAdapter(HTTPAdapter):
    """An ``HTTPAdapter`` whose https connections use ``verified_context`` of the request's ``verify`` bundle.

    A request that turns verification off is refused: supplier connections are always verified."""

    def build_connection_pool_key_attributes(self, request: Any, verify: Any, cert: Any = None
                                             ) -> tuple[dict[str, Any], dict[str, Any]]:
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(request, verify, cert)
        if host_params.get("scheme") == "https":
            pool_kwargs.pop("ca_certs", None)
            pool_kwargs.pop("ca_cert_dir", None)
            bundle = _bundle_of(verify)
            try:
                pool_kwargs["ssl_context"] = verified_context(bundle)
            except (ssl.SSLError, OSError) as exc:  # as requests reports a bundle it cannot load: nothing is sent
                from requests.exceptions import SSLError

                raise SSLError(f"The trust bundle {bundle} cannot be read ({type(exc).__name__}).") from None
        return host_params, pool_kwargs

    def cert_verify(self, conn: Any, url: str, verify: Any, cert: Any) -> None:
        super().cert_verify(conn, url, verify, cert)
        if url.lower().startswith("https"):
            # The pool's context already trusts the bundle; a path here would make urllib3 read it again.
            conn.ca_certs = None
            conn.ca_cert_dir = None


def _bundle_of(verify: Any) -> str:
    if verify is False or verify is None:
        raise ValueError("Supplier connections are always verified; a request without verification is refused.")
    return default_bundle() if verify is True else str(verify)


def verified_session() -> Any:
    """A requests session for supplier connections: nothing from the environment (proxies, bundles), https through
    ``CachedTrustAdapter``."""
    import requests

    session = requests.Session()
    session.trust_env = False  # no proxies or CA bundles from the environment between us and the supplier
    session.mount("https://", CachedTrustAdapter())
    return session
