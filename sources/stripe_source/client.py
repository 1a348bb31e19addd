"""Talking to Stripe: authenticated pages of raw JSON over one connection pool, each request paced
(`pacing.py`) and retried (`retries.py`); settings and their checks are in `api_settings.py`.

Why not `client.v1.<object>.list()`: turning every object into a `StripeObject` and back with
`to_dict()` costs ~1.8 ms of CPU per invoice (~560/s on one core). `raw_request` is faster but
still decodes the body to `str` and parses it with the stdlib json and an `OrderedDict` hook, and
rebuilds the telemetry/user-agent headers on every call. We keep what the SDK is for (the
`StripeClient` carries key, account, pinned API version and base URL; errors come out as the SDK's
typed exceptions, raised by the SDK's own response interpreter) and do the transport ourselves: one
urllib3 pool (`transport.py`), headers built once (`authorization.py`), one `orjson` parse per page.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import stripe

from .answers import (
    kept_failing,
    looks_like_a_stripe_object,
    parse_object,
    raise_refusal,
    server_time,
    stripe_error_body,
    unavailable,
    what_came,
)
from .api_settings import (
    API_BASE_ENV,
    API_VERSION,
    CONNECT_BASE_ENV,
    DEFAULT_API_BASE,
    DEFAULT_CONNECT_BASE,
    PAGE_SIZE,
    USER_AGENT,
    check_base_url,
    check_request_timeout,
    check_user_agent_suffix,
    configured_request_timeout,
    user_agent,
)
from .authorization import Authorization
from .credentials import StripeCredentials
from .errors import NotStripe
from .pacing import Pacer, RateLimits, interruptible_sleep
from .retries import RETRY_STATUSES, RETRY_TIME_FACTOR, GiveUp, RetryPolicy
from .transport import Transport, Unreachable

# What the rest of the source (and its users) import from here; each lives in its own module.
__all__ = [
    "API_BASE_ENV",
    "API_VERSION",
    "CONNECT_BASE_ENV",
    "DEFAULT_API_BASE",
    "DEFAULT_CONNECT_BASE",
    "PAGE_SIZE",
    "USER_AGENT",
    "Pacer",
    "RateLimits",
    "RequestStats",
    "StripeApi",
    "check_base_url",
    "check_request_timeout",
    "check_user_agent_suffix",
    "configured_request_timeout",
    "user_agent",
]

logger = logging.getLogger(__name__)


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
        user_agent_suffix: str | None = None,
    ) -> None:
        """`timeout`: seconds to wait for one answer (default: `configured_request_timeout()`); a
        request is retried for at most `RETRY_TIME_FACTOR` times that (429s have their own cap).

        `refresh`: for OAuth tokens, called with the credentials whose access token Stripe refused
        (or that is about to expire); returns credentials with one that works, or raises
        `ReauthenticationRequired`. The connection step provides it (`connection.tokens`); the
        client only knows when to call it.
        """
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
        self.timeout = configured_request_timeout() if timeout is None else check_request_timeout(timeout)
        self.retries = RetryPolicy(max_attempts, max_rate_limit_attempts, RETRY_TIME_FACTOR * self.timeout)
        self._answered = False  # any HTTP answer from api_base yet (else errors mean a wrong URL or no network)
        self.stats = RequestStats()
        self.server_time: int | None = None  # Stripe's clock, from the Date header
        self.auth = Authorization(credentials, user_agent(user_agent_suffix), refresh)
        self.transport = Transport(self.api_base, self.timeout, pool_size)

    @property
    def credentials(self) -> StripeCredentials:
        return self.auth.credentials

    # --- one request
    def get(
        self, path: str, params: Mapping[str, Any] | None = None, *, endpoint: str | None = None, priority: int = 0
    ) -> dict:
        """GET `path`, paced and retried; returns the parsed JSON or raises the SDK's typed error."""
        return parse_object(self.get_raw(path, params, endpoint=endpoint, priority=priority), self.api_base + path)

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
            headers = self.auth.headers  # the token this request carries, should Stripe refuse it
            try:
                response = self.transport.get(url, headers)
            except Unreachable as exc:
                wait = self.retries.after_failure(attempt, time.monotonic() - started, self._answered)
                if isinstance(wait, GiveUp):
                    raise unavailable(wait, self.api_base, path, attempt, str(exc)) from None
                self._backoff(wait, attempt, endpoint, reason=str(exc))
                continue
            self._answered = True
            status = response.status
            if status == 200:
                self.pacer.recover()
                self.server_time = server_time(response.headers) or self.server_time
                if not looks_like_a_stripe_object(response.data):
                    raise NotStripe(self.api_base + path, status, what_came(response))
                return response.data
            wait = self.retries.after_answer(attempt, status, response.headers, time.monotonic() - started)
            if not isinstance(wait, GiveUp):
                if status == 429:
                    self.stats.rate_limited += 1
                    self.pacer.slow_down()
                self._backoff(wait, attempt, endpoint, reason=str(status))
                continue
            if status in RETRY_STATUSES and (status >= 500 or status == 429 or stripe_error_body(response) is None):
                raise kept_failing(self.api_base + path, response, attempt)
            if status == 401 and not refreshed and self.auth.renew_after_refusal(headers):
                refreshed = True  # once: a new token that is refused too means re-authenticate
                continue  # the same request again: no page is lost or read twice
            raise_refusal(self.sdk, response, self.api_base + path, self.credentials.stripe_account)

    def _backoff(self, delay: float, attempt: int, endpoint: str, reason: str) -> None:
        self.stats.retries += 1
        logger.info("Retrying GET %s in %.1fs (attempt %d, %s)", endpoint, delay, attempt, reason)
        interruptible_sleep(delay)

    def for_account(self, account: str | None, pacer: Pacer | None = None) -> StripeApi:
        """This client reading `account` (a connected account, through `Stripe-Account`; None: the
        key's own): the same connections, retries and pacer (or `pacer`), its own request counts."""
        view = copy.copy(self)
        view.auth = self.auth.for_account(account)
        view.pacer = pacer or self.pacer
        view.stats = RequestStats()
        return view

    def close(self) -> None:
        self.transport.close()

