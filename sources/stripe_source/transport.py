"""One GET to Stripe over a pool of connections: the proxy, `NO_PROXY` rules and CA bundle that
`requests` would use, connect and read timeouts, and a failed connection told in words.

urllib3, not `requests`: its `Session` spent 2.1 ms of CPU per 140 KB page here (it reads a body in
10 KB chunks through generators), urllib3 0.6 ms, and a backfill's extracting process is CPU-bound.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import certifi
import urllib3
from requests.adapters import HTTPAdapter
from requests.utils import get_environ_proxies, prepend_scheme_if_needed, select_proxy


class Unreachable(Exception):
    """No answer came (refused, reset, timed out, broken TLS); the message says which, in words."""


class Transport:
    """GETs to one API base; safe to share across threads."""

    def __init__(self, api_base: str, timeout: float, pool_size: int) -> None:
        self.timeouts = urllib3.Timeout(connect=min(10.0, timeout), read=timeout)
        self._pool = connection_pool(api_base, pool_size)

    def get(self, url: str, headers: Mapping[str, str]) -> urllib3.BaseHTTPResponse:
        """The answer, whatever its status; raises `Unreachable` when none came."""
        try:
            return self._pool.request("GET", url, headers=headers, timeout=self.timeouts, retries=False)
        except urllib3.exceptions.HTTPError as exc:
            raise Unreachable(what_failed(exc, self.timeouts)) from None

    def close(self) -> None:
        self._pool.clear()


def connection_pool(api_base: str, size: int) -> urllib3.PoolManager:
    """Pooled connections to `api_base`, through the proxy (with its credentials), `NO_PROXY`
    rules and CA bundle that `requests` would use: its own helpers read them from the environment."""
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=size, max_retries=0)
    proxy = select_proxy(api_base, get_environ_proxies(api_base))
    manager = adapter.proxy_manager_for(prepend_scheme_if_needed(proxy, "http")) if proxy else adapter.poolmanager
    ca = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or certifi.where()
    manager.connection_pool_kw.update({"ca_cert_dir": ca} if os.path.isdir(ca) else {"ca_certs": ca})
    manager.connection_pool_kw["cert_reqs"] = "CERT_REQUIRED"
    return manager


def what_failed(exc: urllib3.exceptions.HTTPError, timeouts: urllib3.Timeout) -> str:
    """What went wrong with the connection, in words (no URL: the callers name it)."""
    # most specific first: NameResolutionError < NewConnectionError < ConnectTimeoutError
    if isinstance(exc, urllib3.exceptions.NameResolutionError):
        return "unknown host"
    if isinstance(exc, urllib3.exceptions.NewConnectionError):
        return "connection refused" if "refused" in str(exc).lower() else "no connection"
    if isinstance(exc, urllib3.exceptions.ConnectTimeoutError):
        return f"no connection within {timeouts.connect_timeout:g} s"
    if isinstance(exc, urllib3.exceptions.ReadTimeoutError):
        return f"no answer within {timeouts.read_timeout:g} s"
    if isinstance(exc, urllib3.exceptions.SSLError):
        return "TLS error"
    if isinstance(exc, urllib3.exceptions.ProtocolError):
        return "connection closed without an answer"
    return type(exc).__name__
