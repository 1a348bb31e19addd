"""Talking to Stripe: authenticated pages of raw JSON, pacing under the rate limits, retries.

Why not `client.v1.<object>.list()`: turning every object into a `StripeObject` and back with
`to_dict()` costs ~1.8 ms of CPU per invoice (~560/s on one core). `raw_request` is faster but
still decodes the body to `str` and parses it with the stdlib json and an `OrderedDict` hook, and
rebuilds the telemetry/user-agent headers on every call. We keep what the SDK is for (the
`StripeClient` carries key, account, pinned API version and base URL; errors come out as the SDK's
typed exceptions, raised by the SDK's own response interpreter) and do the transport ourselves: one
urllib3 pool, headers built once, one `orjson` parse per page. Not `requests`: its `Session` spent
2.1 ms of CPU per 140 KB page here (it reads a body in 10 KB chunks through generators), urllib3
0.6 ms, and a backfill's extracting process is CPU-bound.
"""

from __future__ import annotations

import itertools
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlencode

import certifi
import orjson
import stripe
import urllib3
from requests.adapters import HTTPAdapter
from requests.utils import get_environ_proxies, prepend_scheme_if_needed, select_proxy

from .credentials import StripeCredentials
from .errors import ReauthenticationRequired, StripeUnavailable

logger = logging.getLogger(__name__)

API_VERSION: str = stripe.api_version  # the SDK's pinned version; objects are shaped by it
DEFAULT_API_BASE = "https://api.stripe.com"
DEFAULT_CONNECT_BASE = "https://connect.stripe.com"
API_BASE_ENV = "STRIPE_API_BASE"  # env vars that point the source (and `connect`) elsewhere,
CONNECT_BASE_ENV = "STRIPE_CONNECT_BASE"  # e.g. at the local emulator
PAGE_SIZE = 100  # Stripe's maximum `limit`
USER_AGENT = f"dlt-source-stripe/0.1 (stripe-python {stripe.VERSION})"

RETRY_STATUSES = frozenset({409, 429, 500, 502, 503, 504})


@dataclass
class RateLimits:
    """Stripe's read limits for one account; we pace every request of a run under them.

    Live mode allows ~100 requests/s per account and 25/s per endpoint; test mode 25/s overall.
    `headroom` keeps us slightly under, so bursts from network jitter do not trip Stripe's bucket.
    Accounts with raised limits set `max_requests_per_second` / `max_requests_per_endpoint`.
    """

    global_rps: float
    endpoint_rps: float
    headroom: float = 0.97

    @classmethod
    def for_mode(cls, livemode: bool) -> RateLimits:
        return cls(100.0, 25.0) if livemode else cls(25.0, 25.0)


class Pacer:
    """Spaces requests so the account-wide and per-endpoint rates are never exceeded.

    Both limits are token buckets, as Stripe's are (and as Stripe advises clients to pace): a rate
    and a burst of `BURST` requests. The small burst is what keeps the rate when a waiting thread
    wakes late (a busy process hands the GIL over every 5 ms, half a global slot at 100 req/s):
    the next slot is due one interval after the last one was due, not after it was taken, so
    lateness is made up instead of lost. Over any span T at most rate * T + BURST requests go.
    A request goes when its endpoint's bucket and the global one both have a token now.
    Slots are never reserved ahead, so a backlog on one endpoint cannot hold the global schedule
    hostage. When several requests wait for the same global slot, the one with the higher
    priority wins, then the one that has waited longest: sub-list pages (invoice lines) get
    priority because one endpoint carries them all, and it is what bounds a backfill's length
    when it has to fight twenty list endpoints for every global slot.
    On a 429 the pace slows down multiplicatively, then recovers a little with every success,
    so a shared account (the merchant's own traffic counts too) settles just under the limit.
    """

    BURST = 2

    def __init__(self, limits: RateLimits) -> None:
        self.limits = limits
        self._cond = threading.Condition()
        # when each bucket's next token is due (its "theoretical arrival time")
        self._global_due = 0.0
        self._due_by_endpoint: dict[str, float] = {}
        self._waiting: dict[int, tuple[int, str]] = {}  # ticket -> (priority, endpoint)
        self._tickets = itertools.count()
        self._factor = 1.0

    def wait_turn(self, endpoint: str, priority: int = 0) -> float:
        """Block until a request to `endpoint` may go; returns that moment (`time.monotonic()`)."""
        with self._cond:
            ticket = next(self._tickets)
            self._waiting[ticket] = (priority, endpoint)
            try:
                while True:
                    now = time.monotonic()
                    ready = max(self._global_ready(), self._endpoint_ready(endpoint))
                    if ready > now:
                        self._cond.wait(timeout=ready - now)
                    elif self._first_in_line(ticket, priority, now):
                        global_interval, endpoint_interval = self._intervals()
                        self._global_due = max(self._global_due, now) + global_interval
                        due = self._due_by_endpoint.get(endpoint, 0.0)
                        self._due_by_endpoint[endpoint] = max(due, now) + endpoint_interval
                        return now
                    else:  # someone ahead takes this slot; its notify wakes us for the next one
                        self._cond.wait(timeout=0.05)
            finally:
                del self._waiting[ticket]
                self._cond.notify_all()

    def _intervals(self, slowed: bool = True) -> tuple[float, float]:
        scale = self.limits.headroom * (self._factor if slowed else 1.0)
        return 1.0 / (self.limits.global_rps * scale), 1.0 / (self.limits.endpoint_rps * scale)

    # The burst allowance stays that of the full rate: slowing down after a 429 must not enlarge it.
    def _global_ready(self) -> float:
        return self._global_due - (self.BURST - 1) * self._intervals(slowed=False)[0]

    def _endpoint_ready(self, endpoint: str) -> float:
        return self._due_by_endpoint.get(endpoint, 0.0) - (self.BURST - 1) * self._intervals(slowed=False)[1]

    def _first_in_line(self, ticket: int, priority: int, now: float) -> bool:
        """No waiter whose endpoint is free has a higher priority, or the same and an older ticket."""
        for other, (other_priority, other_endpoint) in self._waiting.items():
            if other == ticket or self._endpoint_ready(other_endpoint) > now:
                continue
            if other_priority > priority or (other_priority == priority and other < ticket):
                return False
        return True

    def slow_down(self) -> None:
        with self._cond:
            self._factor = max(0.25, self._factor * 0.7)

    def recover(self) -> None:
        if self._factor < 1.0:
            with self._cond:
                self._factor = min(1.0, self._factor + 0.02)


@dataclass
class RequestStats:
    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    by_endpoint: dict[str, int] = field(default_factory=dict)

    def count(self, endpoint: str) -> None:
        self.requests += 1
        self.by_endpoint[endpoint] = self.by_endpoint.get(endpoint, 0) + 1


class StripeApi:
    """One Stripe account (or connected account) as seen by one run; safe to share across threads."""

    def __init__(
        self,
        credentials: StripeCredentials,
        api_base: str = DEFAULT_API_BASE,
        *,
        connect_base: str = DEFAULT_CONNECT_BASE,
        limits: RateLimits | None = None,
        max_attempts: int = 8,
        max_rate_limit_attempts: int = 40,
        timeout: float = 60.0,
        pool_size: int = 64,
        on_token_refresh: Callable[[StripeCredentials], None] | None = None,
    ) -> None:
        self.credentials = credentials
        self.api_base = api_base.rstrip("/")
        self.connect_base = connect_base.rstrip("/")
        self.sdk = stripe.StripeClient(
            str(credentials.api_key),
            stripe_account=credentials.stripe_account,
            stripe_version=API_VERSION,
            base_addresses={"api": self.api_base, "connect": self.connect_base},
            client_id=credentials.client_id,
        )
        self.pacer = Pacer(limits or RateLimits.for_mode(credentials.livemode))
        self.max_attempts = max_attempts
        self.max_rate_limit_attempts = max_rate_limit_attempts
        self.timeout = timeout
        self.stats = RequestStats()
        self.server_time: int | None = None  # Stripe's clock, from the Date header
        self.on_token_refresh = on_token_refresh
        self._refresh_lock = threading.Lock()
        self._http = _connection_pool(self.api_base, pool_size)
        self._set_headers()

    def _set_headers(self) -> None:
        headers = {
            "Authorization": f"Bearer {self.credentials.api_key}",
            "Stripe-Version": API_VERSION,
            "User-Agent": USER_AGENT,
            "Accept-Encoding": "gzip",
        }
        if self.credentials.stripe_account:
            headers["Stripe-Account"] = self.credentials.stripe_account
        self._headers = headers

    # --- one request
    def get(
        self, path: str, params: Mapping[str, Any] | None = None, *, endpoint: str | None = None, priority: int = 0
    ) -> dict:
        """GET `path`, paced and retried; returns the parsed JSON or raises the SDK's typed error."""
        return orjson.loads(self.get_raw(path, params, endpoint=endpoint, priority=priority))

    def get_raw(
        self, path: str, params: Mapping[str, Any] | None = None, *, endpoint: str | None = None, priority: int = 0
    ) -> bytes:
        """`get` without the parse: the JSON body of the successful response."""
        endpoint = endpoint or path
        url = self.api_base + path
        if params:
            # as requests encodes them: lists as repeated keys, None values left out
            url += "?" + urlencode({k: v for k, v in params.items() if v is not None}, doseq=True)
        attempt = 0
        refreshed = False
        while True:
            attempt += 1
            self.pacer.wait_turn(endpoint, priority)
            self.stats.count(endpoint)
            try:
                response = self._http.request("GET", url, headers=self._headers, timeout=self.timeout, retries=False)
            except urllib3.exceptions.HTTPError as exc:  # refused, reset, timed out, broken TLS
                if attempt >= self.max_attempts:
                    raise StripeUnavailable(
                        f"Stripe did not answer GET {endpoint} after {attempt} attempts ({type(exc).__name__}): "
                        "check the network or Stripe's status page and run again"
                    ) from None
                self._backoff(attempt, endpoint, reason=type(exc).__name__)
                continue
            status = response.status
            if status == 200:
                self.pacer.recover()
                self._note_server_time(response)
                return response.data
            if status in RETRY_STATUSES and self._should_retry(response, attempt):
                if status == 429:
                    self.stats.rate_limited += 1
                    self.pacer.slow_down()
                self._backoff(attempt, endpoint, reason=str(status))
                continue
            if status == 401 and not refreshed and self._refresh_access_token():
                refreshed = True  # once: a new token that is refused too means re-authenticate
                continue
            self._raise_sdk_error(response)

    def _should_retry(self, response: urllib3.BaseHTTPResponse, attempt: int) -> bool:
        if response.status == 429:
            # A rate-limit 429 is always worth waiting out; Stripe-Should-Retry only speaks for
            # lock timeouts and other 429s. A load never fails on a 429 before this cap.
            return attempt < self.max_rate_limit_attempts
        if response.headers.get("Stripe-Should-Retry") == "false":
            return False
        return attempt < self.max_attempts

    def _backoff(self, attempt: int, endpoint: str, reason: str) -> None:
        self.stats.retries += 1
        delay = min(30.0, 0.5 * 2 ** min(attempt - 1, 6)) * random.uniform(0.5, 1.0)
        logger.info("Retrying GET %s in %.1fs (attempt %d, %s)", endpoint, delay, attempt, reason)
        time.sleep(delay)

    def _note_server_time(self, response: urllib3.BaseHTTPResponse) -> None:
        date = response.headers.get("Date")
        if date:
            try:
                self.server_time = int(parsedate_to_datetime(date).timestamp())
            except (TypeError, ValueError):
                pass

    def _raise_sdk_error(self, response: urllib3.BaseHTTPResponse) -> None:
        """Raise what the SDK would raise for this response; 401 becomes our re-auth error."""
        try:
            self.sdk._requestor._interpret_response(response.data, response.status, response.headers, "V1")
        except stripe.AuthenticationError as exc:
            raise ReauthenticationRequired(_reason(exc), self.credentials.stripe_account) from None
        raise stripe.APIError(f"Unexpected HTTP {response.status} from Stripe")  # not reached

    def _refresh_access_token(self) -> bool:
        """OAuth tokens: trade the refresh token for a new access token once, then retry."""
        creds = self.credentials
        if not (creds.refresh_token and creds.client_secret):
            return False
        with self._refresh_lock:
            from .connection import refresh_access_token  # the connection step owns OAuth

            try:
                refresh_access_token(creds, connect_base=self.connect_base)
            except ReauthenticationRequired:
                return False
            self._set_headers()
            if self.on_token_refresh:
                self.on_token_refresh(creds)
            return True

    def close(self) -> None:
        self._http.clear()


def _reason(exc: stripe.StripeError) -> str:
    """The short reason of an auth error without the (masked) key Stripe echoes in its message."""
    # The SDK leaves `code` unset on AuthenticationError; the parsed error body has it.
    code = getattr(exc, "code", None) or getattr(getattr(exc, "error", None), "code", None)
    if code == "api_key_expired":
        return "the key or access token has expired"
    if code in ("invalid_api_key", None):
        return "the key is invalid or was revoked"
    return str(code)


def _connection_pool(api_base: str, size: int) -> urllib3.PoolManager:
    """Pooled connections to `api_base`, through the proxy (with its credentials), `NO_PROXY`
    rules and CA bundle that `requests` would use: its own helpers read them from the environment."""
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=size, max_retries=0)
    proxy = select_proxy(api_base, get_environ_proxies(api_base))
    manager = adapter.proxy_manager_for(prepend_scheme_if_needed(proxy, "http")) if proxy else adapter.poolmanager
    ca = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or certifi.where()
    manager.connection_pool_kw.update({"ca_cert_dir": ca} if os.path.isdir(ca) else {"ca_certs": ca})
    manager.connection_pool_kw["cert_reqs"] = "CERT_REQUIRED"
    return manager
