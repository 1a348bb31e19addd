"""The extractor's transport: proxies, proxy credentials and CA bundles found as `requests` finds them."""

from __future__ import annotations

from pathlib import Path

import pytest

from stripe_source.transport import connection_pool


@pytest.fixture(autouse=True)
def no_proxy_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY",
                 "NO_PROXY", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)


def test_direct_by_default_with_a_ca_bundle() -> None:
    pool = connection_pool("https://api.stripe.com", 8)
    assert getattr(pool, "proxy", None) is None
    assert Path(pool.connection_pool_kw["ca_certs"]).is_file()
    assert pool.connection_pool_kw["cert_reqs"] == "CERT_REQUIRED"


def test_proxy_without_scheme(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("https_proxy", "proxy.corp:3128")
    pool = connection_pool("https://api.stripe.com", 8)
    assert pool.proxy.host == "proxy.corp" and pool.proxy.scheme == "http"


def test_proxy_credentials_and_no_proxy_ranges(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("https_proxy", "http://user:secret@proxy.corp:3128")
    monkeypatch.setenv("no_proxy", "10.0.0.0/8,localhost")
    pool = connection_pool("https://api.stripe.com", 8)
    assert pool.proxy_headers["Proxy-Authorization"].startswith("Basic ")
    assert getattr(connection_pool("http://10.1.2.3:12111", 8), "proxy", None) is None


def test_all_proxy_and_a_ca_directory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ALL_PROXY", "http://proxy.corp:3128")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tmp_path))
    pool = connection_pool("https://api.stripe.com", 8)
    assert pool.proxy.host == "proxy.corp"
    assert pool.connection_pool_kw["ca_cert_dir"] == str(tmp_path)
