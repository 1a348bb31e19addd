"""Where Stripe is and how our requests present themselves: base URLs, the pinned API version, the
request timeout and the User-Agent, each with the check that refuses a bad value in one line."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import stripe

from .errors import InvalidInput

API_VERSION: str = stripe.api_version  # the SDK's pinned version; objects are shaped by it
DEFAULT_API_BASE = "https://api.stripe.com"
DEFAULT_CONNECT_BASE = "https://connect.stripe.com"
API_BASE_ENV = "STRIPE_API_BASE"  # env vars that point the source (and `connect`) elsewhere,
CONNECT_BASE_ENV = "STRIPE_CONNECT_BASE"  # e.g. at the local emulator
PAGE_SIZE = 100  # Stripe's maximum `limit`
USER_AGENT = f"dlt-source-stripe/0.1 (stripe-python {stripe.VERSION})"
USER_AGENT_SUFFIX_MAX = 100
_USER_AGENT_SUFFIX = re.compile(r"[ -~]+")  # printable ASCII: it goes into an HTTP header as is

# Seconds to wait for one answer (`[sources.stripe] request_timeout`, `--request-timeout`). Stripe
# answers a 100-object page in well under a second; 30 s is long for Stripe and short for a person.
DEFAULT_REQUEST_TIMEOUT = 30.0
REQUEST_TIMEOUT_RANGE = (0.5, 600.0)


def check_base_url(url: str, name: str = "api_base") -> str:
    """A base URL Stripe's paths can be appended to, without a trailing slash; raises `InvalidInput`."""
    example = "like https://api.stripe.com or http://127.0.0.1:12111"
    try:
        parts = urlsplit(str(url).strip())
        parts.port  # noqa: B018 (raises ValueError for a port out of range)
    except ValueError:
        raise InvalidInput(f"{name} {url!r} is not a URL: give it {example}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput(f"{name} {url!r} is not an http(s) URL: give it {example}")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise InvalidInput(f"{name} {url!r} has a query, fragment or user: give only the base, {example}")
    if parts.path.rstrip("/").endswith("/v1"):
        raise InvalidInput(f"{name} {url!r} ends in /v1: give the base without it, {example}")
    return str(url).strip().rstrip("/")


def configured_request_timeout() -> float:
    """`request_timeout` from dlt config (`[sources.stripe]`, SOURCES__STRIPE__REQUEST_TIMEOUT), else the default."""
    import dlt

    value = dlt.config.get("sources.stripe.request_timeout")
    return DEFAULT_REQUEST_TIMEOUT if value is None else check_request_timeout(value)


def check_request_timeout(value: object) -> float:
    low, high = REQUEST_TIMEOUT_RANGE
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        seconds = float("nan")
    if isinstance(value, bool) or not low <= seconds <= high:
        raise InvalidInput(f"request_timeout must be a number of seconds from {low:g} to {high:g}, got {value!r}")
    return seconds


def user_agent(suffix: str | None = None) -> str:
    """Our User-Agent with `suffix` appended (default: `[sources.stripe] user_agent_suffix` from dlt config):
    lets Stripe and proxies tell one deployment's traffic from another's (`--user-agent-suffix`)."""
    if suffix is None:
        import dlt

        suffix = dlt.config.get("sources.stripe.user_agent_suffix")
    suffix = "" if suffix is None else check_user_agent_suffix(suffix)
    return f"{USER_AGENT} {suffix}" if suffix else USER_AGENT


def check_user_agent_suffix(value: object) -> str:
    text = str(value).strip()
    if text and not (len(text) <= USER_AGENT_SUFFIX_MAX and _USER_AGENT_SUFFIX.fullmatch(text)):
        raise InvalidInput(
            f"user_agent_suffix must be printable ASCII of at most {USER_AGENT_SUFFIX_MAX} characters "
            "(e.g. acme-analytics/2.1), without line breaks"
        )
    return text
