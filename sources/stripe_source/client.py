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

import copy
import itertools
import logging
import os
import random
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

import certifi
import orjson
import stripe
import urllib3
from dlt.common.runtime import signals as dlt_signals
from requests.adapters import HTTPAdapter
from requests.utils import get_environ_proxies, prepend_scheme_if_needed, select_proxy

from .credentials import StripeCredentials
from .errors import InvalidInput, NotStripe, ReauthenticationRequired, StripeUnavailable

logger = logging.getLogger(__name__)

API_VERSION: str = stripe.api_version  # the SDK's pinned version; objects are shaped by it
DEFAULT_API_BASE = "https://api.stripe.com"
DEFAULT_CONNECT_BASE = "https://connect.stripe.com"
API_BASE_ENV = "STRIPE_API_BASE"  # env vars that point the source (and `connect`) elsewhere,
CONNECT_BASE_ENV = "STRIPE_CONNECT_BASE"  # e.g. at the local emulator
PAGE_SIZE = 100  # Stripe's maximum `limit`
USER_AGENT = f"dlt-source-stripe/0.1 (stripe-python {stripe.VERSION})"
USER_AGENT_SUFFIX_MAX = 100
_USER_AGENT_SUFFIX = re.compile(r"[ -~]+")  # printable ASCII: it goes into an HTTP header as is

RETRY_STATUSES = frozenset({409, 429, 500, 502, 503, 504})
# Seconds to wait for one answer (`[sources.stripe] request_timeout`, `--request-timeout`). Stripe
# answers a 100-object page in well under a second; 30 s is long for Stripe and short for a person.
DEFAULT_REQUEST_TIMEOUT = 30.0
REQUEST_TIMEOUT_RANGE = (0.5, 600.0)
RETRY_TIME_FACTOR = 4  # one request is retried for at most this many request timeouts (429s aside)
# A server that never answered this run is most likely the wrong one (a typo in --api-base, no
# network): give up after this many attempts instead of backing off for a minute.
FIRST_CONTACT_ATTEMPTS = 2


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
    """Our User-Agent, with `suffix` (default: `configured_user_agent_suffix()`) appended: lets Stripe and
    proxies tell one deployment's traffic from another's (`--user-agent-suffix`, `[sources.stripe]
    user_agent_suffix`)."""
    suffix = configured_user_agent_suffix() if suffix is None else check_user_agent_suffix(suffix)
    return f"{USER_AGENT} {suffix}" if suffix else USER_AGENT


def configured_user_agent_suffix() -> str:
    """`user_agent_suffix` from dlt config (`[sources.stripe]`, SOURCES__STRIPE__USER_AGENT_SUFFIX), else none."""
    import dlt

    value = dlt.config.get("sources.stripe.user_agent_suffix")
    return "" if value is None else check_user_agent_suffix(value)


def check_user_agent_suffix(value: object) -> str:
    text = str(value).strip()
    if text and not (len(text) <= USER_AGENT_SUFFIX_MAX and _USER_AGENT_SUFFIX.fullmatch(text)):
        raise InvalidInput(
            f"user_agent_suffix must be printable ASCII of at most {USER_AGENT_SUFFIX_MAX} characters "
            "(e.g. acme-analytics/2.1), without line breaks"
        )
    return text


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


# A thread waiting for its turn or a retry looks at dlt's signal flag this often, so Ctrl-C and
# SIGTERM stop a paced run at once instead of dlt's thread pool timing out on our waits.
_SIGNAL_POLL_SECONDS = 0.2


def _interruptible_sleep(seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        dlt_signals.raise_if_signalled()
        time.sleep(min(left, _SIGNAL_POLL_SECONDS))
    dlt_signals.raise_if_signalled()


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
                    dlt_signals.raise_if_signalled()
                    if ready > now:
                        self._cond.wait(timeout=min(ready - now, _SIGNAL_POLL_SECONDS))
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
        timeout: float | None = None,
        pool_size: int = 64,
        refresh: Callable[[StripeCredentials], StripeCredentials] | None = None,
        on_token_refresh: Callable[[StripeCredentials], None] | None = None,
        user_agent_suffix: str | None = None,
    ) -> None:
        """`timeout`: seconds to wait for one answer (default: `configured_request_timeout()`); a
        request is retried for at most `RETRY_TIME_FACTOR` times that (429s have their own cap).

        `refresh`: for OAuth tokens, called with the credentials whose access token Stripe refused
        (or that is about to expire); returns credentials with one that works, or raises
        `ReauthenticationRequired`. The connection step provides it (`connection.tokens`); the
        client only knows when to call it. `on_token_refresh` is told of every new token.
        """
        self.credentials = credentials
        self.api_base = check_base_url(api_base, "api_base")
        self.connect_base = check_base_url(connect_base, "connect_base")
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
        self.timeout = configured_request_timeout() if timeout is None else check_request_timeout(timeout)
        self._timeouts = urllib3.Timeout(connect=min(10.0, self.timeout), read=self.timeout)
        self.retry_seconds = RETRY_TIME_FACTOR * self.timeout
        self._answered = False  # any HTTP answer from api_base yet (else errors mean a wrong URL or no network)
        self.stats = RequestStats()
        self.server_time: int | None = None  # Stripe's clock, from the Date header
        self.refresh = refresh
        self.on_token_refresh = on_token_refresh
        self._refresh_lock = threading.Lock()
        self._user_agent = user_agent(user_agent_suffix)
        self._http = _connection_pool(self.api_base, pool_size)
        self._set_headers()

    def _set_headers(self) -> None:
        headers = {
            "Authorization": f"Bearer {self.credentials.api_key}",
            "Stripe-Version": API_VERSION,
            "User-Agent": self._user_agent,
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
        body = self.get_raw(path, params, endpoint=endpoint, priority=priority)
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError:
            parsed = None
        if not isinstance(parsed, dict):
            text = " ".join(body[:60].decode("utf-8", "replace").split())
            raise NotStripe(self.api_base + path, 200, f"malformed JSON {text!r}")
        return parsed

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
        started = time.monotonic()
        while True:
            attempt += 1
            self.pacer.wait_turn(endpoint, priority)
            self.stats.count(endpoint)
            headers = self._headers  # the token this request carries, should Stripe refuse it
            try:
                response = self._http.request("GET", url, headers=headers, timeout=self._timeouts,
                                              retries=False)
            except urllib3.exceptions.HTTPError as exc:  # refused, reset, timed out, broken TLS
                reason = self._failure(exc)
                if not self._answered and attempt >= FIRST_CONTACT_ATTEMPTS:
                    raise StripeUnavailable(
                        f"Cannot reach {self.api_base} ({reason}): check --api-base (or STRIPE_API_BASE, "
                        "[sources.stripe] api_base), the network and any proxy, then run again"
                    ) from None
                if attempt >= self.max_attempts or not self._may_wait(started, attempt):
                    raise StripeUnavailable(
                        f"Stripe did not answer GET {self.api_base}{path} after {attempt} attempts ({reason}): "
                        "check the network or Stripe's status page and run again"
                    ) from None
                self._backoff(attempt, endpoint, reason=reason)
                continue
            self._answered = True
            status = response.status
            if status == 200:
                self.pacer.recover()
                self._note_server_time(response)
                if not _looks_like_a_stripe_object(response.data):
                    raise NotStripe(self.api_base + path, status, _what_came(response))
                return response.data
            if status in RETRY_STATUSES:
                if self._should_retry(response, attempt) and (status == 429 or self._may_wait(started, attempt)):
                    if status == 429:
                        self.stats.rate_limited += 1
                        self.pacer.slow_down()
                    self._backoff(attempt, endpoint, reason=str(status))
                    continue
                if status >= 500 or status == 429 or _stripe_error_body(response) is None:
                    raise StripeUnavailable(
                        f"Stripe answered GET {self.api_base}{path} with HTTP {status} {attempt} times "
                        f"({_what_came(response)}): check Stripe's status page and run again"
                    )
            if status == 401 and not refreshed and self._renew_token(headers):
                refreshed = True  # once: a new token that is refused too means re-authenticate
                continue  # the same request again: no page is lost or read twice
            self._raise_sdk_error(response, self.api_base + path)

    def _may_wait(self, started: float, attempt: int) -> bool:
        """Whether the next backoff still ends within the request's retry time."""
        return time.monotonic() + _backoff_seconds(attempt) * 0.5 < started + self.retry_seconds

    def _failure(self, exc: urllib3.exceptions.HTTPError) -> str:
        """What went wrong with the connection, in words (no URL: the callers name it)."""
        # most specific first: NameResolutionError < NewConnectionError < ConnectTimeoutError
        if isinstance(exc, urllib3.exceptions.NameResolutionError):
            return "unknown host"
        if isinstance(exc, urllib3.exceptions.NewConnectionError):
            return "connection refused" if "refused" in str(exc).lower() else "no connection"
        if isinstance(exc, urllib3.exceptions.ConnectTimeoutError):
            return f"no connection within {min(10.0, self.timeout):g} s"
        if isinstance(exc, urllib3.exceptions.ReadTimeoutError):
            return f"no answer within {self.timeout:g} s"
        if isinstance(exc, urllib3.exceptions.SSLError):
            return "TLS error"
        if isinstance(exc, urllib3.exceptions.ProtocolError):
            return "connection closed without an answer"
        return type(exc).__name__

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
        delay = _backoff_seconds(attempt) * random.uniform(0.5, 1.0)
        logger.info("Retrying GET %s in %.1fs (attempt %d, %s)", endpoint, delay, attempt, reason)
        _interruptible_sleep(delay)

    def _note_server_time(self, response: urllib3.BaseHTTPResponse) -> None:
        date = response.headers.get("Date")
        if date:
            try:
                self.server_time = int(parsedate_to_datetime(date).timestamp())
            except (TypeError, ValueError):
                pass

    def _raise_sdk_error(self, response: urllib3.BaseHTTPResponse, url: str) -> None:
        """Raise what the SDK would raise for this response; 401 becomes our re-auth error.

        An answer without Stripe's error object (a proxy's or a web server's page) is not Stripe's:
        the SDK would fail on it with a traceback, so it is named as such instead.
        """
        if _stripe_error_body(response) is None:
            raise NotStripe(url, response.status, _what_came(response))
        try:
            self.sdk._requestor._interpret_response(response.data, response.status, response.headers, "V1")
        except stripe.AuthenticationError as exc:
            raise ReauthenticationRequired(_reason(exc), self.credentials.stripe_account) from None
        raise stripe.APIError(f"Unexpected HTTP {response.status} from Stripe")  # not reached

    def _renew_token(self, refused: Mapping[str, str]) -> bool:
        """After a 401: whether a new access token is in place (renewed now, or by another thread
        since this request went out); False when there is nothing to renew with."""
        if self.refresh is None or not self.credentials.refresh_token:
            return False
        with self._refresh_lock:
            if self._headers is not refused:
                return True  # requests in flight all got the 401; the first one renewed it for them
            self.use_credentials(self.refresh(self.credentials))
            return True

    def renew_token(self) -> None:
        """Renew the OAuth access token now (it is about to expire); raises `ReauthenticationRequired`."""
        if self.refresh is None:
            raise ReauthenticationRequired("no refresh token is stored", self.credentials.stripe_account)
        with self._refresh_lock:
            self.use_credentials(self.refresh(self.credentials))

    def use_credentials(self, credentials: StripeCredentials) -> None:
        """Send these credentials from now on (a renewed or adopted token)."""
        self.credentials = credentials
        self._set_headers()
        if self.on_token_refresh:
            self.on_token_refresh(credentials)

    def for_account(self, account: str | None, pacer: Pacer | None = None) -> StripeApi:
        """This client reading `account` (a connected account, through `Stripe-Account`; None: the
        key's own): the same connections, retries and pacer (or `pacer`), its own request counts."""
        view = copy.copy(self)
        view.credentials = copy.copy(self.credentials)
        view.credentials.stripe_account = account
        view.pacer = pacer or self.pacer
        view.stats = RequestStats()
        view._set_headers()
        return view

    def close(self) -> None:
        self._http.clear()


def _backoff_seconds(attempt: int) -> float:
    return min(30.0, 0.5 * 2 ** min(attempt - 1, 6))


def _looks_like_a_stripe_object(body: bytes) -> bool:
    """Cheaply (pages are parsed elsewhere): a JSON object that names its `object`, as all of Stripe's do."""
    return body[:64].lstrip()[:1] == b"{" and body[-64:].rstrip()[-1:] == b"}" and b'"object"' in body


def _stripe_error_body(response: urllib3.BaseHTTPResponse) -> dict | None:
    """Stripe's `{"error": {...}}`, or None when the body is something else."""
    try:
        body = orjson.loads(response.data)
    except orjson.JSONDecodeError:
        return None
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else None


def _what_came(response: urllib3.BaseHTTPResponse) -> str:
    """A short description of a body, for a message: its type and its first characters."""
    body = response.data or b""
    error = _stripe_error_body(response)
    if error is not None:
        return f"Stripe's error {str(error.get('message') or error.get('type') or 'without a message')[:80]!r}"
    kind = (response.headers.get("Content-Type") or "no content type").split(";")[0].strip()
    if not body.strip():
        return f"an empty body ({kind})"
    text = " ".join(body[:200].decode("utf-8", "replace").split())
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{kind} {text!r}"


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
