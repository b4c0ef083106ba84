"""The lean path's HTTP: one urllib3 pool per client, through the proxy the environment names.

urllib3 is what botocore itself sends with, and imports without botocore. TLS is verified
against the CA bundle botocore would use (``AWS_CA_BUNDLE`` or the ``ca_bundle`` setting, else
certifi's); ``HTTPS_PROXY``/``HTTP_PROXY`` and ``NO_PROXY`` are honoured as botocore honours them.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlsplit

import urllib3


def ca_bundle(configured: str | None = None) -> str | None:
    """The CA bundle to verify with: the configured one, else ``AWS_CA_BUNDLE``, else certifi's
    (botocore's default), else ``None`` (the system's)."""
    found = configured or os.environ.get("AWS_CA_BUNDLE")
    if found:
        return found
    try:
        import certifi
    except ImportError:  # pragma: no cover - certifi comes with botocore's requirements
        return None
    return str(certifi.where())


def proxy_for(endpoint_url: str) -> str | None:
    """The proxy the environment names for ``endpoint_url`` (``HTTPS_PROXY``, ``HTTP_PROXY``),
    unless ``NO_PROXY`` excludes its host."""
    import urllib.request

    parts = urlsplit(endpoint_url)
    proxies = urllib.request.getproxies_environment()
    proxy = proxies.get(parts.scheme)
    bypass = urllib.request.proxy_bypass_environment  # type: ignore[attr-defined]  # not in typeshed
    if not proxy or bypass(parts.hostname or "", proxies):
        return None
    return proxy if "://" in proxy else f"http://{proxy}"


def pool(endpoint_url: str, *, maxsize: int, verify: str | None) -> Any:
    """A urllib3 pool manager for ``endpoint_url``: through its proxy if it has one."""
    options: dict[str, Any] = {"maxsize": maxsize, "block": False}
    if urlsplit(endpoint_url).scheme == "https":
        options["cert_reqs"] = "CERT_REQUIRED"
        if verify:
            options["ca_certs"] = verify
    proxy = proxy_for(endpoint_url)
    if proxy:
        return urllib3.ProxyManager(proxy, **options)
    return urllib3.PoolManager(**options)
